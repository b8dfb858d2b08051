"""Following imports: the organizer's imports newest first, one import's status and counts, and its rows with
their outcomes. Another organizer's import answers 404, exactly like one that does not exist."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ingest import row_pages, store
from services.ingest.domain import FINISHED, Source, Status, pace
from services.ingest.intake.dependencies import Engine, ImportId, Organizer, not_found
from services.ingest.reading.json_rows import JSON_KEYS
from shared.events import RowOutcome
from shared.pagination import NOT_A_CURSOR, Page, decode_cursor, encode_cursor, invalid_query

router = APIRouter(prefix="/v1/imports", tags=["imports"])


class Place(BaseModel):
    """Where an import in progress stands among the imports in progress on its lane (they progress side by side,
    each organizer with its share)."""

    lane: Literal["interactive", "bulk"] | None = Field(
        description="the lane its rows take (null until its file is opened)"
    )
    position: int = Field(description="its place among the lane's imports in progress, by start (1 = first)")
    running: int = Field(description="imports in progress on the lane, this one included")


class Progress(BaseModel):
    rows_answered: int = Field(description="rows with an outcome (as processed_rows)")
    rows_expected: int | None = Field(description="rows in its file (null until the file is opened)")
    rows_per_second: float | None = Field(description="rows answered per second since it started")
    estimated_seconds_left: float | None = Field(description="at that pace; 0 once finished, null while unknown")


class ImportView(BaseModel):
    import_id: str
    status: Status
    source: Source
    filename: str | None
    total_rows: int | None
    processed_rows: int
    created: int
    matched: int
    errors: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    place: Place | None = Field(default=None, description="null unless started and not finished")
    progress: Progress | None = Field(default=None, description="null until started")


class RowView(BaseModel):
    row_number: int
    outcome: RowOutcome
    contact_id: str | None
    error_code: str | None
    error_message: str | None
    cells: list[str] | None


class RowPage(BaseModel):
    items: list[RowView]
    next_cursor: str | None
    next_after: int | None
    """The last row number of the page when more follow: the ``after`` of the next page (kept for clients written
    before ``cursor``; ``next_cursor`` is the same position in every list's cursor format)."""


ROWS_SCOPE = "import-rows"


def _view(row: Any, places: dict[str, Any], now: datetime) -> ImportView:
    import_id = str(row.import_id)
    place = places.get(import_id)
    progress = None
    if row.started_at is not None:
        expected = row.total_rows if row.total_rows is not None else row.expected_rows
        until = row.finished_at or now
        measured = pace(answered=row.processed_rows, expected=expected,
                        elapsed_seconds=(until - row.started_at).total_seconds(), finished=row.status in FINISHED)
        progress = Progress(
            rows_answered=row.processed_rows, rows_expected=expected,
            rows_per_second=round(measured.rows_per_second, 1) if measured.rows_per_second is not None else None,
            estimated_seconds_left=(
                round(measured.estimated_seconds_left, 1) if measured.estimated_seconds_left is not None else None
            ),
        )
    return ImportView.model_validate({
        **row._mapping, "import_id": import_id, "progress": progress,
        "place": Place(lane=place.lane, position=place.position, running=place.running) if place else None,
    })


async def _views(conn: AsyncConnection, rows: list[Any]) -> list[ImportView]:
    """The imports as the organizer sees them, with their place and progress."""
    in_progress = [str(row.import_id) for row in rows if row.started_at is not None and row.status not in FINISHED]
    places = await store.places(conn, in_progress) if in_progress else {}
    now = datetime.now(UTC)
    return [_view(row, places, now) for row in rows]


CURSOR_SCOPE = "imports"
"""The organizer's imports, newest first: a cursor holds the last one's (created_at, import_id)."""


def _position(cursor: str) -> tuple[datetime, str]:
    created_at, import_id = decode_cursor(cursor, CURSOR_SCOPE, (datetime, str))
    assert isinstance(created_at, datetime) and isinstance(import_id, str)
    try:
        return created_at, str(uuid.UUID(import_id))
    except ValueError as error:
        raise invalid_query("cursor", NOT_A_CURSOR, cursor) from error


@router.get("")
async def list_imports(
    organizer_id: Organizer,
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> Page[ImportView]:
    """The caller's imports, newest first."""
    before = _position(cursor) if cursor else None
    async with engine.connect() as conn:
        rows = await store.list_imports(conn, organizer_id=organizer_id, limit=limit + 1, before=before)
        items = await _views(conn, rows[:limit])
    last = items[-1] if len(rows) > limit else None
    return Page[ImportView](
        items=items, next_cursor=encode_cursor(CURSOR_SCOPE, last.created_at, last.import_id) if last else None
    )


@router.get("/{import_id}")
async def get_import(import_id: ImportId, organizer_id: Organizer, engine: Engine) -> ImportView:
    """Status and counts of one import; ``error`` explains a file that could not be read as a whole; ``place``
    and ``progress`` say where it stands while it runs."""
    async with engine.connect() as conn:
        row = await store.find_import(conn, organizer_id=organizer_id, import_id=import_id)
        if row is None:
            raise not_found(import_id)
        (view,) = await _views(conn, [row])
    return view


@router.get("/{import_id}/rows")
async def list_rows(
    import_id: ImportId,
    organizer_id: Organizer,
    engine: Engine,
    outcome: RowOutcome | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="row_number to continue after (next_after; or use cursor)")
    ] = 0,
) -> RowPage:
    """The rows that have an outcome, in file order; ``cells`` holds a refused row as it was read. Paged by
    ``cursor`` (``next_cursor``), or by ``after`` (``next_after``)."""
    if cursor is not None:
        (position,) = decode_cursor(cursor, ROWS_SCOPE, (int,))
        after = position if isinstance(position, int) else 0
    async with engine.connect() as conn:
        if await store.find_import(conn, organizer_id=organizer_id, import_id=import_id) is None:
            raise not_found(import_id)
        rows = await row_pages.list_rows(conn, import_id=import_id, outcome=outcome, after=after, limit=limit + 1)
    items = [RowView.model_validate(row, from_attributes=True) for row in rows[:limit]]
    last = items[-1].row_number if len(rows) > limit else None
    return RowPage(items=items, next_cursor=encode_cursor(ROWS_SCOPE, last) if last is not None else None,
                   next_after=last)


@router.get(
    "/{import_id}/rows.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The rows that failed, as a CSV file."}},
)
async def download_rows(
    import_id: ImportId,
    organizer_id: Organizer,
    engine: Engine,
    outcome: Annotated[Literal["error"], Query(description="only the rows that failed have a file")] = "error",
) -> StreamingResponse:
    """The rows that failed as a CSV file to fix and import again, like HubSpot's error files: ``Row`` (the row
    number), the row's cells as read under the file's own header, ``Error code`` and ``Error message``. Any size,
    streamed. Cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return) start with ``'`` (OWASP's advice); every cell is quoted."""
    async with engine.connect() as conn:
        setup = await store.find_setup(conn, organizer_id=organizer_id, import_id=import_id)
    if setup is None:
        raise not_found(import_id)
    if setup.source in ("json", "mcp"):
        header = list(JSON_KEYS)
    else:
        header = list(setup.inspection["header"]) if setup.inspection else []
    return StreamingResponse(
        row_pages.error_file(engine, import_id=import_id, header=header),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-{outcome}s.csv"'},
    )
