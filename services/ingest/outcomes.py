"""Each row's outcome: identity's answers for the rows the importer handed on (``count_outcomes``) and the rows
the importer refused (``record_rejections``), placed into their blocks (``row_blocks``: a row keeps its first
outcome), counted into their imports, which finish once every row has one. Why a row failed is kept apart, one
row per failed row. The import's row is locked first, so the writers of one import's blocks take turns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest.domain import FINISHED, Status, advance
from services.ingest.reading.rows import RejectedRow
from services.ingest.row_blocks import CODES, Block, block_of
from services.ingest.store import pg_text
from shared.db import copy_rows
from shared.events import RowOutcome
from shared.logcheck import Marker

MAX_CELL_CHARS = 1000
MAX_CELLS_CHARS = 20_000
"""A refused row's cells are kept for the organizer to fix the row, cut short where they are huge."""


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
    """identity's ``ImportRowsProcessedV1`` as decoded (``shared.wire.ImportRowsProcessed``), already checked
    (a UUID import id, row numbers from 1 to 2**31 - 1)."""

    @property
    def import_id(self) -> str: ...
    @property
    def organizer_id(self) -> str: ...
    @property
    def rows(self) -> Sequence[AnsweredRow]: ...


class Outcome(NamedTuple):
    row_number: int
    outcome: RowOutcome
    contact_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    cells: list[str] | None = None


@dataclass(frozen=True)
class Progress:
    """An import's counters and status right after a write, for logging what finished."""

    import_id: str
    status: Status
    total_rows: int | None
    processed_rows: int
    errors: int
    finished_now: bool = False
    counted: int = 0
    """Rows this write gave their first outcome."""


async def count_outcomes(conn: AsyncConnection, messages: Sequence[OutcomesMessage]) -> list[Progress]:
    """Store the rows of every message (the first outcome per row wins, in message order), add what was new to
    the imports' counters and finish the imports whose every row now has an outcome. Rows of unknown imports, or
    of a message naming another organizer than the import's, are dropped."""
    if not messages:
        return []
    owners = await _lock_imports(conn, sorted({message.import_id for message in messages}))
    answers: dict[str, list[Any]] = {}
    for message in messages:
        if owners.get(message.import_id) == message.organizer_id:
            answers.setdefault(message.import_id, []).extend(message.rows)
    return await _store(conn, answers)


async def record_rejections(
    conn: AsyncConnection, *, import_id: str, rejected: Sequence[RejectedRow], parsed_rows: int,
    marker: Marker | None = None,
) -> int:
    """Store the rows ingest refused and count them as processed errors; move the checkpoint to
    ``parsed_rows`` and keep where the batch's rows landed (``marker``). Rows stored by an earlier, interrupted
    attempt are not counted again. Returns the number newly stored."""
    await _lock_imports(conn, [import_id])
    rows = [Outcome(r.row_number, "error", None, r.code, r.message, r.cells) for r in rejected]
    progress = await _store(conn, {import_id: rows}) if rows else []
    await conn.execute(
        text(
            "UPDATE imports SET parsed_rows = greatest(parsed_rows, :parsed), updated_at = now(), "
            "rows_marker = coalesce(:marker, rows_marker) WHERE import_id = :id"
        ),
        {"id": import_id, "parsed": parsed_rows, "marker": marker.to_text() if marker else None},
    )
    return progress[0].counted if progress else 0


async def _lock_imports(conn: AsyncConnection, import_ids: Sequence[str]) -> dict[str, str]:
    """Lock the imports in a stable order (two transactions touching the same imports cannot deadlock); their
    organizers."""
    result = await conn.execute(
        text(
            "SELECT import_id::text AS import_id, organizer_id FROM imports "
            "WHERE import_id = ANY(CAST(:ids AS uuid[])) ORDER BY import_id FOR UPDATE"
        ),
        {"ids": list(import_ids)},
    )
    return {row.import_id: row.organizer_id for row in result}


async def _load_blocks(conn: AsyncConnection, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], Block]:
    result = await conn.execute(
        text(
            "SELECT import_id::text AS import_id, block, outcomes, contact_ids FROM import_row_blocks "
            "WHERE (import_id, block) IN (SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:blocks AS int[])))"
        ),
        {"ids": [i for i, _ in wanted], "blocks": [b for _, b in wanted]},
    )
    blocks = {(row.import_id, row.block): Block.stored(row.block, row.outcomes, row.contact_ids) for row in result}
    for import_id, number in wanted:
        blocks.setdefault((import_id, number), Block(number))
    return blocks


async def _store(conn: AsyncConnection, answers: dict[str, list[Any]]) -> list[Progress]:
    """Place every answer into its block; write the changed blocks, the new error rows and the counters."""
    wanted = {(import_id, block_of(row.row_number)) for import_id, rows in answers.items() for row in rows}
    blocks = await _load_blocks(conn, wanted)
    counts: dict[str, list[int]] = {import_id: [0, 0, 0, 0] for import_id in answers}
    failed: list[tuple[str, int, str, str | None, str | None]] = []
    for import_id, rows in answers.items():
        tally = counts[import_id]
        for row in rows:
            code = CODES[row.outcome]
            if blocks[(import_id, block_of(row.row_number))].place(row.row_number, code, row.contact_id):
                tally[code] += 1
                if code == 3:
                    failed.append((import_id, row.row_number, row.error_code or "ERROR", row.error_message,
                                   getattr(row, "cells", None)))
    changed = [(import_id, block) for (import_id, _), block in blocks.items() if block.changed]
    if changed:
        await _write_blocks(conn, changed)
    if failed:
        await copy_rows(
            conn,
            table="import_row_errors",
            columns=["import_id", "row_number", "error_code", "error_message", "cells"],
            rows=(
                (import_id, row_number, pg_text(code), pg_text(message), _cells_json(cells))
                for import_id, row_number, code, message, cells in failed
            ),
        )
    return [await _count(conn, import_id, tally) for import_id, tally in counts.items() if sum(tally)]


async def _write_blocks(conn: AsyncConnection, changed: list[tuple[str, Block]]) -> None:
    await conn.execute(
        text(
            "INSERT INTO import_row_blocks (import_id, block, outcomes, contact_ids, created, matched, errors) "
            "VALUES (CAST(:import_id AS uuid), :block, :outcomes, :contact_ids, :created, :matched, :errors) "
            "ON CONFLICT (import_id, block) DO UPDATE SET outcomes = excluded.outcomes, "
            "contact_ids = excluded.contact_ids, created = excluded.created, matched = excluded.matched, "
            "errors = excluded.errors"
        ),
        [
            {
                "import_id": import_id, "block": block.number, "outcomes": bytes(block.outcomes),
                "contact_ids": [pg_text(contact_id) for contact_id in block.contact_ids],
                "created": block.counts[1], "matched": block.counts[2], "errors": block.counts[3],
            }
            for import_id, block in changed
        ],
    )


async def _count(conn: AsyncConnection, import_id: str, tally: list[int]) -> Progress:
    row = (
        await conn.execute(
            text(
                "UPDATE imports SET processed_rows = processed_rows + :processed, created = created + :created, "
                "matched = matched + :matched, errors = errors + :errors, updated_at = now(), progress_at = now() "
                "WHERE import_id = :id "
                "RETURNING status, total_rows, processed_rows, errors, timed_out_at IS NOT NULL AS timed_out"
            ),
            {"id": import_id, "processed": sum(tally), "created": tally[1], "matched": tally[2], "errors": tally[3]},
        )
    ).one()
    status = advance(
        row.status, total_rows=row.total_rows, processed_rows=row.processed_rows, errors=row.errors,
        timed_out=row.timed_out,
    )
    # an import that gave up waiting, answered at last for every row: the deadline's message no longer holds
    answered_late = row.timed_out and row.status == "error" and row.processed_rows >= (row.total_rows or 0)
    if status != row.status or answered_late:
        await conn.execute(
            text(
                "UPDATE imports SET status = :status, finished_at = CASE WHEN :finished THEN now() END, "
                "error = CASE WHEN :answered_late THEN NULL ELSE error END WHERE import_id = :id"
            ),
            {"id": import_id, "status": status, "finished": status in FINISHED, "answered_late": answered_late},
        )
    return Progress(
        import_id, status, row.total_rows, row.processed_rows, row.errors, finished_now=status != row.status,
        counted=sum(tally),
    )


def _cells_json(cells: Iterable[str] | None) -> str | None:
    """A refused row's cells as JSON PostgreSQL can hold (no NUL, no lone surrogate), cut short where huge."""
    if cells is None:
        return None
    kept: list[str] = []
    budget = MAX_CELLS_CHARS
    for cell in cells:
        if budget <= 0:
            kept.append("…")
            break
        shown = cell[: min(MAX_CELL_CHARS, budget)]
        if len(shown) < len(cell):
            shown += "…"
        budget -= len(shown)
        kept.append(shown.replace("\x00", "\ufffd").encode("utf-8", "replace").decode())
    return json.dumps(kept, ensure_ascii=False)


async def answered_blocks(conn: AsyncConnection, import_id: str) -> dict[int, Block]:
    """Which rows of the import have an outcome (the outcome bytes only: 1 KiB per 1,024 rows)."""
    result = await conn.execute(
        text("SELECT block, outcomes FROM import_row_blocks WHERE import_id = :id"), {"id": import_id}
    )
    return {row.block: Block(row.block, bytearray(row.outcomes)) for row in result}
