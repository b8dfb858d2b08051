"""identity's resolution rules, given/when/then, without I/O."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.identity.domain import (
    Contact,
    IncomingRecord,
    InvalidEmail,
    decide,
    evolve,
    normalize_email,
    rebuild,
    resolve_batch,
)
from shared.events import ContactCreatedV1, ContactMatchedV1, ContactSource, ContactUpdatedV1

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = ContactSource(kind="import", organizer_id="org-1", import_id="imp-1", row_number=1)


def record(email: str, at: datetime = T0, **fields: str | None) -> IncomingRecord:
    return IncomingRecord(email=email, fields=fields, source=SOURCE, occurred_at=at)  # type: ignore[arg-type]


def sequential_ids():  # type: ignore[no-untyped-def]
    counter = itertools.count(1)
    return lambda: f"contact-{next(counter)}"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("Jane@Example.com", "jane@example.com"), ("  jane@example.com\t", "jane@example.com"),
     ("JANE@EXAMPLE.COM ", "jane@example.com"), ("a@b@c.com", "a@b@c.com")],
)
def test_normalization_strips_whitespace_and_lowercases(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize("raw", ["", "   ", "no-at-sign", "@example.com", "jane@", "ja ne@example.com"])
def test_addresses_that_cannot_identify_anyone_are_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        normalize_email(raw)


def test_an_unknown_email_creates_a_contact_keeping_the_address_as_received() -> None:
    event = decide(None, record("  Jane@Example.com ", first_name="Jane", company=" "), new_contact_id="c1")

    assert isinstance(event, ContactCreatedV1)
    assert (event.contact_id, event.version, event.email) == ("c1", 1, "jane@example.com")
    assert event.email_original == "Jane@Example.com"
    assert event.fields == {"first_name": "Jane"}  # the blank company is not a value


def test_a_known_email_with_new_information_updates_only_what_changed() -> None:
    contact = evolve(None, decide(None, record("jane@example.com", first_name="Jane"), new_contact_id="c1"))

    event = decide(contact, record("JANE@example.com", first_name="Jane", title="CTO"), new_contact_id="unused")

    assert isinstance(event, ContactUpdatedV1)
    assert event.changes == {"title": "CTO"}
    assert (event.contact_id, event.version) == ("c1", 2)


def test_a_blank_never_erases_a_known_field() -> None:
    contact = evolve(None, decide(None, record("jane@example.com", company="Acme"), new_contact_id="c1"))

    event = decide(contact, record("jane@example.com", company="   ", phone=None), new_contact_id="unused")

    assert isinstance(event, ContactMatchedV1)
    assert evolve(contact, event).fields == {"company": "Acme"}


def test_a_record_that_brings_nothing_new_is_a_match_and_still_advances_the_stream() -> None:
    contact = evolve(None, decide(None, record("jane@example.com", first_name="Jane"), new_contact_id="c1"))

    event = decide(contact, record("jane@example.com", first_name="Jane"), new_contact_id="unused")

    assert isinstance(event, ContactMatchedV1)
    assert evolve(contact, event).version == 2


def test_each_field_remembers_its_source_and_time() -> None:
    later = T0 + timedelta(days=1)
    contact = evolve(None, decide(None, record("j@x.io", first_name="Jane"), new_contact_id="c1"))
    contact = evolve(contact, decide(contact, record("j@x.io", later, title="CTO"), new_contact_id="-"))

    assert contact.origins["first_name"].at == T0
    assert contact.origins["title"].at == later
    assert contact.origins["title"].reference == "imp-1#1"


def test_events_out_of_order_are_refused() -> None:
    contact = evolve(None, decide(None, record("j@x.io"), new_contact_id="c1"))
    stale = ContactMatchedV1(contact_id="c1", version=1, occurred_at=T0, source=SOURCE)

    with pytest.raises(ValueError, match="version"):
        evolve(contact, stale)


def test_a_batch_with_the_same_person_in_several_spellings_creates_one_contact() -> None:
    records = [record("Ann@x.io", first_name="Ann"), record(" ann@X.IO "), record("ANN@x.io", last_name="Lee"),
               record("bob@x.io")]

    plan = resolve_batch({}, records, new_contact_id=sequential_ids())

    assert [type(r.event).__name__ for r in plan.resolutions] == [
        "ContactCreatedV1", "ContactMatchedV1", "ContactUpdatedV1", "ContactCreatedV1"]
    assert set(plan.created) == {"ann@x.io", "bob@x.io"}
    assert plan.created["ann@x.io"].fields == {"first_name": "Ann", "last_name": "Lee"}
    assert plan.created["ann@x.io"].version == 3
    assert plan.changed == {}


def test_a_batch_updates_known_contacts_and_reports_invalid_rows_without_blocking_the_rest() -> None:
    known = evolve(None, decide(None, record("ann@x.io"), new_contact_id="c-ann"))
    plan = resolve_batch({"ann@x.io": known}, [record("not-an-email"), record("ann@x.io", company="Acme")],
                         new_contact_id=sequential_ids())

    assert plan.resolutions[0].error_code == "INVALID_EMAIL"
    assert plan.resolutions[1].event is not None and plan.resolutions[1].event.contact_id == "c-ann"
    assert plan.changed["ann@x.io"].fields == {"company": "Acme"}
    assert plan.created == {}


emails = st.sampled_from(["ann@x.io", " Ann@x.io", "ANN@X.IO ", "bob@x.io", "\tBob@x.io", "cy@x.io"])
fields = st.fixed_dictionaries(
    {"first_name": st.one_of(st.none(), st.sampled_from(["", " ", "A", "B"])),
     "company": st.one_of(st.none(), st.sampled_from(["", "Acme", "Beta"]))}
)


@given(st.lists(st.tuples(emails, fields), max_size=30), st.integers(min_value=1, max_value=7))
def test_splitting_a_stream_into_batches_never_changes_the_outcome(rows, batch_size) -> None:  # type: ignore[no-untyped-def]
    """Whatever the batch boundaries, each person ends as one contact whose state equals the fold of its
    events, and every field holds the last non-blank value received."""
    records = [record(email, **values) for email, values in rows]
    known: dict[str, Contact] = {}
    streams: dict[str, list] = {}
    new_id = sequential_ids()
    for start in range(0, len(records), batch_size):
        plan = resolve_batch(known, records[start : start + batch_size], new_contact_id=new_id)
        known.update(plan.created)
        known.update(plan.changed)
        for event in plan.events:
            streams.setdefault(event.contact_id, []).append(event)

    assert len(known) == len({email.strip().lower() for email, _ in rows})
    for email, contact in known.items():
        assert rebuild(streams[contact.contact_id]) == contact
        for field in ("first_name", "company"):
            last = [v[field].strip() for e, v in rows if e.strip().lower() == email
                    and v[field] is not None and v[field].strip()]
            assert contact.fields.get(field) == (last[-1] if last else None)
