"""ingest's background work: reading the started imports' files with the importer, at most ``parallel`` at a
time in this instance. An import is asked for by the route that started it (``want``), and found again by a
sweep at start-up and every ``sweep_seconds``: an import left half-read by a crashed instance is resumed by any
other. An advisory lock per import keeps two instances (or a sweep and a fresh start) from reading one file at
once; a failed attempt is retried with a growing delay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import store
from services.ingest.importer import Importer

log = structlog.get_logger(__name__)


class ImportJobs:
    def __init__(self, *, engine: AsyncEngine, importer: Importer, parallel: int, sweep_seconds: float) -> None:
        self._engine = engine
        self._importer = importer
        self._parallel = parallel
        self._sweep_seconds = sweep_seconds
        self._wanted: asyncio.Queue[str] = asyncio.Queue()

    def want(self, import_id: str) -> None:
        """Read the import's file soon (once ``store.start_import`` has committed)."""
        self._wanted.put_nowait(import_id)

    @contextlib.asynccontextmanager
    async def running(self, producer: AIOKafkaProducer) -> AsyncIterator[None]:
        """Work while the service runs; on exit the readers are interrupted, their imports stay ``parsing`` and
        are resumed at the next start (here or by another instance)."""
        readers: dict[str, asyncio.Task[None]] = {}
        slots = asyncio.Semaphore(self._parallel)

        def start(import_id: str) -> None:
            if import_id not in readers:
                task = asyncio.create_task(self._read(import_id, producer, slots), name=f"ingest-import-{import_id}")
                readers[import_id] = task
                task.add_done_callback(lambda _: readers.pop(import_id, None))

        async def take_wanted() -> None:
            while True:
                start(await self._wanted.get())

        async def sweep() -> None:
            while True:
                with contextlib.suppress(Exception):
                    async with self._engine.connect() as conn:
                        pending = await store.imports_to_parse(conn)
                    for import_id in pending:
                        start(import_id)
                await asyncio.sleep(self._sweep_seconds)

        loops = [asyncio.create_task(take_wanted()), asyncio.create_task(sweep())]
        try:
            yield
        finally:
            for task in [*loops, *readers.values()]:
                task.cancel()
            for task in [*loops, *list(readers.values())]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _read(self, import_id: str, producer: AIOKafkaProducer, slots: asyncio.Semaphore) -> None:
        delay = 1.0
        async with slots:
            while True:
                try:
                    await self._read_once(import_id, producer)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("import.read_failed", import_id=import_id, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _read_once(self, import_id: str, producer: AIOKafkaProducer) -> None:
        async with self._engine.connect() as conn:
            lock = {"name": f"ingest.import.{import_id}"}
            locked = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:name))"), lock)).scalar()
            await conn.commit()
            if not locked:
                return  # another instance is reading it
            try:
                await self._importer.import_file(conn, import_id, producer=producer)
            finally:
                await _unlock(conn, lock)


async def _unlock(conn: AsyncConnection, lock: dict[str, str]) -> None:
    """Release the session lock; if the connection is unusable, close it, which releases the lock too."""
    try:
        if conn.in_transaction():
            await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), lock)
        await conn.commit()
    except Exception:
        await conn.invalidate()
