"""enrichment's display-name rules, given/when/then, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.enrichment.domain import ContactEvent, ContactNames, display_name, evolve, plan_batch
from shared.wire import ContactCreated, ContactMatched, ContactSource, ContactUpdated, InteractionRecorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = ContactSource(kind="import", organizer_id="org-1", import_id="imp-1", row_number=1)


def created(contact_id: str = "c1", email: str = "jane.doe@example.com", **fields: str) -> ContactCreated:
    return ContactCreated(contact_id=contact_id, version=1, occurred_at=T0, source=SOURCE, email=email,
                            email_original=email, fields=fields)  # type: ignore[arg-type]


def updated(version: int, contact_id: str = "c1", **changes: str) -> ContactUpdated:
    return ContactUpdated(contact_id=contact_id, version=version, occurred_at=T0, source=SOURCE,
                            changes=changes)  # type: ignore[arg-type]


def matched(version: int, contact_id: str = "c1") -> ContactMatched:
    return ContactMatched(contact_id=contact_id, version=version, occurred_at=T0, source=SOURCE)


# --- the fallback chain -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [("Jane", "Doe", "Jane Doe"), ("Jane", None, "Jane"), (None, "Doe", "Doe"),
     ("  Jane ", "\tDoe\n", "Jane Doe"), ("Jane", "   ", "Jane"), ("", "Doe", "Doe")],
)
def test_a_known_name_is_the_display_name(first: str | None, last: str | None, expected: str) -> None:
    assert display_name(email="jd@example.com", first_name=first, last_name=last) == expected


@pytest.mark.parametrize(("first", "last"), [(None, None), ("", ""), ("   ", "\t"), ("\u00a0", "\u2003")])
def test_without_a_name_the_email_local_part_is_used(first: str | None, last: str | None) -> None:
    assert display_name(email="jane.doe@example.com", first_name=first, last_name=last) == "jane.doe"


@pytest.mark.parametrize(
    ("email", "expected"),
    [('"a@b"@example.com', '"a@b"'), ("a@b@c.example", "a@b"), ("plain@x.io", "plain"),
     ("no-at-sign", "no-at-sign"), ("@example.com", "@example.com")],
)
def test_the_local_part_is_everything_before_the_last_at(email: str, expected: str) -> None:
    assert display_name(email=email, first_name=None, last_name=None) == expected


def test_unicode_names_and_addresses_are_kept_as_they_are() -> None:
    assert display_name(email="zoë@example.com", first_name="Zoë", last_name="Ōkubo") == "Zoë Ōkubo"
    assert display_name(email="李@例え.jp", first_name=None, last_name=None) == "李"
    assert display_name(email="x@x.io", first_name="\u00a0José\u00a0", last_name=None) == "José"


def test_with_neither_a_name_nor_an_email_there_is_no_display_name() -> None:
    assert display_name(email=None, first_name=" ", last_name=None) is None


@given(first=st.text(), last=st.text(), local=st.text(min_size=1).filter(lambda s: s.strip() != ""),
       domain=st.text(alphabet="abc.", min_size=1))
def test_a_display_name_is_never_blank_nor_padded(first: str, last: str, local: str, domain: str) -> None:
    name = display_name(email=f"{local}@{domain}", first_name=first, last_name=last)

    assert name is not None and name.strip() == name and name != ""
    if first.strip() and last.strip():
        assert name == f"{first.strip()} {last.strip()}"
    elif not first.strip() and not last.strip():
        assert name == local.strip()


# --- state per contact ------------------------------------------------------------------------------------


def test_names_follow_the_contact_log_and_stale_events_change_nothing() -> None:
    state = evolve(None, created(first_name="Jane"))
    state = evolve(state, updated(2, last_name="Doe"))
    state = evolve(state, matched(3))

    assert (state.version, state.first_name, state.last_name) == (3, "Jane", "Doe")
    assert state.resolved == "Jane Doe"
    assert evolve(state, updated(2, last_name="Smith")) is state
    assert evolve(state, matched(3)) is state


# --- batches ----------------------------------------------------------------------------------------------


def test_a_new_contact_gets_its_first_display_name() -> None:
    plan = plan_batch({}, [created(), created("c2", email="bob@x.io", first_name="Bob", last_name="Ray")])

    assert {(r.contact_id, r.display_name, r.contact_version) for r in plan.resolutions} == {
        ("c1", "jane.doe", 1), ("c2", "Bob Ray", 1)}
    assert plan.changed["c1"].display_name == "jane.doe"


def test_an_event_that_does_not_change_the_name_publishes_nothing() -> None:
    known = {"c1": ContactNames("c1", 1, email="jane.doe@example.com", display_name="jane.doe")}

    plan = plan_batch(known, [matched(2), updated(3, company="Acme")])

    assert plan.resolutions == []
    assert plan.changed["c1"].version == 3  # the version still advances


def test_a_batch_publishes_only_the_final_name_at_the_version_that_produced_it() -> None:
    known = {"c1": ContactNames("c1", 1, email="jane.doe@example.com", display_name="jane.doe")}

    plan = plan_batch(known, [updated(2, first_name="Jane"), updated(3, last_name="Doe"), matched(4)])

    assert [(r.display_name, r.contact_version) for r in plan.resolutions] == [("Jane Doe", 3)]
    assert plan.changed["c1"].display_name == "Jane Doe" and plan.changed["c1"].version == 4


def test_a_name_that_changes_and_changes_back_within_a_batch_publishes_nothing() -> None:
    known = {"c1": ContactNames("c1", 1, email="jd@example.com", first_name="Jane", display_name="Jane")}

    plan = plan_batch(known, [updated(2, first_name="Janet"), updated(3, first_name="Jane")])

    assert plan.resolutions == []


def test_events_in_a_batch_are_applied_in_version_order_and_duplicates_once() -> None:
    plan = plan_batch({}, [updated(2, first_name="Jane"), created(), created(), matched(3)])

    assert [(r.display_name, r.contact_version) for r in plan.resolutions] == [("Jane", 2)]
    assert plan.changed["c1"].version == 3


def test_a_redelivered_batch_publishes_nothing() -> None:
    events: list[ContactEvent] = [created(), updated(2, first_name="Jane")]
    first = plan_batch({}, events)

    again = plan_batch(first.changed, events)

    assert again.resolutions == [] and again.changed == {}


def test_a_name_published_under_an_older_rule_is_corrected_by_the_next_event() -> None:
    known = {"c1": ContactNames("c1", 1, email="jd@example.com", first_name="Jane", display_name="JANE")}

    plan = plan_batch(known, [matched(2)])

    assert [(r.display_name, r.contact_version) for r in plan.resolutions] == [("Jane", 2)]


def test_an_update_without_a_known_creation_still_names_the_contact_when_it_brings_a_name() -> None:
    plan = plan_batch({}, [updated(2, last_name="Doe"), updated(3, company="Acme", contact_id="c2")])

    assert [(r.contact_id, r.display_name) for r in plan.resolutions] == [("c1", "Doe")]


names = st.sampled_from(["", " ", "Ann", "Bo", "Zoë"])
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("updated"), st.fixed_dictionaries({}, optional={"first_name": names, "last_name": names})
        ),
        st.tuples(st.just("matched"), st.just({})),
    ),
    max_size=12,
)


@given(steps, st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=3))
def test_batch_boundaries_and_redeliveries_never_change_what_is_published_last(
    history: list[tuple[str, dict[str, str]]], batch_size: int, replayed: int
) -> None:
    events: list[ContactEvent] = [created(email="ann.lee@x.io")]
    for version, (kind, changes) in enumerate(history, start=2):
        changes = {k: v for k, v in changes.items() if v.strip()}  # identity never sends blanks
        events.append(updated(version, **changes) if kind == "updated" and changes else matched(version))
    known: dict[str, ContactNames] = {}
    published: list[tuple[str, int]] = []
    for start in range(0, len(events), batch_size):
        batch = events[max(0, start - replayed): start + batch_size]  # overlapping: earlier events again
        plan = plan_batch(known, batch)
        known.update(plan.changed)
        published += [(r.display_name, r.contact_version) for r in plan.resolutions]

    final = known["c1"]
    assert final.version == len(events)
    assert published and published[-1][0] == final.resolved == final.display_name
    assert [v for _, v in published] == sorted({v for _, v in published})  # strictly increasing versions
    assert all(a[0] != b[0] for a, b in zip(published, published[1:], strict=False))  # only real changes


def test_a_recorded_interaction_advances_the_version_and_changes_no_name() -> None:
    state = evolve(None, created(first_name="Jane"))
    interaction = InteractionRecorded(contact_id="c1", version=2, occurred_at=T0, source=SOURCE,
                                        kind="event_checked_in", interaction_id="m-1", kagibag_event_id="ev-1")

    after = evolve(state, interaction)

    assert after.version == 2 and after.resolved == "Jane"


def test_the_state_is_stamped_with_when_the_last_applied_event_occurred_not_with_the_clock() -> None:
    later = ContactMatched(contact_id="c1", version=2, occurred_at=datetime(2026, 2, 1, tzinfo=UTC), source=SOURCE)

    state = evolve(evolve(None, created()), later)

    assert state.updated_at == datetime(2026, 2, 1, tzinfo=UTC)  # so a replay of the log rebuilds it exactly
    assert evolve(state, created()).updated_at == state.updated_at  # a stale event changes nothing
