"""Following imports: the organizer's imports newest first, one import's status and counts, and its rows with
their outcomes. Another organizer's import answers 404, exactly like one that does not exist."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from services.ingest import row_pages, store
from services.ingest.domain import Source, Status
from services.ingest.intake.dependencies import Engine, ImportId, Organizer, not_found
from services.ingest.reading.json_rows import JSON_KEYS
from shared.events import RowOutcome

router = APIRouter(prefix="/v1/imports", tags=["imports"])


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


class ImportPage(BaseModel):
    items: list[ImportView]
    next_cursor: str | None


class RowView(BaseModel):
    row_number: int
    outcome: RowOutcome
    contact_id: str | None
    error_code: str | None
    error_message: str | None
    cells: list[str] | None


class RowPage(BaseModel):
    items: list[RowView]
    next_after: int | None


def _view(row: Any) -> ImportView:
    return ImportView.model_validate({**row._mapping, "import_id": str(row.import_id)})


def _encode_cursor(view: ImportView) -> str:
    position = json.dumps([view.created_at.isoformat(), view.import_id])
    return base64.urlsafe_b64encode(position.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, import_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), str(uuid.UUID(import_id))
    except (binascii.Error, ValueError, TypeError, UnicodeError) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor: pass next_cursor back") from error


@router.get("")
async def list_imports(
    organizer_id: Organizer,
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> ImportPage:
    """The caller's imports, newest first."""
    before = _decode_cursor(cursor) if cursor else None
    async with engine.connect() as conn:
        rows = await store.list_imports(conn, organizer_id=organizer_id, limit=limit + 1, before=before)
    items = [_view(row) for row in rows[:limit]]
    return ImportPage(items=items, next_cursor=_encode_cursor(items[-1]) if len(rows) > limit else None)


@router.get("/{import_id}")
async def get_import(import_id: ImportId, organizer_id: Organizer, engine: Engine) -> ImportView:
    """Status and counts of one import; ``error`` explains a file that could not be read as a whole."""
    async with engine.connect() as conn:
        row = await store.find_import(conn, organizer_id=organizer_id, import_id=import_id)
    if row is None:
        raise not_found(import_id)
    return _view(row)


@router.get("/{import_id}/rows")
async def list_rows(
    import_id: ImportId,
    organizer_id: Organizer,
    engine: Engine,
    outcome: RowOutcome | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="row_number to continue after (next_after)")
    ] = 0,
) -> RowPage:
    """The rows that have an outcome, in file order; ``cells`` holds a refused row as it was read."""
    async with engine.connect() as conn:
        if await store.find_import(conn, organizer_id=organizer_id, import_id=import_id) is None:
            raise not_found(import_id)
        rows = await row_pages.list_rows(conn, import_id=import_id, outcome=outcome, after=after, limit=limit + 1)
    items = [RowView.model_validate(row, from_attributes=True) for row in rows[:limit]]
    return RowPage(items=items, next_after=items[-1].row_number if len(rows) > limit else None)


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
