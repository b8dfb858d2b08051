"""profiles' intake: contact events read with the fast codec into staging rows; what can never be applied becomes
a dead letter with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from services.profiles.intake import take_in
from services.profiles.store import STAGE_COLUMNS
from shared import wire
from shared.events import ContactCreatedV1, ContactSource, ContactUpdatedV1, InteractionRecordedV1

AT = datetime(2026, 3, 1, tzinfo=UTC)


def record(value: bytes, headers: list[tuple[str, bytes]], offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(topic="contacts.contact-events.v1", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=b"c1", value=value, checksum=None, serialized_key_size=2,
                          serialized_value_size=len(value), headers=headers)


def of(event: Any, *, message_id: str = "m-1") -> ConsumerRecord:
    headers = [("ce_id", message_id.encode()), ("ce_type", event.TYPE.encode()), ("ce_correlationid", b"imp-1")]
    return record(wire.encode(wire.from_model(event)), headers)


def staged(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(STAGE_COLUMNS, row, strict=True))


def test_contact_events_become_staging_rows_with_what_they_state_by_value_name() -> None:
    created = ContactCreatedV1(
        contact_id="c1", version=1, occurred_at=AT, email="ann@x.io", email_original=" Ann@X.io ",
        fields={"first_name": "Ann"}, social_links={"github": "@ann"},
        source=ContactSource(kind="import", organizer_id="org-a", import_id="imp-1", row_number=3,
                             email_permission="unsubscribed"),
    )
    updated = ContactUpdatedV1(contact_id="c1", version=2, occurred_at=AT, changes={"company": "Acme"},
                               user_account_id="u-7", email_original="ann@x.io",
                               source=ContactSource(kind="interaction", organizer_id="org-b", interaction_id="i-9"))
    recorded = InteractionRecordedV1(contact_id="c1", version=3, occurred_at=AT, kind="ticket_purchased",
                                     interaction_id="i-9", kagibag_event_id="ev-1", order_id="o-1", ticket_count=2,
                                     source=ContactSource(kind="interaction", organizer_id="org-b",
                                                          interaction_id="i-9"))

    intake = take_in([of(created), of(updated, message_id="m-2"), of(recorded, message_id="m-3")],
                     dead_letter_topic="dlq")

    first, second, third = (staged(row) for row in intake.staged)
    assert intake.dead_letters == []
    assert {k: first[k] for k in ("seq", "message_id", "correlation_id", "type", "kind", "organizer_id",
                                  "reference", "email_permission", "email", "spelled")} == {
        "seq": 0, "message_id": "m-1", "correlation_id": "imp-1", "type": "created", "kind": "import",
        "organizer_id": "org-a", "reference": "imp-1", "email_permission": "unsubscribed", "email": "ann@x.io",
        "spelled": "Ann@X.io"}
    assert json.loads(first["stated"]) == {"first_name": "Ann", "social_links.github": "@ann"}
    assert (second["type"], second["reference"], json.loads(second["stated"])) == (
        "updated", "i-9", {"company": "Acme", "user_account_id": "u-7"})
    assert {k: third[k] for k in ("type", "interaction_id", "interaction_kind", "kagibag_event_id", "order_id",
                                  "ticket_count", "stated")} == {
        "type": "interaction", "interaction_id": "i-9", "interaction_kind": "ticket_purchased",
        "kagibag_event_id": "ev-1", "order_id": "o-1", "ticket_count": 2, "stated": "{}"}


@pytest.mark.parametrize(
    ("value", "headers", "code"),
    [
        (b"{}", [("ce_type", ContactCreatedV1.TYPE.encode())], "BAD_ENVELOPE"),
        (b"{}", [("ce_id", b"m-1"), ("ce_type", b"com.kagibag.contacts.display-name.resolved.v1")],
         "UNEXPECTED_TYPE"),
        (b"not json", [("ce_id", b"m-1"), ("ce_type", ContactCreatedV1.TYPE.encode())], "INVALID_PAYLOAD"),
        (b'{"contact_id": "c1"}', [("ce_id", b"m-1"), ("ce_type", ContactCreatedV1.TYPE.encode())],
         "INVALID_PAYLOAD"),
    ],
)
def test_what_can_never_be_applied_is_a_dead_letter_and_the_rest_goes_on(
    value: bytes, headers: list[tuple[str, bytes]], code: str
) -> None:
    good = ContactUpdatedV1(contact_id="c1", version=2, occurred_at=AT, changes={"title": "CTO"},
                            source=ContactSource(kind="import", organizer_id="org-a", import_id="imp-1"))

    intake = take_in([record(value, headers), of(good)], dead_letter_topic="dlq")

    (letter,) = intake.dead_letters
    assert (letter.topic, letter.value, dict(letter.headers)["dlq_error_code"]) == ("dlq", value, code.encode())
    assert [staged(row)["seq"] for row in intake.staged] == [1]
