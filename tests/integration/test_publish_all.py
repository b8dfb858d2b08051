"""shared.kafka.publish_all against the real broker: partitions as any Kafka client would pick, order kept."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import ensure_topics
from shared.producer import OutgoingMessage, create_producer, publish_all
from shared.topics import Topic

pytestmark = pytest.mark.integration


async def test_batched_publishing_keeps_default_partitioning_and_per_key_order(kafka_bootstrap: str) -> None:
    topic = Topic(f"publish-all-{uuid.uuid4().hex[:8]}", "test key", (), 8, "tests", "publish_all test")
    await ensure_topics(kafka_bootstrap, prefix="", topics=[topic])
    messages = [
        OutgoingMessage(topic.name, key=f"key-{i % 300}".encode(), value=b"x" * (i % 5000),
                        headers=[("ce_id", str(i).encode())])
        for i in range(20_000)
    ]
    producer = create_producer(kafka_bootstrap)
    await producer.start()
    try:
        assert await publish_all(producer, messages) == len(messages)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic.name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    received: list[tuple[int, bytes | None, int]] = []
    try:
        while len(received) < len(messages):
            batches = await consumer.getmany(timeout_ms=2000)
            assert batches, f"only {len(received)} of {len(messages)} messages arrived"
            for tp, records in batches.items():
                received += [(tp.partition, r.key, int(dict(r.headers)["ce_id"])) for r in records]
    finally:
        await consumer.stop()

    every = list(range(8))
    assert all(partition == DefaultPartitioner()(key, every, every) for partition, key, _ in received)
    by_key: dict[bytes | None, list[int]] = {}
    for _, key, index in received:
        by_key.setdefault(key, []).append(index)
    assert all(indexes == sorted(indexes) for indexes in by_key.values())
    assert sorted(index for _, _, index in received) == list(range(len(messages)))
