"""The fast codec (``shared.wire``) and the pydantic event models agree on every event type, both ways: what one
writes, the other reads back as the same event; and the fast codec refuses what the models refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import events, wire

AT = datetime(2026, 4, 7, 12, 0, 0, 123456, tzinfo=UTC)
BERLIN = timezone(timedelta(hours=2))
IMPORT = events.ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=7,
                              external_id="hs-1", email_permission="unsubscribed")
INTERACTION = events.ContactSource(kind="interaction", organizer_id="org-b", interaction_id="ce-9")

FULL: list[events.Event] = [
    events.ImportRowReceivedV1(import_id="i", organizer_id="o", row_number=3, email=" Ada@X.org", first_name="Ada",
                               last_name="Lovelace", company="Engines", title="Analyst", phone="+44 1",
                               external_id="42", email_permission="subscribed"),
    events.TicketPurchasedV1(organizer_id="o", email="a@x.org", occurred_at=AT, kagibag_event_id="ev", order_id="or",
                             ticket_count=2, first_name="Ada", last_name="L"),
    events.WaitlistRegisteredV1(organizer_id="o", email="a@x.org", occurred_at=AT.astimezone(BERLIN),
                                kagibag_event_id="ev"),
    events.EventCheckedInV1(organizer_id="o", email="a@x.org", occurred_at=AT, kagibag_event_id="ev"),
    events.AttendeeProfileCompletedV1(organizer_id="o", email="a@x.org", occurred_at=AT, company="C", title="T",
                                      phone="1", bio="B", social_links={"github": "@ada"}),
    events.UserAccountLinkedV1(organizer_id="o", email="a@x.org", occurred_at=AT, user_account_id="u-1"),
    events.ImportRowsProcessedV1(import_id="i", organizer_id="o", rows=[
        events.ProcessedRow(row_number=1, outcome="created", contact_id="c"),
        events.ProcessedRow(row_number=2, outcome="error", error_code="INVALID_EMAIL", error_message="bad"),
    ]),
    events.ContactCreatedV1(contact_id="c", version=1, occurred_at=AT, source=IMPORT, email="a@x.org",
                            email_original="A@x.org", fields={"first_name": "Ada", "phone": "1"}, bio="B",
                            social_links={"x": "@a"}, user_account_id="u"),
    events.ContactUpdatedV1(contact_id="c", version=2, occurred_at=AT, source=INTERACTION,
                            changes={"company": "C"}, bio="B", social_links={"x": "@b"}, user_account_id="u",
                            email_original="a@X.org"),
    events.ContactMatchedV1(contact_id="c", version=3, occurred_at=AT, source=IMPORT, email_original="a@x.org"),
    events.InteractionRecordedV1(contact_id="c", version=4, occurred_at=AT, source=INTERACTION,
                                 kind="ticket_purchased", interaction_id="ce-9", kagibag_event_id="ev",
                                 order_id="or", ticket_count=3, user_account_id="u", email_original="a@x.org"),
    events.DisplayNameResolvedV1(contact_id="c", display_name="Ada", contact_version=2),
    events.AttendeeStatedV1(email="a@x.org", occurred_at=AT, statement="suggestion_customized", suggestion_id="s-1",
                            first_name="Ada", last_name="L", company="C", title="T", phone="1", bio="B",
                            social_links={"x": "@a"}),
    events.ContactProfileUpdatedV1(contact_id="c", profile_version=5, email="a@x.org", email_original="A@x.org",
                                   first_name="Ada", last_name="L", company="C", title="T", phone="1",
                                   display_name="Ada L", created_at=AT, updated_at=AT, bio="B",
                                   social_links={"x": "@a"}, user_account_id="u",
                                   field_sources={"first_name": events.FieldSourceV1(kind="interaction", at=AT)}),
    events.OrganizerContactChangedV1(
        organizer_id="o", contact_id="c", email="a@x.org", changed_at=AT, tags=["vip"],
        email_permission=events.OrganizerPermissionV1(status="unsubscribed", source="api", changed_at=AT),
        preferences=events.OrganizerPreferencesV1(channels={"email": False}, frequency="weekly", topics=["jazz"],
                                                  language="pt-BR"),
    ),
    events.EnrichmentSuggestedV1(contact_id="c", occurred_at=AT, withdrawn=["s-0"], suggestions=[
        events.SuggestionV1(id="s-1", field="company", current="Old", suggested="Analytical", source="email_domain",
                            confidence=0.5, created_at=AT),
        events.SuggestionV1(id="s-2", field="first_name", suggested="Ada", source="email_name", confidence=0.7,
                            created_at=AT.astimezone(BERLIN)),
    ]),
    events.SuggestionDecidedV1(contact_id="c", suggestion_id="s-1", field="company", source="email_domain",
                               decision="customized", value="Analytical Engines", occurred_at=AT),
]
MINIMAL: list[events.Event] = [
    events.AttendeeStatedV1(email="a@x.org", occurred_at=AT, statement="profile_edited"),
    events.ImportRowReceivedV1(import_id="i", organizer_id="o", row_number=1, email="a@x.org"),
    events.AttendeeProfileCompletedV1(organizer_id="o", email="a@x.org", occurred_at=AT),
    events.ContactCreatedV1(contact_id="c", version=1, occurred_at=AT, source=IMPORT, email="a@x.org",
                            email_original="a@x.org"),
    events.ContactUpdatedV1(contact_id="c", version=2, occurred_at=AT, source=IMPORT, changes={}),
    events.ContactMatchedV1(contact_id="c", version=2, occurred_at=AT, source=IMPORT),
    events.InteractionRecordedV1(contact_id="c", version=2, occurred_at=AT, source=INTERACTION,
                                 kind="event_checked_in", interaction_id="x"),
    events.ContactProfileUpdatedV1(contact_id="c", profile_version=1, email="a@x.org", email_original="a@x.org",
                                   created_at=AT, updated_at=AT),
    events.OrganizerContactChangedV1(organizer_id="o", contact_id="c", email="a@x.org", changed_at=AT,
                                     email_permission=events.OrganizerPermissionV1(status="unknown")),
    events.EnrichmentSuggestedV1(contact_id="c", occurred_at=AT),
    events.SuggestionDecidedV1(contact_id="c", suggestion_id="s-1", field="title", source="external_api",
                               decision="rejected", occurred_at=AT),
]


def test_every_event_type_has_a_struct_with_the_same_fields() -> None:
    assert set(wire.STRUCT_OF_MODEL) == set(events.ALL_EVENTS)
    for model, struct in wire.STRUCT_OF_MODEL.items():
        assert set(struct.__struct_fields__) == set(model.model_fields), model.__name__


def test_the_samples_cover_every_event_type() -> None:
    assert {type(event) for event in FULL} == set(events.ALL_EVENTS)


@pytest.mark.parametrize("event", FULL + MINIMAL, ids=lambda e: f"{type(e).__name__}")
def test_what_the_model_writes_the_struct_reads_and_writes_back_as_the_same_event(event: events.Event) -> None:
    decoder = wire.Decoder((wire.STRUCT_OF_MODEL[type(event)],))

    struct = decoder.decode(event.TYPE, event.model_dump_json().encode())

    assert type(event).model_validate_json(wire.encode(struct)) == event
    assert wire.to_model(struct) == event and wire.from_model(event) == struct


@pytest.mark.parametrize("event", FULL + MINIMAL, ids=lambda e: f"{type(e).__name__}")
def test_the_struct_omits_defaults_so_records_stay_small(event: events.Event) -> None:
    assert len(wire.encode(wire.from_model(event))) <= len(event.model_dump_json())


@given(
    row_number=st.integers(min_value=1, max_value=2**31 - 1),
    text=st.text(max_size=40),
    permission=st.sampled_from([None, "subscribed", "unsubscribed", "unknown"]),
)
def test_any_import_row_survives_both_codecs(row_number: int, text: str, permission: Any) -> None:
    row = wire.ImportRowReceived(import_id="i", organizer_id="o", row_number=row_number, email=text,
                                 first_name=text or None, email_permission=permission)

    model = events.ImportRowReceivedV1.model_validate_json(wire.encode(row))

    assert wire.Decoder((wire.ImportRowReceived,)).decode(model.TYPE, model.model_dump_json().encode()) == row


@pytest.mark.parametrize(
    ("event_type", "value"),
    [
        (events.ImportRowReceivedV1.TYPE, b'{"import_id":"i","organizer_id":"o","row_number":0,"email":"a"}'),
        (events.ImportRowReceivedV1.TYPE, b'{"import_id":"i","organizer_id":"o","email":"a"}'),
        (events.TicketPurchasedV1.TYPE, b'{"organizer_id":"o","email":"a","occurred_at":"2026-01-01T00:00:00Z",'
                                        b'"kagibag_event_id":"e","order_id":"","ticket_count":1}'),
        (events.ContactMatchedV1.TYPE, b'{"contact_id":"c","version":1,"occurred_at":"not a time",'
                                       b'"source":{"kind":"import","organizer_id":"o"}}'),
        (events.ImportRowsProcessedV1.TYPE, b'{"import_id":"i","organizer_id":"o","rows":[]}'),
        (events.ImportRowReceivedV1.TYPE, b"not json"),
        (events.EnrichmentSuggestedV1.TYPE, b'{"contact_id":"c","occurred_at":"2026-01-01T00:00:00Z","suggestions":'
                                            b'[{"id":"s","field":"company","suggested":"A","source":"x",'
                                            b'"confidence":1.5,"created_at":"2026-01-01T00:00:00Z"}]}'),
        (events.SuggestionDecidedV1.TYPE, b'{"contact_id":"c","suggestion_id":"s","field":"bio","source":"x",'
                                          b'"decision":"accepted","occurred_at":"2026-01-01T00:00:00Z"}'),
    ],
)
def test_the_struct_refuses_what_the_model_refuses(event_type: str, value: bytes) -> None:
    model = events.EVENTS_BY_TYPE[event_type]
    decoder = wire.Decoder((wire.STRUCT_OF_TYPE[event_type],))

    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError
        model.model_validate_json(value)
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        decoder.decode(event_type, value)
