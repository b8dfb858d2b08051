"""identity's subscribers: decode a batch of import rows, resolve it in one transaction, and enqueue the
contact events, row outcomes and dead letters it produces."""

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

from services.identity import store
from services.identity.domain import IncomingRecord, Resolution, matching_keys, resolve_batch
from shared.envelope import Envelope
from shared.events import (
    CONTACT_FIELDS,
    MAX_ROWS_PER_OUTCOME_MESSAGE,
    ContactCreatedV1,
    ContactEvent,
    ContactSource,
    ImportRowReceivedV1,
    ImportRowsProcessedV1,
    ProcessedRow,
)
from shared.inbox import claim_batch, decode_batch, derived_id
from shared.kafka import OutgoingMessage, batch_subscriber, describe_batch, encode, raw_records
from shared.outbox import enqueue
from shared.runtime import Messaging

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/identity"
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class IdentityTopics:
    import_rows: str
    contact_events: str
    row_outcomes: str
    dead_letters: str


def _incoming(envelope: Envelope, row: ImportRowReceivedV1) -> IncomingRecord:
    return IncomingRecord(
        email=row.email,
        fields={name: getattr(row, name) for name in CONTACT_FIELDS},
        source=ContactSource(
            kind="import",
            organizer_id=row.organizer_id,
            import_id=row.import_id,
            row_number=row.row_number,
            external_id=row.external_id,
            email_permission=row.email_permission,
        ),
        occurred_at=envelope.time,
    )


def _contact_event_message(event: ContactEvent, cause: Envelope, topics: IdentityTopics) -> OutgoingMessage:
    envelope = cause.caused(
        type=event.TYPE, source=SOURCE, subject=event.contact_id, id=derived_id(event.contact_id, event.version)
    )
    return encode(event, envelope, topic=topics.contact_events, key=event.contact_id)


def _processed_row(resolution: Resolution, row: ImportRowReceivedV1) -> ProcessedRow:
    event = resolution.event
    return ProcessedRow(
        row_number=row.row_number,
        outcome="error" if event is None else "created" if isinstance(event, ContactCreatedV1) else "matched",
        contact_id=event.contact_id if event is not None else None,
        error_code=resolution.error_code,
        error_message=resolution.error_message,
    )


def _outcome_messages(
    done: list[tuple[Resolution, Envelope, ImportRowReceivedV1]], topics: IdentityTopics
) -> list[OutgoingMessage]:
    """One message per import (and per ``MAX_ROWS_PER_OUTCOME_MESSAGE`` rows), caused by its first row.
    A retried batch groups the same rows the same way, so it produces identical message ids."""
    by_import: dict[str, list[tuple[Resolution, Envelope, ImportRowReceivedV1]]] = {}
    for item in done:
        by_import.setdefault(item[2].import_id, []).append(item)
    messages = []
    for import_id, items in by_import.items():
        for start in range(0, len(items), MAX_ROWS_PER_OUTCOME_MESSAGE):
            chunk = items[start : start + MAX_ROWS_PER_OUTCOME_MESSAGE]
            _, first_cause, first_row = chunk[0]
            event = ImportRowsProcessedV1(
                import_id=import_id,
                organizer_id=first_row.organizer_id,
                rows=[_processed_row(resolution, row) for resolution, _, row in chunk],
            )
            envelope = first_cause.caused(
                type=event.TYPE, source=SOURCE, subject=import_id, id=derived_id(first_cause.id, "outcomes")
            )
            messages.append(encode(event, envelope, topic=topics.row_outcomes, key=import_id))
    return messages


async def resolve_import_rows(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: IdentityTopics, consumer: str
) -> int:
    """Apply a batch exactly once in effect: messages already recorded as processed are skipped, and the
    tracking records, contacts, events and outbox are written in one transaction. Returns rows applied."""
    batch = decode_batch(records, (ImportRowReceivedV1,))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                claimed = await claim_batch(conn, batch, consumer=consumer, dead_letter_topic=topics.dead_letters)
                incoming = [_incoming(envelope, row) for envelope, row in claimed.fresh]
                known = await store.lock_contacts(conn, matching_keys(incoming))
                plan = resolve_batch(known, incoming, new_contact_id=lambda: str(uuid.uuid4()))
                await store.insert_contacts(conn, list(plan.created.values()))
                await store.update_contacts(conn, list(plan.changed.values()))
                await store.append_events(conn, [(derived_id(e.contact_id, e.version), e) for e in plan.events])
                done = [
                    (resolution, envelope, row)
                    for resolution, (envelope, row) in zip(plan.resolutions, claimed.fresh, strict=True)
                ]
                outgoing = [
                    _contact_event_message(resolution.event, envelope, topics)
                    for resolution, envelope, _ in done
                    if resolution.event is not None
                ]
                await enqueue(conn, outgoing + _outcome_messages(done, topics) + claimed.dead_letters)
            if batch.undecodable:
                log.warning("import_rows.dead_lettered", count=len(batch.undecodable),
                            first_error=batch.undecodable[0][1].code)
            return len(claimed.fresh)
        except (store.ConcurrentCreation, DBAPIError) as error:
            retryable = isinstance(error, store.ConcurrentCreation) or isinstance(
                getattr(error, "orig", None), pg_errors.DeadlockDetected | pg_errors.UniqueViolation
            )
            if not retryable or attempt == MAX_ATTEMPTS:
                raise
            log.info("import_rows.retry", attempt=attempt, reason=type(error).__name__)
    return 0


def register(
    broker: KafkaBroker,
    *,
    engine: AsyncEngine,
    messaging: Messaging,
    topics: IdentityTopics,
    group: str,
    batch_size: int,
) -> None:
    """Subscribe identity to its input topics."""

    @batch_subscriber(
        broker,
        topic=topics.import_rows,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=batch_size,
        description="Resolve imported rows to canonical contacts. Committed after the batch's transaction; "
        "a failed batch is redelivered and its already-applied rows are skipped by their tracking records.",
    )
    async def on_import_rows(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied = await resolve_import_rows(engine, records, topics=topics, consumer=group)
        messaging.wake_relay()
        log.info("import_rows.resolved", applied=applied, **describe_batch(records))
