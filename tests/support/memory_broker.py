"""The fast tier's broker: FastStream's ``TestKafkaBroker`` (no network, no broker process) with the records a
partition's log would hold. FastStream's test broker numbers every record offset 0; the services' positional
deduplication reads offsets, so the records handed to a subscriber here are numbered per (topic, partition) in the
order they were written, as a log numbers them, and can be handed over again to act out a redelivery."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.testing import _find_handler

from shared.partitioning import partition_of
from shared.producer import OutgoingMessage


class MemoryLog:
    """Messages as records of a log with ``partitions`` partitions per topic, keyed as the producers key them."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self._next: defaultdict[tuple[str, int], int] = defaultdict(int)

    def append(self, messages: Sequence[OutgoingMessage]) -> list[ConsumerRecord[bytes, bytes]]:
        records = []
        for message in messages:
            partition = partition_of(message.key, self.partitions) if message.key is not None else 0
            offset = self._next[(message.topic, partition)]
            self._next[(message.topic, partition)] = offset + 1
            value = message.value
            records.append(ConsumerRecord(
                topic=message.topic, partition=partition, offset=offset, timestamp=int(time.time() * 1000),
                timestamp_type=0, key=message.key, value=value, checksum=None,
                serialized_key_size=len(message.key or b""), serialized_value_size=len(value or b""),
                headers=list(message.headers),
            ))
        return records


@contextlib.asynccontextmanager
async def in_memory(broker: KafkaBroker) -> AsyncIterator[KafkaBroker]:
    """``broker`` with its subscribers started against FastStream's in-memory test broker."""
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker


async def deliver(broker: KafkaBroker, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
    """Hand ``records`` (one topic) to the subscriber of their topic as one batch, through FastStream's whole
    consuming path (parser, decoder, middlewares, handler, acknowledgement); its error, if any, is raised."""
    topics = {record.topic for record in records}
    assert len(topics) == 1, f"one topic per batch, not {sorted(topics)}"
    (topic,) = topics
    handlers = list(_find_handler(broker.subscribers, topic, None))  # type: ignore[arg-type]
    assert handlers, f"no subscriber reads {topic}"
    for handler in handlers:
        await handler.process_message(tuple(records))
