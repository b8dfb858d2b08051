"""Broker helpers for tests: publish events in CloudEvents envelopes, read a topic from the beginning."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.codec import UndecodableMessage, decode, encode
from shared.envelope import Envelope
from shared.events import ALL_EVENTS, Event, ImportRowReceivedV1
from shared.producer import OutgoingMessage, create_producer, publish_all

TEST_SOURCE = "kagibag-contacts/tests"


def envelope_for(event: Event, *, subject: str | None = None, correlation_id: str | None = None) -> Envelope:
    return Envelope(type=event.TYPE, source=TEST_SOURCE, subject=subject, correlation_id=correlation_id)


async def publish(bootstrap_servers: str, messages: Iterable[OutgoingMessage]) -> int:
    """Publish raw messages (also undecodable ones, for dead-letter tests) and wait for every ack."""
    producer = create_producer(bootstrap_servers)
    await producer.start()
    try:
        return await publish_all(producer, messages)
    finally:
        await producer.stop()


async def publish_events(
    bootstrap_servers: str, *, topic: str, events: Iterable[tuple[str | None, Event]]
) -> list[Envelope]:
    """Publish ``(key, event)`` pairs, each in a fresh envelope; returns the envelopes in order."""
    pairs = [(key, event, envelope_for(event)) for key, event in events]
    await publish(bootstrap_servers, (encode(event, env, topic=topic, key=key) for key, event, env in pairs))
    return [envelope for _, _, envelope in pairs]


@dataclass(frozen=True)
class Consumed:
    """One record as read back: the raw record and, when it decodes, its envelope and typed event."""

    record: ConsumerRecord
    envelope: Envelope | None
    event: Event | None
    error: UndecodableMessage | None = None

    @property
    def key(self) -> str | None:
        return self.record.key.decode() if self.record.key is not None else None

    @property
    def headers(self) -> dict[str, bytes]:
        return dict(self.record.headers or ())


def _consumed(record: ConsumerRecord, accepted: Sequence[type[Event]]) -> Consumed:
    try:
        envelope, event = decode(record, accepted)
        return Consumed(record, envelope, event)
    except UndecodableMessage as error:
        try:
            envelope = Envelope.from_headers(record.headers or ())
        except ValueError:
            envelope = None
        return Consumed(record, envelope, None, error)


async def consume_until(
    bootstrap_servers: str,
    topic: str,
    predicate: Callable[[list[Consumed]], bool],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - a deadline across many awaits, reported in the failure
    accepted: Sequence[type[Event]] = ALL_EVENTS,
) -> list[Consumed]:
    """Read ``topic`` from the beginning of every partition (no consumer group, nothing committed) until
    ``predicate(everything read so far)`` holds; ``AssertionError`` after ``timeout`` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[Consumed] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if predicate(seen):
                return seen
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{topic}: condition not met in {timeout} s, {len(seen)} messages read")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batches.values():
                seen.extend(_consumed(record, accepted) for record in records)
    finally:
        await consumer.stop()


async def consume_count(
    bootstrap_servers: str, topic: str, count: int, *, timeout: float = 30.0  # noqa: ASYNC109
) -> list[Consumed]:
    """At least ``count`` messages of ``topic``."""
    return await consume_until(bootstrap_servers, topic, lambda seen: len(seen) >= count, timeout=timeout)


async def consume_quiet(bootstrap_servers: str, topic: str, *, quiet_seconds: float = 2.0) -> list[Consumed]:
    """Everything on ``topic`` once nothing new has arrived for ``quiet_seconds`` (to assert on absence)."""
    count, since = -1, time.monotonic()

    def settled(seen: list[Consumed]) -> bool:
        nonlocal count, since
        if len(seen) != count:
            count, since = len(seen), time.monotonic()
        return time.monotonic() - since >= quiet_seconds

    return await consume_until(bootstrap_servers, topic, settled, timeout=quiet_seconds * 10 + 30)


async def import_row_events(
    bootstrap_servers: str, topic: str, import_id: str, count: int
) -> list[ImportRowReceivedV1]:
    """The row events of ``import_id`` on the import-rows ``topic``, in row order, once ``count`` are there."""

    def mine(seen: list[Consumed]) -> list[ImportRowReceivedV1]:
        events = [c.event for c in seen if isinstance(c.event, ImportRowReceivedV1)]
        return [event for event in events if event.import_id == import_id]

    seen = await consume_until(bootstrap_servers, topic, lambda s: len(mine(s)) >= count)
    return sorted(mine(seen), key=lambda event: event.row_number)


async def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """Partition -> the offset the next record of ``topic`` will get (what a caught-up group has stored)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster's metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert partitions, f"{topic} has no partitions"
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()
