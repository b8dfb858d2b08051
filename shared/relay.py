"""The relay: publishes what a service stored for publication, in position order, and wakes on PostgreSQL
``LISTEN/NOTIFY`` instead of polling.

Two kinds of sources: the outbox (``outbox_batches``: one row per transaction, deleted once published) and
stores that are kept anyway (identity's event store, its row answers), read after a position cursor kept in
``relay_cursors``: nothing is written twice. One relay at a time per schema holds an advisory lock, which keeps
per-key order when several instances run; a crash between publishing and committing re-publishes
(at-least-once: consumers drop what they have applied)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, Column, MetaData, Table, Text, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import metrics
from shared.db import fetch_tuples
from shared.logcheck import Marker, lost_markers
from shared.outbox_batches import unpack
from shared.producer import OutgoingMessage, publish_marked

log = structlog.get_logger(__name__)


def relay_cursors_table(metadata: MetaData) -> Table:
    return Table(
        "relay_cursors",
        metadata,
        Column("stream", Text, primary_key=True),
        Column("position", BigInteger, nullable=False, comment="the last position published"),
        Column("latest_marker", Text, comment="where a message of the last publication landed, and its id"),
        Column("anchor_marker", Text, comment="a marker found in the broker's log at the last check"),
    )


@dataclass(frozen=True)
class Taken:
    messages: list[OutgoingMessage]
    done: Callable[[AsyncConnection, Marker | None], Awaitable[None]]


class RelaySource(Protocol):
    async def take(self, conn: AsyncConnection, limit: int) -> Taken | None:
        """Up to about ``limit`` messages to publish next, and what marks them published (same transaction)."""

    async def pending(self, conn: AsyncConnection) -> int:
        """How many messages are stored but not yet published."""


class OutboxSource:
    """The outbox: rows of packed messages, deleted once published."""

    async def take(self, conn: AsyncConnection, limit: int) -> Taken | None:
        rows = (
            await conn.execute(
                text("SELECT position, messages FROM outbox_batches ORDER BY position LIMIT :n"),
                {"n": max(1, limit // 1000)},
            )
        ).all()
        if not rows:
            return None
        positions = [row.position for row in rows]

        async def delete(conn: AsyncConnection, _: Marker | None) -> None:
            await conn.execute(text("DELETE FROM outbox_batches WHERE position = ANY(:p)"), {"p": positions})

        return Taken([m for row in rows for m in unpack(row.messages)], delete)

    async def pending(self, conn: AsyncConnection) -> int:
        return int(await conn.scalar(text("SELECT coalesce(sum(count), 0) FROM outbox_batches")) or 0)


class CursorSource:
    """A kept store (``table``, with a ``position`` column) read in position order after the stream's cursor.
    ``query`` selects ``position`` first and takes ``%(after)s`` and ``%(n)s``; ``to_message`` turns a row (a plain
    tuple) into a message."""

    def __init__(
        self, stream: str, *, table: str, query: str, to_message: Callable[[Any], OutgoingMessage]
    ) -> None:
        self.stream = stream
        self._table = table
        self._query = query
        self._to_message = to_message

    async def cursor(self, conn: AsyncConnection) -> int:
        position = await conn.scalar(text("SELECT position FROM relay_cursors WHERE stream = :s"), {"s": self.stream})
        return int(position) if position is not None else 0

    async def take(self, conn: AsyncConnection, limit: int) -> Taken | None:
        after = await self.cursor(conn)
        rows = await fetch_tuples(conn, self._query, {"after": after, "n": limit})
        if not rows:
            return None
        last = rows[-1][0]

        async def advance(conn: AsyncConnection, marker: Marker | None) -> None:
            await conn.execute(
                text(
                    "INSERT INTO relay_cursors (stream, position, latest_marker, anchor_marker) "
                    "VALUES (:s, :p, :m, :m) "
                    "ON CONFLICT (stream) DO UPDATE SET position = excluded.position, "
                    "latest_marker = coalesce(excluded.latest_marker, relay_cursors.latest_marker), "
                    "anchor_marker = coalesce(relay_cursors.anchor_marker, excluded.latest_marker)"
                ),
                {"s": self.stream, "p": last, "m": marker.to_text() if marker else None},
            )

        return Taken(list(map(self._to_message, rows)), advance)

    async def markers(self, conn: AsyncConnection) -> tuple[Marker | None, Marker | None]:
        """(anchor, latest): the marker found in the log at the last check, and the last publication's."""
        row = (await conn.execute(text("SELECT anchor_marker, latest_marker FROM relay_cursors WHERE stream = :s"),
                                  {"s": self.stream})).first()
        if row is None:
            return None, None
        return tuple(Marker.from_text(m) if m else None for m in row)  # type: ignore[return-value]

    async def anchor(self, conn: AsyncConnection, marker: Marker) -> None:
        await conn.execute(text("UPDATE relay_cursors SET anchor_marker = :m WHERE stream = :s"),
                           {"m": marker.to_text(), "s": self.stream})

    async def restart(self, conn: AsyncConnection) -> None:
        """Publish the whole store again: the log it was published to is gone."""
        await conn.execute(text("UPDATE relay_cursors SET position = 0, latest_marker = NULL, anchor_marker = NULL "
                                "WHERE stream = :s"), {"s": self.stream})

    async def pending(self, conn: AsyncConnection) -> int:
        after = await self.cursor(conn)
        count = await conn.scalar(text(f"SELECT count(*) FROM {self._table} WHERE position > :after"),
                                  {"after": after})
        return int(count or 0)


def libpq_url(engine: AsyncEngine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Relay:
    """Publishes ``sources`` in turn. Woken by ``wake()`` (after a local commit), by a NOTIFY on ``channel``
    (another instance, or a writer elsewhere in this one), or every ``poll_seconds`` as a safety net."""

    def __init__(
        self,
        engine: AsyncEngine,
        producer: AIOKafkaProducer,
        *,
        sources: Sequence[RelaySource],
        service: str,
        lock_name: str,
        channel: str,
        batch_size: int = 5000,
        poll_seconds: float = 10.0,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._sources = sources
        self._service = service
        self._lock_name = lock_name
        self._channel = channel
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish the next messages of every source; returns how many (0 when another relay holds the lock)."""
        sent = 0
        async with self._engine.begin() as conn:
            locked = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:n))"), {"n": self._lock_name})
            if not locked:
                return 0
            for source in self._sources:
                taken = await source.take(conn, self._batch_size)
                if taken is None:
                    continue
                count, marker = await publish_marked(self._producer, taken.messages)
                await taken.done(conn, marker)
                sent += count
        self.published += sent
        metrics.outbox_published(self._service, sent)
        return sent

    async def verify(self, bootstrap_servers: str, *, options: Mapping[str, Any] | None = None) -> list[str]:
        """Streams whose earlier publications are no longer in the broker's log (it restarted empty, or the topic
        was recreated) start over from the beginning of their store; returns their names.

        Each stream keeps an anchor: its first publication's marker, then the one found in the log at the previous
        check. While the anchor is still there, everything published since went to the same log, so the latest
        publication becomes the anchor. (Checking the latest marker alone would miss a restart followed by a
        publication into the new log.)"""
        cursors = [source for source in self._sources if isinstance(source, CursorSource)]
        async with self._engine.connect() as conn:
            markers = {source.stream: await source.markers(conn) for source in cursors}
        checked = {stream: anchor or latest for stream, (anchor, latest) in markers.items()}
        lost = set(await lost_markers(bootstrap_servers, [m for m in checked.values() if m is not None],
                                      options=options))
        restarted = [source for source in cursors if checked[source.stream] in lost]
        async with self._engine.begin() as conn:
            # serialized with relay_once: a publication in flight must not overwrite the restarted cursor
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": self._lock_name})
            for source in cursors:
                latest = markers[source.stream][1]
                if source in restarted:
                    await source.restart(conn)
                elif latest is not None and checked[source.stream] is not None:
                    await source.anchor(conn, latest)
        if restarted:
            log.warning("relay.log_replaced", streams=[s.stream for s in restarted],
                        action="publishing these stores again from their beginning")
            self.wake()
        return [source.stream for source in restarted]

    async def backlog(self) -> int:
        async with self._engine.connect() as conn:
            return sum([await source.pending(conn) for source in self._sources])

    async def listen(self) -> None:
        """Set the wake event on every NOTIFY of the channel; reconnect after a failure."""
        delay = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(libpq_url(self._engine), autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{self._channel}"')
                    delay = 1.0
                    self._wake.set()  # whatever was written while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("relay.listen_failed", channel=self._channel, error=str(error), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay.failed", lock=self._lock_name)
                sent = 0
                await asyncio.sleep(1.0)
            if sent < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
