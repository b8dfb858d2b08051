"""Dead letters: read them back, count them, show them, and re-drive chosen ones to their original topic.

A dead letter (``shared.kafka.dead_letter``) is the original key, value and headers plus ``dlq_*`` headers saying
where it came from and why it failed. Re-driving publishes the original key, value and headers to the original
topic with two more headers, ``dlq_redriven_from`` (``<dead-letter topic>:<partition>:<offset>``) and
``dlq_redriven_at``. Each dead letter is re-driven at most once: its coordinates are inserted into
``ops.redriven_dead_letters`` in the transaction that is committed only after the broker acknowledged the
message (a second run, even a concurrent one, skips it). If that commit failed after the publish, a later run could
publish it again; the consumers apply an event id once, so that would still be applied once."""

from __future__ import annotations

import asyncio
import getpass
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ops.db import redriven_dead_letters
from shared.topics import CONSUMING_SERVICES, dead_letter_topic

REDRIVEN_FROM = "dlq_redriven_from"
REDRIVEN_AT = "dlq_redriven_at"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    """The original headers (``dlq_*`` ones excluded)."""
    dlq: dict[str, str]
    """The ``dlq_*`` headers, decoded."""

    @property
    def coordinates(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def error_code(self) -> str:
        return self.dlq.get("dlq_error_code", "UNKNOWN")

    @property
    def original_topic(self) -> str | None:
        return self.dlq.get("dlq_original_topic")

    @property
    def event_id(self) -> str | None:
        value = dict(self.headers).get("ce_id")
        return value.decode("utf-8", errors="replace") if value is not None else None


def dead_letter_topics(prefix: str, services: Iterable[str] = CONSUMING_SERVICES) -> list[str]:
    return [dead_letter_topic(service).qualified(prefix) for service in services]


def parse(record: object) -> DeadLetter:
    headers = tuple(getattr(record, "headers", None) or ())
    original = tuple((key, value) for key, value in headers if not key.startswith("dlq_"))
    dlq = {key: value.decode("utf-8", errors="replace") for key, value in headers if key.startswith("dlq_")}
    return DeadLetter(
        topic=record.topic,  # type: ignore[attr-defined]
        partition=record.partition,  # type: ignore[attr-defined]
        offset=record.offset,  # type: ignore[attr-defined]
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),  # type: ignore[attr-defined]
        key=record.key,  # type: ignore[attr-defined]
        value=record.value or b"",  # type: ignore[attr-defined]
        headers=original,
        dlq=dlq,
    )


async def read_dead_letters(
    bootstrap_servers: str, topics: Sequence[str], *, quiet_seconds: float = 2.0, max_seconds: float = 60.0
) -> list[DeadLetter]:
    """Every dead letter now on ``topics``, oldest first per partition (no consumer group: nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        existing = await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics if topic in existing
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + max_seconds
        last_data = time.monotonic()
        while time.monotonic() < deadline:
            # Apache Kafka's end offsets are exact; Tansu's are the newest batch's base offset + 1, which fetching
            # that batch passes: reading up to them reads everything there was when the command started
            if all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                break
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                letters.extend(parse(record) for record in records)
            if batches:
                last_data = time.monotonic()
            elif time.monotonic() - last_data > quiet_seconds:
                break
        return sorted(letters, key=lambda letter: (letter.topic, letter.partition, letter.offset))
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Count:
    topic: str
    original_topic: str
    error_code: str
    count: int
    redriven: int


def count(letters: Iterable[DeadLetter], redriven: set[tuple[str, int, int]]) -> list[Count]:
    """Dead letters per (dead-letter topic, original topic, error code), and how many were re-driven."""
    totals: Counter[tuple[str, str, str]] = Counter()
    done: Counter[tuple[str, str, str]] = Counter()
    for letter in letters:
        key = (letter.topic, letter.original_topic or "?", letter.error_code)
        totals[key] += 1
        if (letter.topic, letter.partition, letter.offset) in redriven:
            done[key] += 1
    return [Count(*key, count=totals[key], redriven=done[key]) for key in sorted(totals)]


async def redriven_coordinates(engine: AsyncEngine) -> dict[tuple[str, int, int], datetime]:
    table = redriven_dead_letters
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table.c.dead_letter_topic, table.c.partition, table.c.offset,
                                          table.c.redriven_at))).all()
    return {(row[0], row[1], row[2]): row[3] for row in rows}


@dataclass(frozen=True)
class RedriveResult:
    redriven: list[DeadLetter]
    skipped: list[DeadLetter]
    """Already re-driven before (by this or an earlier run), or without an original topic."""


def redrive_headers(letter: DeadLetter, *, at: datetime) -> list[tuple[str, bytes]]:
    return [*letter.headers, (REDRIVEN_FROM, letter.coordinates.encode()), (REDRIVEN_AT, at.isoformat().encode())]


async def redrive(
    letters: Sequence[DeadLetter], *, engine: AsyncEngine, producer: AIOKafkaProducer
) -> RedriveResult:
    """Publish each chosen dead letter to its original topic, once ever (see the module docstring)."""
    table = redriven_dead_letters
    now = datetime.now(UTC)
    redriven: list[DeadLetter] = []
    skipped = [letter for letter in letters if not letter.original_topic]
    candidates = [letter for letter in letters if letter.original_topic]
    if not candidates:
        return RedriveResult(redriven, skipped)
    user = _user()
    async with engine.begin() as conn:
        for letter in candidates:
            claimed = await conn.execute(
                insert(table)
                .values(dead_letter_topic=letter.topic, partition=letter.partition, offset=letter.offset,
                        original_topic=letter.original_topic, event_id=letter.event_id, redriven_at=now,
                        redriven_by=user)
                .on_conflict_do_nothing()
                .returning(table.c.offset)
            )
            (redriven if claimed.first() is not None else skipped).append(letter)
        acks = [
            await producer.send(
                letter.original_topic or "", value=letter.value, key=letter.key,
                headers=redrive_headers(letter, at=now),
            )
            for letter in redriven
        ]
        await asyncio.gather(*acks)  # every ack before the commit: a failure rolls the claims back
    return RedriveResult(redriven, skipped)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
