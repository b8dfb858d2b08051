"""The messaging lifecycle every service runs inside its FastAPI lifespan: topics, producer, outbox relay and
FastStream subscribers, started in dependency order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import PlatformSettings
from shared.db import create_engine
from shared.kafka import create_broker, create_producer, ensure_topics
from shared.logging import configure_logging
from shared.outbox import OutboxRelay
from shared.retention import Pruner
from shared.topics import ALL_TOPICS
from shared.tracking import TrackingPruner

log = structlog.get_logger(__name__)


@dataclass
class Messaging:
    """What handlers need at run time: the producer (for relays) and the relay to wake after commits."""

    bootstrap_servers: str
    topic_prefix: str
    engine: AsyncEngine
    relay_lock: str
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    pruner: Pruner | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()


@contextlib.asynccontextmanager
async def running(messaging: Messaging, broker: KafkaBroker, *, service: str) -> AsyncIterator[Messaging]:
    """Create topics idempotently, start the producer and relay, then the subscribers; undo in reverse."""
    created = await ensure_topics(messaging.bootstrap_servers, prefix=messaging.topic_prefix, topics=ALL_TOPICS)
    if created:
        log.info("topics.created", topics=created)
    messaging.producer = create_producer(messaging.bootstrap_servers)
    await messaging.producer.start()
    messaging.relay = OutboxRelay(messaging.engine, messaging.producer, lock_name=messaging.relay_lock)
    messaging._tasks.append(asyncio.create_task(messaging.relay.run(), name=f"{service}-outbox-relay"))
    if messaging.pruner is not None:
        messaging._tasks.append(asyncio.create_task(messaging.pruner.run(), name=f"{service}-tracking-pruner"))
    await broker.start()
    log.info("service.started")
    try:
        yield messaging
    finally:
        await broker.stop()
        for task in messaging._tasks:
            task.cancel()
        for task in messaging._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await messaging.relay.relay_once()  # flush what the last batches enqueued
        await messaging.producer.stop()
        await messaging.engine.dispose()
        log.info("service.stopped")


@dataclass(frozen=True)
class Plumbing:
    engine: AsyncEngine
    messaging: Messaging
    broker: KafkaBroker


def build_plumbing(*, service: str, platform: PlatformSettings, db_schema: str, description: str) -> Plumbing:
    """What every service's composition root starts from: logging, an engine bound to the service's schema,
    the messaging runtime (producer and outbox relay, started by ``running``) and the FastStream broker."""
    configure_logging(level=platform.log_level, fmt=platform.log_format, service=service)
    engine = create_engine(platform.database_url, schema=db_schema)
    messaging = Messaging(
        bootstrap_servers=platform.kafka_bootstrap_servers,
        topic_prefix=platform.topic_prefix,
        engine=engine,
        relay_lock=f"{db_schema}.outbox",
        pruner=TrackingPruner(
            engine,
            retention=timedelta(hours=platform.tracking_retention_hours),
            interval=platform.tracking_prune_interval_seconds,
        ),
    )
    broker = create_broker(platform.kafka_bootstrap_servers, description=description)
    return Plumbing(engine=engine, messaging=messaging, broker=broker)
