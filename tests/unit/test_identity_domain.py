"""identity's resolution rules, given/when/then, without I/O: one contact per person, whose value is whose (the
person's own statements are canonical, an organizer's imports are that organizer's layer), outcomes in the
organizer's own terms, and the fold that rebuilds the state."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.identity.domain import (
    Contact,
    IncomingRecord,
    Interaction,
    InvalidEmail,
    Layer,
    decide,
    evolve,
    normalize_email,
    rebuild,
    resolve_batch,
)
from shared import events, wire
from tests.support.identity_records import T0, record, sequential_ids, source


def ticket(email: str, at: datetime = T0, *, organizer: str = "org-b", id: str = "ce-1",
           **fields: str | None) -> IncomingRecord:
    return IncomingRecord(
        email=email, fields=fields, occurred_at=at,  # type: ignore[arg-type]
        source=wire.ContactSource(kind="interaction", organizer_id=organizer, interaction_id=id),
        interaction=Interaction(kind="ticket_purchased", interaction_id=id, kagibag_event_id="ev", order_id="o",
                                ticket_count=1),
    )


def applied(contact: Contact | None, rec: IncomingRecord, new_id: str = "c1") -> Contact:
    for event in decide(contact, rec, new_contact_id=new_id):
        contact = evolve(contact, event)
    assert contact is not None
    return contact


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Jane@Example.com", "jane@example.com"), ("  jane@example.com\t", "jane@example.com"),
     ("JANE@EXAMPLE.COM ", "jane@example.com"), ("a@b@c.com", "a@b@c.com")],
)
def test_normalization_strips_whitespace_and_lowercases(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize("raw", ["", "   ", "no-at-sign", "@example.com", "jane@", "ja ne@example.com",
                                 "ja\u00a0ne@example.com", "jane@exa\tmple.com"])
def test_addresses_that_cannot_identify_anyone_are_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(raw)


def test_an_import_of_an_unknown_email_creates_the_contact_with_the_values_in_its_organizers_layer() -> None:
    [event] = decide(None, record("  Jane@Example.com ", first_name="Jane", company=" "), new_contact_id="c1")

    assert isinstance(event, wire.ContactCreated)
    assert (event.contact_id, event.version, event.email) == ("c1", 1, "jane@example.com")
    assert event.email_original == "Jane@Example.com" and event.fields == {"first_name": "Jane"}
    contact = evolve(None, event)
    assert contact.person == Layer()  # nothing the person stated themself
    assert contact.organizers == {"org-a": Layer(email_original="Jane@Example.com", fields={"first_name": "Jane"})}


def test_an_import_is_compared_with_its_own_organizers_earlier_values_only() -> None:
    contact = applied(None, record("jane@example.com", organizer="org-b", first_name="Jane", company="B Corp"))

    [event] = decide(contact, record("JANE@example.com", organizer="org-a", first_name="Jane"), new_contact_id="-")

    assert isinstance(event, wire.ContactUpdated)  # new to org-a's layer, although org-b stated the same
    assert event.changes == {"first_name": "Jane"} and event.email_original == "JANE@example.com"
    after = evolve(contact, event)
    assert after.organizers["org-a"] == Layer(email_original="JANE@example.com", fields={"first_name": "Jane"})
    assert after.organizers["org-b"] == contact.organizers["org-b"]
    assert after.person == Layer()


def test_a_blank_never_erases_and_nothing_new_is_a_match_that_still_advances_the_stream() -> None:
    contact = applied(None, record("jane@example.com", company="Acme"))

    [event] = decide(contact, record("jane@example.com", company="   ", phone=None), new_contact_id="-")

    assert isinstance(event, wire.ContactMatched)
    after = evolve(contact, event)
    assert after.version == 2 and after.organizers["org-a"].fields == {"company": "Acme"}


def test_an_organizer_bringing_a_known_person_with_nothing_new_still_gets_a_layer_with_its_spelling() -> None:
    contact = applied(None, record("jane@example.com", company="Acme"))

    [event] = decide(contact, record(" Jane@EXAMPLE.com", organizer="org-b"), new_contact_id="-")

    assert isinstance(event, wire.ContactMatched)
    assert evolve(contact, event).organizers["org-b"] == Layer(email_original="Jane@EXAMPLE.com")


def test_the_persons_own_statement_is_canonical_and_compared_with_the_canonical_values() -> None:
    contact = applied(None, record("ada@x.io", first_name="Countess"))

    events_ = decide(contact, ticket("ADA@x.io", first_name="Ada", last_name="Lovelace"), new_contact_id="-")

    assert [type(e) for e in events_] == [wire.ContactUpdated, wire.InteractionRecorded]
    assert events_[0].changes == {"first_name": "Ada", "last_name": "Lovelace"}  # type: ignore[union-attr]
    after = rebuild([*decide(None, record("ada@x.io", first_name="Countess"), new_contact_id="c1"), *events_])
    assert after is not None
    assert after.person == Layer(email_original="ADA@x.io", fields={"first_name": "Ada", "last_name": "Lovelace"})
    assert after.organizers["org-a"].fields == {"first_name": "Countess"}  # org-a's own value stays its own
    assert set(after.organizers) == {"org-a", "org-b"}  # the ticket made org-b know the person


def test_events_out_of_order_are_refused() -> None:
    contact = applied(None, record("j@x.io"))
    stale = wire.ContactMatched(contact_id="c1", version=1, occurred_at=T0, source=source())

    with pytest.raises(ValueError, match="version"):
        evolve(contact, stale)


def test_a_batch_with_the_same_person_in_several_spellings_creates_one_contact() -> None:
    records = [record("Ann@x.io", first_name="Ann"), record(" ann@X.IO "), record("ANN@x.io", last_name="Lee"),
               record("bob@x.io")]

    plan = resolve_batch({}, records, new_contact_id=sequential_ids())

    assert [type(r.events[0]).__name__ for r in plan.resolutions] == [
        "ContactCreated", "ContactMatched", "ContactUpdated", "ContactCreated"]
    assert [r.outcome for r in plan.resolutions] == ["created", "matched", "matched", "created"]
    assert set(plan.created) == {"ann@x.io", "bob@x.io"} and plan.changed == {}
    ann = plan.created["ann@x.io"]
    assert ann.version == 3 and ann.organizers["org-a"].fields == {"first_name": "Ann", "last_name": "Lee"}
    assert plan.new_layers[(ann.contact_id, "org-a")] == ann.organizers["org-a"] and plan.changed_layers == {}


def test_outcomes_are_in_the_organizers_own_terms() -> None:
    known = applied(None, record("ann@x.io", organizer="org-b", company="B"), new_id="c-ann")

    plan = resolve_batch({"ann@x.io": known}, [record("ann@x.io", organizer="org-a"), record("ann@x.io"),
                                               record("ann@x.io", organizer="org-b")], new_contact_id=sequential_ids())

    assert [r.outcome for r in plan.resolutions] == ["created", "matched", "matched"]
    assert [r.contact_id for r in plan.resolutions] == ["c-ann"] * 3
    assert set(plan.new_layers) == {("c-ann", "org-a")} and plan.changed_layers == {}


def test_a_batch_reports_invalid_rows_without_blocking_the_rest() -> None:
    known = applied(None, record("ann@x.io"), new_id="c-ann")

    plan = resolve_batch({"ann@x.io": known}, [record("not-an-email"), record("ann@x.io", company="Acme")],
                         new_contact_id=sequential_ids())

    assert (plan.resolutions[0].error_code, plan.resolutions[0].outcome) == ("INVALID_EMAIL", "error")
    assert plan.resolutions[1].contact_id == "c-ann" and plan.resolutions[1].outcome == "matched"
    assert plan.changed_layers == {("c-ann", "org-a"): Layer(email_original="ann@x.io", fields={"company": "Acme"})}


def test_the_fast_events_are_the_contract_models() -> None:
    created, recorded = decide(None, ticket("a@x.io", first_name="A"), new_contact_id="c1")

    assert isinstance(wire.to_model(created), events.ContactCreatedV1)
    assert isinstance(wire.to_model(recorded), events.InteractionRecordedV1)
    assert wire.to_model(recorded).version == 2  # type: ignore[attr-defined]


emails = st.sampled_from(["ann@x.io", " Ann@x.io", "ANN@X.IO ", "bob@x.io", "\tBob@x.io", "cy@x.io"])
organizers = st.sampled_from(["org-a", "org-b", "org-c"])
values = st.fixed_dictionaries(
    {"first_name": st.one_of(st.none(), st.sampled_from(["", " ", "A", "B"])),
     "company": st.one_of(st.none(), st.sampled_from(["", "Acme", "Beta"]))}
)
kinds = st.sampled_from(["import", "import", "ticket"])


def _record(email: str, organizer: str, kind: str, fields: dict[str, str | None], n: int) -> IncomingRecord:
    at = T0 + timedelta(minutes=n)
    if kind == "ticket":
        return ticket(email, at, organizer=organizer, id=f"ce-{n}", **fields)
    return record(email, at, organizer=organizer, **fields)


@given(st.lists(st.tuples(emails, organizers, kinds, values), max_size=30), st.integers(min_value=1, max_value=7))
def test_whatever_the_batches_each_person_is_one_contact_whose_layers_hold_each_partys_latest_values(
    rows: list[tuple[str, str, str, dict[str, str | None]]], batch_size: int
) -> None:
    """Whatever the batch boundaries: one contact per person equal to the fold of its events; each organizer's
    layer holds the last non-blank value that organizer imported, the canonical layer the last one the person
    stated; every import row's outcome is created exactly for the organizer's first record of the person."""
    records = [_record(e, o, k, v, n) for n, (e, o, k, v) in enumerate(rows)]
    known: dict[str, Contact] = {}
    streams: dict[str, list[wire.Wire]] = {}
    outcomes: list[str] = []
    new_id = sequential_ids()
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        plan = resolve_batch(known, batch, new_contact_id=new_id)
        known.update(plan.created)
        known.update(plan.changed)
        for event in plan.events:
            streams.setdefault(event.contact_id, []).append(event)
        outcomes += [r.outcome for r in plan.resolutions]

    assert len(known) == len({e.strip().lower() for e, *_ in rows})
    seen: set[tuple[str, str]] = set()
    for (email, organizer, _, _), outcome in zip(rows, outcomes, strict=True):
        key = (email.strip().lower(), organizer)
        assert outcome == ("matched" if key in seen else "created")
        seen.add(key)
    for email, contact in known.items():
        assert rebuild(streams[contact.contact_id]) == contact  # type: ignore[arg-type]
        mine = [(o, k, v) for e, o, k, v in rows if e.strip().lower() == email]
        for name in ("first_name", "company"):
            stated = [value.strip() for o, k, v in mine if k == "ticket" and (value := v[name]) and value.strip()]
            assert contact.person.fields.get(name) == (stated[-1] if stated else None)
            for organizer in {o for o, _, _ in mine}:
                imported = [value.strip() for o, k, v in mine
                            if o == organizer and k == "import" and (value := v[name]) and value.strip()]
                layer = contact.organizers[organizer]
                assert layer.fields.get(name) == (imported[-1] if imported else None)


def attendee(email: str, at: datetime = T0, **fields: str | None) -> IncomingRecord:
    return IncomingRecord(email=email, fields=fields, occurred_at=at,  # type: ignore[arg-type]
                          source=wire.ContactSource(kind="attendee", organizer_id=""))


def test_the_attendees_own_statement_is_canonical_names_no_organizer_and_beats_no_later_import() -> None:
    contact = applied(None, record("ada@x.io", company="Imported Co"))

    [event] = decide(contact, attendee("ada@x.io", company="Analytical Engines"), new_contact_id="-")
    after = evolve(contact, event)
    imported_later = applied(after, record("ada@x.io", T0 + timedelta(days=1), company="Another Co"))

    assert isinstance(event, wire.ContactUpdated) and event.source.kind == "attendee"
    assert after.person.fields == {"company": "Analytical Engines"} and set(after.organizers) == {"org-a"}
    assert imported_later.person.fields == {"company": "Analytical Engines"}  # the organizer's layer changes
    assert imported_later.organizers["org-a"].fields == {"company": "Another Co"}


def test_an_attendee_statement_that_changes_nothing_produces_no_event() -> None:
    contact = applied(None, ticket("ada@x.io", first_name="Ada"))

    assert decide(contact, attendee(" ADA@x.io", first_name="Ada"), new_contact_id="-") == []
    plan = resolve_batch({"ada@x.io": contact}, [attendee("ada@x.io", first_name=" ")],
                         new_contact_id=sequential_ids())
    assert plan.events == [] and plan.changed == {} and plan.new_layers == {} and plan.changed_layers == {}
