"""enrichment's subscriber: a batch of contact events, folded in one transaction (``service.fold_contact_events``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.enrichment.service import EnrichmentTopics, fold_contact_events
from shared import metrics
from shared.consumer import Delivery, describe_batch, raw_records
from shared.poison import apply_isolating_poison, dead_letter_alone

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker,
    *,
    engine: AsyncEngine,
    topics: EnrichmentTopics,
    delivery: Delivery,
    batch_size: int,
    applied: Callable[[], None],
) -> None:
    """Subscribe enrichment to the contact log; ``applied`` is called after each batch (the worker's pace)."""

    @delivery.subscriber(
        broker,
        topics=(topics.contact_events,),
        engine=engine,
        max_records=batch_size,
        description="Keep per contact its email, what the person stated themself and the organizers with a "
        "relationship, and mark the contacts the providers should run for (created, or the person's own fields "
        "changed): one set-based write per batch, the providers run behind. The group's positions are stored with "
        "the batch's effect; Kafka offsets are committed after it; a failed batch is redelivered and its applied "
        "events are stale by their version.",
    )
    async def on_contact_events(msg: KafkaMessage) -> None:
        await apply_isolating_poison(
            raw_records(msg), apply,
            send_to_dead_letters=lambda record, error: dead_letter_alone(
                engine, record, error, delivery=delivery, topic=topics.dead_letters),
        )
        applied()

    async def apply(records: Sequence[ConsumerRecord]) -> None:
        async with engine.begin() as conn:
            folded = await fold_contact_events(conn, records, topics=topics, delivery=delivery)
        metrics.dead_letters_sent(delivery.service, folded.dead_letters)
        log.info("contact_events.folded", applied=folded.events, changed=folded.changed, due=folded.due,
                 dead_lettered=len(folded.dead_letters), **describe_batch(records))
