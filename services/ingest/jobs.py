"""ingest's background work, in every instance: reading the started imports' files with the importer (all of
them at once, handing their rows on in the fair, paced turns of ``pacing``), and a sweep every ``sweep_seconds``
that

- resumes an import left half-read by a crashed instance (any instance can: the files are in PostgreSQL);
- publishes again, once, the rows of an import that got no answer for ``answer_deadline_seconds``, and ends it
  in ``error`` saying which rows when as long again passes without one (nothing stays ``processing`` for ever);
- publishes again the unanswered rows of an import whose rows the broker lost (a local broker restarted empty),
  checked every ``broker_check_seconds`` (an import being read checks for itself before each attempt);
- expires the uploads never started within ``upload_expiry_seconds``, and deletes the files no longer needed.

An advisory lock per import keeps two instances (or a sweep and a fresh start) from working on one import at
once; a failed attempt is retried with a growing delay. Publishing again takes one of ``parallel`` slots."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import outcomes, store, sweeps
from services.ingest.domain import no_answer, row_ranges
from services.ingest.importer import Importer
from services.ingest.pacing import Pacing
from services.ingest.row_blocks import unanswered
from shared.logcheck import Marker, lost_markers

log = structlog.get_logger(__name__)

LOSS_SETTLES_SECONDS = 35.0
"""After its rows were published again because the broker lost them, an import is not checked again for this
long: a broker back from empty may recreate its topics meanwhile (``shared.lifecycle`` checks them every 30 s),
and the check would report the rows lost once more. The deadline still covers it."""


Work = Callable[[AsyncConnection], Awaitable[object]]


class ImportJobs:
    def __init__(
        self, *, engine: AsyncEngine, bootstrap_servers: str, importer: Importer, pacing: Pacing, parallel: int,
        sweep_seconds: float, answer_deadline_seconds: float, upload_expiry_seconds: float,
        broker_check_seconds: float,
    ) -> None:
        self._engine = engine
        self._broker_check = broker_check_seconds
        self._bootstrap_servers = bootstrap_servers
        self._next_marker_check = 0.0
        self._lost_at: dict[str, float] = {}
        self._importer = importer
        self._pacing = pacing
        self._parallel = parallel
        self._sweep_seconds = sweep_seconds
        self._deadline = answer_deadline_seconds
        self._expiry = upload_expiry_seconds
        self._wanted: asyncio.Queue[str] = asyncio.Queue()

    def want(self, import_id: str) -> None:
        """Read the import's file soon (once ``store.start_import`` has committed)."""
        self._wanted.put_nowait(import_id)

    @contextlib.asynccontextmanager
    async def running(self, producer: AIOKafkaProducer) -> AsyncIterator[None]:
        """Work while the service runs; on exit the work is interrupted: an import being read stays ``parsing``
        and is resumed at the next start (here or by another instance)."""
        tasks: dict[str, asyncio.Task[None]] = {}
        slots = asyncio.Semaphore(self._parallel)

        def spawn(key: str, import_id: str, work: Work, *, slot: bool = True) -> None:
            if key not in tasks:
                task = asyncio.create_task(self._locked(import_id, work, slots if slot else None),
                                           name=f"ingest-{key}")
                tasks[key] = task
                task.add_done_callback(lambda _: tasks.pop(key, None))

        def read(import_id: str) -> None:  # no slot: reads wait for their turns in pacing, not for each other
            spawn(f"read-{import_id}", import_id,
                  functools.partial(self._importer.import_file, import_id=import_id, producer=producer), slot=False)

        async def take_wanted() -> None:
            while True:
                read(await self._wanted.get())

        async def sweep() -> None:
            while True:
                try:
                    await self._sweep(read, spawn, producer)
                except Exception:
                    log.exception("imports.sweep_failed")
                await asyncio.sleep(self._sweep_seconds)

        loops = [asyncio.create_task(take_wanted()), asyncio.create_task(sweep()),
                 asyncio.create_task(self._pacing.run())]
        try:
            yield
        finally:
            every = [*loops, *tasks.values()]
            for task in every:
                task.cancel()
            for task in every:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _sweep(
        self, read: Callable[[str], None], spawn: Callable[[str, str, Work], None], producer: AIOKafkaProducer
    ) -> None:
        async with self._engine.begin() as conn:
            expired = await sweeps.expire_unstarted(conn, older_than_seconds=self._expiry)
            discarded = await sweeps.discard_finished_files(conn)
            pending = await store.imports_to_parse(conn)
            late = await sweeps.overdue(conn, deadline_seconds=self._deadline)
        if expired or discarded:
            log.info("imports.tidied", expired_uploads=len(expired), files_deleted=discarded)
        for import_id in pending:
            read(import_id)
        for item in late:
            import_id = str(item.import_id)
            if item.republished:
                await self._time_out(import_id)
            else:
                spawn(f"republish-{import_id}", import_id,
                      functools.partial(self._republish, import_id=import_id, producer=producer))
        if time.monotonic() >= self._next_marker_check:
            self._next_marker_check = time.monotonic() + self._broker_check
            await self._check_markers(spawn, producer)

    async def _check_markers(self, spawn: Callable[[str, str, Work], None], producer: AIOKafkaProducer) -> None:
        """Imports whose rows the broker lost (it restarted empty) publish their unanswered rows again now,
        instead of when the deadline passes."""
        settling = time.monotonic() - LOSS_SETTLES_SECONDS
        self._lost_at = {key: at for key, at in self._lost_at.items() if at > settling}
        async with self._engine.connect() as conn:
            marked = {
                row.rows_marker: str(row.import_id) for row in await sweeps.marked_in_flight(conn)
                if str(row.import_id) not in self._lost_at
            }
        if not marked:
            return
        lost = await lost_markers(self._bootstrap_servers, [Marker.from_text(text) for text in marked])
        if lost:  # asked again: a broker that lost them says so every time, one still starting up may not
            await asyncio.sleep(1.0)
            lost = await lost_markers(self._bootstrap_servers, lost)
        for marker in lost:
            import_id = marked[marker.to_text()]
            self._lost_at[import_id] = time.monotonic()
            spawn(f"lost-{import_id}", import_id, functools.partial(
                self._republish_lost, import_id=import_id, marker=marker.to_text(), producer=producer
            ))

    async def _republish_lost(
        self, conn: AsyncConnection, *, import_id: str, marker: str, producer: AIOKafkaProducer
    ) -> None:
        async with conn.begin():
            claimed = await sweeps.claim_lost(conn, import_id=import_id, marker=marker)
        if claimed is not None:
            log.warning("import.rows_lost", import_id=import_id, correlation_id=import_id)
            await self._importer.republish(conn, import_id, claimed, producer=producer, deadline=False)

    async def readiness(self) -> dict[str, Any]:
        """What readiness reports about the imports: how many wait for identity's answers, how many got none
        within the deadline, and, when some did, the likely cause. It never makes ingest unready: ingest itself
        is fine, and taking it out of service would not bring the answers."""
        try:
            async with self._engine.connect() as conn:
                found = await sweeps.waiting_for_answers(conn, deadline_seconds=self._deadline)
        except Exception as error:  # readiness reports, it does not raise
            return {"imports": {"unknown": f"{type(error).__name__}: {error}"[:200]}}
        imports: dict[str, Any] = {
            "waiting_for_identity": found.waiting, "overdue": found.overdue, "republished": found.republished,
            "timed_out_last_day": found.timed_out,
            "oldest_progress_at": found.oldest_progress.isoformat() if found.oldest_progress else None,
        }
        in_flight = self._pacing.in_flight()
        imports["read_here"] = {"imports": len(in_flight), "rows_in_flight": sum(in_flight.values())}
        if found.overdue or found.timed_out:
            imports["cause"] = (
                f"identity has not answered rows of {found.overdue + found.timed_out} import(s) within "
                f"{self._deadline:g} s: is identity running and consuming contacts.import-rows.v1? Rows without "
                "an answer are published again once, then the import ends in error naming them."
            )
        return {"imports": imports}

    async def _republish(self, conn: AsyncConnection, *, import_id: str, producer: AIOKafkaProducer) -> None:
        async with conn.begin():
            claimed = await sweeps.claim_republish(conn, import_id=import_id, deadline_seconds=self._deadline)
        if claimed is not None:
            await self._importer.republish(conn, import_id, claimed, producer=producer, deadline=True)

    async def _time_out(self, import_id: str) -> None:
        async with self._engine.begin() as conn:
            overdue = await sweeps.still_overdue(conn, import_id=import_id, deadline_seconds=self._deadline)
            if overdue is None:
                return
            answered = await outcomes.answered_blocks(conn, import_id)
            republished = (n for first, last in overdue.republished_rows or [] for n in range(first, last + 1))
            ranges = row_ranges(unanswered(answered, republished))
            missing = overdue.total_rows - overdue.processed_rows
            await sweeps.time_out(
                conn, import_id=import_id, message=no_answer(missing, ranges, deadline_seconds=self._deadline)
            )
        log.warning("import.timed_out", import_id=import_id, correlation_id=import_id, unanswered=missing)

    async def _locked(self, import_id: str, work: Work, slots: asyncio.Semaphore | None) -> None:
        """``work`` under the import's advisory lock (skipped when another instance holds it), retried; in one
        of ``slots`` when given."""
        delay = 1.0
        async with slots or contextlib.nullcontext():
            while True:
                try:
                    async with self._engine.connect() as conn:
                        lock = {"name": f"ingest.import.{import_id}"}
                        held = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:name))"), lock)).scalar()
                        await conn.commit()
                        if not held:
                            return  # another instance works on it
                        try:
                            await work(conn)
                        finally:
                            await _unlock(conn, lock)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("import.work_failed", import_id=import_id, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


async def _unlock(conn: AsyncConnection, lock: dict[str, str]) -> None:
    """Release the session lock; if the connection is unusable, close it, which releases the lock too."""
    try:
        if conn.in_transaction():
            await conn.rollback()
        await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), lock)
        await conn.commit()
    except Exception:
        await conn.invalidate()
