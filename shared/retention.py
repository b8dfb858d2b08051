"""Records kept only for a while: what deduplicates messages that may come again (applied interactions, row
answers, legacy tracking records) is deleted once older than the retention, by each running service, in chunks
of short transactions; otherwise such tables grow by a row per message (or per batch) forever."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger(__name__)

PRUNE_CHUNK = 10_000


@dataclass(frozen=True)
class Retained:
    """A table whose rows expire: ``time_column`` says when each was written."""

    table: str
    time_column: str


async def prune(conn: AsyncConnection, target: Retained, *, older_than: timedelta, chunk: int = PRUNE_CHUNK) -> int:
    """Delete up to ``chunk`` rows of ``target`` written more than ``older_than`` ago; returns how many. The
    retention must outlast any redelivery or replay (what comes again after it is applied again)."""
    result = await conn.execute(
        text(
            f"DELETE FROM {target.table} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {target.table} WHERE {target.time_column} < now() - :age LIMIT :chunk))"
        ),
        {"age": older_than, "chunk": chunk},
    )
    return int(result.rowcount)


class Pruner:
    """Deletes the expired rows of ``targets`` every ``interval`` seconds."""

    def __init__(self, engine: AsyncEngine, *, targets: Sequence[Retained], retention: timedelta,
                 interval: float) -> None:
        self._engine = engine
        self._targets = targets
        self._retention = retention
        self._interval = interval
        self.deleted = 0

    async def prune_once(self) -> int:
        deleted = 0
        for target in self._targets:
            while True:
                async with self._engine.begin() as conn:
                    chunk = await prune(conn, target, older_than=self._retention)
                deleted += chunk
                if chunk < PRUNE_CHUNK:
                    break
        self.deleted += deleted
        if deleted:
            log.info("retention.pruned", deleted=deleted, tables=[t.table for t in self._targets],
                     retention_hours=self._retention.total_seconds() / 3600)
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention.prune_failed")
            await asyncio.sleep(self._interval)
