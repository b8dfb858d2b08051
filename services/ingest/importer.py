"""The importer: reads a started import's file in the background and hands every valid row on as an
``ImportRowReceivedV1``, in batches, storing the refused rows and moving the checkpoint after each batch, and
resumes from that checkpoint after a crash or restart. This is the one place where rows become events."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import outcomes, store
from services.ingest.domain import ColumnMap, FileProblem, Source
from services.ingest.reading.csv_rows import CsvRows
from services.ingest.reading.records import FileLimits, Inspection
from services.ingest.reading.row_file import RowFile
from services.ingest.reading.rows import RowSource, ValidRow
from shared.envelope import Headers, cloud_event_headers
from shared.events import ImportRowReceivedV1
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage, publish_all
from shared.runtime import Messaging
from shared.wire import ImportRowReceived, encode

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/ingest"
ROW_EVENT_NAMESPACE = uuid.UUID("5b0f6c1e-8f5e-4f43-9d59-3c0a6f7e2b14")
JSON_SOURCES: frozenset[Source] = frozenset({"json", "mcp"})


def row_event_id(import_id: str, row_number: int) -> str:
    """The same row of the same import always travels under the same event id, so identity applies a row
    published twice (after a crash) only once: ``uuid.uuid5(ROW_EVENT_NAMESPACE, "<import>/<row>")``."""
    return derived_id(import_id, row_number, namespace=ROW_EVENT_NAMESPACE)


class RowEvents:
    """Turns an import's valid rows into ``ImportRowReceivedV1`` messages: one envelope per batch, in which
    each row differs only by its id (``row_event_id``)."""

    def __init__(self, *, import_id: str, organizer_id: str, topic: str) -> None:
        self._import_id = import_id
        self._organizer_id = organizer_id
        self._topic = topic

    def messages(self, rows: list[ValidRow]) -> list[OutgoingMessage]:
        import_id, organizer_id, topic = self._import_id, self._organizer_id, self._topic
        headers = cloud_event_headers(
            id="", type=ImportRowReceivedV1.TYPE, source=SOURCE, time=datetime.now(UTC).isoformat(),
            subject=import_id, correlation_id=import_id,
        )
        shared = [header for header in headers if header[0] != "ce_id"]
        return [
            OutgoingMessage(
                topic=topic,
                key=row.key.encode(),
                value=encode(
                    ImportRowReceived(
                        import_id=import_id, organizer_id=organizer_id, row_number=row.row_number,
                        email=row.email, first_name=row.first_name, last_name=row.last_name,
                        company=row.company, title=row.title, phone=row.phone, external_id=row.external_id,
                        email_permission=row.email_permission,
                    )
                ),
                headers=_with_id(shared, row_event_id(import_id, row.row_number)),
            )
            for row in rows
        ]


def _with_id(shared: Headers, event_id: str) -> Headers:
    return [("ce_id", event_id.encode()), *shared]


class Importer:
    """Reads imports' files in the background, at most ``parallel`` at a time in this instance. An advisory
    lock per import keeps two instances (or a resume and a fresh start) from reading the same file at once."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        messaging: Messaging,
        topic: str,
        data_dir: Path,
        batch_size: int,
        parallel: int,
        limits: FileLimits,
    ) -> None:
        self._engine = engine
        self._messaging = messaging
        self._topic = topic
        self.data_dir = data_dir
        self._batch_size = batch_size
        self.limits = limits
        self._slots = asyncio.Semaphore(parallel)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def file_path(self, import_id: str, *, source: Source = "csv") -> Path:
        """Where the import's file is kept: the upload, or a JSON import's rows."""
        return self.data_dir / f"{import_id}.{'json' if source in JSON_SOURCES else 'csv'}"

    async def discard_file(self, import_id: str, *, source: Source = "csv") -> None:
        """The file is kept only while it may still be read: once every row has been handed on (or the file was
        refused) it is deleted, so organizers' contact lists do not pile up on disk."""
        await asyncio.to_thread(self.file_path(import_id, source=source).unlink, missing_ok=True)

    def start(self, import_id: str) -> None:
        """Read the import's file in the background, once ``store.start_import`` has committed its mapping."""
        if import_id in self._tasks:
            return
        task = asyncio.create_task(self._run(import_id), name=f"ingest-import-{import_id}")
        self._tasks[import_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(import_id, None))

    async def resume(self) -> list[str]:
        """Start every import whose reading was interrupted (started, but not read to the end)."""
        async with self._engine.connect() as conn:
            pending = await store.imports_to_parse(conn)
        for import_id in pending:
            self.start(import_id)
        if pending:
            log.info("imports.resumed", count=len(pending), import_ids=pending[:20])
        return pending

    async def stop(self) -> None:
        """Interrupt the readers; their imports stay ``parsing`` and are resumed at the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, import_id: str) -> None:
        delay = 1.0
        async with self._slots:
            while True:
                try:
                    await self.read_file(import_id)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("import.read_failed", import_id=import_id, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def read_file(self, import_id: str) -> None:
        """One attempt at reading the file, from the import's checkpoint on."""
        async with self._engine.connect() as conn:
            lock = {"name": f"ingest.import.{import_id}"}
            locked = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:name))"), lock)).scalar()
            await conn.commit()
            if not locked:
                log.info("import.already_being_read", import_id=import_id)
                return
            try:
                await self._read_locked(conn, import_id)
            finally:
                await _unlock(conn, lock)

    async def _read_locked(self, conn: AsyncConnection, import_id: str) -> None:
        async with conn.begin():
            started = await store.start_parsing(conn, import_id)
        if started is None:
            return
        bound = log.bind(import_id=import_id, correlation_id=import_id)
        source: Source = started.source
        path = self.file_path(import_id, source=source)
        began = time.monotonic()
        published = rejected = 0
        events = RowEvents(import_id=import_id, organizer_id=started.organizer_id, topic=self._topic)
        try:
            if not path.is_file():
                raise FileProblem("the uploaded file is no longer available; upload it again")
            rows = await asyncio.to_thread(
                _open_rows, path, source=source, inspection=started.inspection, mapping=started.mapping,
                limits=self.limits, skip_through=started.parsed_rows,
            )
            try:
                done = False
                while not done:
                    batch = await asyncio.to_thread(rows.next_batch, self._batch_size)
                    messages = await asyncio.to_thread(events.messages, batch.valid)
                    assert self._messaging.producer is not None, "the producer starts before any import"
                    published += await publish_all(self._messaging.producer, messages)
                    async with conn.begin():
                        rejected += await outcomes.record_rejections(
                            conn, import_id=import_id, rejected=batch.rejected, parsed_rows=batch.last_row
                        )
                    done = batch.done
                    bound.debug("import.batch", published=published, rejected=rejected, row=batch.last_row)
            finally:
                rows.close()
        except FileProblem as problem:
            async with conn.begin():
                await store.fail_import(conn, import_id=import_id, message=str(problem))
            await self.discard_file(import_id, source=source)
            bound.warning("import.file_refused", reason=str(problem), published=published)
            return
        async with conn.begin():
            status = await store.finish_parsing(conn, import_id=import_id, total_rows=rows.total_rows)
        await self.discard_file(import_id, source=source)
        seconds = time.monotonic() - began
        bound.info(
            "import.file_read", status=status, total_rows=rows.total_rows, published=published,
            rejected=rejected, resumed_after=started.parsed_rows, seconds=round(seconds, 2),
            rows_per_second=round(rows.total_rows / seconds) if seconds else None,
        )


def _open_rows(
    path: Path, *, source: Source, inspection: dict[str, object] | None, mapping: dict[str, object] | None,
    limits: FileLimits, skip_through: int,
) -> RowSource:
    """The reader for the import's file (blocking): a JSON import's stored rows, or the CSV with its mapping."""
    if source in JSON_SOURCES:
        return RowFile(path, skip_through=skip_through)
    return CsvRows(
        path,
        inspection=Inspection.from_json(inspection) if inspection else None,  # type: ignore[arg-type]
        columns=ColumnMap.from_json(mapping) if mapping else None,  # type: ignore[arg-type]
        limits=limits, skip_through=skip_through,
    )


async def _unlock(conn: AsyncConnection, lock: dict[str, str]) -> None:
    """Release the session lock; if the connection is unusable, close it, which releases the lock too."""
    try:
        if conn.in_transaction():
            await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), lock)
        await conn.commit()
    except Exception:
        await conn.invalidate()
