"""Tracking records: which messages a consumer has already applied, written in the same transaction as the
effect, so that at-least-once delivery has an exactly-once effect."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import structlog
from sqlalchemy import Column, DateTime, MetaData, PrimaryKeyConstraint, Table, Text, func, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import copy_rows

log = structlog.get_logger(__name__)

PRUNE_CHUNK = 10_000


def processed_messages_table(metadata: MetaData) -> Table:
    return Table(
        "processed_messages",
        metadata,
        Column("consumer", Text, nullable=False),
        Column("message_id", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "message_id"),
    )


async def claim_new_messages(conn: AsyncConnection, *, consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record ``message_ids`` as processed by ``consumer`` and return those not recorded before.

    Concurrent claimers of the same id block on the unique index until the first commits, so exactly one
    of them gets it."""
    if not message_ids:
        return set()
    await conn.execute(
        text("CREATE TEMP TABLE IF NOT EXISTS claim_stage (message_id text) ON COMMIT DELETE ROWS")
    )
    await copy_rows(conn, table="claim_stage", columns=["message_id"], rows=((m,) for m in message_ids))
    result = await conn.execute(
        text(
            "INSERT INTO processed_messages (consumer, message_id) "
            "SELECT DISTINCT :consumer, message_id FROM claim_stage "
            "ON CONFLICT DO NOTHING RETURNING message_id"
        ),
        {"consumer": consumer},
    )
    return {row[0] for row in result}


async def prune_processed_messages(conn: AsyncConnection, *, older_than: timedelta, chunk: int = PRUNE_CHUNK) -> int:
    """Delete up to ``chunk`` tracking records recorded more than ``older_than`` ago; returns how many. A message
    redelivered after its record is gone is applied again, so the retention must outlast any redelivery or replay
    (the read models' own version checks keep most replays harmless even then)."""
    result = await conn.execute(
        text(
            "DELETE FROM processed_messages WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM processed_messages WHERE processed_at < now() - :age LIMIT :chunk))"
        ),
        {"age": older_than, "chunk": chunk},
    )
    return int(result.rowcount)


class TrackingPruner:
    """Deletes old tracking records every ``interval`` seconds, in chunks of short transactions so it never
    holds locks for long; the table otherwise grows by one row per message consumed, forever."""

    def __init__(self, engine: AsyncEngine, *, retention: timedelta, interval: float) -> None:
        self._engine = engine
        self._retention = retention
        self._interval = interval
        self.deleted = 0

    async def prune_once(self) -> int:
        deleted = 0
        while True:
            async with self._engine.begin() as conn:
                chunk = await prune_processed_messages(conn, older_than=self._retention)
            deleted += chunk
            if chunk < PRUNE_CHUNK:
                break
        self.deleted += deleted
        if deleted:
            log.info("tracking.pruned", deleted=deleted, retention_hours=self._retention.total_seconds() / 3600)
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracking.prune_failed")
            await asyncio.sleep(self._interval)
