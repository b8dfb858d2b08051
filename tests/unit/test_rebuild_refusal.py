"""The rebuild's refusals name what is missing and say to republish identity's event store."""

from __future__ import annotations

from services.profiles.log_completeness import behind_live, headless


def test_a_log_whose_partitions_all_start_at_zero_is_accepted() -> None:
    assert headless("contacts.contact-events.v1", {0: 0, 1: 0, 2: 0}) is None
    assert headless("contacts.contact-events.v1", {}) is None


def test_a_partition_that_lost_its_head_is_refused_with_the_republish_hint() -> None:
    refusal = headless("contacts.contact-events.v1", {0: 0, 2: 1200, 1: 7})
    assert refusal is not None
    message = str(refusal)
    assert "partition 1 starts at offset 7, partition 2 starts at offset 1,200" in message
    assert "partition 0" not in message
    assert "`contacts republish contact-events`" in message and "delete contacts.contact-events.v1" in message


def test_a_replay_behind_the_live_read_model_is_refused_with_what_profiles_had_consumed() -> None:
    assert behind_live("t", behind=0, expected=10, example=None, consumed_past_end={}) is None
    refusal = behind_live("t", behind=3, expected=1000, example="contact c-1: version 4 live, none replayed",
                          consumed_past_end={1: (5000, 12)})
    assert refusal is not None
    message = str(refusal)
    assert "3 of 1,000 contacts" in message and "contact c-1: version 4 live" in message
    assert "consumed partition 1 up to offset 5,000, the log now ends at 12" in message
    assert "`contacts republish contact-events`" in message
