"""The transactional outbox: events are written in the same transaction as the state change, and a relay
publishes them afterwards, in insertion order, in batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, DateTime, Identity, LargeBinary, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import copy_rows
from shared.kafka import OutgoingMessage, headers_from_json, headers_to_json, publish_all

log = structlog.get_logger(__name__)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("position", BigInteger, Identity(always=False), primary_key=True),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def enqueue(conn: AsyncConnection, messages: Sequence[OutgoingMessage]) -> None:
    """Add messages to the outbox inside the caller's transaction."""
    if messages:
        await copy_rows(
            conn,
            table="outbox",
            columns=["topic", "key", "value", "headers"],
            rows=((m.topic, m.key, m.value, headers_to_json(m.headers)) for m in messages),
        )


async def backlog(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())


class OutboxRelay:
    """Publishes the outbox. One relay at a time per schema holds an advisory lock, which keeps per-key order
    when several instances of a service run; a crash between publish and delete re-publishes (at-least-once)."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        *,
        lock_name: str,
        batch_size: int = 5000,
        idle_seconds: float = 0.2,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._lock_name = lock_name
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Called after a commit that enqueued messages, so they go out without waiting for the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        async with self._engine.begin() as conn:
            locked = await conn.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": self._lock_name}
            )
            if not locked.scalar_one():
                return 0
            rows = (
                await conn.execute(
                    text("SELECT position, topic, key, value, headers FROM outbox ORDER BY position LIMIT :n"),
                    {"n": self._batch_size},
                )
            ).all()
            if not rows:
                return 0
            await publish_all(
                self._producer,
                (
                    OutgoingMessage(
                        topic=row.topic,
                        key=row.key,
                        value=row.value,
                        headers=headers_from_json(row.headers),
                    )
                    for row in rows
                ),
            )
            await conn.execute(
                text("DELETE FROM outbox WHERE position = ANY(:positions)"),
                {"positions": [row.position for row in rows]},
            )
        self.published += len(rows)
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox.relay_failed", lock=self._lock_name)
                sent = 0
                await asyncio.sleep(1.0)
            if sent < self._batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_seconds)
