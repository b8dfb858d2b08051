"""ingest's subscriber: decode a batch of row outcomes from identity and count them into their imports in one
transaction; what cannot be decoded goes to ingest's dead-letter topic through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from psycopg import errors as pg_errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import outcomes
from shared.envelope import Envelope
from shared.events import ImportRowsProcessedV1
from shared.inbox import DecodedBatch, claim_batch, decode_batch
from shared.kafka import UndecodableMessage, batch_subscriber, decode, describe_batch, raw_records
from shared.outbox import enqueue
from shared.runtime import Messaging

log = structlog.get_logger(__name__)

MAX_ROW_NUMBER = 2**31 - 1
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class IngestTopics:
    import_rows: str
    row_outcomes: str
    dead_letters: str


def check_storable(event: ImportRowsProcessedV1, *, known_ids: set[str]) -> None:
    """Refuse (``UndecodableMessage``) a message of outcomes ingest cannot store: beyond the contract, the
    import id must be a UUID and every row number fit the table, or the batch's transaction would fail on every
    redelivery. One bad row refuses the whole message: its rows are stored together or not at all.
    ``known_ids`` holds the import ids already checked (a batch's messages mostly share a few)."""
    if event.import_id not in known_ids:
        try:
            uuid.UUID(event.import_id)
        except ValueError as error:
            problem = f"import_id {event.import_id!r} is not a UUID"
            raise UndecodableMessage("INVALID_PAYLOAD", problem) from error
        known_ids.add(event.import_id)
    out_of_range = [row.row_number for row in event.rows if not 1 <= row.row_number <= MAX_ROW_NUMBER]
    if out_of_range:
        shown = ", ".join(map(str, out_of_range[:5])) + (", ..." if len(out_of_range) > 5 else "")
        problem = (
            f"row_number {shown} is out of range (1..{MAX_ROW_NUMBER}) in {len(out_of_range)} of the "
            f"message's {len(event.rows)} rows; none of its rows is stored"
        )
        raise UndecodableMessage("INVALID_PAYLOAD", problem)


def decode_outcome(record: ConsumerRecord, *, known_ids: set[str]) -> tuple[Envelope, ImportRowsProcessedV1]:
    """One record: a message of outcomes ingest can store, or ``UndecodableMessage`` (see ``check_storable``)."""
    envelope, event = decode(record, (ImportRowsProcessedV1,))
    assert isinstance(event, ImportRowsProcessedV1)
    check_storable(event, known_ids=known_ids)
    return envelope, event


def decode_outcomes(records: Sequence[ConsumerRecord]) -> DecodedBatch[ImportRowsProcessedV1]:
    """``shared.inbox.decode_batch`` with ingest's own checks on top (see ``check_storable``)."""
    known_ids: set[str] = set()
    return decode_batch(
        records, (ImportRowsProcessedV1,), validate=lambda event: check_storable(event, known_ids=known_ids)
    )


@dataclass(frozen=True)
class Applied:
    messages: int
    rows: int
    dead_lettered: int
    finished: list[outcomes.Progress]


async def count_outcomes(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: IngestTopics, consumer: str
) -> Applied:
    """Apply a batch exactly once in effect: the tracking records, the rows of every fresh message, the
    counters and the dead letters are written in one transaction, and messages already recorded are skipped
    (a row repeated in a later message is skipped by the rows' primary key)."""
    batch = decode_outcomes(records)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                claimed = await claim_batch(conn, batch, consumer=consumer, dead_letter_topic=topics.dead_letters)
                fresh = [message for _, message in claimed.fresh]
                progress = await outcomes.count_outcomes(conn, fresh)
                await enqueue(conn, claimed.dead_letters)
            return Applied(
                messages=len(fresh),
                rows=sum(len(message.rows) for message in fresh),
                dead_lettered=len(claimed.dead_letters),
                finished=[item for item in progress if item.finished_now],
            )
        except DBAPIError as error:
            if attempt == MAX_ATTEMPTS or not isinstance(
                getattr(error, "orig", None), pg_errors.DeadlockDetected | pg_errors.SerializationFailure
            ):
                raise
            log.info("row_outcomes.retry", attempt=attempt, reason=type(error.orig).__name__)
    raise AssertionError("unreachable")


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, messaging: Messaging, topics: IngestTopics, group: str
) -> None:
    """Subscribe ingest to identity's row outcomes."""

    @batch_subscriber(
        broker,
        topic=topics.row_outcomes,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        description="Count identity's row outcomes (one message per import per identity batch) into their "
        "imports and finish the imports whose every row has one. Committed after the batch's transaction; a "
        "redelivered message is skipped by its tracking record, and a row already stored keeps its first "
        "outcome when it comes again in a later message, so counts stay exact.",
    )
    async def on_import_rows_processed(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied = await count_outcomes(engine, records, topics=topics, consumer=group)
        if applied.dead_lettered:
            messaging.wake_relay()
            log.warning("row_outcomes.dead_lettered", dead_lettered=applied.dead_lettered, **describe_batch(records))
        for item in applied.finished:
            log.info("import.finished", import_id=item.import_id, correlation_id=item.import_id,
                     status=item.status, total_rows=item.total_rows, errors=item.errors)
        log.info("row_outcomes.counted", messages=applied.messages, rows=applied.rows, **describe_batch(records))
