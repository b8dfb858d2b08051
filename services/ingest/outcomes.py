"""Each row's outcome: the rows the importer refused and identity's answers for the rows it handed on, stored
(the first outcome of a row wins) and counted into their imports, which finish once every row has one; and the
rows an organizer pages through. Bulk writes go through a staging table filled by COPY, then one
``INSERT ... ON CONFLICT DO NOTHING`` so that only new rows count."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.domain import Status, advance
from services.ingest.reading.rows import RejectedRow
from services.ingest.store import pg_text
from shared.db import copy_rows
from shared.events import RowOutcome


class AnsweredRow(Protocol):
    @property
    def row_number(self) -> int: ...
    @property
    def outcome(self) -> RowOutcome: ...
    @property
    def contact_id(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def error_message(self) -> str | None: ...


class OutcomesMessage(Protocol):
    """identity's ``ImportRowsProcessedV1``, as decoded (a pydantic model or a wire struct)."""

    @property
    def import_id(self) -> str: ...
    @property
    def organizer_id(self) -> str: ...
    @property
    def rows(self) -> Sequence[AnsweredRow]: ...


@dataclass(frozen=True)
class Progress:
    """An import's counters and status right after a write, for logging what finished."""

    import_id: str
    status: Status
    total_rows: int | None
    processed_rows: int
    errors: int
    finished_now: bool = False


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


async def count_outcomes(conn: AsyncConnection, messages: Sequence[OutcomesMessage]) -> list[Progress]:
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
