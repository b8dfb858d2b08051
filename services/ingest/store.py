"""ingest's reads and writes: imports and their counters, and the per-row outcomes (bulk writes go through a
staging table filled by COPY, then one ``INSERT ... ON CONFLICT DO NOTHING`` so that only new rows count)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.domain import FINISHED, PARSABLE, ColumnMap, RejectedRow, Source, Status, advance
from shared.db import copy_rows
from shared.events import ImportRowsProcessedV1, RowOutcome

IMPORT_COLUMNS = (
    "import_id, organizer_id, source, filename, status, total_rows, parsed_rows, processed_rows, created, "
    "matched, errors, error, created_at, updated_at, started_at, finished_at"
)


def pg_text(value: str | None) -> str | None:
    """PostgreSQL text and jsonb cannot hold NUL characters; they are stored as U+FFFD."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


@dataclass(frozen=True)
class Progress:
    """An import's counters and status right after a write, for logging what finished."""

    import_id: str
    status: Status
    total_rows: int | None
    processed_rows: int
    errors: int
    finished_now: bool = False


# --- the import itself --------------------------------------------------------------------------------------


async def create_import(
    conn: AsyncConnection,
    *,
    import_id: str,
    organizer_id: str,
    source: Source,
    filename: str | None,
    inspection: dict[str, Any] | None = None,
    error: str | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
) -> None:
    """A new import, ``uploaded`` (waiting for ``start_import``) with what inspecting its file found, or at
    once in ``error`` when the file cannot be imported as a whole (``error`` says why)."""
    await conn.execute(
        text(
            "INSERT INTO imports (import_id, organizer_id, source, filename, status, error, finished_at, "
            "inspection, idempotency_key, request_fingerprint) "
            "VALUES (:import_id, :organizer_id, :source, :filename, :status, :error, "
            "CASE WHEN :failed THEN now() END, CAST(:inspection AS jsonb), :idempotency_key, :fingerprint)"
        ),
        {"import_id": import_id, "organizer_id": organizer_id, "source": source,
         "filename": pg_text(filename), "status": "error" if error is not None else "uploaded",
         "error": pg_text(error), "failed": error is not None,
         "inspection": _json(inspection), "idempotency_key": idempotency_key, "fingerprint": request_fingerprint},
    )


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else pg_text(json.dumps(value))


async def save_mapping(conn: AsyncConnection, *, import_id: str, organizer_id: str, columns: ColumnMap) -> bool:
    """Confirm the mapping of an import still waiting to be started; False if it is not ``uploaded``."""
    result = await conn.execute(
        text(
            "UPDATE imports SET mapping = CAST(:mapping AS jsonb), updated_at = now() "
            "WHERE import_id = :id AND organizer_id = :organizer AND status = 'uploaded'"
        ),
        {"id": import_id, "organizer": organizer_id, "mapping": _json(columns.to_json())},
    )
    return result.rowcount == 1


async def start_import(conn: AsyncConnection, *, import_id: str, organizer_id: str, columns: ColumnMap) -> bool:
    """Store the mapping an ``uploaded`` import is read with and move it to ``parsing`` (``started_at`` now);
    False if the import is not the organizer's or not ``uploaded`` (already started or failed). After the
    commit, hand it to ``Importer.start``."""
    result = await conn.execute(
        text(
            "UPDATE imports SET mapping = CAST(:mapping AS jsonb), status = 'parsing', started_at = now(), "
            "updated_at = now() WHERE import_id = :id AND organizer_id = :organizer AND status = 'uploaded'"
        ),
        {"id": import_id, "organizer": organizer_id, "mapping": _json(columns.to_json())},
    )
    return result.rowcount == 1


async def find_setup(conn: AsyncConnection, *, organizer_id: str, import_id: str) -> Any | None:
    """What the mapping step needs of the organizer's import: status, source, filename, inspection, mapping."""
    result = await conn.execute(
        text(
            "SELECT import_id, status, source, filename, error, inspection, mapping FROM imports "
            "WHERE import_id = :id AND organizer_id = :organizer"
        ),
        {"id": import_id, "organizer": organizer_id},
    )
    return result.one_or_none()


async def find_by_idempotency_key(conn: AsyncConnection, *, organizer_id: str, idempotency_key: str) -> Any | None:
    """The organizer's import created by a request with ``idempotency_key``: its id, status and body fingerprint."""
    result = await conn.execute(
        text(
            "SELECT import_id, status, request_fingerprint FROM imports "
            "WHERE organizer_id = :organizer AND idempotency_key = :key"
        ),
        {"organizer": organizer_id, "key": idempotency_key},
    )
    return result.one_or_none()


async def find_import(conn: AsyncConnection, *, organizer_id: str, import_id: str) -> Any | None:
    """The import if it belongs to ``organizer_id``; someone else's import is as absent as a missing one."""
    result = await conn.execute(
        text(f"SELECT {IMPORT_COLUMNS} FROM imports WHERE import_id = :id AND organizer_id = :organizer"),
        {"id": import_id, "organizer": organizer_id},
    )
    return result.one_or_none()


async def list_imports(
    conn: AsyncConnection, *, organizer_id: str, limit: int, before: tuple[datetime, str] | None
) -> list[Any]:
    """Newest first; ``before`` is the (created_at, import_id) of the last import of the previous page."""
    where = "organizer_id = :organizer"
    params: dict[str, Any] = {"organizer": organizer_id, "limit": limit}
    if before is not None:
        where += " AND (created_at, import_id) < (:created_at, CAST(:import_id AS uuid))"
        params.update(created_at=before[0], import_id=before[1])
    result = await conn.execute(
        text(
            f"SELECT {IMPORT_COLUMNS} FROM imports WHERE {where} "
            "ORDER BY created_at DESC, import_id DESC LIMIT :limit"
        ),
        params,
    )
    return list(result)


async def list_rows(
    conn: AsyncConnection, *, import_id: str, outcome: RowOutcome | None, after: int, limit: int
) -> list[Any]:
    where = "import_id = :id AND row_number > :after"
    params: dict[str, Any] = {"id": import_id, "after": after, "limit": limit}
    if outcome is not None:
        where += " AND outcome = :outcome"
        params["outcome"] = outcome
    result = await conn.execute(
        text(
            "SELECT row_number, outcome, contact_id, error_code, error_message, cells FROM import_rows "
            f"WHERE {where} ORDER BY row_number LIMIT :limit"
        ),
        params,
    )
    return list(result)


# --- reading the file ---------------------------------------------------------------------------------------


async def imports_to_parse(conn: AsyncConnection) -> list[str]:
    """Imports whose file still has to be read, oldest first: what a crash or a restart interrupted."""
    result = await conn.execute(
        text("SELECT import_id FROM imports WHERE status = ANY(:statuses) ORDER BY created_at"),
        {"statuses": sorted(PARSABLE)},
    )
    return [str(row.import_id) for row in result]


async def start_parsing(conn: AsyncConnection, import_id: str) -> Any | None:
    """An import being read: its organizer, checkpoint, inspection and mapping, or ``None`` when it is not
    waiting to be read (not started yet, or finished)."""
    result = await conn.execute(
        text(
            "UPDATE imports SET updated_at = now() WHERE import_id = :id AND status = ANY(:statuses) "
            "RETURNING organizer_id, parsed_rows, inspection, mapping"
        ),
        {"id": import_id, "statuses": sorted(PARSABLE)},
    )
    return result.one_or_none()


async def record_rejections(
    conn: AsyncConnection, *, import_id: str, rejected: Sequence[RejectedRow], parsed_rows: int
) -> int:
    """Store the rows ingest refused and count them as processed errors; move the checkpoint to
    ``parsed_rows``. Rows stored by an earlier, interrupted attempt are not counted again. Returns the number
    newly stored."""
    inserted = 0
    if rejected:
        await conn.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS rejection_stage "
                "(row_number int, error_code text, error_message text, cells jsonb) ON COMMIT DELETE ROWS"
            )
        )
        await copy_rows(
            conn,
            table="rejection_stage",
            columns=["row_number", "error_code", "error_message", "cells"],
            rows=(
                (row.row_number, row.code, pg_text(row.message), json.dumps([pg_text(c) for c in row.cells]))
                for row in rejected
            ),
        )
        result = await conn.execute(
            text(
                "INSERT INTO import_rows (import_id, row_number, outcome, error_code, error_message, cells) "
                "SELECT CAST(:id AS uuid), row_number, 'error', error_code, error_message, cells "
                "FROM rejection_stage "
                "ON CONFLICT DO NOTHING"
            ),
            {"id": import_id},
        )
        inserted = result.rowcount
    await conn.execute(
        text(
            "UPDATE imports SET processed_rows = processed_rows + :n, errors = errors + :n, "
            "parsed_rows = greatest(parsed_rows, :parsed), updated_at = now() WHERE import_id = :id"
        ),
        {"id": import_id, "n": inserted, "parsed": parsed_rows},
    )
    return inserted


async def finish_parsing(conn: AsyncConnection, *, import_id: str, total_rows: int) -> Status:
    """The whole file has been read: store its row count and move on; if every outcome is already in (small
    files, fast identity), straight to the final status."""
    row = (
        await conn.execute(
            text("SELECT status, processed_rows, errors FROM imports WHERE import_id = :id FOR UPDATE"),
            {"id": import_id},
        )
    ).one()
    status = advance(row.status, total_rows=total_rows, processed_rows=row.processed_rows, errors=row.errors)
    await conn.execute(
        text(
            "UPDATE imports SET total_rows = :total, status = :status, updated_at = now(), "
            "finished_at = CASE WHEN :finished THEN now() END WHERE import_id = :id"
        ),
        {"id": import_id, "total": total_rows, "status": status, "finished": status in FINISHED},
    )
    return status


async def fail_import(conn: AsyncConnection, *, import_id: str, message: str) -> None:
    """The file as a whole cannot be imported: ``error`` with the reason; rows already handed on still get
    their outcomes counted."""
    await conn.execute(
        text(
            "UPDATE imports SET status = 'error', error = :message, updated_at = now(), finished_at = now() "
            "WHERE import_id = :id AND status <> ALL(:finished)"
        ),
        {"id": import_id, "message": pg_text(message), "finished": sorted(FINISHED)},
    )


# --- outcomes from identity ---------------------------------------------------------------------------------


async def record_outcomes(conn: AsyncConnection, messages: Sequence[ImportRowsProcessedV1]) -> list[Progress]:
    """Store the rows of every message in one COPY (the first outcome per row wins, in message order), add
    what was actually stored to the imports' counters and finish the imports whose every row now has an
    outcome. Rows of unknown imports, or of a message naming another organizer than the import's, are
    dropped."""
    if not messages:
        return []
    import_ids = sorted({message.import_id for message in messages})
    # lock the imports in a stable order first: two transactions touching the same imports cannot deadlock
    await conn.execute(
        text(
            "SELECT 1 FROM imports WHERE import_id = ANY(CAST(:ids AS uuid[])) ORDER BY import_id FOR UPDATE"
        ),
        {"ids": import_ids},
    )
    await conn.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS outcome_stage (position int, import_id uuid, organizer_id text, "
            "row_number int, outcome text, contact_id text, error_code text, error_message text) "
            "ON COMMIT DELETE ROWS"
        )
    )
    flattened = ((m, row) for m in messages for row in m.rows)
    await copy_rows(
        conn,
        table="outcome_stage",
        columns=["position", "import_id", "organizer_id", "row_number", "outcome", "contact_id", "error_code",
                 "error_message"],
        rows=(
            (position, m.import_id, pg_text(m.organizer_id), row.row_number, row.outcome,
             pg_text(row.contact_id), pg_text(row.error_code), pg_text(row.error_message))
            for position, (m, row) in enumerate(flattened)
        ),
    )
    result = await conn.execute(
        text(
            """
            WITH inserted AS (
                INSERT INTO import_rows
                    (import_id, row_number, outcome, contact_id, error_code, error_message)
                SELECT s.import_id, s.row_number, s.outcome, s.contact_id, s.error_code, s.error_message
                FROM outcome_stage s JOIN imports i USING (import_id)
                WHERE i.organizer_id = s.organizer_id
                ORDER BY s.position
                ON CONFLICT DO NOTHING
                RETURNING import_id, outcome
            ), counts AS (
                SELECT import_id, count(*) AS processed,
                       count(*) FILTER (WHERE outcome = 'created') AS created,
                       count(*) FILTER (WHERE outcome = 'matched') AS matched,
                       count(*) FILTER (WHERE outcome = 'error') AS errors
                FROM inserted GROUP BY import_id
            )
            UPDATE imports i
            SET processed_rows = i.processed_rows + c.processed, created = i.created + c.created,
                matched = i.matched + c.matched, errors = i.errors + c.errors, updated_at = now()
            FROM counts c WHERE i.import_id = c.import_id
            RETURNING i.import_id, i.status, i.total_rows, i.processed_rows, i.errors
            """
        )
    )
    progress = [
        Progress(str(r.import_id), r.status, r.total_rows, r.processed_rows, r.errors) for r in result
    ]
    updated = []
    for item in progress:
        status = advance(item.status, total_rows=item.total_rows, processed_rows=item.processed_rows,
                         errors=item.errors)
        if status != item.status:
            await conn.execute(
                text("UPDATE imports SET status = :status, finished_at = now() WHERE import_id = :id"),
                {"id": item.import_id, "status": status},
            )
        updated.append(
            Progress(item.import_id, status, item.total_rows, item.processed_rows, item.errors,
                     finished_now=status != item.status)
        )
    return updated
