"""Reading an import's file in the background: stream the CSV, publish every valid row as an event in batches,
store the refused rows, and resume from the last checkpoint after a crash or restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import store
from services.ingest.domain import ColumnMap, FileProblem
from services.ingest.reading import Batch, FileLimits, Inspection, RowReader
from shared.kafka import publish_all
from shared.runtime import Messaging

log = structlog.get_logger(__name__)


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

    def file_path(self, import_id: str) -> Path:
        return self.data_dir / f"{import_id}.csv"

    async def discard_file(self, import_id: str) -> None:
        """The uploaded file is kept only while it may still be read: once every row has been handed on (or the
        file was refused) it is deleted, so organizers' contact lists do not pile up on disk."""
        await asyncio.to_thread(self.file_path(import_id).unlink, missing_ok=True)

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
        path = self.file_path(import_id)
        began = time.monotonic()
        published = rejected = 0
        try:
            if not path.is_file():
                raise FileProblem("the uploaded file is no longer available; upload it again")
            inspection = Inspection.from_json(started.inspection) if started.inspection else None
            columns = ColumnMap.from_json(started.mapping) if started.mapping else None
            reader = await asyncio.to_thread(
                RowReader, path, import_id=import_id, organizer_id=started.organizer_id, topic=self._topic,
                inspection=inspection, columns=columns, limits=self.limits, skip_through=started.parsed_rows,
            )
            try:
                batch = Batch()
                while not batch.done:
                    batch = await asyncio.to_thread(reader.next_batch, self._batch_size)
                    assert self._messaging.producer is not None, "the producer starts before any import"
                    published += await publish_all(self._messaging.producer, batch.messages)
                    async with conn.begin():
                        rejected += await store.record_rejections(
                            conn, import_id=import_id, rejected=batch.rejected, parsed_rows=batch.last_row
                        )
                    bound.debug("import.batch", published=published, rejected=rejected, row=batch.last_row)
            finally:
                reader.close()
        except FileProblem as problem:
            async with conn.begin():
                await store.fail_import(conn, import_id=import_id, message=str(problem))
            await self.discard_file(import_id)
            bound.warning("import.file_refused", reason=str(problem), published=published)
            return
        async with conn.begin():
            status = await store.finish_parsing(conn, import_id=import_id, total_rows=reader.total_rows)
        await self.discard_file(import_id)
        seconds = time.monotonic() - began
        bound.info(
            "import.file_read", status=status, total_rows=reader.total_rows, published=published,
            rejected=rejected, resumed_after=started.parsed_rows, seconds=round(seconds, 2),
            rows_per_second=round(reader.total_rows / seconds) if seconds else None,
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
