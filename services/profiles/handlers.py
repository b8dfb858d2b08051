"""profiles' subscriber: batches of the contact log applied through ``service.project``; a message that keeps
failing is isolated and dead-lettered alone."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profiles.service import ProfilesTopics, project
from shared.consumer import Delivery, describe_batch, raw_records
from shared.poison import apply_isolating_poison, dead_letter_alone

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, topics: ProfilesTopics, delivery: Delivery, batch_size: int
) -> None:
    """Subscribe profiles to the contact log. (Display names are profiles' own rule: the enrichments topic is
    not read.)"""

    @delivery.subscriber(
        broker,
        topics=(topics.contact_events,),
        engine=engine,
        max_records=batch_size,
        description="Merge contact events into the canonical profiles (what each person stated) and each "
        "organizer's view (the person's values, else its own imported ones) with its relationship and insights; "
        "publish one canonical profile snapshot per changed contact per batch. The group's positions are stored "
        "with the batch's effect; Kafka offsets are committed after it; a failed batch is retried, then split until "
        "a message that keeps failing stands alone and goes to the dead letters.",
    )
    async def on_contact_events(msg: KafkaMessage) -> None:
        await apply_isolating_poison(
            raw_records(msg), apply,
            send_to_dead_letters=lambda record, error: dead_letter_alone(
                engine, record, error, delivery=delivery, topic=topics.dead_letters),
        )

    async def apply(records: Sequence[ConsumerRecord]) -> None:
        applied = await project(engine, records, topics=topics, delivery=delivery)
        log.info("contact_events.projected", applied=applied, **describe_batch(records))
