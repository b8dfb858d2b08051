"""An import's rows as the organizer reads them back: a page in file order (all rows with an outcome, or only one
outcome), read from the blocks that hold such rows, with the failed rows' reasons and cells; fast however large
the import (a page reads a block or two, or an index range of the error rows). And the failed rows as a file to
fix and import again (``error_file``), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest.row_blocks import BLOCK_ROWS, CODES, OUTCOMES, Block, block_of
from shared.csv_cells import neutralized
from shared.events import RowOutcome

COUNT_COLUMN: dict[RowOutcome, str] = {"created": "created", "matched": "matched", "error": "errors"}


@dataclass(frozen=True)
class ListedRow:
    row_number: int
    outcome: RowOutcome
    contact_id: str | None
    error_code: str | None
    error_message: str | None
    cells: list[str] | None


async def list_rows(
    conn: AsyncConnection, *, import_id: str, outcome: RowOutcome | None, after: int, limit: int
) -> list[ListedRow]:
    """Up to ``limit`` rows after row ``after`` in file order, with ``outcome`` if given."""
    if outcome == "error":
        return await _failed_rows(conn, import_id, after=after, limit=limit)
    code = CODES[outcome] if outcome is not None else None
    found: list[tuple[int, int, str | None]] = []
    position, wanted = after, max(2, -(-limit // BLOCK_ROWS) + 1)
    while len(found) < limit:
        blocks = await _blocks(conn, import_id, outcome, first=block_of(position + 1), count=wanted)
        if not blocks:
            break
        for block in blocks:
            found.extend(block.rows(after=position, code=code))
            if len(found) >= limit:
                break
        position = (blocks[-1].number + 1) * BLOCK_ROWS
        wanted *= 2
    found = found[:limit]
    failed = {row.row_number: row for row in await _reasons(conn, import_id, [n for n, c, _ in found if c == 3])}
    return [
        ListedRow(number, OUTCOMES[code_] or "error", contact_id,  # type: ignore[arg-type]
                  failed[number].error_code if number in failed else None,
                  failed[number].error_message if number in failed else None,
                  failed[number].cells if number in failed else None)
        for number, code_, contact_id in found
    ]


async def _blocks(
    conn: AsyncConnection, import_id: str, outcome: RowOutcome | None, *, first: int, count: int
) -> list[Block]:
    """Up to ``count`` blocks from block ``first`` on that hold a row with ``outcome`` (any outcome if None)."""
    holds = f"{COUNT_COLUMN[outcome]} > 0" if outcome is not None else "created + matched + errors > 0"
    result = await conn.execute(
        text(
            "SELECT block, outcomes, contact_ids FROM import_row_blocks "
            f"WHERE import_id = :id AND block >= :first AND {holds} ORDER BY block LIMIT :count"
        ),
        {"id": import_id, "first": first, "count": count},
    )
    return [Block.stored(row.block, row.outcomes, row.contact_ids) for row in result]


async def _failed_rows(conn: AsyncConnection, import_id: str, *, after: int, limit: int) -> list[ListedRow]:
    result = await conn.execute(
        text(
            "SELECT row_number, error_code, error_message, cells FROM import_row_errors "
            "WHERE import_id = :id AND row_number > :after ORDER BY row_number LIMIT :limit"
        ),
        {"id": import_id, "after": after, "limit": limit},
    )
    return [ListedRow(r.row_number, "error", None, r.error_code, r.error_message, r.cells) for r in result]


async def _reasons(conn: AsyncConnection, import_id: str, row_numbers: list[int]) -> list[ListedRow]:
    if not row_numbers:
        return []
    result = await conn.execute(
        text(
            "SELECT row_number, error_code, error_message, cells FROM import_row_errors "
            "WHERE import_id = :id AND row_number = ANY(:rows)"
        ),
        {"id": import_id, "rows": row_numbers},
    )
    return [ListedRow(r.row_number, "error", None, r.error_code, r.error_message, r.cells) for r in result]


PAGE_ROWS = 1000


async def error_file(engine: AsyncEngine, *, import_id: str, header: list[str]) -> AsyncIterator[bytes]:
    """The rows that failed, as a CSV like HubSpot's error files: the row number, the row's cells as read under
    the file's ``header``, the reason code and message; every cell neutralized (``neutralized``), quoted, in
    UTF-8 with a byte-order mark for spreadsheets. Read a page at a time, each with its own connection: memory
    stays flat and a slow download holds no connection."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    width = len(header)
    writer.writerow([neutralized(name) for name in ["Row", *header, "Error code", "Error message"]])
    yield ("\ufeff" + buffer.getvalue()).encode()
    after = 0
    while True:
        async with engine.connect() as conn:
            page = await _failed_rows(conn, import_id, after=after, limit=PAGE_ROWS)
        if not page:
            return
        buffer.seek(0)
        buffer.truncate()
        for row in page:
            cells = list(row.cells or [])
            cells += [""] * (width - len(cells))
            writer.writerow(
                [str(row.row_number), *(neutralized(cell) for cell in cells),
                 neutralized(row.error_code or ""), neutralized(row.error_message or "")]
            )
        yield buffer.getvalue().encode()
        after = page[-1].row_number
