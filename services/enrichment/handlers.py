"""enrichment's subscriber: decode a batch of contact events, fold it into the per-contact state in one
transaction, and enqueue the display names that changed (and dead letters) through the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.enrichment import store
from services.enrichment.domain import Resolution, plan_batch
from shared import topics as registry
from shared.envelope import Envelope
from shared.events import (
    ContactEvent,
    DisplayNameResolvedV1,
)
from shared.inbox import claim_batch, decode_batch, derived_id
from shared.kafka import (
    OutgoingMessage,
    batch_subscriber,
    describe_batch,
    encode,
    raw_records,
)
from shared.outbox import enqueue
from shared.runtime import Messaging

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/enrichment"
# what the topic registry says the contact log carries: every one of them is a ContactEvent
CONTACT_EVENT_TYPES = cast(tuple[type[ContactEvent], ...], registry.CONTACT_EVENTS.events)


@dataclass(frozen=True)
class EnrichmentTopics:
    contact_events: str
    enrichments: str
    dead_letters: str


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
        id=derived_id("display-name", event.contact_id, event.contact_version),
    )
    return encode(event, envelope, topic=topics.enrichments, key=event.contact_id)


async def resolve_display_names(
    engine: AsyncEngine, records: Sequence[ConsumerRecord], *, topics: EnrichmentTopics, consumer: str
) -> int:
    """Apply a batch exactly once in effect: tracking records, contact state and outbox are written in one
    transaction, and messages already recorded as processed are skipped. Returns the events applied."""
    batch = decode_batch(records, CONTACT_EVENT_TYPES)
    async with engine.begin() as conn:
        claimed = await claim_batch(conn, batch, consumer=consumer, dead_letter_topic=topics.dead_letters)
        causes: dict[tuple[str, int], Envelope] = {}
        todo: list[ContactEvent] = []
        for envelope, event in claimed.fresh:
            causes.setdefault((event.contact_id, event.version), envelope)
            todo.append(event)
        known = await store.lock_contacts(conn, [event.contact_id for event in todo])
        plan = plan_batch(known, todo)
        await store.save_contacts(conn, list(plan.changed.values()))
        outgoing = [
            _display_name_message(r, causes[(r.contact_id, r.contact_version)], topics)
            for r in plan.resolutions
        ]
        await enqueue(conn, outgoing + claimed.dead_letters)
    if batch.undecodable:
        log.warning(
            "contact_events.dead_lettered", count=len(batch.undecodable), first_error=batch.undecodable[0][1].code
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
