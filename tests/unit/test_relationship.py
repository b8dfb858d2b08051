"""The relationship change rules: what a PATCH body may say, and how an accepted change folds into an organizer's
relationship (the same fold the rebuild replays)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.profiles.permission import Statement, effective
from services.profiles.relationship import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    ContactChange,
    Relationship,
    RelationshipPatch,
    apply,
    problems,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def change(body: dict[str, Any], *, minutes: int = 0, by: str = "alice") -> ContactChange:
    return ContactChange(
        change_id=f"ch-{minutes}-{by}",
        organizer_id="org-a",
        contact_id="c1",
        changed_by=by,
        changed_at=T0 + timedelta(minutes=minutes),
        patch=RelationshipPatch.model_validate(body),
    )


NEW = Relationship()


def fold(*bodies: dict[str, Any], start: Relationship = NEW) -> Relationship:
    relationship = start
    for minutes, body in enumerate(bodies):
        relationship = apply(relationship, change(body, minutes=minutes))
    return relationship


def errors(body: object) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as raised:
        RelationshipPatch.model_validate(body)
    return [(error["loc"], error["msg"]) for error in raised.value.errors()]


def test_tags_are_trimmed_lowercased_and_deduplicated_in_the_order_first_added() -> None:
    after = fold({"tags": {"add": ["  VIP ", "Speaker   2026", "vip", "Sponsor"]}}, {"tags": {"add": ["SPEAKER 2026"]}})

    assert after.tags == ("vip", "speaker 2026", "sponsor")


def test_set_replaces_the_tags_then_remove_and_add_apply() -> None:
    start = fold({"tags": {"add": ["a", "b", "c"]}})

    assert fold({"tags": {"remove": ["B", "missing"]}}, start=start).tags == ("a", "c")
    assert fold({"tags": {"set": ["x", "y", "z"], "remove": ["y"], "add": ["a"]}}, start=start).tags == ("x", "z", "a")
    assert fold({"tags": {"set": []}}, start=start).tags == ()


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        ({"tags": {"add": ["ok", "   "]}}, ("tags", "add", 1), "blank"),
        ({"tags": {"add": ["x" * (MAX_TAG_LENGTH + 1)]}}, ("tags", "add", 0), f"at most {MAX_TAG_LENGTH}"),
        ({"tags": {"add": ["a"], "remove": [" A "]}}, ("tags",), "both added and removed: a"),
        ({"tags": {}}, ("tags",), "set, add or remove"),
        ({"tags": None}, ("tags",), "cannot be null"),
        ({"tags": {"add": [f"t{i}" for i in range(MAX_TAGS + 1)]}}, ("tags", "add"), f"at most {MAX_TAGS}"),
        ({"tags": ["vip"]}, ("tags",), "valid dictionary"),
        ({"tags": {"append": ["vip"]}}, ("tags", "append"), "Extra inputs"),
        ({"notes": "x" * 10_001}, ("notes",), "at most 10000"),
        ({"preferences": {}}, ("preferences",), "at least one preference"),
        ({"preferences": {"frequency": "hourly"}}, ("preferences", "frequency"), "'weekly'"),
        ({"preferences": {"channels": {"fax": True}}}, ("preferences", "channels", "fax", "[key]"), "'email'"),
        ({"preferences": {"language": "english!"}}, ("preferences", "language"), "pattern"),
        ({"preferences": {"topics": ["jazz", ""]}}, ("preferences", "topics", 1), "blank"),
        ({"email_permission": "maybe"}, ("email_permission",), "'unsubscribed'"),
        ({"email_permission": None}, ("email_permission",), "cannot be null"),
        ({}, (), "at least one of tags, notes, preferences, email_permission"),
        ({"relationship_version": 2}, ("relationship_version",), "Extra inputs"),
    ],
)
def test_a_bad_patch_is_refused_naming_the_field(body: dict[str, Any], location: tuple[Any, ...], message: str) -> None:
    (found,) = errors(body)

    assert found[0] == location and message in found[1], found


def test_more_tags_than_the_limit_is_a_problem_of_the_result_not_of_the_request() -> None:
    full = fold({"tags": {"set": [f"t{i}" for i in range(MAX_TAGS)]}})
    assert problems(full) == []

    one_more = fold({"tags": {"add": ["extra"]}}, start=full)
    replaced = fold({"tags": {"remove": ["t0"], "add": ["extra"]}}, start=full)

    assert [(p.field, "at most 100 tags" in p.message) for p in problems(one_more)] == [(("tags",), True)]
    assert problems(replaced) == []


def test_notes_are_replaced_and_a_blank_or_null_clears_them() -> None:
    noted = fold({"notes": "Met at the Berlin meetup"})

    assert noted.notes == "Met at the Berlin meetup"
    assert fold({"notes": "  "}, start=noted).notes is None
    assert fold({"notes": None}, start=noted).notes is None
    assert fold({"tags": {"add": ["x"]}}, start=noted).notes == "Met at the Berlin meetup"  # not given: kept


def test_preferences_merge_per_field_and_per_channel_and_null_removes() -> None:
    first = fold({"preferences": {"channels": {"email": True, "sms": False}, "frequency": "weekly",
                                  "topics": ["Jazz ", "jazz", "Tech"], "language": "pt-BR"}})
    assert first.preferences == {"channels": {"email": True, "sms": False}, "frequency": "weekly",
                                 "topics": ["jazz", "tech"], "language": "pt-BR"}

    second = fold({"preferences": {"channels": {"sms": True}, "topics": None}}, start=first)
    assert second.preferences == {"channels": {"email": True, "sms": True}, "frequency": "weekly",
                                  "language": "pt-BR"}

    third = fold({"preferences": {"channels": {"email": None, "sms": None}, "frequency": None}}, start=second)
    assert third.preferences == {"language": "pt-BR"}


def test_an_explicit_permission_is_a_statement_by_the_actor_at_the_change_time() -> None:
    after = apply(Relationship(), change({"email_permission": "unsubscribed"}, minutes=5, by="bob"))

    assert after.explicit == Statement("unsubscribed", T0 + timedelta(minutes=5), "bob")
    later_import = Statement("subscribed", T0 + timedelta(days=30), "import-2")
    assert effective(later_import, after.explicit).status == "unsubscribed"


def test_an_explicit_unknown_withdraws_the_organizers_statement_and_the_next_import_decides() -> None:
    unsubscribed = fold({"email_permission": "unsubscribed"})
    withdrawn = apply(unsubscribed, change({"email_permission": "unknown"}, minutes=1))
    earlier_import = Statement("subscribed", T0 - timedelta(days=1), "import-1")
    later_import = Statement("subscribed", T0 + timedelta(days=1), "import-2")

    assert effective(earlier_import, withdrawn.explicit).status == "unknown"
    assert effective(later_import, withdrawn.explicit).status == "subscribed"
    assert effective(later_import, unsubscribed.explicit).status == "unsubscribed"


def test_every_change_counts_one_version_and_touches_only_what_it_names() -> None:
    start = fold({"tags": {"add": ["a"]}}, {"notes": "n"}, {"preferences": {"frequency": "daily"}})

    after = fold({"email_permission": "subscribed"}, start=start)

    assert (start.version, after.version) == (3, 4)
    assert (after.tags, after.notes, after.preferences) == (start.tags, start.notes, start.preferences)


def test_the_stored_json_of_a_change_validates_back_to_the_same_change() -> None:
    patch = RelationshipPatch.model_validate(
        {"tags": {"add": [" VIP "], "remove": ["old"]}, "notes": None, "preferences": {"channels": {"sms": None}}}
    )

    stored = patch.as_json()

    assert stored == {"tags": {"add": ["vip"], "remove": ["old"]}, "notes": None,
                      "preferences": {"channels": {"sms": None}}}
    assert RelationshipPatch.model_validate(stored) == patch


label = st.text(alphabet="abAB c", min_size=1, max_size=4).filter(lambda s: s.strip())
patches = st.one_of(
    st.builds(lambda add, remove: {"tags": {"add": add, "remove": remove}},
              st.lists(label, max_size=3), st.lists(label, max_size=3)),
    st.builds(lambda tags: {"tags": {"set": tags}}, st.lists(label, max_size=3)),
    st.builds(lambda notes: {"notes": notes}, st.one_of(st.none(), st.text(max_size=5))),
    st.builds(lambda email, sms: {"preferences": {"channels": {"email": email, "sms": sms}}},
              st.one_of(st.none(), st.booleans()), st.one_of(st.none(), st.booleans())),
    st.builds(lambda status: {"email_permission": status}, st.sampled_from(["subscribed", "unsubscribed", "unknown"])),
)


def _valid(body: dict[str, Any]) -> bool:
    try:
        RelationshipPatch.model_validate(body)
    except ValidationError:
        return False
    return True


@settings(max_examples=300)
@given(st.lists(patches.filter(_valid), max_size=8))
def test_replaying_the_stored_changes_rebuilds_the_same_relationship(bodies: list[dict[str, Any]]) -> None:
    changes = [change(body, minutes=i) for i, body in enumerate(bodies)]
    live = Relationship()
    for accepted in changes:
        live = apply(live, accepted)

    replayed = Relationship()
    for accepted in changes:
        stored = RelationshipPatch.model_validate(accepted.patch.as_json())
        replayed = apply(replayed, dataclasses.replace(accepted, patch=stored))

    assert replayed == live
    assert live.version == len(changes)
    assert len(set(live.tags)) == len(live.tags) and all(tag == tag.strip().lower() for tag in live.tags)
