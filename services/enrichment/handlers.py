"""enrichment's subscriber: decode a batch of contact events, fold it into the per-contact state in one
transaction, and enqueue the display names that changed (and dead letters) through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.enrichment import store
from services.enrichment.domain import Resolution, plan_batch
from shared.envelope import Envelope
from shared.events import (
    ContactCreatedV1,
    ContactEvent,
    ContactMatchedV1,
    ContactUpdatedV1,
    DisplayNameResolvedV1,
)
from shared.kafka import (
    OutgoingMessage,
    UndecodableMessage,
    batch_subscriber,
    dead_letter,
    decode,
    describe_batch,
    encode,
    raw_records,
)
from shared.outbox import enqueue
from shared.runtime import Messaging
from shared.tracking import claim_new_messages

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/enrichment"
MESSAGE_ID_NAMESPACE = uuid.UUID("5b0f6a3e-9d8c-4f7e-a1b2-6c5d4e3f2a10")
CONTACT_EVENT_TYPES = (ContactCreatedV1, ContactUpdatedV1, ContactMatchedV1)


@dataclass(frozen=True)
class EnrichmentTopics:
    contact_events: str
    enrichments: str
    dead_letters: str


def _derived_id(*parts: object) -> str:
    """Ids of what a message causes are derived from it, so a retried batch produces identical messages."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "/".join(map(str, parts))))


def _tracking_id(record: ConsumerRecord, envelope: Envelope | None) -> str:
    return envelope.id if envelope is not None else f"{record.topic}/{record.partition}/{record.offset}"


def _display_name_message(
    resolution: Resolution, cause: Envelope, topics: EnrichmentTopics
) -> OutgoingMessage:
    event = DisplayNameResolvedV1(
        contact_id=resolution.contact_id,
        display_name=resolution.display_name,
        contact_version=resolution.contact_version,
    )
    envelope = cause.caused(
        type=event.TYPE,
        source=SOURCE,
        subject=event.contact_id,
        id=_derived_id("display-name", event.contact_id, event.contact_version),
    )
    return encode(event, envelope, topic=topics.enrichments, key=event.contact_id)


async def resolve_display_names(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: EnrichmentTopics, consumer: str
) -> int:
    """Apply a batch exactly once in effect: tracking records, contact state and outbox are written in one
    transaction, and messages already recorded as processed are skipped. Returns the events applied."""
    decoded: list[tuple[Envelope, ContactEvent]] = []
    undecodable: list[tuple[ConsumerRecord, UndecodableMessage]] = []
    for record in records:
        try:
            envelope, event = decode(record, CONTACT_EVENT_TYPES)
            assert isinstance(event, ContactEvent)
            decoded.append((envelope, event))
        except UndecodableMessage as error:
            undecodable.append((record, error))
    ids = [envelope.id for envelope, _ in decoded] + [_tracking_id(r, None) for r, _ in undecodable]

    async with engine.begin() as conn:
        fresh = await claim_new_messages(conn, consumer=consumer, message_ids=ids)
        causes: dict[tuple[str, int], Envelope] = {}
        todo: list[ContactEvent] = []
        for envelope, event in decoded:
            if envelope.id in fresh:
                fresh.discard(envelope.id)  # the same message twice in one batch is applied once
                causes.setdefault((event.contact_id, event.version), envelope)
                todo.append(event)
        known = await store.lock_contacts(conn, [event.contact_id for event in todo])
        plan = plan_batch(known, todo)
        await store.save_contacts(conn, list(plan.changed.values()))
        outgoing = [
            _display_name_message(r, causes[(r.contact_id, r.contact_version)], topics)
            for r in plan.resolutions
        ]
        outgoing += [
            dead_letter(record, error, topic=topics.dead_letters)
            for record, error in undecodable
            if _tracking_id(record, None) in fresh
        ]
        await enqueue(conn, outgoing)
    if undecodable:
        log.warning(
            "contact_events.dead_lettered", count=len(undecodable), first_error=undecodable[0][1].code
        )
    return len(todo)


def register(
    broker: KafkaBroker,
    *,
    engine: AsyncEngine,
    messaging: Messaging,
    topics: EnrichmentTopics,
    group: str,
    batch_size: int,
) -> None:
    """Subscribe enrichment to the contact log."""

    @batch_subscriber(
        broker,
        topic=topics.contact_events,
        group_id=group,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=batch_size,
        description="Resolve each contact's display name and publish it when it changes. Committed after the "
        "batch's transaction; a failed batch is redelivered and its applied events are skipped by their "
        "tracking records.",
    )
    async def on_contact_events(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied = await resolve_display_names(engine, records, topics=topics, consumer=group)
        messaging.wake_relay()
        log.info("contact_events.enriched", applied=applied, **describe_batch(records))
