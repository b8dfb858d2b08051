"""Consumer lag: which topics each service's consumer group reads, and reading a group's committed offsets and the
partitions' end offsets from the broker. Lag = end offset - committed offset.

Against Tansu the end offset is the newest batch's base offset + 1, so lag read there can be low or negative;
against Apache Kafka it is exact. Negative values are reported as 0 and flagged ``approximate``.

Committed offsets are read through a consumer that never joins the group (the admin OffsetFetch request is not
understood by every Kafka-compatible broker); it never commits, so it cannot disturb the group."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import topics
from shared.topics import Topic

SUBSCRIPTIONS: Mapping[str, tuple[Topic, ...]] = {
    service: topics.subscriptions(service) for service in topics.CONSUMING_SERVICES
}
"""The topics each service's consumer group reads (``Topic.readers`` in the registry; a unit test compares them
with the subscribers in ``services/<service>/handlers.py``). The lag monitor and the AsyncAPI document's receive
operations come from here."""


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


def group_reader(bootstrap_servers: str, group: str, **client_options: object) -> AIOKafkaConsumer:
    """A consumer with ``group``'s id that never subscribes (so never joins) and never commits."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False, **client_options
    )


async def committed_offsets(
    reader: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The group's committed offset of each partition; None where the group never committed."""
    partitions = list(partitions)
    values = await asyncio.gather(*(reader.committed(tp) for tp in partitions))
    return dict(zip(partitions, values, strict=True))


async def consumer_lag(bootstrap_servers: str, *, group: str, topics: list[str]) -> list[PartitionLag]:
    """One-off read of ``group``'s lag on ``topics`` (tests, scripts); the monitor keeps its clients open."""
    consumer = group_reader(bootstrap_servers, group)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        committed = await committed_offsets(consumer, partitions)
        return [
            PartitionLag(group=group, topic=tp.topic, partition=tp.partition, committed=committed[tp] or 0,
                         end=ends.get(tp, 0))
            for tp in partitions
        ]
    finally:
        await consumer.stop()
