"""The importer turns valid rows into ``ImportRowReceivedV1`` messages: keyed by the normalized email, in the
import's envelope, each under its deterministic id, decodable by the contract's model."""

from __future__ import annotations

import uuid

from aiokafka import ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.importer import ROW_EVENT_NAMESPACE, SOURCE, RowEvents, row_event_id
from services.ingest.reading.rows import ValidRow
from shared.codec import decode
from shared.events import ImportRowReceivedV1

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"
ROWS = [
    ValidRow(1, "  Jane@Example.COM ", "jane@example.com", first_name="Jane", phone="+1 555"),
    ValidRow(3, "bob@example.com", "bob@example.com", external_id="hs-7", email_permission="unsubscribed"),
]


PARTITIONS = list(range(8))
Record = tuple[int, bytes, bytes, list[tuple[str, bytes]]]


def as_record(record: Record) -> ConsumerRecord:
    partition, key, value, headers = record
    return ConsumerRecord(
        topic="rows", partition=partition, offset=0, timestamp=0, timestamp_type=0, key=key,
        value=value, checksum=None, serialized_key_size=0, serialized_value_size=0, headers=tuple(headers),
    )


def new_batch() -> BatchBuilder:
    return BatchBuilder(16 * 1024, 0, is_transactional=False)


def events() -> RowEvents:
    return RowEvents(
        import_id=IMPORT_ID, organizer_id="org-1", topic="rows", partitions=PARTITIONS, new_batch=new_batch
    )


@given(import_id=st.uuids().map(str), row_number=st.integers(min_value=1, max_value=2**31 - 1))
def test_a_row_event_id_is_the_uuid5_of_import_and_row(import_id: str, row_number: int) -> None:
    expected = uuid.uuid5(ROW_EVENT_NAMESPACE, f"{import_id}/{row_number}")

    assert row_event_id(import_id, row_number) == str(expected)


def test_valid_rows_become_events_keyed_by_normalized_email_in_the_imports_envelope() -> None:
    first, second = events().records(ROWS)

    assert (first[1], second[1]) == (b"jane@example.com", b"bob@example.com")
    kafka_default = DefaultPartitioner()
    assert [first[0], second[0]] == [kafka_default(key, PARTITIONS, PARTITIONS) for key in (first[1], second[1])]
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
    first, again = events().records(ROWS), events().records(ROWS)

    assert [(p, k, v, dict(h)["ce_id"]) for p, k, v, h in first] == [
        (p, k, v, dict(h)["ce_id"]) for p, k, v, h in again
    ]


class SmallBatch:
    """A record batch that holds ten records (the producer's own refuses a record once its bytes are full)."""

    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]) -> object:
        if len(self.keys) == 10:
            return None
        self.keys.append(key)
        return object()


def test_rows_go_into_record_batches_per_partition_in_row_order_and_full_batches_are_closed() -> None:
    rows = [ValidRow(n, f"p{n}@example.com", f"p{n}@example.com") for n in range(1, 301)]
    small = RowEvents(import_id=IMPORT_ID, organizer_id="org-1", topic="rows", partitions=PARTITIONS,
                      new_batch=SmallBatch)

    batches = small.batches(rows)

    assert all(len(batch.keys) == 10 for _, batch, _ in batches[:-len(PARTITIONS)])
    got: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
    records = {key: headers for _, key, _, headers in events().records(rows)}
    for partition, batch, first in batches:
        got[partition] += batch.keys
        assert first == dict(records[batch.keys[0]])["ce_id"], "each batch knows its first record's id"
    assert got == {p: [k for pp, k, _, _ in events().records(rows) if pp == p] for p in PARTITIONS}


def test_the_producers_own_batches_take_the_rows() -> None:
    batches = events().batches(ROWS)

    assert sorted(partition for partition, _, _ in batches) == sorted(p for p, _, _, _ in events().records(ROWS))


def test_every_row_of_an_import_carries_its_trace_context_and_no_other() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = RowEvents(import_id=IMPORT_ID, organizer_id="org-1", topic="rows", partitions=PARTITIONS,
                       new_batch=new_batch, traceparent=traceparent)

    assert [dict(headers).get("traceparent") for *_, headers in traced.records(ROWS)] == [traceparent.encode()] * 2
    assert all("traceparent" not in dict(headers) for *_, headers in events().records(ROWS))
