"""ingest's subscriber: batches of identity's row outcomes counted through ``service.apply_answers``."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.service import IngestTopics, apply_answers
from shared import metrics
from shared.consumer import Delivery, describe_batch, raw_records

log = structlog.get_logger(__name__)


def register(
    broker: KafkaBroker, *, engine: AsyncEngine, topics: IngestTopics, delivery: Delivery,
    on_counted: Callable[[], None] = lambda: None,
) -> None:
    """Subscribe ingest to identity's row outcomes; ``on_counted`` is called once a batch of them is counted
    (pacing reads the counts again)."""

    @delivery.subscriber(
        broker,
        topics=(topics.row_outcomes,),
        engine=engine,
        max_records=5000,
        description="Count identity's row outcomes (one message per import and rows partition per identity batch) "
        "into their imports and finish the imports whose every row has one. The group's positions are stored with "
        "the batch's effect; a row already answered keeps its first outcome when it comes again, so counts stay "
        "exact.",
    )
    async def on_import_rows_processed(msg: KafkaMessage) -> None:
        records = raw_records(msg)
        applied = await apply_answers(engine, records, topics=topics, delivery=delivery)
        if applied.rows:
            on_counted()
        if applied.dead_letters:
            metrics.dead_letters_sent(delivery.service, applied.dead_letters)
            log.warning("row_outcomes.dead_lettered", dead_lettered=len(applied.dead_letters),
                        **describe_batch(records))
        for item in applied.finished:
            log.info("import.finished", import_id=item.import_id, correlation_id=item.import_id,
                     status=item.status, total_rows=item.total_rows, errors=item.errors)
        log.info("row_outcomes.counted", messages=applied.messages, rows=applied.rows, **describe_batch(records))
