"""identity's use case: resolve a batch of import rows and interactions in one transaction, exactly once in effect.

In one transaction: the group's positions advance past the batch (a redelivered batch is skipped by offset); an
import row already applied (by its import and row number, whatever partition or log it comes from) is answered
again from the stored answer instead of being applied twice (ingest re-publishes rows after a crash, a deadline or
a lost broker); an interaction already applied by its
(ce_source, ce_id) is skipped; the rest is resolved in arrival order, and the contacts, the organizers' layers,
the event store and the row answers are written; dead letters and repeated answers go to the outbox. The relay
publishes the new events and answers from their tables once the transaction commits."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import ConsumerRecord
from psycopg import errors as pg_errors
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.identity import store
from services.identity.domain import BatchPlan, Resolution, matching_keys, resolve_batch
from services.identity.intake import RowIntake, StatementIntake, take_in
from shared import wire
from shared.consumer import Delivery
from shared.envelope import cloud_event_headers, derived_id
from shared.events import MAX_ROWS_PER_OUTCOME_MESSAGE
from shared.outbox_batches import enqueue, notify
from shared.producer import OutgoingMessage
from shared.transactions import TRANSIENT, with_retries

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/identity"
ANSWER_TYPE = wire.TYPE_OF_STRUCT[wire.ImportRowsProcessed]
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class IdentityTopics:
    import_rows: str
    bulk_import_rows: str
    interactions: str
    attendee_statements: str
    contact_events: str
    row_outcomes: str
    dead_letters: str


@dataclass(frozen=True)
class Resolved:
    rows: int
    interactions: int
    repeated_rows: int
    dead_letters: list[OutgoingMessage]


def _random_ids() -> Callable[[], str]:
    """Random (version 4) UUIDs for new contacts, from one read of the system's randomness per batch."""
    pool = bytearray(os.urandom(16 * 256))
    index = 0

    def next_id() -> str:
        nonlocal pool, index
        if index == len(pool):
            pool, index = bytearray(os.urandom(16 * 256)), 0
        raw = pool[index:index + 16]
        index += 16
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return next_id


def _event_rows(plan: BatchPlan, causes: Sequence[RowIntake | StatementIntake]) -> list[tuple[object, ...]]:
    rows = []
    for resolution, cause in zip(plan.resolutions, causes, strict=True):
        correlation = cause.import_id if isinstance(cause, RowIntake) else cause.correlation_id or cause.message_id
        for event in resolution.events:
            rows.append(store.event_row(
                contact_id=event.contact_id, version=event.version, type=wire.TYPE_OF_STRUCT[type(event)],
                payload=wire.encode(event), occurred_at=event.occurred_at, correlation_id=correlation,
                causation_id=cause.message_id, traceparent=cause.traceparent,
            ))
    return rows


def _answer_rows(answered: list[tuple[Resolution, RowIntake]]) -> list[tuple[object, ...]]:
    """One answer per import and rows partition, at most ``MAX_ROWS_PER_OUTCOME_MESSAGE`` rows each."""
    by_key: dict[tuple[str, int], list[tuple[Resolution, RowIntake]]] = {}
    for item in answered:
        by_key.setdefault((item[1].import_id, item[1].partition), []).append(item)
    rows: list[tuple[object, ...]] = []
    for (import_id, partition), items in by_key.items():
        organizer_id = items[0][1].record.source.organizer_id
        for start in range(0, len(items), MAX_ROWS_PER_OUTCOME_MESSAGE):
            chunk = items[start:start + MAX_ROWS_PER_OUTCOME_MESSAGE]
            answer = wire.ImportRowsProcessed(import_id=import_id, organizer_id=organizer_id, rows=[
                wire.ProcessedRow(row_number=row.row_number, outcome=resolution.outcome,  # type: ignore[arg-type]
                                  contact_id=resolution.contact_id, error_code=resolution.error_code,
                                  error_message=resolution.error_message)
                for resolution, row in chunk
            ])
            numbers = [row.row_number for _, row in chunk]
            rows.append((import_id, partition, min(numbers), max(numbers), wire.encode(answer).decode(),
                         chunk[0][1].message_id, chunk[0][1].traceparent))
    return rows


async def _repeated_answers(conn: AsyncConnection, repeats: list[RowIntake], topic: str) -> list[OutgoingMessage]:
    """The stored answers holding rows that arrived again, re-sent as they were (ingest keeps a row's first)."""
    by_import: dict[str, list[RowIntake]] = {}
    for row in repeats:
        by_import.setdefault(row.import_id, []).append(row)
    messages = []
    for import_id, rows in by_import.items():
        cause = rows[0].message_id
        numbers = [row.row_number for row in rows]
        for index, payload in enumerate(await store.answers_covering(conn, import_id, numbers)):
            headers = cloud_event_headers(
                id=derived_id("row-answer-again", cause, index), type=ANSWER_TYPE, source=SOURCE,
                time=datetime.now(UTC).isoformat(), subject=import_id, correlation_id=import_id, causation_id=cause,
            )
            messages.append(OutgoingMessage(topic, import_id.encode(), payload, headers))
    return messages


async def resolve(
    conn: AsyncConnection, records: Sequence[ConsumerRecord], *, topics: IdentityTopics, delivery: Delivery
) -> Resolved:
    """Apply ``records`` in the caller's transaction (see the module docstring)."""
    fresh = await delivery.claim(conn, records)
    intake = take_in(fresh, rows_topics=(topics.import_rows, topics.bulk_import_rows),
                     statements_topic=topics.attendee_statements, dead_letter_topic=topics.dead_letters)
    rows = [item for item in intake.items if isinstance(item, RowIntake)]
    applied_before = await store.claim_rows(conn, ((r.import_id, r.row_number) for r in rows))
    statements = [item for item in intake.items if isinstance(item, StatementIntake)]
    unseen = await store.claim_interactions(conn, list({(i.source, i.message_id) for i in statements}))

    todo: list[RowIntake | StatementIntake] = []
    repeats: list[RowIntake] = []
    for item in intake.items:
        if isinstance(item, RowIntake):
            key = (item.import_id, item.row_number)
            if key in applied_before:
                repeats.append(item)
                continue
            applied_before.add(key)  # a copy later in this batch is a repeat too
        else:
            key_ = (item.source, item.message_id)
            if key_ not in unseen:
                continue
            unseen.discard(key_)
        todo.append(item)

    incoming = [item.record for item in todo]
    known = await store.lock_contacts(conn, matching_keys(incoming))
    plan = resolve_batch(known, incoming, new_contact_id=_random_ids())
    await store.insert_contacts(conn, plan.created.values())
    await store.update_contacts(conn, list(plan.changed.values()))
    await store.insert_layers(conn, plan.new_layers)
    await store.update_layers(conn, plan.changed_layers)
    await store.lock_streams(conn)
    await store.append_events(conn, _event_rows(plan, todo))
    answered = [(r, item) for r, item in zip(plan.resolutions, todo, strict=True) if isinstance(item, RowIntake)]
    await store.record_answers(conn, _answer_rows(answered))
    await store.mark_rows(conn, ((row.import_id, row.row_number) for _, row in answered))
    outgoing = intake.dead_letters + await _repeated_answers(conn, repeats, topics.row_outcomes)
    await enqueue(conn, outgoing, channel=delivery.channel)
    if plan.resolutions:
        await notify(conn, delivery.channel)
    return Resolved(rows=len(answered), interactions=len(todo) - len(answered), repeated_rows=len(repeats),
                    dead_letters=intake.dead_letters)


RETRY_ON = (*TRANSIENT, pg_errors.UniqueViolation)
"""Besides deadlocks and serialization failures: a unique violation, when another instance created one of the
batch's contacts first (the next attempt finds it)."""


async def resolve_with_retries(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: IdentityTopics, delivery: Delivery
) -> Resolved:
    """``resolve`` in its own transaction, retried when another instance created one of the batch's contacts
    first (a unique violation) or a deadlock broke it."""
    return await with_retries(
        engine, lambda conn: resolve(conn, records, topics=topics, delivery=delivery),
        event="identity.batch_retry", retry_on=RETRY_ON, attempts=MAX_ATTEMPTS,
    )
