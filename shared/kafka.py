"""Connecting to Kafka: how one service's clients connect (``KafkaClients``), the FastStream broker its
subscribers run on, and the topics of the registry, created with their partitions and configs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import IncompatibleBrokerVersion, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from shared import metrics
from shared.kafka_security import ClientRole, KafkaSecuritySettings, client_options
from shared.producer import create_producer
from shared.topics import Topic

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KafkaClients:
    """How one service's clients connect, built once in its composition root: the broker list and the
    ``CONTACTS_KAFKA_*`` security, client-id and producer settings (``shared.kafka_security``)."""

    bootstrap_servers: str
    service: str
    security: KafkaSecuritySettings

    def options(self, role: ClientRole) -> dict[str, Any]:
        return client_options(self.security, service=self.service, role=role)

    def producer(self) -> AIOKafkaProducer:
        return create_producer(self.bootstrap_servers, options=self.options("producer"))

    def broker(self, *, description: str) -> KafkaBroker:
        return create_broker(self.bootstrap_servers, description=description, options=self.options("broker"))


async def ensure_topics(
    bootstrap_servers: str,
    *,
    prefix: str,
    topics: Iterable[Topic],
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
    options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing topics with their configs; returns the names created (or re-created).

    A topic with fewer partitions than the registry's was created by a client's request for an unknown topic
    (the local broker does so, with 4, when it restarted empty and a client asked first): its partitions are
    raised where the broker can (Apache Kafka), else it is deleted and created again (what was written to it in
    the meantime is published again by its writers, who check their logs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(options or {}))
    await admin.start()
    try:
        wanted = {topic.qualified(prefix): topic for topic in topics}
        listed = set(await admin.list_topics())
        present = [name for name in wanted if name in listed]
        described = await admin.describe_topics(present) if present else []  # none named: it describes all
        existing = {t["topic"]: len(t["partitions"]) for t in described if t["topic"] in wanted}

        def new_topic(name: str) -> NewTopic:
            topic = wanted[name]
            config = {**topic.config, "min.insync.replicas": str(min_insync_replicas)}
            return NewTopic(name=name, num_partitions=topic.partitions, replication_factor=replication_factor,
                            topic_configs=config)

        short = [name for name, count in existing.items() if count < wanted[name].partitions]
        recreated = []
        for name in short:
            try:
                await admin.create_partitions({name: NewPartitions(total_count=wanted[name].partitions)})
            except IncompatibleBrokerVersion:
                await admin.delete_topics([name])
                recreated.append(name)
        missing = [name for name in wanted if name not in existing] + recreated
        for name in missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([new_topic(name)])
        if short:
            log.warning("topics.repartitioned", topics=short, recreated=recreated)
        return missing
    finally:
        await admin.close()


def create_broker(
    bootstrap_servers: str, *, description: str, options: Mapping[str, Any] | None = None
) -> KafkaBroker:
    """FastStream broker; its per-message log lines are off because every subscriber here is a batch one and
    logs its own batch with topic, partitions and offsets. FastStream's Prometheus middleware counts and times
    what its subscribers consume (``faststream_*`` on ``/metrics``, per batch: the records are counted in
    ``contacts_messages_consumed``). ``options``: ``KafkaClients.options("broker")``."""
    settings: dict[str, Any] = {"enable_idempotence": False, **(options or {})}
    prometheus = KafkaPrometheusMiddleware(registry=metrics.REGISTRY, app_name="kagibag-contacts")
    return KafkaBroker(bootstrap_servers, logger=None, description=description, middlewares=(prometheus,),
                       **settings)
