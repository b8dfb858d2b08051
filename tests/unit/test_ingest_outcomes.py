"""Row outcomes ingest accepts: what the contract allows but ingest's tables cannot hold is a poison message,
refused at decoding so it goes to dead letters instead of failing its batch on every redelivery."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from services.ingest.handlers import decode_outcome, decode_outcomes
from shared.envelope import Envelope
from shared.events import ImportRowProcessedV1
from shared.kafka import UndecodableMessage, encode

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"


def record(**overrides: object) -> ConsumerRecord:
    fields: dict[str, object] = {
        "import_id": IMPORT_ID, "organizer_id": "org-1", "row_number": 1, "outcome": "created",
        "contact_id": "c-1",
    }
    event = ImportRowProcessedV1.model_validate(fields | overrides)
    message = encode(event, Envelope(type=event.TYPE, source="test"), topic="outcomes", key=event.import_id)
    return ConsumerRecord(
        topic="outcomes", partition=0, offset=7, timestamp=0, timestamp_type=0, key=message.key,
        value=message.value, checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=tuple(message.headers),
    )


def test_an_outcome_for_an_import_decodes_and_its_import_id_is_remembered() -> None:
    known: set[str] = set()

    envelope, outcome = decode_outcome(record(), known_ids=known)

    assert (outcome.import_id, outcome.row_number, outcome.outcome) == (IMPORT_ID, 1, "created")
    assert envelope.source == "test"
    assert known == {IMPORT_ID}


def test_an_import_id_that_is_not_a_uuid_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage, match="not a UUID") as raised:
        decode_outcome(record(import_id="imp-1"), known_ids=set())

    assert raised.value.code == "INVALID_PAYLOAD"


@pytest.mark.parametrize("row_number", [0, -1, 2**31])
def test_a_row_number_the_table_cannot_hold_is_undecodable(row_number: int) -> None:
    with pytest.raises(UndecodableMessage, match="out of range"):
        decode_outcome(record(row_number=row_number), known_ids=set())


def test_a_batch_keeps_the_records_it_cannot_store_for_dead_lettering() -> None:
    good, bad = record(row_number=1), record(import_id="not-a-uuid")

    batch = decode_outcomes([good, bad])

    assert [outcome.row_number for _, outcome in batch.messages] == [1]
    assert [(r, e.code) for r, e in batch.undecodable] == [(bad, "INVALID_PAYLOAD")]
