"""Reading an import's file in the background: stream the CSV, publish every valid row as an event in batches,
store the refused rows, and resume from the last checkpoint after a crash or restart."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest import store
from services.ingest.domain import FileProblem, RejectedRow, ValidRow, check_row, is_blank, map_columns
from shared.envelope import Envelope, Headers
from shared.events import ImportRowReceivedV1
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage, publish_all
from shared.runtime import Messaging

log = structlog.get_logger(__name__)

SOURCE = "kagibag-contacts/ingest"
ROW_EVENT_NAMESPACE = uuid.UUID("5b0f6c1e-8f5e-4f43-9d59-3c0a6f7e2b14")
READ_CHUNK = 1024 * 1024


def row_event_id(import_id: str, row_number: int) -> str:
    """The same row of the same import always travels under the same event id, so identity applies a row
    published twice (after a crash) only once: ``uuid.uuid5(ROW_EVENT_NAMESPACE, "<import>/<row>")``."""
    return derived_id(import_id, row_number, namespace=ROW_EVENT_NAMESPACE)


def check_utf8(path: Path) -> None:
    """Raise ``FileProblem`` unless the whole file is UTF-8, before any row is handed on (blocking)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise FileProblem(
                    f"the file is not UTF-8 text (invalid byte at offset {offset + error.start}); "
                    "save it as CSV UTF-8 and upload it again"
                ) from error
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise FileProblem("the file is not UTF-8 text (it ends in the middle of a character)") from error


@dataclass
class Batch:
    """What one read produced: events to publish, rows refused, and where the reader now stands."""

    messages: list[OutgoingMessage] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    last_row: int = 0
    done: bool = False


class RowReader:
    """A CSV file read record by record with bounded memory. Blocking: call it from a worker thread.

    Row numbers count data records from 1 (the record after the header). Blank records keep their number but
    are not rows of the import. Rows up to ``skip_through`` were handled by an earlier attempt and are only
    counted."""

    def __init__(
        self, path: Path, *, import_id: str, organizer_id: str, topic: str, skip_through: int = 0
    ) -> None:
        self._import_id = import_id
        self._organizer_id = organizer_id
        self._topic = topic
        self._skip_through = skip_through
        self._file: IO[str] = path.open(encoding="utf-8-sig", newline="")
        self._records = csv.reader(self._file, strict=True)
        self._row_number = 0
        self._id_header = 0
        self.total_rows = 0
        try:
            header = self._next()
            if header is None or is_blank(header):
                raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
            self._columns = map_columns(header)
        except BaseException:
            self.close()
            raise

    def _next(self) -> list[str] | None:
        try:
            return next(self._records, None)
        except csv.Error as error:
            where = f"record {self._row_number + 1}"
            raise FileProblem(f"the file is not valid CSV ({where}): {error}") from error

    def _message(self, row: ValidRow, headers: Headers) -> OutgoingMessage:
        """The row's event in the batch's envelope, under the row's own id."""
        event = ImportRowReceivedV1(
            import_id=self._import_id,
            organizer_id=self._organizer_id,
            row_number=row.row_number,
            email=row.email,
            **row.fields,
        )
        row_headers = headers.copy()
        row_headers[self._id_header] = ("ce_id", row_event_id(self._import_id, row.row_number).encode())
        value = event.model_dump_json().encode()
        return OutgoingMessage(topic=self._topic, key=row.key.encode(), value=value, headers=row_headers)

    def _batch_headers(self) -> Headers:
        """Every row of a batch travels in the same envelope except for its id (building an envelope per row
        was a fifth of the reading cost)."""
        envelope = Envelope(
            id="", type=ImportRowReceivedV1.TYPE, source=SOURCE, subject=self._import_id,
            correlation_id=self._import_id,
        )
        headers = envelope.to_headers()
        self._id_header = next(i for i, (name, _) in enumerate(headers) if name == "ce_id")
        return headers

    def next_batch(self, size: int) -> Batch:
        """Up to ``size`` rows of the import (blank records and already-handled rows do not count)."""
        batch = Batch()
        headers = self._batch_headers()
        handled = 0
        while handled < size:
            cells = self._next()
            if cells is None:
                batch.done = True
                break
            self._row_number += 1
            if is_blank(cells):
                continue
            self.total_rows += 1
            if self._row_number <= self._skip_through:
                continue
            handled += 1
            checked = check_row(self._row_number, cells, self._columns)
            if isinstance(checked, ValidRow):
                batch.messages.append(self._message(checked, headers))
            else:
                batch.rejected.append(checked)
        batch.last_row = self._row_number
        return batch

    def close(self) -> None:
        self._file.close()


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
    ) -> None:
        self._engine = engine
        self._messaging = messaging
        self._topic = topic
        self.data_dir = data_dir
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(parallel)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def file_path(self, import_id: str) -> Path:
        return self.data_dir / f"{import_id}.csv"

    def start(self, import_id: str) -> None:
        """Read the import's file in the background. The seam where a mapping step will plug in: today every
        upload starts at once with the header names as the mapping."""
        if import_id in self._tasks:
            return
        task = asyncio.create_task(self._run(import_id), name=f"ingest-import-{import_id}")
        self._tasks[import_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(import_id, None))

    async def resume(self) -> list[str]:
        """Start every import whose reading was interrupted (or never started)."""
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
            await asyncio.to_thread(check_utf8, path)
            reader = await asyncio.to_thread(
                RowReader, path, import_id=import_id, organizer_id=started.organizer_id, topic=self._topic,
                skip_through=started.parsed_rows,
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
            bound.warning("import.file_refused", reason=str(problem), published=published)
            return
        async with conn.begin():
            status = await store.finish_parsing(conn, import_id=import_id, total_rows=reader.total_rows)
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
