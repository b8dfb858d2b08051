"""ingest's reads and writes of the imports themselves: creating one, its mapping, starting it, its reading
checkpoint, finishing or failing it, and the organizer's views of them. Every query that an organizer's request
makes is scoped to that organizer. (Row outcomes are in ``outcomes.py``.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.db import imports
from services.ingest.domain import FINISHED, PARSABLE, ColumnMap, Source, Status, advance
from shared.tracing import new_traceparent

VIEW_COLUMNS = tuple(
    imports.c[name]
    for name in (
        "import_id", "organizer_id", "source", "filename", "status", "total_rows", "parsed_rows", "processed_rows",
        "created", "matched", "errors", "error", "created_at", "updated_at", "started_at", "finished_at", "lane",
        "expected_rows",
    )
)
"""What an organizer sees of an import (``GET /v1/imports/{id}``)."""


def pg_text(value: str | None) -> str | None:
    """PostgreSQL text and jsonb cannot hold NUL characters; they are stored as U+FFFD."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


def _scoped(import_id: str, organizer_id: str) -> Any:
    return (imports.c.import_id == import_id) & (imports.c.organizer_id == organizer_id)


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
    traceparent: str | None = None,
) -> None:
    """A new import, ``uploaded`` (waiting for ``start_import``) with what inspecting its file found, or at
    once in ``error`` when the file cannot be imported as a whole (``error`` says why). Its trace starts here:
    ``traceparent``, else the current span's, else a new one; every row event of the import carries it."""
    await conn.execute(
        insert(imports).values(
            import_id=import_id, organizer_id=organizer_id, source=source, filename=pg_text(filename),
            status="error" if error is not None else "uploaded", error=pg_text(error),
            finished_at=func.now() if error is not None else None, inspection=inspection,
            idempotency_key=idempotency_key, request_fingerprint=request_fingerprint,
            traceparent=traceparent or new_traceparent(),
        )
    )


async def save_mapping(conn: AsyncConnection, *, import_id: str, organizer_id: str, columns: ColumnMap) -> bool:
    """Confirm the mapping of an import still waiting to be started; False if it is not ``uploaded``."""
    result = await conn.execute(
        update(imports)
        .where(_scoped(import_id, organizer_id), imports.c.status == "uploaded")
        .values(mapping=columns.to_json(), updated_at=func.now())
    )
    return result.rowcount == 1


async def start_import(
    conn: AsyncConnection, *, import_id: str, organizer_id: str, columns: ColumnMap | None
) -> bool:
    """Store the mapping an ``uploaded`` import is read with (None: a JSON import, whose rows need none) and
    move it to ``parsing`` (``started_at`` now); False if the import is not the organizer's or not ``uploaded``
    (already started or failed). After the commit, hand it to ``Importer.start``."""
    result = await conn.execute(
        update(imports)
        .where(_scoped(import_id, organizer_id), imports.c.status == "uploaded")
        .values(
            mapping=columns.to_json() if columns is not None else None, status="parsing", started_at=func.now(),
            updated_at=func.now(),
        )
    )
    return result.rowcount == 1


async def find_setup(conn: AsyncConnection, *, organizer_id: str, import_id: str) -> Any | None:
    """What the mapping step needs of the organizer's import: status, source, filename, inspection, mapping."""
    c = imports.c
    result = await conn.execute(
        select(c.import_id, c.status, c.source, c.filename, c.error, c.inspection, c.mapping).where(
            _scoped(import_id, organizer_id)
        )
    )
    return result.one_or_none()


async def find_by_idempotency_key(
    conn: AsyncConnection, *, organizer_id: str, idempotency_key: str
) -> Any | None:
    """The organizer's import created by a request with ``idempotency_key``: its id, status and body fingerprint."""
    c = imports.c
    result = await conn.execute(
        select(c.import_id, c.status, c.request_fingerprint).where(
            c.organizer_id == organizer_id, c.idempotency_key == idempotency_key
        )
    )
    return result.one_or_none()


async def find_import(conn: AsyncConnection, *, organizer_id: str, import_id: str) -> Any | None:
    """The import if it belongs to ``organizer_id``; someone else's import is as absent as a missing one."""
    result = await conn.execute(select(*VIEW_COLUMNS).where(_scoped(import_id, organizer_id)))
    return result.one_or_none()


async def list_imports(
    conn: AsyncConnection, *, organizer_id: str, limit: int, before: tuple[datetime, str] | None
) -> list[Any]:
    """Newest first; ``before`` is the (created_at, import_id) of the last import of the previous page."""
    c = imports.c
    query = select(*VIEW_COLUMNS).where(c.organizer_id == organizer_id)
    if before is not None:
        position = tuple_(literal(before[0], c.created_at.type), literal(before[1], c.import_id.type))
        query = query.where(tuple_(c.created_at, c.import_id) < position)
    result = await conn.execute(query.order_by(c.created_at.desc(), c.import_id.desc()).limit(limit))
    return list(result)


async def places(conn: AsyncConnection, import_ids: list[str]) -> dict[str, Any]:
    """Where each of ``import_ids`` stands among its organizer's imports in progress (started, not finished) on its
    lane, by start (1 = started first): ``lane``, ``position`` and ``running``; imports not in progress are left
    out. Only the organizer's own imports count: how many other organizers import is not theirs to read (and
    each organizer has its own share of the lane, which its imports split)."""
    result = await conn.execute(
        text(
            "SELECT import_id::text AS import_id, lane, position, running FROM ("
            " SELECT import_id, lane,"
            " row_number() OVER (PARTITION BY organizer_id, lane ORDER BY started_at, import_id) AS position,"
            " count(*) OVER (PARTITION BY organizer_id, lane) AS running FROM imports"
            " WHERE status IN ('parsing', 'processing') AND started_at IS NOT NULL) AS in_progress "
            "WHERE import_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": import_ids},
    )
    return {row.import_id: row for row in result}


# --- reading the file ---------------------------------------------------------------------------------------


async def imports_to_parse(conn: AsyncConnection) -> list[str]:
    """Imports whose file still has to be read, oldest first: what a crash or a restart interrupted."""
    result = await conn.execute(
        select(imports.c.import_id).where(imports.c.status.in_(PARSABLE)).order_by(imports.c.created_at)
    )
    return [str(import_id) for import_id in result.scalars()]


async def start_parsing(conn: AsyncConnection, import_id: str) -> Any | None:
    """An import being read: its organizer, source, checkpoint, inspection and mapping, or ``None`` when it is
    not waiting to be read (not started yet, or finished)."""
    c = imports.c
    result = await conn.execute(
        update(imports)
        .where(c.import_id == import_id, c.status.in_(PARSABLE))
        .values(updated_at=func.now())
        .returning(c.organizer_id, c.source, c.parsed_rows, c.inspection, c.mapping, c.rows_marker, c.traceparent)
    )
    return result.one_or_none()


async def note_lane(conn: AsyncConnection, *, import_id: str, lane: str, expected_rows: int) -> None:
    """The lane the import's rows take and how many rows its file holds, once it is opened."""
    await conn.execute(
        update(imports).where(imports.c.import_id == import_id).values(lane=lane, expected_rows=expected_rows)
    )


async def finish_parsing(conn: AsyncConnection, *, import_id: str, total_rows: int) -> Status:
    """The whole file has been read: store its row count and move on; if every outcome is already in (small
    files, fast identity), straight to the final status."""
    c = imports.c
    row = (
        await conn.execute(
            select(c.status, c.processed_rows, c.errors).where(c.import_id == import_id).with_for_update()
        )
    ).one()
    status = advance(row.status, total_rows=total_rows, processed_rows=row.processed_rows, errors=row.errors)
    await conn.execute(
        update(imports)
        .where(c.import_id == import_id)
        .values(
            total_rows=total_rows, status=status, updated_at=func.now(), progress_at=func.now(),
            finished_at=func.now() if status in FINISHED else None,
        )
    )
    return status


async def fail_import(conn: AsyncConnection, *, import_id: str, message: str) -> None:
    """The file as a whole cannot be imported: ``error`` with the reason; rows already handed on still get
    their outcomes counted."""
    await conn.execute(
        update(imports)
        .where(imports.c.import_id == import_id, imports.c.status.not_in(FINISHED))
        .values(status="error", error=pg_text(message), updated_at=func.now(), finished_at=func.now())
    )


async def delete_unstarted(conn: AsyncConnection, *, import_id: str, organizer_id: str) -> bool | None:
    """Delete the organizer's import (its file with it) if it was never started: True; False if it was started;
    None if the organizer has no such import."""
    c = imports.c
    found = (
        await conn.execute(select(c.started_at).where(_scoped(import_id, organizer_id)).with_for_update())
    ).one_or_none()
    if found is None:
        return None
    if found.started_at is not None:
        return False
    await conn.execute(delete(imports).where(c.import_id == import_id))
    return True
