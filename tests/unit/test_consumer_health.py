"""Health's reading of consumer loops: readiness waits for every group's first assignment, liveness names a loop
that has gone without polling (in one batch) for longer than the limit."""

from __future__ import annotations

from shared.consumer import ConsumerHealth, not_joined, stuck


def test_readiness_names_a_consumer_still_joining_and_liveness_one_stuck_in_a_batch() -> None:
    joining = ConsumerHealth(group="g.enrichment", topics=("contacts.contact-events.v1",))
    polling = ConsumerHealth(group="g.profiles", topics=("t",), joined=True, busy_since=None)
    assert not_joined([joining, polling]) == "consumer group g.enrichment: no partition assignment yet (joining)"
    assert not_joined([polling]) is None and not_joined([]) is None
    busy = ConsumerHealth(group="g.identity", topics=("rows",), joined=True, busy_since=100.0)
    assert stuck([polling, busy], now=150.0, limit=60) is None
    assert stuck([polling, busy], now=170.5, limit=60) == (
        "g.identity (rows): in one batch for 70 s, no poll (limit 60 s)")
    assert busy.describe(170.5)["in_batch_seconds"] == 70.5 and polling.describe(170.5)["in_batch_seconds"] == 0
