"""identity's subscriber: a batch of import rows and platform interactions, resolved in one transaction
(``service.resolve_with_retries``); a message that keeps failing is isolated and dead-lettered alone."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.service import IdentityTopics, resolve_with_retries
from shared import metrics
from shared.consumer import Delivery, batch_subscriber, describe_batch, raw_records
from shared.poison import apply_isolating_poison, dead_letter_alone

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, topics: IdentityTopics, delivery: Delivery, batch_size: int
) -> None:
    """Subscribe identity to import rows and platform interactions with one consumer: one group join, and a
    person's rows and interactions resolved by one transaction at a time."""

    @batch_subscriber(
        broker,
        topics=(topics.import_rows, topics.interactions, topics.attendee_statements),
        group_id=delivery.group,
        engine=engine,
        bootstrap_servers=delivery.bootstrap_servers,
        service="identity",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=batch_size,
        description="Resolve imported rows, interactions reported by platform teams and attendees' own statements "
        "to canonical contacts. "
        "The group's positions are stored with the batch's effect; Kafka offsets are committed after it; a failed "
        "batch is redelivered, and what it had applied is recognised by its offsets, row numbers or interaction "
        "ids.",
    )
    async def on_import_rows_and_interactions(msg: KafkaMessage) -> None:
        await apply_isolating_poison(
            raw_records(msg), apply,
            send_to_dead_letters=lambda record, error: dead_letter_alone(
                engine, record, error, delivery=delivery, topic=topics.dead_letters),
        )

    async def apply(records: Sequence[ConsumerRecord]) -> None:
        resolved = await resolve_with_retries(engine, records, topics=topics, delivery=delivery)
        metrics.dead_letters_sent(delivery.service, resolved.dead_letters)
        log.info("identity.resolved", rows=resolved.rows, interactions=resolved.interactions,
                 repeated_rows=resolved.repeated_rows, dead_lettered=len(resolved.dead_letters),
                 **describe_batch(records))
