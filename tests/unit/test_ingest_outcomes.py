"""Row outcomes ingest accepts, decoded with the fast codec: what the contract allows but ingest's tables cannot
hold, and what is not an outcome message at all, is a poison message, dead-lettered with its original bytes
instead of failing its batch on every redelivery."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from services.ingest.service import check_storable, take_in
from shared import wire
from shared.codec import UndecodableMessage, encode
from shared.envelope import Envelope
from shared.events import ImportRowsProcessedV1, ProcessedRow, RowOutcome

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"


def processed(row_number: int, outcome: RowOutcome = "created") -> ProcessedRow:
    return ProcessedRow(row_number=row_number, outcome=outcome, contact_id=f"c-{row_number}")


def record(*rows: ProcessedRow, **overrides: object) -> ConsumerRecord:
    """One outcomes message as identity sends it (row 1 created unless rows are given)."""
    fields: dict[str, object] = {"import_id": IMPORT_ID, "organizer_id": "org-1", "rows": rows or (processed(1),)}
    event = ImportRowsProcessedV1.model_validate(fields | overrides)
    return as_record(event)


def as_record(event: ImportRowsProcessedV1, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    message = encode(event, Envelope(type=event.TYPE, source="test"), topic="outcomes", key=event.import_id)
    return raw(message.value, headers if headers is not None else message.headers)


def raw(value: bytes, headers: list[tuple[str, bytes]]) -> ConsumerRecord:
    return ConsumerRecord(
        topic="outcomes", partition=0, offset=7, timestamp=0, timestamp_type=0, key=IMPORT_ID.encode(),
        value=value, checksum=None, serialized_key_size=0, serialized_value_size=0, headers=tuple(headers),
    )


def message(*rows: ProcessedRow, import_id: str = IMPORT_ID) -> wire.ImportRowsProcessed:
    return wire.ImportRowsProcessed(
        import_id=import_id, organizer_id="org-1",
        rows=[wire.ProcessedRow(row_number=r.row_number, outcome=r.outcome, contact_id=r.contact_id) for r in rows],
    )


def test_an_outcomes_message_decodes_with_its_rows_in_order() -> None:
    answers = take_in([record(processed(3, "matched"), processed(1), processed(2, "error"))], dead_letter_topic="dlq")

    (decoded,) = answers.messages
    assert answers.dead_letters == []
    assert decoded.import_id == IMPORT_ID
    assert [(row.row_number, row.outcome, row.contact_id) for row in decoded.rows] == [
        (3, "matched", "c-3"), (1, "created", "c-1"), (2, "error", "c-2")
    ]


def test_an_import_id_that_is_not_a_uuid_is_refused_and_remembered_when_it_is_one() -> None:
    known: set[str] = set()
    with pytest.raises(UndecodableMessage, match="not a UUID") as raised:
        check_storable(message(processed(1), import_id="imp-1"), known_ids=known)
    assert raised.value.code == "INVALID_PAYLOAD"

    check_storable(message(processed(1)), known_ids=known)
    assert known == {IMPORT_ID}


@pytest.mark.parametrize("row_number", [0, -1, 2**31])
def test_a_row_number_the_table_cannot_hold_refuses_the_whole_message(row_number: int) -> None:
    with pytest.raises(UndecodableMessage, match="out of range") as raised:
        check_storable(message(processed(1), processed(row_number), processed(2)), known_ids=set())

    assert raised.value.code == "INVALID_PAYLOAD"
    assert f"row_number {row_number} " in raised.value.detail
    assert "1 of the message's 3 rows" in raised.value.detail


def test_what_cannot_be_stored_is_dead_lettered_with_its_bytes_and_why() -> None:
    good = record(processed(1), processed(2))
    bad_id = record(import_id="not-a-uuid")
    empty = as_record(ImportRowsProcessedV1.model_construct(import_id=IMPORT_ID, organizer_id="org-1", rows=[]))
    garbage = raw(b"{not json", [("ce_id", b"x"), ("ce_type", ImportRowsProcessedV1.TYPE.encode()),
                                 ("ce_source", b"t")])
    other_type = raw(good.value, [("ce_id", b"x"), ("ce_type", b"com.example.other"), ("ce_source", b"t")])
    no_id = raw(good.value, [("ce_type", ImportRowsProcessedV1.TYPE.encode()), ("ce_source", b"t")])

    answers = take_in([good, bad_id, empty, garbage, other_type, no_id], dead_letter_topic="dlq")

    assert [[row.row_number for row in m.rows] for m in answers.messages] == [[1, 2]]
    letters = [dict(letter.headers) for letter in answers.dead_letters]
    assert [letter["dlq_error_code"] for letter in letters] == [
        b"INVALID_PAYLOAD", b"INVALID_PAYLOAD", b"INVALID_PAYLOAD", b"UNEXPECTED_TYPE", b"BAD_ENVELOPE"
    ]
    assert [letter.value for letter in answers.dead_letters] == [
        bad_id.value, empty.value, b"{not json", good.value, good.value
    ]
    assert {letter.topic for letter in answers.dead_letters} == {"dlq"}
