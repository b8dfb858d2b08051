"""The import API: upload a CSV, follow an import, page through its rows. Every route is scoped to the
caller's organizer; another organizer's import answers 404, exactly like one that does not exist."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import store
from services.ingest.domain import Status
from services.ingest.json_intake import accept_json_request, is_json_request
from services.ingest.processing import Importer
from services.ingest.upload import UploadRefused, receive_file
from shared.auth import OrganizerId
from shared.events import RowOutcome

FILE_FIELD = "file"


class ImportAccepted(BaseModel):
    import_id: str
    status: Status


class ImportView(BaseModel):
    import_id: str
    status: Status
    source: str
    filename: str | None
    total_rows: int | None
    processed_rows: int
    created: int
    matched: int
    errors: int
    error: str | None
    created_at: datetime
    updated_at: datetime
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
    except (binascii.Error, ValueError, TypeError) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "invalid cursor: pass next_cursor back") from error


def _not_found(import_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no import {import_id}")


def _checked_id(import_id: str) -> str:
    try:
        return str(uuid.UUID(import_id))
    except ValueError as error:
        raise _not_found(import_id) from error


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "UTF-8 CSV whose header row names the columns: email (required), "
                            "first_name, last_name, company, title, phone; other columns are ignored.",
                        }
                    },
                }
            }
        },
    }
}


def import_routes(*, engine: AsyncEngine, importer: Importer, max_upload_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/v1/imports", tags=["imports"])

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        openapi_extra=_UPLOAD_BODY,
        responses={413: {"description": "The file is larger than the upload limit."}},
    )
    async def upload_import(request: Request, response: Response, organizer_id: OrganizerId) -> ImportAccepted:
        """Upload a CSV. It is stored, then read in the background: follow it at ``GET /v1/imports/{id}``."""
        if is_json_request(request):  # a JSON array of contacts: see json_intake
            import_id, state = await accept_json_request(request, response, organizer_id=organizer_id)
            return ImportAccepted(import_id=import_id, status=state)
        import_id = str(uuid.uuid4())
        destination = importer.file_path(import_id)
        try:
            received = await receive_file(
                request, field=FILE_FIELD, destination=destination, max_bytes=max_upload_bytes
            )
        except UploadRefused as refused:
            raise HTTPException(refused.status_code, refused.detail) from refused
        try:
            async with engine.begin() as conn:
                await store.create_import(
                    conn, import_id=import_id, organizer_id=organizer_id, source="csv",
                    filename=received.filename,
                )
        except BaseException:
            destination.unlink(missing_ok=True)
            raise
        importer.start(import_id)
        return ImportAccepted(import_id=import_id, status="uploaded")

    @router.get("")
    async def list_imports(
        organizer_id: OrganizerId,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> ImportPage:
        """The caller's imports, newest first."""
        before = _decode_cursor(cursor) if cursor else None
        async with engine.connect() as conn:
            rows = await store.list_imports(conn, organizer_id=organizer_id, limit=limit + 1, before=before)
        items = [_view(row) for row in rows[:limit]]
        return ImportPage(items=items, next_cursor=_encode_cursor(items[-1]) if len(rows) > limit else None)

    @router.get("/{import_id}")
    async def get_import(import_id: str, organizer_id: OrganizerId) -> ImportView:
        """Status and counts of one import; ``error`` explains a file that could not be read as a whole."""
        async with engine.connect() as conn:
            row = await store.find_import(conn, organizer_id=organizer_id, import_id=_checked_id(import_id))
        if row is None:
            raise _not_found(import_id)
        return _view(row)

    @router.get("/{import_id}/rows")
    async def list_rows(
        import_id: str,
        organizer_id: OrganizerId,
        outcome: RowOutcome | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[int, Query(ge=0, description="row_number to continue after (next_after)")] = 0,
    ) -> RowPage:
        """The rows that have an outcome, in file order; ``cells`` holds a refused row as it was read."""
        checked = _checked_id(import_id)
        async with engine.connect() as conn:
            if await store.find_import(conn, organizer_id=organizer_id, import_id=checked) is None:
                raise _not_found(import_id)
            rows = await store.list_rows(
                conn, import_id=checked, outcome=outcome, after=after, limit=limit + 1
            )
        items = [RowView.model_validate(dict(row._mapping)) for row in rows[:limit]]
        return RowPage(items=items, next_after=items[-1].row_number if len(rows) > limit else None)

    return router
