"""The background sweep's reads and writes (see ``jobs.py``): uploads never started expire, files no longer
needed go, imports overdue for identity's answers are published again once (``claim_republish``), then given up
on (``still_overdue``, ``time_out``); and what readiness reports about them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.db import imports
from services.ingest.domain import FINISHED
from services.ingest.store import pg_text


async def expire_unstarted(conn: AsyncConnection, *, older_than_seconds: float) -> list[str]:
    """Uploads never started within ``older_than_seconds`` end in ``error`` (their files are then deleted)."""
    c = imports.c
    hours = older_than_seconds / 3600
    result = await conn.execute(
        update(imports)
        .where(c.status == "uploaded", c.created_at < _ago(older_than_seconds))
        .values(
            status="error", finished_at=func.now(), updated_at=func.now(),
            error=f"the upload was not started within {hours:g} hours and has expired; upload the file again",
        )
        .returning(c.import_id)
    )
    return [str(import_id) for import_id in result.scalars()]


async def discard_finished_files(conn: AsyncConnection) -> int:
    """Delete the files of imports that will not be read again (finished, or refused as a whole)."""
    result = await conn.execute(
        text(
            "DELETE FROM import_files f USING imports i "
            "WHERE f.import_id = i.import_id AND i.status = ANY(:finished)"
        ),
        {"finished": sorted(FINISHED)},
    )
    return result.rowcount


async def overdue(conn: AsyncConnection, *, deadline_seconds: float) -> list[Any]:
    """Imports whose rows were all handed on and that got no answer for ``deadline_seconds``: their id and
    whether their unanswered rows were already published again."""
    c = imports.c
    result = await conn.execute(
        select(c.import_id, c.republished_at.is_not(None).label("republished")).where(
            c.status == "processing", c.progress_at < _ago(deadline_seconds)
        )
    )
    return list(result)


async def claim_republish(conn: AsyncConnection, *, import_id: str, deadline_seconds: float) -> Any | None:
    """Take the overdue import's one re-publish (no other instance will): its organizer, source, inspection,
    mapping and total; None if it is no longer overdue or was re-published already."""
    c = imports.c
    result = await conn.execute(
        update(imports)
        .where(
            c.import_id == import_id, c.status == "processing", c.republished_at.is_(None),
            c.progress_at < _ago(deadline_seconds),
        )
        .values(republished_at=func.now(), progress_at=func.now(), updated_at=func.now())
        .returning(c.organizer_id, c.source, c.inspection, c.mapping, c.total_rows, c.traceparent)
    )
    return result.one_or_none()


async def note_republished(
    conn: AsyncConnection, *, import_id: str, ranges: list[tuple[int, int]] | None, marker: str | None
) -> None:
    """The rows published again (``ranges``, kept for the deadline's message; None: not the deadline's) and
    where the last of them landed (None: nothing was published)."""
    values: dict[str, Any] = {"rows_marker": marker}
    if ranges is not None:
        values["republished_rows"] = [list(r) for r in ranges]
    await conn.execute(update(imports).where(imports.c.import_id == import_id).values(**values))


async def marked_in_flight(conn: AsyncConnection) -> list[Any]:
    """Imports waiting for answers to rows handed on, with where their last rows landed."""
    c = imports.c
    result = await conn.execute(
        select(c.import_id, c.rows_marker).where(c.status == "processing", c.rows_marker.is_not(None))
    )
    return list(result)


async def claim_lost(conn: AsyncConnection, *, import_id: str, marker: str) -> Any | None:
    """Take the publishing again of an import whose rows the broker lost (no other instance will: the marker
    changes once it is done); what ``claim_republish`` returns, or None."""
    c = imports.c
    result = await conn.execute(
        update(imports)
        .where(c.import_id == import_id, c.status == "processing", c.rows_marker == marker)
        .values(progress_at=func.now(), updated_at=func.now(), rows_marker=None)
        .returning(c.organizer_id, c.source, c.inspection, c.mapping, c.total_rows, c.traceparent)
    )
    return result.one_or_none()


async def still_overdue(conn: AsyncConnection, *, import_id: str, deadline_seconds: float) -> Any | None:
    """The re-published import, locked, if it is still overdue: its total, processed rows and re-published
    ranges; None if answers came meanwhile."""
    c = imports.c
    result = await conn.execute(
        select(c.total_rows, c.processed_rows, c.republished_rows)
        .where(
            c.import_id == import_id, c.status == "processing", c.republished_at.is_not(None),
            c.progress_at < _ago(deadline_seconds),
        )
        .with_for_update()
    )
    return result.one_or_none()


async def time_out(conn: AsyncConnection, *, import_id: str, message: str) -> None:
    """Give up waiting for identity's answers (see ``still_overdue``): ``error`` with ``message``."""
    await conn.execute(
        update(imports)
        .where(imports.c.import_id == import_id)
        .values(
            status="error", error=pg_text(message), timed_out_at=func.now(), finished_at=func.now(),
            updated_at=func.now(),
        )
    )


def _ago(seconds: float) -> Any:
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


async def waiting_for_answers(conn: AsyncConnection, *, deadline_seconds: float) -> Any:
    """For readiness: imports waiting for identity's answers, those without any for ``deadline_seconds`` (and of
    them, those whose rows were already published again), and those that gave up in the last day."""
    result = await conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE status = 'processing') AS waiting, "
            "count(*) FILTER (WHERE status = 'processing' AND progress_at < now() - make_interval(secs => :s)) "
            "AS overdue, "
            "count(*) FILTER (WHERE status = 'processing' AND republished_at IS NOT NULL) AS republished, "
            "count(*) FILTER (WHERE status = 'error' AND timed_out_at > now() - interval '1 day' "
            "AND processed_rows < total_rows) AS timed_out, "
            "min(progress_at) FILTER (WHERE status = 'processing') AS oldest_progress "
            "FROM imports WHERE status IN ('processing', 'error')"
        ),
        {"s": deadline_seconds},
    )
    return result.one()
