"""Positional tracking: each consumer group's next offset per topic partition, stored in the same transaction as
the effect of the records before it. A batch redelivered after a crash (its effect committed, its Kafka commit
lost) is recognised by its offsets and skipped, without a tracking row per message; on assignment the consumer
seeks to the stored positions.

Deduplication by content stays where the same message can arrive again at another offset (a re-published import
row, an interaction sent twice): that is each service's own rule, not this module's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncConnection

TopicPartitionKey = tuple[str, int]


def consumer_positions_table(metadata: MetaData) -> Table:
    return Table(
        "consumer_positions",
        metadata,
        Column("consumer_group", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("next_offset", BigInteger, nullable=False, comment="the first offset not yet applied"),
        PrimaryKeyConstraint("consumer_group", "topic", "partition"),
    )


def offset_ranges(records: Iterable[Any]) -> dict[TopicPartitionKey, tuple[int, int]]:
    """(topic, partition) -> (lowest, highest) offset among ``records``."""
    ranges: dict[TopicPartitionKey, tuple[int, int]] = {}
    for record in records:
        key = (record.topic, record.partition)
        low_high = ranges.get(key)
        if low_high is None:
            ranges[key] = (record.offset, record.offset)
        elif record.offset > low_high[1]:
            ranges[key] = (low_high[0], record.offset)
        elif record.offset < low_high[0]:
            ranges[key] = (record.offset, low_high[1])
    return ranges


async def stored_positions(
    conn: AsyncConnection, *, group: str, partitions: Sequence[TopicPartitionKey], lock: bool = False
) -> dict[TopicPartitionKey, int]:
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
            "SELECT topic, partition, next_offset FROM consumer_positions "
            "WHERE consumer_group = :group AND (topic, partition) IN "
            "(SELECT * FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]))) "
            "ORDER BY topic, partition" + (" FOR UPDATE" if lock else "")
        ),
        {"group": group, "topics": [t for t, _ in partitions], "partitions": [p for _, p in partitions]},
    )
    return {(row.topic, row.partition): row.next_offset for row in result}


async def claim_positions(conn: AsyncConnection, *, group: str, records: Sequence[Any]) -> list[Any]:
    """In the caller's transaction: the records of ``records`` at or past ``group``'s stored positions (the
    others were applied before), and the positions advanced past the whole batch. Records keep their order."""
    ranges = offset_ranges(records)
    if not ranges:
        return []
    stored = await stored_positions(conn, group=group, partitions=sorted(ranges), lock=True)
    fresh = [r for r in records if r.offset >= stored.get((r.topic, r.partition), 0)]
    advanced = [(key, high + 1) for key, (_, high) in ranges.items() if high + 1 > stored.get(key, 0)]
    if advanced:
        await conn.execute(
            text(
                "UPDATE consumer_positions c SET next_offset = u.n "
                "FROM unnest(CAST(:topics AS text[]), CAST(:partitions AS int[]), CAST(:offsets AS bigint[])) "
                "AS u(t, p, n) WHERE c.consumer_group = :group AND c.topic = u.t AND c.partition = u.p"
            ),
            {
                "group": group,
                "topics": [t for (t, _), _ in advanced],
                "partitions": [p for (_, p), _ in advanced],
                "offsets": [n for _, n in advanced],
            },
        )
    return fresh
