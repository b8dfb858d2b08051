"""Row outcomes ingest accepts: what the contract allows but ingest's tables cannot hold is a poison message,
refused at decoding so it goes to dead letters instead of failing its batch on every redelivery."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from services.ingest.handlers import decode_outcome, decode_outcomes
from shared.envelope import Envelope
from shared.events import ImportRowsProcessedV1, ProcessedRow, RowOutcome
from shared.kafka import UndecodableMessage, encode

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"


def processed(row_number: int, outcome: RowOutcome = "created") -> ProcessedRow:
    return ProcessedRow(row_number=row_number, outcome=outcome, contact_id=f"c-{row_number}")


def record(*rows: ProcessedRow, **overrides: object) -> ConsumerRecord:
    """One outcomes message as identity sends it (row 1 created unless rows are given)."""
    fields: dict[str, object] = {"import_id": IMPORT_ID, "organizer_id": "org-1", "rows": rows or (processed(1),)}
    event = ImportRowsProcessedV1.model_validate(fields | overrides)
    return as_record(event)


def as_record(event: ImportRowsProcessedV1) -> ConsumerRecord:
    message = encode(event, Envelope(type=event.TYPE, source="test"), topic="outcomes", key=event.import_id)
    return ConsumerRecord(
        topic="outcomes", partition=0, offset=7, timestamp=0, timestamp_type=0, key=message.key,
        value=message.value, checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=tuple(message.headers),
    )


def test_an_outcomes_message_decodes_with_its_rows_in_order_and_its_import_id_is_remembered() -> None:
    known: set[str] = set()

    envelope, message = decode_outcome(
        record(processed(3, "matched"), processed(1), processed(2, "error")), known_ids=known
    )

    assert message.import_id == IMPORT_ID
    assert [(row.row_number, row.outcome) for row in message.rows] == [(3, "matched"), (1, "created"),
                                                                       (2, "error")]
    assert envelope.source == "test"
    assert known == {IMPORT_ID}


def test_an_import_id_that_is_not_a_uuid_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage, match="not a UUID") as raised:
        decode_outcome(record(import_id="imp-1"), known_ids=set())

    assert raised.value.code == "INVALID_PAYLOAD"


@pytest.mark.parametrize("row_number", [0, -1, 2**31])
def test_a_row_number_the_table_cannot_hold_refuses_the_whole_message(row_number: int) -> None:
    with pytest.raises(UndecodableMessage, match="out of range") as raised:
        decode_outcome(record(processed(1), processed(row_number), processed(2)), known_ids=set())

    assert raised.value.code == "INVALID_PAYLOAD"
    assert f"row_number {row_number} " in raised.value.detail
    assert "1 of the message's 3 rows" in raised.value.detail


def test_a_message_without_rows_is_undecodable() -> None:
    empty = ImportRowsProcessedV1.model_construct(import_id=IMPORT_ID, organizer_id="org-1", rows=[])

    with pytest.raises(UndecodableMessage) as raised:
        decode_outcome(as_record(empty), known_ids=set())

    assert raised.value.code == "INVALID_PAYLOAD"


def test_a_batch_keeps_the_records_it_cannot_store_for_dead_lettering() -> None:
    good = record(processed(1), processed(2))
    bad_id, bad_row = record(import_id="not-a-uuid"), record(processed(3), processed(0))

    batch = decode_outcomes([good, bad_id, bad_row])

    assert [[row.row_number for row in message.rows] for _, message in batch.messages] == [[1, 2]]
    assert [(r, e.code) for r, e in batch.undecodable] == [(bad_id, "INVALID_PAYLOAD"),
                                                          (bad_row, "INVALID_PAYLOAD")]
