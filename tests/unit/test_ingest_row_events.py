"""The importer turns valid rows into ``ImportRowReceivedV1`` messages: keyed by the normalized email, in the
import's envelope, each under its deterministic id, decodable by the contract's model."""

from __future__ import annotations

import uuid

from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.importer import ROW_EVENT_NAMESPACE, SOURCE, RowEvents, row_event_id
from services.ingest.reading.rows import ValidRow
from shared.events import ImportRowReceivedV1
from shared.kafka import OutgoingMessage, decode

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"
ROWS = [
    ValidRow(1, "  Jane@Example.COM ", "jane@example.com", first_name="Jane", phone="+1 555"),
    ValidRow(3, "bob@example.com", "bob@example.com", external_id="hs-7", email_permission="unsubscribed"),
]


def as_record(message: OutgoingMessage, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic=message.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=message.key,
        value=message.value, checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=tuple(message.headers),
    )


def events() -> RowEvents:
    return RowEvents(import_id=IMPORT_ID, organizer_id="org-1", topic="rows")


@given(import_id=st.uuids().map(str), row_number=st.integers(min_value=1, max_value=2**31 - 1))
def test_a_row_event_id_is_the_uuid5_of_import_and_row(import_id: str, row_number: int) -> None:
    expected = uuid.uuid5(ROW_EVENT_NAMESPACE, f"{import_id}/{row_number}")

    assert row_event_id(import_id, row_number) == str(expected)


def test_valid_rows_become_events_keyed_by_normalized_email_in_the_imports_envelope() -> None:
    first, second = events().messages(ROWS)

    assert (first.topic, first.key, second.key) == ("rows", b"jane@example.com", b"bob@example.com")
    envelope, event = decode(as_record(first), (ImportRowReceivedV1,))
    assert event == ImportRowReceivedV1(
        import_id=IMPORT_ID, organizer_id="org-1", row_number=1, email="  Jane@Example.COM ", first_name="Jane",
        phone="+1 555",
    )
    assert envelope.id == row_event_id(IMPORT_ID, 1)
    assert (envelope.type, envelope.source, envelope.subject, envelope.correlation_id) == (
        ImportRowReceivedV1.TYPE, SOURCE, IMPORT_ID, IMPORT_ID
    )
    second_envelope, second_event = decode(as_record(second), (ImportRowReceivedV1,))
    assert second_envelope.id == row_event_id(IMPORT_ID, 3)
    assert isinstance(second_event, ImportRowReceivedV1)
    assert (second_event.external_id, second_event.email_permission) == ("hs-7", "unsubscribed")


def test_publishing_the_same_rows_again_produces_identical_ids_keys_and_payloads() -> None:
    first, again = events().messages(ROWS), events().messages(ROWS)

    assert [(m.key, m.value, dict(m.headers)["ce_id"]) for m in first] == [
        (m.key, m.value, dict(m.headers)["ce_id"]) for m in again
    ]
