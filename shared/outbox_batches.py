"""The transactional outbox, one row per transaction: everything a transaction has to publish (dead letters,
row outcomes, snapshots) is packed into one row written with the state change, and ``pg_notify`` wakes the relay
when it commits. Never a row per message: writing, reading back and deleting rows per message was the largest
item of the old pipeline's per-message cost."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, LargeBinary, MetaData, Table, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.producer import OutgoingMessage

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]).decode


def outbox_batches_table(metadata: MetaData) -> Table:
    return Table(
        "outbox_batches",
        metadata,
        Column("position", BigInteger, Identity(always=False), primary_key=True),
        Column("messages", LargeBinary, nullable=False, comment="msgpack: [[topic, key, value, headers], ...]"),
        Column("count", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def pack(messages: Sequence[OutgoingMessage]) -> bytes:
    return _pack([(m.topic, m.key, m.value, m.headers) for m in messages])


def unpack(packed: bytes) -> list[OutgoingMessage]:
    return [OutgoingMessage(topic, key, value, headers) for topic, key, value, headers in _unpack(packed)]


async def notify(conn: AsyncConnection, channel: str) -> None:
    """Wake the relays listening on ``channel`` when the caller's transaction commits."""
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


async def enqueue(conn: AsyncConnection, messages: Sequence[OutgoingMessage], *, channel: str) -> None:
    """Add ``messages`` to the outbox inside the caller's transaction, as one row, and wake the relay."""
    if not messages:
        return
    await conn.execute(
        text("INSERT INTO outbox_batches (messages, count) VALUES (:messages, :count)"),
        {"messages": pack(messages), "count": len(messages)},
    )
    await notify(conn, channel)


def enqueue_sync(conn: Connection, messages: Sequence[OutgoingMessage]) -> None:
    """``enqueue`` for synchronous code (migrations); the relay finds the row at its next wake-up."""
    if messages:
        conn.execute(text("INSERT INTO outbox_batches (messages, count) VALUES (:messages, :count)"),
                     {"messages": pack(messages), "count": len(messages)})
