"""Consumer lag per partition: what ops watch. Lag = end offset - committed offset.

Against Tansu the end offset is the newest batch's base offset + 1, so lag read there can be low or negative;
against Apache Kafka it is exact. Negative values are reported as 0 and flagged ``approximate``."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


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


async def consumer_lag(bootstrap_servers: str, *, group: str, topics: list[str]) -> list[PartitionLag]:
    """Reads the group's committed offsets through a consumer that never joins the group (the admin
    OffsetFetch request is not understood by every Kafka-compatible broker)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        lags = []
        for tp in partitions:
            committed = await consumer.committed(tp)
            lags.append(
                PartitionLag(group=group, topic=tp.topic, partition=tp.partition, committed=committed or 0,
                             end=ends.get(tp, 0))
            )
        return lags
    finally:
        await consumer.stop()
