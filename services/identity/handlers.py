"""identity's subscriber: decode a batch of import rows and platform interactions, resolve it in one
transaction, and enqueue the contact events, row outcomes and dead letters it produces."""

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
from services.identity.domain import (
    IncomingRecord,
    Interaction,
    InvalidEmail,
    Resolution,
    matching_keys,
    normalize_email,
    resolve_batch,
)
from shared.envelope import Envelope
from shared.events import (
    CONTACT_FIELDS,
    INTERACTION_EVENTS,
    MAX_ROWS_PER_OUTCOME_MESSAGE,
    AttendeeProfileCompletedV1,
    ContactCreatedV1,
    ContactEvent,
    ContactSource,
    Event,
    ImportRowReceivedV1,
    ImportRowsProcessedV1,
    InteractionEvent,
    ProcessedRow,
    TicketPurchasedV1,
    UserAccountLinkedV1,
)
from shared.inbox import claim_batch, decode_batch, derived_id
from shared.kafka import (
    OutgoingMessage,
    UndecodableMessage,
    batch_subscriber,
    describe_batch,
    encode,
    raw_records,
)
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
    interactions: str

    def accepted(self) -> dict[str, tuple[type[Event], ...]]:
        return {self.import_rows: (ImportRowReceivedV1,), self.interactions: INTERACTION_EVENTS}


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


def _interaction(envelope: Envelope, event: InteractionEvent) -> IncomingRecord:
    """An interaction as a record about its person: names from any interaction, the rest from a completed
    profile; the interaction itself is recorded on the contact's stream."""
    profile = event if isinstance(event, AttendeeProfileCompletedV1) else None
    purchase = event if isinstance(event, TicketPurchasedV1) else None
    account = event.user_account_id if isinstance(event, UserAccountLinkedV1) else None
    fields: dict[str, str | None] = {"first_name": event.first_name, "last_name": event.last_name}
    if profile is not None:
        fields |= {"company": profile.company, "title": profile.title, "phone": profile.phone}
    return IncomingRecord(
        email=event.email,
        fields=fields,  # type: ignore[arg-type]
        source=ContactSource(kind="interaction", organizer_id=event.organizer_id, interaction_id=envelope.id),
        occurred_at=event.occurred_at,
        bio=profile.bio if profile is not None else None,
        social_links=dict(profile.social_links) if profile is not None else {},
        user_account_id=account,
        interaction=Interaction(
            kind=event.KIND,
            interaction_id=envelope.id,
            kagibag_event_id=event.kagibag_event_id,
            order_id=purchase.order_id if purchase is not None else None,
            ticket_count=purchase.ticket_count if purchase is not None else None,
            user_account_id=account,
        ),
    )


def _refuse_unidentifiable(event: Event) -> None:
    """An interaction whose email cannot identify anyone can never be applied: dead-letter it. (An import row
    gets an ``error`` outcome instead, reported to the organizer.)"""
    if isinstance(event, InteractionEvent):
        try:
            normalize_email(event.email)
        except InvalidEmail as error:
            raise UndecodableMessage("INVALID_EMAIL", str(error)) from error


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


async def resolve_records(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: IdentityTopics, consumer: str
) -> tuple[int, int]:
    """Apply a batch of import rows and interactions exactly once in effect, in arrival order: messages
    already recorded as processed are skipped, and the tracking records, contacts, events and outbox are
    written in one transaction. Returns (rows, interactions) applied."""
    batch = decode_batch(records, topics.accepted(), validate=_refuse_unidentifiable)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with engine.begin() as conn:
                claimed = await claim_batch(conn, batch, consumer=consumer, dead_letter_topic=topics.dead_letters)
                incoming = [
                    _incoming(envelope, event) if isinstance(event, ImportRowReceivedV1)
                    else _interaction(envelope, event)  # type: ignore[arg-type]
                    for envelope, event in claimed.fresh
                ]
                known = await store.lock_contacts(conn, matching_keys(incoming))
                plan = resolve_batch(known, incoming, new_contact_id=lambda: str(uuid.uuid4()))
                await store.insert_contacts(conn, list(plan.created.values()))
                await store.update_contacts(conn, list(plan.changed.values()))
                await store.append_events(conn, [(derived_id(e.contact_id, e.version), e) for e in plan.events])
                outgoing = [
                    _contact_event_message(event, envelope, topics)
                    for resolution, (envelope, _) in zip(plan.resolutions, claimed.fresh, strict=True)
                    for event in resolution.events
                ]
                rows = [
                    (resolution, envelope, event)
                    for resolution, (envelope, event) in zip(plan.resolutions, claimed.fresh, strict=True)
                    if isinstance(event, ImportRowReceivedV1)
                ]
                await enqueue(conn, outgoing + _outcome_messages(rows, topics) + claimed.dead_letters)
            if batch.undecodable:
                log.warning("import_rows.dead_lettered", count=len(batch.undecodable),
                            first_error=batch.undecodable[0][1].code)
            return len(rows), len(claimed.fresh) - len(rows)
        except (store.ConcurrentCreation, DBAPIError) as error:
            retryable = isinstance(error, store.ConcurrentCreation) or isinstance(
                getattr(error, "orig", None), pg_errors.DeadlockDetected | pg_errors.UniqueViolation
            )
            if not retryable or attempt == MAX_ATTEMPTS:
                raise
            log.info("import_rows.retry", attempt=attempt, reason=type(error).__name__)
    return 0, 0


def register(
    broker: KafkaBroker,
    *,
    engine: AsyncEngine,
    messaging: Messaging,
    topics: IdentityTopics,
    group: str,
    batch_size: int,
) -> None:
    """Subscribe identity to import rows and platform interactions with one consumer: one group join, and
    a person's rows and interactions resolved by one transaction at a time."""

    @batch_subscriber(
        broker,
        topic=(topics.import_rows, topics.interactions),
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=batch_size,
        description="Resolve imported rows and interactions reported by platform teams to canonical contacts. "
        "Committed after the batch's transaction; a failed batch is redelivered and its already-applied "
        "messages are skipped by their tracking records.",
    )
    async def on_import_rows_and_interactions(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied, interactions = await resolve_records(engine, records, topics=topics, consumer=group)
        messaging.wake_relay()
        log.info("import_rows.resolved", applied=applied, interactions=interactions, **describe_batch(records))
