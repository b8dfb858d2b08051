"""The profile projection, given/when/then, without I/O: whose value is whose."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.profiles.domain import (
    Canonical,
    ContactState,
    FieldSource,
    Shown,
    display_name,
    evolve,
    fold,
    plan_batch,
    snapshot,
)
from services.profiles.insights import RecordedInteraction
from services.profiles.permission import Statement
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactSource,
    ContactUpdatedV1,
    EmailPermission,
    InteractionRecordedV1,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = "ann@x.io"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def imported(organizer: str, import_id: str = "imp-1", permission: EmailPermission | None = None) -> ContactSource:
    return ContactSource(kind="import", organizer_id=organizer, import_id=import_id, row_number=1,
                         email_permission=permission)


def stated(organizer: str, message: str = "m-1") -> ContactSource:
    """The person, through an interaction with ``organizer``'s event."""
    return ContactSource(kind="interaction", organizer_id=organizer, interaction_id=message)


@dataclass
class Log:
    """One contact's log as identity writes it: versions 1, 2, ..., one minute apart."""

    contact_id: str = "c1"
    events: list[ContactEvent] = field(default_factory=list)

    def _common(self, source: ContactSource, minutes: int | None) -> dict[str, Any]:
        version = len(self.events) + 1
        return {"contact_id": self.contact_id, "version": version, "source": source,
                "occurred_at": at(version if minutes is None else minutes)}

    def add(self, source: ContactSource, *, spelled: str | None = None, minutes: int | None = None,
            **values: Any) -> ContactEvent:
        """What identity writes for a record that states ``values`` new to its layer: created, updated or
        matched (nothing new)."""
        common = self._common(source, minutes)
        links = values.pop("social_links", {})
        extra = {name: values.pop(name) for name in ("bio", "user_account_id") if name in values}
        event: ContactEvent
        if not self.events:
            event = ContactCreatedV1(email=EMAIL, email_original=spelled or EMAIL, fields=values,
                                     social_links=links, **extra, **common)
        elif values or links or extra:
            event = ContactUpdatedV1(changes=values, social_links=links, email_original=spelled, **extra, **common)
        else:
            event = ContactMatchedV1(email_original=spelled, **common)
        self.events.append(event)
        return event

    def interaction(self, organizer: str, *, spelled: str | None = None, minutes: int | None = None,
                    message: str | None = None) -> InteractionRecordedV1:
        message = message or f"m-{len(self.events) + 1}"
        event = InteractionRecordedV1(kind="event_checked_in", interaction_id=message, kagibag_event_id="ev-1",
                                      email_original=spelled, **self._common(stated(organizer, message), minutes))
        self.events.append(event)
        return event

    def state(self) -> ContactState:
        return fold(self.contact_id, self.events)


def values_of(shown: Shown) -> dict[str, str]:
    return dict(shown.values)


# --- whose value is whose: the example ----------------------------------------------------------------


def test_each_organizer_sees_only_its_own_imported_values_and_the_person_s_own_statements() -> None:
    log = Log()
    log.add(imported("org-b", "imp-b"), spelled="Ann@X.io", first_name="Ann", company="Bcorp", phone="+1 555")
    log.add(imported("org-a", "imp-a1"), spelled="ann@x.io ")  # A imports the bare email
    state = log.state()

    assert values_of(state.shown("org-a")) == {}
    assert (state.shown("org-a").email_original, state.shown("org-a").display_name) == ("ann@x.io", "ann")
    assert values_of(state.shown("org-b")) == {"first_name": "Ann", "company": "Bcorp", "phone": "+1 555"}
    assert state.shown("org-b").email_original == "Ann@X.io"
    assert state.canonical.stated.values == {} and state.canonical.shown().email_original == EMAIL

    log.add(imported("org-a", "imp-a2"), first_name="Annie", company="Acorp", title="CTO")
    state = log.state()
    assert values_of(state.shown("org-a")) == {"first_name": "Annie", "company": "Acorp", "title": "CTO"}
    assert state.shown("org-a").display_name == "Annie"
    assert values_of(state.shown("org-b")) == {"first_name": "Ann", "company": "Bcorp", "phone": "+1 555"}

    # the person buys a ticket at B's event with their name: both see it; everything else stays each one's own
    log.add(stated("org-b"), spelled="ANN@x.io", first_name="Ann", last_name="Lee")
    state = log.state()
    assert values_of(state.shown("org-a")) == {"first_name": "Ann", "last_name": "Lee", "company": "Acorp",
                                               "title": "CTO"}
    assert values_of(state.shown("org-b")) == {"first_name": "Ann", "last_name": "Lee", "company": "Bcorp",
                                               "phone": "+1 555"}
    assert {state.shown(org).display_name for org in ("org-a", "org-b")} == {"Ann Lee"}
    assert {state.shown(org).email_original for org in ("org-a", "org-b")} == {"ANN@x.io"}
    assert state.canonical.stated.values == {"first_name": "Ann", "last_name": "Lee"}


def test_the_person_s_statement_wins_over_an_organizer_s_later_import() -> None:
    log = Log()
    log.add(stated("org-b"), first_name="Ann")
    log.add(imported("org-a"), first_name="Annabel", company="Acorp")

    shown = log.state().shown("org-a")

    assert values_of(shown) == {"first_name": "Ann", "company": "Acorp"}
    assert log.state().views["org-a"].imported.values == {"first_name": "Annabel", "company": "Acorp"}


def test_a_view_shows_its_own_sources_in_full_and_the_person_s_by_kind_and_time_only() -> None:
    log = Log()
    log.add(imported("org-a", "imp-a"), spelled="Ann@X.io", company="Acorp", minutes=1)
    log.add(stated("org-b", "m-9"), first_name="Ann", social_links={"github": "@ann"}, minutes=2)

    sources = log.state().shown("org-a").sources

    own = FieldSource("import", at(1), "org-a", "imp-a")
    person = FieldSource("interaction", at(2))
    assert sources == {"email": own, "company": own, "first_name": person, "social_links.github": person}
    assert log.state().shown("org-a").social_links == {"github": "@ann"}


def test_the_email_s_spelling_is_the_person_s_first_else_the_organizer_s_first_else_normalized() -> None:
    log = Log()
    log.add(imported("org-b"), spelled="ANN@X.IO")
    log.add(imported("org-a"), spelled="Ann@x.io")
    log.add(imported("org-a"), spelled="aNN@x.io")
    log.add(imported("org-c"))  # an older event that does not say how it was written
    state = log.state()
    assert [state.shown(org).email_original for org in ("org-a", "org-b", "org-c")] == [
        "Ann@x.io", "ANN@X.IO", EMAIL]

    log.interaction("org-d", spelled=" Ann@X.io ")
    log.interaction("org-d", spelled="other@X.io")
    state = log.state()
    assert {state.shown(org).email_original for org in ("org-a", "org-b", "org-c", "org-d")} == {"Ann@X.io"}
    assert state.shown("org-a").sources["email"] == FieldSource("interaction", at(5))


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [("Ann", "Lee", "Ann Lee"), ("Ann", None, "Ann"), (None, " Lee ", "Lee"), (" ", None, "jane.doe"),
     (None, None, "jane.doe")],
)
def test_a_display_name_is_the_full_name_else_the_email_s_local_part(
    first: str | None, last: str | None, expected: str
) -> None:
    assert display_name(email="jane.doe@example.com", first_name=first, last_name=last) == expected
    assert display_name(email="a@b@example.com", first_name=None, last_name=None) == "a@b"
    assert display_name(email=None, first_name=None, last_name=None) is None


# --- what an organizer's view changes with ---------------------------------------------------------------------


def test_another_organizer_s_imports_and_interactions_never_change_a_view_its_version_or_times() -> None:
    log = Log()
    log.add(stated("org-p"), spelled="Ann@X.io", minutes=1)
    log.add(imported("org-a"), first_name="Annie", minutes=2)
    before = log.state().views["org-a"]
    log.add(imported("org-b"), first_name="Ann", company="Bcorp", minutes=50)
    log.interaction("org-b", spelled="ANN@X.IO", minutes=60)
    log.add(imported("org-b", permission="unsubscribed"), minutes=70)

    after = log.state().views["org-a"]

    assert after == before
    assert (after.version, after.created_at, after.updated_at) == (1, at(2), at(2))


def test_the_spelling_of_a_person_s_first_interaction_anywhere_is_their_own_statement() -> None:
    """Even a check-in at another organizer's event, which states nothing else: the person wrote it."""
    log = Log()
    log.add(imported("org-a"), spelled="ann@x.io", minutes=1)
    log.interaction("org-b", spelled="Ann@X.io", minutes=5)

    view = log.state().views["org-a"]

    assert log.state().shown("org-a").email_original == "Ann@X.io"
    assert (view.version, view.updated_at) == (2, at(5))


def test_a_view_s_version_counts_its_changes_from_its_own_events_and_the_person_s() -> None:
    log = Log()
    log.add(imported("org-b"), minutes=1)
    log.add(imported("org-a"), minutes=2)
    log.add(imported("org-a"), title="CTO", minutes=3)
    log.add(imported("org-a"), title="CTO", minutes=4)  # nothing new: a match, the view unchanged
    log.add(stated("org-b"), first_name="Ann", minutes=5)
    log.add(imported("org-a"), first_name="Annie", minutes=6)  # hidden by the person's own first name
    view = log.state().views["org-a"]

    assert (view.version, view.created_at, view.updated_at) == (3, at(2), at(5))
    assert (view.first_seen_at, view.last_seen_at) == (at(2), at(6))


def test_a_view_appears_with_the_organizer_s_first_event_and_only_for_import_and_interaction_sources() -> None:
    log = Log()
    log.add(stated("org-b"), first_name="Ann")
    log.interaction("org-a")
    state = log.state()

    assert set(state.views) == {"org-b", "org-a"}
    assert (state.views["org-a"].version, values_of(state.shown("org-a"))) == (1, {"first_name": "Ann"})
    assert state.views["org-a"].imported.values == {}


def test_what_the_person_states_directly_is_canonical_and_makes_no_organizer_of_anyone() -> None:
    log = Log()
    log.add(imported("org-a"), first_name="Annie")
    log.add(ContactSource(kind="attendee", organizer_id=""), first_name="Ann", bio="Poet")
    state = log.state()

    assert set(state.views) == {"org-a"}
    assert values_of(state.shown("org-a")) == {"first_name": "Ann", "bio": "Poet"}
    assert state.shown("org-a").sources["first_name"] == FieldSource("attendee", at(2))
    assert snapshot(state.canonical).field_sources["bio"].kind == "attendee"


def test_the_latest_import_permission_stands_unsubscribes_first() -> None:
    log = Log()
    log.add(imported("org-a", "imp-1", "subscribed"))
    log.add(imported("org-b", "imp-2", "unsubscribed"))
    log.add(imported("org-a", "imp-3", "unsubscribed"))
    log.add(imported("org-a", "imp-4", "subscribed"))

    views = log.state().views

    assert views["org-a"].import_permission == Statement("unsubscribed", at(3), "imp-3")
    assert views["org-b"].import_permission == Statement("unsubscribed", at(2), "imp-2")


# --- the canonical profile and its snapshots -------------------------------------------------------------------


def test_the_canonical_profile_holds_only_what_the_person_stated() -> None:
    log = Log()
    log.add(imported("org-a"), first_name="Annie", company="Acorp")
    log.add(stated("org-b"), spelled="Ann@X.io", last_name="Lee", bio="Poet", user_account_id="u-7")

    canonical = log.state().canonical

    assert canonical.stated.values == {"last_name": "Lee", "bio": "Poet", "user_account_id": "u-7"}
    assert snapshot(canonical).model_dump() == {
        "contact_id": "c1", "profile_version": 4, "email": EMAIL, "email_original": "Ann@X.io",
        "first_name": None, "last_name": "Lee", "company": None, "title": None, "phone": None,
        "display_name": "Lee", "created_at": at(1), "updated_at": at(2), "bio": "Poet", "social_links": {},
        "user_account_id": "u-7",
        "field_sources": {name: {"kind": "interaction", "at": at(2)}
                          for name in ("email", "last_name", "bio", "user_account_id")},
    }


def test_a_snapshot_of_a_contact_only_organizers_brought_has_the_email_alone() -> None:
    log = Log()
    log.add(imported("org-a"), spelled="Ann@X.io", first_name="Annie")

    published = snapshot(log.state().canonical)

    assert (published.email, published.email_original, published.display_name) == (EMAIL, EMAIL, "ann")
    assert (published.first_name, published.field_sources, published.profile_version) == (None, {}, 2)


def test_there_is_no_snapshot_of_a_contact_that_does_not_exist_yet() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        snapshot(Canonical("c1"))


def test_profile_versions_grow_with_changes_to_what_is_published_only() -> None:
    log = Log()
    batches = [
        [log.add(imported("org-a"), first_name="Annie")],  # created: published
        [log.add(imported("org-b"), company="Bcorp"), log.interaction("org-b")],  # nothing the person said
        [log.add(stated("org-b"), first_name="Ann")],
        [log.add(stated("org-a"), spelled="Ann@X.io", last_name="Lee"), log.add(stated("org-a"), title="CTO")],
    ]
    published: list[tuple[int, int]] = []
    for number, events in enumerate(batches):
        known = {"c1": fold("c1", [event for batch in batches[:number] for event in batch])}
        plan = plan_batch(known, events)
        published += [(plan.canonicals[cid].profile_version, index) for cid, index in plan.snapshots.items()]

    assert published == [(2, 0), (8, 0), (12, 1)]  # twice the log position; one snapshot per batch, its last cause


def test_profile_versions_stay_above_those_published_before_the_migration() -> None:
    """Rows migrated from the old model keep their profile_version (log position + display name's), which
    may exceed twice the next event's position: the next change still publishes a greater one."""
    state = ContactState(Canonical("c1", version=3, email=EMAIL, created_at=at(1), profile_version=11))
    event = ContactUpdatedV1(contact_id="c1", version=4, occurred_at=at(4), source=stated("org-a"),
                             changes={"first_name": "Ann"})

    assert evolve(state, event).canonical.profile_version == 12


def test_stale_and_redelivered_events_change_nothing() -> None:
    log = Log()
    log.add(imported("org-a"), first_name="Ann")
    log.add(stated("org-b"), title="CTO")
    log.add(imported("org-a"))
    state = log.state()

    for stale in log.events:
        assert evolve(state, stale) is state
    again = plan_batch({"c1": state}, log.events)
    assert (again.canonicals, again.views, again.snapshots, again.interactions) == ({}, [], {}, [])


def test_a_batch_writes_each_changed_view_once_with_what_it_shows_and_records_interactions() -> None:
    ann, bob = Log("c1"), Log("c2")
    events = [ann.add(imported("org-a"), first_name="Ann"), bob.add(imported("org-b")),
              ann.add(imported("org-b")), ann.interaction("org-a", message="m-7"), ann.add(stated("org-c"), title="X")]

    plan = plan_batch({}, events)

    assert sorted((v.organizer_id, v.contact_id, v.version) for v, _ in plan.views) == [
        ("org-a", "c1", 2), ("org-b", "c1", 2), ("org-b", "c2", 1), ("org-c", "c1", 1)]
    assert {(v.organizer_id, shown.value("title")) for v, shown in plan.views if v.contact_id == "c1"} == {
        ("org-a", "X"), ("org-b", "X"), ("org-c", "X")}
    assert plan.snapshots == {"c1": 4, "c2": 1}
    assert plan.interactions == [
        RecordedInteraction("org-a", "c1", "m-7", "event_checked_in", "ev-1", None, None, at(3))]


# --- properties -----------------------------------------------------------------------------------------------

VALUES = st.sampled_from(["Ann", "Bo", "Acme", "CTO"])
NAMES = st.sampled_from(["first_name", "last_name", "company", "title"])
SPELLINGS = st.sampled_from([EMAIL, "Ann@X.io", "ANN@X.IO"])


@st.composite
def records(draw: st.DrawFn, organizers: tuple[str, ...], *, person: bool) -> tuple[Any, ...]:
    kind = "interaction" if person else "import"
    return (kind, draw(st.sampled_from(organizers)), draw(st.dictionaries(NAMES, VALUES, max_size=2)),
            draw(SPELLINGS))


def replay(steps: list[tuple[Any, ...]]) -> Log:
    """A log from records, each stating only what is new to its layer (as identity decides)."""
    log = Log()
    layers: dict[str, dict[str, str]] = {}
    for kind, organizer, values, spelled in steps:
        if kind == "valueless":
            log.interaction(organizer, spelled=spelled)
            continue
        layer = layers.setdefault("person" if kind == "interaction" else organizer, {})
        new = {name: value for name, value in values.items() if layer.get(name) != value}
        layer.update(new)
        log.add(stated(organizer) if kind == "interaction" else imported(organizer), spelled=spelled, **new)
    return log


def observed(log: Log, organizer: str) -> list[Any]:
    """What ``organizer`` can read before the log and after each of its events (None: nothing, no view
    yet), minus log positions."""
    seen: list[Any] = [None]
    for end in range(1, len(log.events) + 1):
        state = fold(log.contact_id, log.events[:end])
        view = state.views.get(organizer)
        seen.append(None if view is None else (state.shown(organizer), view.version, view.created_at,
                                               view.updated_at, view.import_permission))
    return seen


@settings(max_examples=300)
@given(
    first=records(("org-p",), person=True),
    own=st.lists(st.one_of(records(("org-a",), person=False), records(("org-p",), person=True)), max_size=8),
    others=st.lists(st.one_of(records(("org-b",), person=False),
                              records(("org-b",), person=False).map(lambda r: ("valueless", *r[1:]))), max_size=8),
    picks=st.lists(st.integers(0, 8), max_size=8),
)
def test_non_interference_another_organizer_s_events_never_change_what_an_organizer_observes(
    first: tuple[Any, ...], own: list[tuple[Any, ...]], others: list[tuple[Any, ...]], picks: list[int]
) -> None:
    """A's imports and the person's statements (the first one before anything else), with or without B's
    imports and value-less interactions interleaved anywhere: A observes the same thing after every step,
    though the log positions differ. (Times are equal because each event occurs at its own minute.)"""
    alone = [first, *own]
    mixed = list(alone)
    for other, pick in zip(others, picks + [len(mixed)] * len(others), strict=False):
        mixed.insert(min(1 + pick, len(mixed)), other)

    def timed(steps: list[tuple[Any, ...]]) -> Log:
        log = replay(steps)
        minute = {id(step): number for number, step in enumerate(mixed, start=1)}
        for index, step in enumerate(steps):  # each step at the same minute in both runs
            event = log.events[index]
            log.events[index] = event.model_copy(update={"occurred_at": at(minute[id(step)])})
        return log

    expected = observed(timed(alone), "org-a")
    steps_of_alone = [0]  # after each event of the mixed run: how many of A's and the person's steps
    for step in mixed:
        steps_of_alone.append(steps_of_alone[-1] + (step not in others))
    assert observed(timed(mixed), "org-a") == [expected[n] for n in steps_of_alone]


@given(st.lists(st.one_of(records(("org-a", "org-b"), person=False), records(("org-a", "org-b"), person=True)),
                min_size=1, max_size=12), st.integers(1, 5))
def test_batching_and_redelivery_never_change_the_final_state(steps: list[tuple[Any, ...]], size: int) -> None:
    """Cut into batches of any size, each batch redelivering the last event of the one before: the state
    equals the fold, and snapshot versions only increase."""
    log = replay(steps)
    known: dict[str, ContactState] = {}
    versions: list[int] = []
    state = ContactState(Canonical("c1"))
    for start in range(0, len(log.events), size):
        batch = log.events[max(0, start - 1): start + size]
        plan = plan_batch(known, batch)
        for event in sorted(batch, key=lambda e: e.version):
            state = evolve(state, event)
        known = {"c1": state}
        versions += [plan.canonicals[cid].profile_version for cid in plan.snapshots]

    assert state == log.state()
    assert versions == sorted(set(versions))

