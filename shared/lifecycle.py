"""What every service runs inside its FastAPI lifespan: topics, the producer, the relay (and its LISTEN
connection), background jobs, then the FastStream subscribers; stopped in reverse. The objects are built here,
complete, once: handlers need none of them (they wake the relay with ``pg_notify`` in their transaction)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import PlatformSettings
from shared.consumer import ConsumerHealth, consumers_of
from shared.kafka import KafkaClients, ensure_topics
from shared.relay import Relay, RelaySource
from shared.topics import ALL_TOPICS
from shared.tracing import configure_tracing

log = structlog.get_logger(__name__)

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Running:
    producer: AIOKafkaProducer
    relay: Relay
    consumers: Sequence[ConsumerHealth] = ()
    """The broker's batch subscribers, for readiness (joined) and liveness (stuck)."""
    stuck_after_seconds: float = 300.0


def relay_channel(db_schema: str) -> str:
    """The NOTIFY channel of a service's relay: one per schema, so instances of one service share it."""
    return f"{db_schema}.relay"


async def watch_broker(*, platform: PlatformSettings, clients: KafkaClients, relay: Relay, every: float = 30.0
                       ) -> None:
    """A broker that restarted empty (the local one keeps its log in memory) comes back without topics and
    without the messages relayed so far: recreate the topics, and publish again what was relayed into the lost
    log. Consumers check their own positions when their partitions are assigned again."""
    while True:
        try:
            created = await create_topics(platform, clients)
            if created:
                log.warning("topics.recreated", topics=created)
            await relay.verify(platform.kafka_bootstrap_servers, options=clients.options("consumer"))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the broker may be down for a while: try again at the next turn
            log.warning("broker.watch_failed", error=str(error))
        await asyncio.sleep(every)


def tune_garbage_collector() -> None:
    """Batch work keeps tens of thousands of young objects alive at once, which made CPython run a full
    collection every few batches (a third of a consumer's CPU). Everything built at start-up is moved out of the
    collector's sight, and the young generation is collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


async def create_topics(platform: PlatformSettings, clients: KafkaClients) -> list[str]:
    """Every topic of the registry, with the replication the platform settings ask for."""
    return await ensure_topics(
        platform.kafka_bootstrap_servers, prefix=platform.topic_prefix, topics=ALL_TOPICS,
        replication_factor=platform.topic_replication_factor, min_insync_replicas=platform.topic_min_insync_replicas,
        options=clients.options("admin"),
    )


@contextlib.asynccontextmanager
async def running(
    *,
    service: str,
    platform: PlatformSettings,
    engine: AsyncEngine,
    broker: KafkaBroker,
    relay_sources: Sequence[RelaySource],
    db_schema: str,
    jobs: Sequence[BackgroundJob] = (),
) -> AsyncIterator[Running]:
    bootstrap_servers = platform.kafka_bootstrap_servers
    if configure_tracing(service):
        log.info("tracing.exporting", exporter="otlp")
    clients = platform.kafka_clients(service)
    created = await create_topics(platform, clients)
    if created:
        log.info("topics.created", topics=created)
    producer = clients.producer()
    await producer.start()
    relay = Relay(engine, producer, sources=relay_sources, service=service, lock_name=f"{db_schema}.relay",
                  channel=relay_channel(db_schema))
    # before anything is published into a log that may be a new one
    await relay.verify(bootstrap_servers, options=clients.options("consumer"))
    tasks = [
        asyncio.create_task(watch_broker(platform=platform, clients=clients, relay=relay),
                            name=f"{service}-broker-watch"),
        asyncio.create_task(relay.run(), name=f"{service}-relay"),
        asyncio.create_task(relay.listen(), name=f"{service}-relay-listen"),
        *(asyncio.create_task(job(), name=f"{service}-job-{index}") for index, job in enumerate(jobs)),
    ]
    await broker.start()
    tune_garbage_collector()
    log.info("service.started")
    try:
        yield Running(producer=producer, relay=relay, consumers=consumers_of(broker),
                      stuck_after_seconds=platform.consumer_stuck_seconds)
    finally:
        await broker.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await relay.relay_once()  # flush what the last batches stored
        await producer.stop()
        await engine.dispose()
        log.info("service.stopped")
