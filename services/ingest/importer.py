"""The importer: reads a started import's file from its checkpoint and hands every valid row on as an
``ImportRowReceivedV1``, batch by batch, storing the refused rows and moving the checkpoint once a batch is
acknowledged. This is the one place where rows become events and are published.

Per row, only what the wire needs is built: the row's struct encoded by the fast codec, its key, and its headers
(the batch's CloudEvents headers with the row's own ``ce_id``); rows are grouped by the partition Kafka's default
partitioner gives their key (``shared.partitioning``) and appended straight into the producer's record batches,
off the event loop. Before it is sent, each batch of a file being read waits for its import's turn (``pacing``:
fair shares between imports, paced by identity's answers); rows published again do not wait."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import files, outcomes, store, sweeps
from services.ingest.domain import FileProblem, Source, describe_ranges, merge_ranges, row_ranges
from services.ingest.pacing import Pacing, Seat
from services.ingest.reading.records import FileLimits
from services.ingest.reading.rows import RejectedRow, RowSource, ValidRow
from services.ingest.reading.sources import open_rows
from services.ingest.row_blocks import Block, first_unanswered, is_unanswered
from shared.envelope import cloud_event_headers
from shared.events import ImportRowReceivedV1
from shared.logcheck import Marker, lost_markers
from shared.partitioning import partition_of
from shared.tracing import TRACEPARENT
from shared.wire import ImportRowReceived, encode

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/ingest"
ROW_EVENT_NAMESPACE = uuid.UUID("5b0f6c1e-8f5e-4f43-9d59-3c0a6f7e2b14")
JSON_SOURCES: frozenset[Source] = frozenset({"json", "mcp"})

def row_event_id(import_id: str, row_number: int) -> str:
    """The same row of the same import always travels under the same event id, so identity applies a row
    published twice (after a crash, or again after its deadline) only once:
    ``uuid.uuid5(ROW_EVENT_NAMESPACE, "<import>/<row>")``."""
    return RowIds(import_id).of(row_number).decode()


class RowIds:
    """``row_event_id`` for the rows of one import: the hash of the shared prefix is computed once."""

    def __init__(self, import_id: str) -> None:
        self._prefix = hashlib.sha1(ROW_EVENT_NAMESPACE.bytes + f"{import_id}/".encode(), usedforsecurity=False)

    def of(self, row_number: int) -> bytes:
        digest = self._prefix.copy()
        digest.update(b"%d" % row_number)
        d = bytearray(digest.digest())
        d[6] = (d[6] & 0x0F) | 0x50  # version 5
        d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = d.hex().encode()
        return b"%s-%s-%s-%s-%s" % (x[:8], x[8:12], x[12:16], x[16:20], x[20:32])


@dataclass
class Prepared:
    """A batch of rows ready for the producer: full record batches per partition, the rows in them, the rows
    refused, and where the reader stands."""

    batches: list[tuple[int, Any, bytes]] = field(default_factory=list)
    """(partition, record batch, ``ce_id`` of its first record)."""
    row_numbers: list[int] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    last_row: int = 0
    done: bool = False
    marker: Marker | None = None
    """Where the last record batch landed, once acknowledged (``shared.logcheck``)."""


class RowEvents:
    """Turns the valid rows of one import into ``ImportRowReceivedV1`` records in the producer's batches for
    ``topic``."""

    def __init__(
        self, *, import_id: str, organizer_id: str, topic: str, partitions: list[int], new_batch: Callable[[], Any],
        traceparent: str | None = None,
    ) -> None:
        self.topic = topic
        self._traceparent = traceparent
        self._import_id = import_id
        self._organizer_id = organizer_id
        self._partitions = partitions
        self._new_batch = new_batch
        self._ids = RowIds(import_id)

    def headers(self) -> list[tuple[str, bytes]]:
        """The CloudEvents headers every row of a batch shares (all but ``ce_id``), and the import's trace
        context (one trace per import, from its upload on)."""
        shared = cloud_event_headers(
            id="", type=ImportRowReceivedV1.TYPE, source=SOURCE, time=datetime.now(UTC).isoformat(),
            subject=self._import_id, correlation_id=self._import_id,
        )
        trace = [(TRACEPARENT, self._traceparent.encode())] if self._traceparent else []
        return [item for item in shared if item[0] != "ce_id"] + trace

    def records(self, rows: list[ValidRow]) -> Iterator[tuple[int, bytes, bytes, list[tuple[str, bytes]]]]:
        """(partition, key, value, headers) of each row, in row order."""
        shared, partitions, count, ids = self.headers(), self._partitions, len(self._partitions), self._ids
        import_id, organizer_id = self._import_id, self._organizer_id
        for row in rows:
            key = row.key.encode()
            value = encode(
                ImportRowReceived(
                    import_id=import_id, organizer_id=organizer_id, row_number=row.row_number, email=row.email,
                    first_name=row.first_name, last_name=row.last_name, company=row.company, title=row.title,
                    phone=row.phone, external_id=row.external_id, email_permission=row.email_permission,
                )
            )
            yield partitions[partition_of(key, count)], key, value, [("ce_id", ids.of(row.row_number)), *shared]

    def batches(self, rows: list[ValidRow]) -> list[tuple[int, Any, bytes]]:
        """The rows as the producer's record batches, per partition in row order, each with the ``ce_id`` of its
        first record (blocking: builds bytes)."""
        open_batches: dict[int, tuple[Any, bytes]] = {}
        full: list[tuple[int, Any, bytes]] = []
        for (partition, key, value, headers), row in zip(self.records(rows), rows, strict=True):
            batch, first = open_batches.get(partition) or (None, b"")
            if batch is None or batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                if batch is not None:
                    full.append((partition, batch, first))
                batch, first = self._new_batch(), headers[0][1]
                open_batches[partition] = (batch, first)
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"row {row.row_number} is too large for a record batch")
        full.extend((partition, batch, first) for partition, (batch, first) in open_batches.items())
        return full


class Importer:
    """Attempts at an import's file: reading it from the checkpoint to the end (``import_file``), or publishing
    again the rows identity has not answered (``republish``). The caller holds the import's lock."""

    def __init__(
        self, *, engine: AsyncEngine, bootstrap_servers: str, topic: str, bulk_topic: str, bulk_rows: int,
        data_dir: Path, batch_size: int, limits: FileLimits, pacing: Pacing,
    ) -> None:
        self._engine = engine
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._bulk_topic = bulk_topic
        self._bulk_rows = bulk_rows
        self.data_dir = data_dir
        self._batch_size = batch_size
        self.limits = limits
        self._pacing = pacing

    def local_path(self, import_id: str, *, source: Source = "csv") -> Path:
        """This instance's copy of the import's file (the upload, or a JSON import's rows)."""
        return self.data_dir / f"{import_id}.{'json' if source in JSON_SOURCES else 'csv'}"

    async def discard_local(self, import_id: str, *, source: Source = "csv") -> None:
        await asyncio.to_thread(self.local_path(import_id, source=source).unlink, missing_ok=True)

    async def _fetched(self, import_id: str, source: Source) -> Path:
        path = self.local_path(import_id, source=source)
        if not await asyncio.to_thread(path.is_file) and not await files.fetch(self._engine, import_id, path):
            raise FileProblem("the uploaded file is no longer available; upload it again")
        return path

    async def _open(self, import_id: str, started: Any, *, skip_through: int) -> RowSource:
        path = await self._fetched(import_id, started.source)
        return await asyncio.to_thread(
            open_rows, path, json=started.source in JSON_SOURCES, inspection=started.inspection,
            mapping=started.mapping, limits=self.limits, skip_through=skip_through,
        )

    async def _events(
        self, import_id: str, organizer_id: str, rows: RowSource, producer: AIOKafkaProducer,
        traceparent: str | None,
    ) -> RowEvents:
        """The import's rows go to the bulk lane when it has more than ``bulk_rows`` (decided by the file's size,
        so rows published again take the lane they took the first time), else to the interactive one."""
        topic = self._bulk_topic if rows.expected_rows > self._bulk_rows else self._topic
        partitions = sorted(await producer.partitions_for(topic))
        return RowEvents(
            import_id=import_id, organizer_id=organizer_id, topic=topic, partitions=partitions,
            new_batch=producer.create_batch, traceparent=traceparent,
        )

    async def import_file(self, conn: AsyncConnection, *, import_id: str, producer: AIOKafkaProducer) -> None:
        """Read and hand on the file from the checkpoint, storing the refused rows and moving the checkpoint
        after every acknowledged batch."""
        async with conn.begin():
            started = await store.start_parsing(conn, import_id)
        if started is None:
            return
        bound = log.bind(import_id=import_id, correlation_id=import_id)
        began, published, rejected = time.monotonic(), 0, 0
        skip_through, only = started.parsed_rows, None
        if started.rows_marker and await self.rows_lost(started.rows_marker):
            # the broker lost the rows handed on so far (it restarted empty): the unanswered ones go again
            async with conn.begin():
                answered = await outcomes.answered_blocks(conn, import_id)
            skip_through = first_unanswered(answered) - 1
            only = functools.partial(_again_or_new, answered, started.parsed_rows)
            bound.warning("import.rows_lost", checkpoint=started.parsed_rows, again_from=skip_through + 1)
        try:
            rows = await self._open(import_id, started, skip_through=skip_through)
            try:
                events = await self._events(import_id, started.organizer_id, rows, producer, started.traceparent)
                interactive = events.topic != self._bulk_topic
                async with conn.begin():
                    await store.note_lane(conn, import_id=import_id, lane="interactive" if interactive else "bulk",
                                          expected_rows=rows.expected_rows)
                seat = self._pacing.seat(import_id=import_id, organizer_id=started.organizer_id,
                                         interactive=interactive, handed_on=skip_through)
                async with seat as turns, contextlib.aclosing(
                    self._handed_on(rows, events, producer, only=only, turns=turns, position=skip_through)
                ) as batches:
                    async for prepared in batches:
                        published += len(prepared.row_numbers)
                        async with conn.begin():
                            rejected += await outcomes.record_rejections(
                                conn, import_id=import_id, rejected=prepared.rejected, parsed_rows=prepared.last_row,
                                marker=prepared.marker,
                            )
                        bound.debug("import.batch", published=published, rejected=rejected, row=prepared.last_row)
            finally:
                rows.close()
        except FileProblem as problem:
            async with conn.begin():
                await store.fail_import(conn, import_id=import_id, message=str(problem))
            await self.discard_local(import_id, source=started.source)
            bound.warning("import.file_refused", reason=str(problem), published=published)
            return
        async with conn.begin():
            status = await store.finish_parsing(conn, import_id=import_id, total_rows=rows.total_rows)
        await self.discard_local(import_id, source=started.source)
        seconds = time.monotonic() - began
        bound.info(
            "import.file_read", status=status, total_rows=rows.total_rows, published=published,
            rejected=rejected, resumed_after=started.parsed_rows, seconds=round(seconds, 2),
            rows_per_second=round(rows.total_rows / seconds) if seconds else None,
        )

    async def rows_lost(self, marker: str) -> bool:
        """Whether the broker no longer holds the batch of rows ``marker`` (``Marker.to_text()``) points at (asked
        twice: a broker that lost them says so every time, one still starting up may not)."""
        for attempt in range(2):
            if not await lost_markers(self._bootstrap_servers, [Marker.from_text(marker)]):
                return False
            if attempt == 0:
                await asyncio.sleep(1.0)
        return True

    async def republish(
        self, conn: AsyncConnection, import_id: str, claimed: Any, *, producer: AIOKafkaProducer, deadline: bool
    ) -> list[tuple[int, int]]:
        """Publish again, under their own ids, the rows identity has not answered (``claimed``: what
        ``sweeps.claim_republish`` or ``sweeps.claim_lost`` returned), reading the file from the first of them:
        because the ``deadline`` passed, or because the broker lost them. The ranges published."""
        async with conn.begin():
            answered = await outcomes.answered_blocks(conn, import_id)
        ranges: list[tuple[int, int]] = []
        republished, marker = 0, None
        try:
            rows = await self._open(import_id, claimed, skip_through=first_unanswered(answered) - 1)
        except FileProblem as problem:  # nothing to publish from: the deadline will say which rows are missing
            log.warning("import.republish_impossible", import_id=import_id, reason=str(problem))
            return ranges
        try:
            events = await self._events(import_id, claimed.organizer_id, rows, producer, claimed.traceparent)
            only = functools.partial(is_unanswered, answered)
            async with contextlib.aclosing(self._handed_on(rows, events, producer, only=only)) as batches:
                async for prepared in batches:
                    republished += len(prepared.row_numbers)
                    ranges = merge_ranges(ranges, row_ranges(prepared.row_numbers))
                    marker = prepared.marker or marker
        finally:
            rows.close()
            await self.discard_local(import_id, source=claimed.source)
        async with conn.begin():
            await sweeps.note_republished(conn, import_id=import_id, ranges=ranges if deadline else None,
                                          marker=marker.to_text() if marker else None)
        log.warning("import.republished", import_id=import_id, correlation_id=import_id, rows=republished,
                    ranges=describe_ranges(ranges), why="deadline" if deadline else "rows lost by the broker")
        return ranges

    async def _handed_on(
        self, rows: RowSource, events: RowEvents, producer: AIOKafkaProducer,
        *, only: Callable[[int], bool] | None = None, turns: Seat | None = None, position: int = 0,
    ) -> AsyncGenerator[Prepared, None]:
        """Every batch of the file once its records are acknowledged (only the rows ``only`` keeps, if given);
        the next batch is read while one is acknowledged. With ``turns``, each batch waits for its turn
        (``pacing``) before it is sent; ``position`` is the row the reading starts after."""
        def prepare() -> Prepared:
            return _prepare(rows, events, self._batch_size, only)

        reading = asyncio.ensure_future(asyncio.to_thread(prepare))
        try:
            while True:
                prepared = await reading
                if turns is not None:
                    await turns.turn(max(0, prepared.last_row - position))
                    position = max(position, prepared.last_row)
                sent = [
                    await producer.send_batch(batch, events.topic, partition=p) for p, batch, _ in prepared.batches
                ]
                if not prepared.done:
                    reading = asyncio.ensure_future(asyncio.to_thread(prepare))
                landed = await asyncio.gather(*sent)
                if landed:
                    last = landed[-1]
                    prepared.marker = Marker(last.topic, last.partition, last.offset, prepared.batches[-1][2].decode())
                yield prepared
                if prepared.done:
                    return
        finally:
            if not reading.done():
                await asyncio.wait([reading])


def _prepare(rows: RowSource, events: RowEvents, size: int, only: Callable[[int], bool] | None) -> Prepared:
    """The next batch of the file as record batches (blocking: runs in a worker thread)."""
    batch = rows.next_batch(size)
    valid = batch.valid if only is None else [row for row in batch.valid if only(row.row_number)]
    return Prepared(events.batches(valid), [row.row_number for row in valid], batch.rejected, batch.last_row,
                    batch.done)


def _again_or_new(answered: dict[int, Block], checkpoint: int, row_number: int) -> bool:
    """After the broker lost the rows: a row up to the checkpoint goes again unless answered; the rest is new."""
    return row_number > checkpoint or is_unanswered(answered, row_number)
