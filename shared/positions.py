"""Positional tracking: each consumer group's next offset per topic partition, stored in the same transaction as
the effect of the records before it. A batch redelivered after a crash (its effect committed, its Kafka commit
lost) is recognised by its offsets and skipped, without a tracking row per message; on assignment the consumer
seeks to the stored positions.

Deduplication by content stays where the same message can arrive again at another offset (a re-published import
row, an interaction sent twice): that is each service's own rule, not this module's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import BigInteger, Column, Integer, MetaData, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.logcheck import Marker, lost_markers, marker_of

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]


def consumer_positions_table(metadata: MetaData) -> Table:
    return Table(
        "consumer_positions",
        metadata,
        Column("consumer_group", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("next_offset", BigInteger, nullable=False, comment="the first offset not yet applied"),
        Column("marker", Text, comment="fingerprint of the record before next_offset: is this still that log?"),
        PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )


def last_records(records: Iterable[Any]) -> dict[TopicPartitionKey, Any]:
    """(topic, partition) -> the record with the highest offset among ``records``."""
    last: dict[TopicPartitionKey, Any] = {}
    for record in records:
        key = (record.topic, record.partition)
        seen = last.get(key)
        if seen is None or record.offset > seen.offset:
            last[key] = record
    return last


@dataclass(frozen=True)
class Stored:
    next_offset: int
    marker: str | None

    def as_marker(self, topic: str, partition: int) -> Marker | None:
        """Where the last applied record should still be, or None when nothing was applied yet."""
        if self.next_offset == 0 or self.marker is None:
            return None
        return Marker(topic, partition, self.next_offset - 1, self.marker)


async def stored_positions(
    conn: AsyncConnection, *, group: str, partitions: Sequence[TopicPartitionKey], lock: bool = False
) -> dict[TopicPartitionKey, Stored]:
    """The stored next offsets of ``group`` for ``partitions`` (missing ones are absent). ``lock`` row-locks them
    until the transaction ends, so two instances holding the same partition during a rebalance apply a batch
    one after the other, and the second sees the first's positions."""
    if not partitions:
        return {}
    if lock:  # rows must exist to be locked
        await conn.execute(
            text(
                "INSERT INTO consumer_positions (consumer_group, topic, partition, next_offset) "
                "SELECT :group, t, p, 0 FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[])) AS u(t, p) "
                "ON CONFLICT DO NOTHING"
            ),
            {"group": group, "topics": [t for t, _ in partitions], "partitions": [p for _, p in partitions]},
        )
    result = await conn.execute(
        text(
            "SELECT topic, partition, next_offset, marker FROM consumer_positions "
            "WHERE consumer_group = :group AND (topic, partition) IN "
            "(SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]))) "
            "ORDER BY topic, partition" + (" FOR UPDATE" if lock else "")
        ),
        {"group": group, "topics": [t for t, _ in partitions], "partitions": [p for _, p in partitions]},
    )
    return {(row.topic, row.partition): Stored(row.next_offset, row.marker) for row in result}


async def claim_positions(
    conn: AsyncConnection, *, group: str, records: Sequence[Any], bootstrap_servers: str | None = None,
    kafka_options: Mapping[str, Any] | None = None,
) -> list[Any]:
    """In the caller's transaction: the records of ``records`` at or past ``group``'s stored positions (the
    others were applied before), and the positions advanced past the whole batch. Records keep their order.

    Records below a stored position come after a redelivery, or from a new log (the broker restarted empty and the
    consumer fell back to the beginning without a new assignment). With ``bootstrap_servers`` the stored marker
    tells which: a position taken in a log that is gone is forgotten and the records are applied."""
    last = last_records(records)
    if not last:
        return []
    stored = await stored_positions(conn, group=group, partitions=sorted(last), lock=True)
    position = {key: s.next_offset for key, s in stored.items()}
    behind = {(r.topic, r.partition) for r in records if r.offset < position.get((r.topic, r.partition), 0)}
    if behind and bootstrap_servers is not None:
        markers = [m for key in behind if (m := stored[key].as_marker(*key)) is not None]
        lost = sorted({(m.topic, m.partition)
                       for m in await lost_markers(bootstrap_servers, markers, options=kafka_options)})
        if lost:
            await forget_positions(conn, group=group, partitions=lost)
            log.warning("consumer.log_replaced", group=group, partitions=[f"{t}[{p}]" for t, p in lost],
                        action="applying the new log from its beginning")
            position.update(dict.fromkeys(lost, 0))
    fresh = [r for r in records if r.offset >= position.get((r.topic, r.partition), 0)]
    advanced = [(key, record) for key, record in last.items() if record.offset + 1 > position.get(key, 0)]
    if advanced:
        await conn.execute(
            text(
                "UPDATE consumer_positions c SET next_offset = u.n, marker = u.m FROM unnest("
                "CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[]), "
                "CAST(:markers AS text[])) AS u(t, p, n, m) "
                "WHERE c.consumer_group = :group AND c.topic = u.t AND c.partition = u.p"
            ),
            {
                "group": group,
                "topics": [t for (t, _), _ in advanced],
                "partitions": [p for (_, p), _ in advanced],
                "offsets": [record.offset + 1 for _, record in advanced],
                "markers": [marker_of(record).fingerprint for _, record in advanced],
            },
        )
    return fresh


async def forget_positions(conn: AsyncConnection, *, group: str, partitions: Sequence[TopicPartitionKey]) -> None:
    """Start ``partitions`` over from their beginning: their log is not the one the positions were taken in."""
    await conn.execute(
        text(
            "UPDATE consumer_positions SET next_offset = 0, marker = NULL WHERE consumer_group = :group "
            "AND (topic, partition) IN (SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[])))"
        ),
        {"group": group, "topics": [t for t, _ in partitions], "partitions": [p for _, p in partitions]},
    )
