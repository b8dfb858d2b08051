"""enrichment's rules, given/when/then, without I/O: what it keeps per contact (only what the person stated, the
organizers with a relationship), when the providers should run, and how a run's candidates become suggestions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.enrichment.domain import (
    Candidate,
    ContactEvent,
    Person,
    RefusedValue,
    Suggestion,
    checked_value,
    evolve,
    plan_batch,
    reconcile,
)
from shared.wire import ContactCreated, ContactMatched, ContactSource, ContactUpdated, InteractionRecorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
IMPORT_A = ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=1)
IMPORT_B = ContactSource(kind="import", organizer_id="org-b", import_id="imp-2", row_number=1)
TICKET = ContactSource(kind="interaction", organizer_id="org-c", interaction_id="ce-1")
ATTENDEE = ContactSource(kind="attendee", organizer_id="")


def created(source: ContactSource = IMPORT_A, contact_id: str = "c1", email: str = "ada@analytical.example",
            **fields: str) -> ContactCreated:
    return ContactCreated(contact_id=contact_id, version=1, occurred_at=T0, source=source, email=email,
                          email_original=email, fields=fields)  # type: ignore[arg-type]


def updated(version: int, source: ContactSource = IMPORT_A, contact_id: str = "c1", bio: str | None = None,
            links: dict[str, str] | None = None, **changes: str) -> ContactUpdated:
    return ContactUpdated(contact_id=contact_id, version=version, occurred_at=T0 + timedelta(minutes=version),
                          source=source, changes=changes, bio=bio, social_links=links or {})  # type: ignore[arg-type]


def matched(version: int, source: ContactSource = IMPORT_B, contact_id: str = "c1") -> ContactMatched:
    return ContactMatched(contact_id=contact_id, version=version, occurred_at=T0, source=source)


# --- what enrichment keeps ---------------------------------------------------------------------------------------


def test_an_organizers_import_brings_the_email_and_the_relationship_never_its_values() -> None:
    person, due = evolve(None, created(IMPORT_A, first_name="Ada", company="Organizer's Guess"))

    assert person == Person(contact_id="c1", version=1, email="ada@analytical.example",
                            organizers=frozenset({"org-a"}), updated_at=T0)
    assert due  # a new contact: the providers run


def test_what_the_person_states_is_kept_with_where_it_came_from() -> None:
    person, _ = evolve(None, created(IMPORT_A))
    person, due = evolve(person, updated(2, TICKET, first_name="Ada", bio="Poet", links={"github": "@ada"}))
    person, due_again = evolve(person, updated(3, ATTENDEE, company="Analytical Engines"))

    assert person is not None
    assert person.fields == {"first_name": "Ada", "company": "Analytical Engines"}
    assert person.bio == "Poet" and person.social_links == {"github": "@ada"}
    assert person.sources == {
        "first_name": ("interaction", T0 + timedelta(minutes=2)), "bio": ("interaction", T0 + timedelta(minutes=2)),
        "social_links.github": ("interaction", T0 + timedelta(minutes=2)),
        "company": ("attendee", T0 + timedelta(minutes=3)),
    }
    assert person.organizers == {"org-a", "org-c"}  # an attendee is no organizer
    assert due and due_again and person.version == 3


def test_another_organizers_import_adds_a_relationship_but_changes_no_value_and_runs_nothing() -> None:
    person, _ = evolve(None, created(TICKET, company="Acme"))
    after, due = evolve(person, updated(2, IMPORT_B, company="Other Corp", phone="+1 555"))

    assert after is not None and after.fields == {"company": "Acme"}
    assert after.organizers == {"org-c", "org-b"} and after.version == 2
    assert not due


def test_an_event_that_changes_nothing_kept_returns_the_same_state() -> None:
    person, _ = evolve(None, created(IMPORT_A))
    for event in (matched(2, IMPORT_A), updated(2, IMPORT_A, company="X"), updated(2, ATTENDEE)):
        assert evolve(person, event) == (person, False)


def test_a_bio_or_link_the_person_states_is_kept_without_running_the_providers() -> None:
    person, _ = evolve(None, created(IMPORT_A))
    after, due = evolve(person, updated(2, ATTENDEE, bio="Poet"))

    assert after is not None and after.bio == "Poet" and not due


def test_stale_events_change_nothing() -> None:
    person, _ = evolve(None, created(IMPORT_A))
    person, _ = evolve(person, updated(2, TICKET, first_name="Ada"))

    assert evolve(person, updated(2, TICKET, first_name="Someone")) == (person, False)
    assert evolve(person, created(TICKET, first_name="Else")) == (person, False)


def test_a_batch_folds_in_version_order_and_reports_the_changed_and_the_due() -> None:
    events: list[ContactEvent] = [
        updated(2, TICKET, first_name="Ada"), created(IMPORT_A), matched(3, IMPORT_A),
        created(IMPORT_B, contact_id="c2", email="bob@gmail.com"), matched(2, IMPORT_B, contact_id="c2"),
    ]

    plan = plan_batch({}, events)

    assert plan.changed["c1"].fields == {"first_name": "Ada"} and plan.changed["c1"].version == 2
    assert plan.changed["c2"].version == 1  # the match from a known organizer changed nothing
    assert plan.due == {"c1", "c2"}


def test_a_batch_of_repeated_imports_writes_nothing() -> None:
    person, _ = evolve(None, created(IMPORT_A))
    assert person is not None

    plan = plan_batch({"c1": person}, [matched(2, IMPORT_A), updated(3, IMPORT_A, company="New"),
                                       InteractionRecorded(contact_id="c1", version=4, occurred_at=T0,
                                                           source=ContactSource(kind="interaction",
                                                                                organizer_id="org-a"),
                                                           kind="event_checked_in", interaction_id="x")])

    assert plan.changed == {} and plan.due == set()


STANDARD = st.sampled_from(["first_name", "last_name", "company", "title", "phone"])
SOURCES = st.sampled_from([IMPORT_A, IMPORT_B, TICKET, ATTENDEE])


@given(st.lists(st.tuples(SOURCES, st.dictionaries(STANDARD, st.sampled_from(["A", "B", ""]), max_size=3)),
                max_size=8),
       st.integers(min_value=1, max_value=5))
def test_folding_in_batches_of_any_size_with_redeliveries_keeps_the_same_state(
    changes: list[tuple[ContactSource, dict[str, str]]], size: int
) -> None:
    log: list[ContactEvent] = [created(IMPORT_A)]
    log += [updated(version, source, links=None, **values) for version, (source, values) in enumerate(changes, start=2)]
    whole = plan_batch({}, log).changed

    state: dict[str, Person] = {}
    for start in range(0, len(log), size):
        batch = log[max(0, start - 1):start + size]  # the batch also holds its predecessor's last event again
        state.update(plan_batch(state, batch).changed)

    assert state == whole
    canonical = {name: value for source, values in changes if source.kind in ("interaction", "attendee")
                 for name, value in values.items() if value}
    assert whole["c1"].fields == canonical


# --- suggestions ----------------------------------------------------------------------------------------------------


def ids() -> itertools.count[int]:
    return itertools.count(1)


def run(person: Person, candidates: list[Candidate], existing: list[Suggestion] | None = None,
        sources_run: frozenset[str] = frozenset({"email_domain", "email_name", "external_api"})) -> tuple[
            list[tuple[str, str | None, str, str]], list[str]]:
    counter = ids()
    result = reconcile(person, candidates, existing or [], sources_run=sources_run, now=T0,
                       new_id=lambda: f"s{next(counter)}")
    return [(s.field, s.current, s.suggested, s.source) for s in result.made], result.withdrawn


ADA = Person(contact_id="c1", version=1, email="ada.lovelace@analytical.example")


def pending(suggestion_id: str, field: str, suggested: str, source: str = "email_domain", current: str | None = None,
            status: str = "pending") -> Suggestion:
    return Suggestion(id=suggestion_id, contact_id="c1", field=field, current=current, suggested=suggested,
                      source=source, confidence=0.5, created_at=T0, status=status)  # type: ignore[arg-type]


def test_each_field_gets_one_suggestion_the_most_confident() -> None:
    made, withdrawn = run(ADA, [
        Candidate("company", "Analytical", 0.5, "email_domain"),
        Candidate("company", "Analytical Engines Ltd", 0.9, "external_api"),
        Candidate("first_name", "Ada", 0.6, "email_name"),
    ])

    assert made == [("first_name", None, "Ada", "email_name"),
                    ("company", None, "Analytical Engines Ltd", "external_api")]
    assert withdrawn == []


def test_a_suggestion_equal_to_the_persons_own_value_is_not_made() -> None:
    person = Person(contact_id="c1", version=2, fields={"company": "Analytical"})

    assert run(person, [Candidate("company", "Analytical", 0.5, "email_domain")]) == ([], [])


def test_a_decided_value_is_never_suggested_again_by_the_same_source() -> None:
    existing = [pending("s0", "company", "Analytical", status="rejected"),
                pending("s9", "first_name", "Ada", source="email_name", status="accepted")]

    made, _ = run(ADA, [Candidate("company", "Analytical", 0.5, "email_domain"),
                        Candidate("first_name", "Ada", 0.6, "email_name"),
                        Candidate("company", "Analytical", 0.8, "external_api")], existing)

    assert made == [("company", None, "Analytical", "external_api")]  # another source may


def test_a_pending_suggestion_still_made_stays_as_it_is() -> None:
    existing = [pending("s0", "company", "Analytical")]

    assert run(ADA, [Candidate("company", "Analytical", 0.5, "email_domain")], existing) == ([], [])


def test_a_new_value_for_a_field_replaces_the_pending_suggestion() -> None:
    existing = [pending("s0", "company", "Analytical")]

    made, withdrawn = run(ADA, [Candidate("company", "Analytical Engines", 0.9, "external_api")], existing)

    assert made == [("company", None, "Analytical Engines", "external_api")] and withdrawn == ["s0"]


def test_a_pending_suggestion_the_person_stated_meanwhile_is_withdrawn() -> None:
    person = Person(contact_id="c1", version=3, fields={"company": "Analytical"})

    assert run(person, [], [pending("s0", "company", "Analytical")]) == ([], ["s0"])


def test_a_pending_suggestion_of_a_provider_that_did_not_answer_is_kept() -> None:
    existing = [pending("s0", "title", "Analyst", source="external_api")]

    assert run(ADA, [], existing, sources_run=frozenset({"email_domain"})) == ([], [])
    assert run(ADA, [], existing, sources_run=frozenset({"external_api"})) == ([], ["s0"])


def test_a_suggestion_whose_current_value_changed_is_made_again_with_the_new_current_value() -> None:
    person = Person(contact_id="c1", version=3, fields={"phone": "+44 20 7946 0959"})
    existing = [pending("s0", "phone", "+442079460958", source="phone_format", current="+44 20 7946 0958")]

    made, withdrawn = run(person, [Candidate("phone", "+442079460959", 0.9, "phone_format")], existing,
                          sources_run=frozenset({"phone_format"}))

    assert made == [("phone", "+44 20 7946 0959", "+442079460959", "phone_format")] and withdrawn == ["s0"]


@pytest.mark.parametrize(("value", "reason"), [("  ", "blank"), ("a\x00b", "NUL"), ("x" * 256, "longer")])
def test_a_stated_value_must_be_a_value(value: str, reason: str) -> None:
    with pytest.raises(RefusedValue, match=reason):
        checked_value("company", value)


def test_a_stated_value_loses_its_surrounding_whitespace() -> None:
    assert checked_value("company", "  Analytical Engines ") == "Analytical Engines"
