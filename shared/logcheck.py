"""Is a record we published or applied still where it was? A broker that restarted empty (the local broker keeps
its log in memory) or a topic deleted and recreated lose every offset, and positions stored in PostgreSQL then
point into a log that is not the one they were taken in. A marker (topic, partition, offset and a fingerprint of
the record there) tells the two apart without relying on end offsets, which the local broker reports low."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Marker:
    topic: str
    partition: int
    offset: int
    fingerprint: str

    def to_text(self) -> str:
        return f"{self.offset} {self.partition} {self.fingerprint} {self.topic}"

    @classmethod
    def from_text(cls, text: str) -> Marker:
        offset, partition, fingerprint, topic = text.split(" ", 3)
        return cls(topic, int(partition), int(offset), fingerprint)


def fingerprint(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]] | None) -> str:
    """The record's ``ce_id``, or a digest of its key and value when it has none."""
    for name, header in headers or ():
        if name == "ce_id" and header:
            return header.decode(errors="replace")
    return hashlib.sha1((key or b"") + b"\x00" + (value or b"")).hexdigest()[:24]


def marker_of(record: Any) -> Marker:
    return Marker(record.topic, record.partition, record.offset, fingerprint(record.key, record.value, record.headers))


async def lost_markers(
    bootstrap_servers: str, markers: Sequence[Marker], *, wait: float = 5.0, options: Mapping[str, Any] | None = None
) -> list[Marker]:
    """The markers whose record is no longer at its offset. A record removed by retention (its offset below the
    log's start) is not lost: the log is still the same one."""
    if not markers:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="latest", **(options or {}))
    try:
        await consumer.start()
        existing = await consumer.topics()
        lost = [m for m in markers if m.topic not in existing
                or m.partition not in (consumer.partitions_for_topic(m.topic) or ())]
        wanted = {TopicPartition(m.topic, m.partition): m for m in markers if m not in lost}
        if not wanted:
            return lost
        consumer.assign(list(wanted))
        starts = await consumer.beginning_offsets(list(wanted))
        pending: dict[TopicPartition, Marker] = {}
        for tp, marker in wanted.items():
            if marker.offset < starts[tp]:
                continue  # retention removed it: the same log, shortened at its head
            consumer.seek(tp, marker.offset)
            pending[tp] = marker
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=1)
            for tp, records in fetched.items():
                if tp not in pending or not records:
                    continue
                marker = pending.pop(tp)
                record = records[0]
                if record.offset != marker.offset or marker_of(record) != marker:
                    lost.append(marker)
                consumer.pause(tp)
        return lost + list(pending.values())  # nothing at the offset any more: the log is shorter
    finally:
        await consumer.stop()
