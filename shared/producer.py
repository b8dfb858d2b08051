"""Publishing: the message to publish, the producer, and batched publishing grouped by partition (Kafka's
default partitioning of the key), waiting for every acknowledgement at once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from shared.envelope import Headers
from shared.logcheck import Marker, fingerprint
from shared.partitioning import partition_of

MAX_MESSAGE_BYTES = 1_048_576


class OutgoingMessage(NamedTuple):
    """A message to publish (a tuple: built per message on the bulk paths, so it must be cheap)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


def create_producer(bootstrap_servers: str, *, options: Mapping[str, Any] | None = None) -> AIOKafkaProducer:
    """A producer for batches: ``options`` from ``KafkaClients`` (security, client id, acks, idempotence,
    compression); without, a plain at-least-once producer (what the local broker and the tests use)."""
    settings: dict[str, Any] = {"acks": "all", "enable_idempotence": False, **(options or {})}
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=MAX_MESSAGE_BYTES * 4,
        **settings,
    )


async def publish_all(producer: AIOKafkaProducer, messages: Iterable[OutgoingMessage]) -> int:
    """Publish every message and wait for all acknowledgements at once (never one by one); returns how many."""
    count, _ = await publish_marked(producer, messages)
    return count


async def publish_marked(producer: AIOKafkaProducer, messages: Iterable[OutgoingMessage]) -> tuple[int, Marker | None]:
    """``publish_all``, also returning where the first message of the last batch landed (a marker that tells
    later whether the broker still holds this log: ``shared.logcheck``).

    Messages are grouped by partition (Kafka's default partitioning of the key, so keys land where any Kafka
    client would put them) and handed over as whole batches, in order: about half the per-message cost of
    ``send()``."""
    partition_counts: dict[str, int] = {}
    grouped: dict[tuple[str, int], list[OutgoingMessage]] = {}
    for message in messages:
        topic = message.topic
        count = partition_counts.get(topic)
        if count is None:
            count = partition_counts[topic] = len(await producer.partitions_for(topic))
        partition = random.randrange(count) if message.key is None else partition_of(message.key, count)
        batch_of = grouped.get((topic, partition))
        if batch_of is None:
            grouped[(topic, partition)] = [message]
        else:
            batch_of.append(message)

    pending: list[tuple[asyncio.Future[Any], OutgoingMessage]] = []
    for (topic, partition), batch_messages in grouped.items():
        batch = producer.create_batch()
        first = batch_messages[0]
        for message in batch_messages:
            _, key, value, headers = message
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append((await producer.send_batch(batch, topic, partition=partition), first))
                batch, first = producer.create_batch(), message
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"a message of {len(value)} bytes does not fit in a batch for {topic}")
        pending.append((await producer.send_batch(batch, topic, partition=partition), first))
    if not pending:
        return 0, None
    sent = await asyncio.gather(*(future for future, _ in pending))
    last, first = sent[-1], pending[-1][1]
    marker = Marker(last.topic, last.partition, last.offset, fingerprint(first.key, first.value, first.headers))
    return sum(len(batch_messages) for batch_messages in grouped.values()), marker
