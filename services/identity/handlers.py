"""identity's subscribers, one per lane: batches of import rows, platform interactions and attendees' statements,
each resolved in one transaction (``service.resolve_with_retries``); a message that keeps failing is isolated and
dead-lettered alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.service import IdentityTopics, resolve_with_retries
from shared import metrics
from shared.consumer import Delivery, describe_batch, raw_records
from shared.poison import apply_isolating_poison, dead_letter_alone
from shared.topics import BULK_IMPORT_ROWS, lane_group

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, topics: IdentityTopics, delivery: Delivery, batch_size: int
) -> None:
    """Subscribe identity in two lanes, each its own consumer group and loop, so interactive work never queues
    behind a big import: the interactive lane (small imports' rows, interactions, attendees' statements) and the
    bulk lane (rows of big imports). Within a lane a person's records apply in order (one partition); across lanes
    they write different layers (an organizer's import its own layer, the person's statements the canonical one),
    so their relative order changes no value. Concurrent batches of the two lanes serialize on the contacts they
    share (row locks taken in email order)."""
    bulk_delivery = replace(delivery, group=lane_group(delivery.group, BULK_IMPORT_ROWS))
    description = (
        " The group's positions are stored with the batch's effect; Kafka offsets are committed after it; a failed "
        "batch is redelivered, and what it had applied is recognised by its offsets, row numbers or interaction ids; "
        "a message that keeps failing is dead-lettered alone."
    )

    @delivery.subscriber(
        broker,
        topics=(topics.import_rows, topics.interactions, topics.attendee_statements),
        engine=engine,
        max_records=batch_size,
        description="The interactive lane: resolve small imports' rows, interactions reported by platform teams and "
        "attendees' own statements to canonical contacts." + description,
    )
    async def on_interactive_lane(msg: KafkaMessage) -> None:
        await _isolating(raw_records(msg), delivery)

    @bulk_delivery.subscriber(
        broker,
        topics=(topics.bulk_import_rows,),
        engine=engine,
        max_records=batch_size,
        description="The bulk lane: resolve the rows of big imports to canonical contacts." + description,
    )
    async def on_bulk_lane(msg: KafkaMessage) -> None:
        await _isolating(raw_records(msg), bulk_delivery)

    async def _isolating(records: Sequence[ConsumerRecord], lane: Delivery) -> None:
        async def apply(batch: Sequence[ConsumerRecord]) -> None:
            resolved = await resolve_with_retries(engine, batch, topics=topics, delivery=lane)
            metrics.dead_letters_sent(lane.service, resolved.dead_letters)
            log.info("identity.resolved", lane=lane.group, rows=resolved.rows, interactions=resolved.interactions,
                     repeated_rows=resolved.repeated_rows, dead_lettered=len(resolved.dead_letters),
                     **describe_batch(batch))

        await apply_isolating_poison(
            records, apply,
            send_to_dead_letters=lambda record, error: dead_letter_alone(
                engine, record, error, delivery=lane, topic=topics.dead_letters),
        )
