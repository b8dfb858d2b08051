"""enrichment's subscriber: a batch of contact events, folded in one transaction (``service.enrich``)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.enrichment.service import EnrichmentTopics, enrich
from shared import metrics
from shared.consumer import Delivery, describe_batch, raw_records
from shared.poison import apply_isolating_poison, dead_letter_alone

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, topics: EnrichmentTopics, delivery: Delivery, batch_size: int
) -> None:
    """Subscribe enrichment to the contact log."""

    @delivery.subscriber(
        broker,
        topics=(topics.contact_events,),
        engine=engine,
        max_records=batch_size,
        description="Resolve each contact's display name and publish it when it changes. The group's positions "
        "are stored with the batch's effect; Kafka offsets are committed after it; a failed batch is redelivered "
        "and its applied events are stale by their version.",
    )
    async def on_contact_events(msg: KafkaMessage) -> None:
        await apply_isolating_poison(
            raw_records(msg), apply,
            send_to_dead_letters=lambda record, error: dead_letter_alone(
                engine, record, error, delivery=delivery, topic=topics.dead_letters),
        )

    async def apply(records: Sequence[ConsumerRecord]) -> None:
        async with engine.begin() as conn:
            enriched = await enrich(conn, records, topics=topics, delivery=delivery)
        metrics.dead_letters_sent(delivery.service, enriched.dead_letters)
        log.info("contact_events.enriched", applied=enriched.events, display_names=enriched.display_names,
                 dead_lettered=len(enriched.dead_letters), **describe_batch(records))
