"""The import API: upload a CSV, check and confirm its field mapping, start it, follow it, page through its
rows. Every route is scoped to the caller's organizer; another organizer's import answers 404, exactly like one
that does not exist."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import store
from services.ingest.domain import ColumnMap, FileProblem, Source, Status, no_email_column
from services.ingest.json_intake import JSON_UPLOAD_CONTENT, accept_json_request, is_json_request
from services.ingest.mapping import column_map, propose_for_file
from services.ingest.mapping_views import (
    MAPPING_FIELD,
    MappingChoices,
    MappingView,
    confirmed,
    mapping_view,
    parse_mapping_field,
)
from services.ingest.processing import Importer
from services.ingest.reading import Inspection, inspect_file
from services.ingest.upload import ReceivedFile, UploadRefused, receive_file
from shared.auth import OrganizerId
from shared.events import RowOutcome

FILE_FIELD = "file"


class ImportAccepted(BaseModel):
    import_id: str
    status: Status


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
                            "description": "A CSV (any common encoding and delimiter) with a header row, or a "
                            "HubSpot contact export. Its columns are mapped at GET /v1/imports/{id}/mapping.",
                        },
                        MAPPING_FIELD: {
                            "type": "string",
                            "description": "Optional: the mapping as JSON, like the body of PUT "
                            "/v1/imports/{id}/mapping; the import then starts at once.",
                        },
                    },
                }
            },
            **JSON_UPLOAD_CONTENT,
        },
    }
}


def import_routes(*, engine: AsyncEngine, importer: Importer, max_upload_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/v1/imports", tags=["imports"])

    async def register(
        import_id: str, organizer_id: str, received: ReceivedFile, path: Path, *, auto_start: bool
    ) -> Status:
        """Inspect the stored file and record the import: ``error`` if the file cannot be read, else
        ``uploaded``, or ``parsing`` when the upload asked to start (with its mapping or the proposal)."""
        try:
            inspection = await asyncio.to_thread(inspect_file, path, limits=importer.limits)
        except FileProblem as problem:
            async with engine.begin() as conn:
                await store.create_import(
                    conn, import_id=import_id, organizer_id=organizer_id, source="csv",
                    filename=received.filename, error=str(problem),
                )
            return "error"
        proposal = propose_for_file(received.filename, inspection.header)
        columns: ColumnMap | None = None
        error: str | None = None
        if MAPPING_FIELD in received.fields:
            columns = parse_mapping_field(received.fields[MAPPING_FIELD], inspection.header)
        elif auto_start:
            columns = column_map(proposal.columns)
            if "email" not in columns.positions:
                error = str(no_email_column(inspection.header))
        async with engine.begin() as conn:
            await store.create_import(
                conn, import_id=import_id, organizer_id=organizer_id,
                source="hubspot" if proposal.hubspot else "csv", filename=received.filename,
                inspection=inspection.to_json(), error=error,
            )
            if error is not None:
                return "error"
            if columns is None:
                return "uploaded"
            await store.start_import(conn, import_id=import_id, organizer_id=organizer_id, columns=columns)
        return "parsing"

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        openapi_extra=_UPLOAD_BODY,
        responses={
            413: {"description": "The file is larger than the upload limit."},
            422: {"description": "No file part, or a mapping field that cannot be used."},
        },
    )
    async def upload_import(
        request: Request,
        response: Response,
        organizer_id: OrganizerId,
        auto_start: Annotated[
            bool, Query(description="start at once with the proposed mapping (which must find an email column)")
        ] = False,
    ) -> ImportAccepted:
        """Upload a CSV. It is stored and inspected, then waits (``uploaded``) for its mapping to be checked at
        ``GET /v1/imports/{id}/mapping`` and ``POST /v1/imports/{id}/start``; with ``auto_start=true`` or a
        ``mapping`` field it starts at once. A file that cannot be read is accepted in ``error``, with the reason
        in ``GET /v1/imports/{id}``."""
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
            state = await register(import_id, organizer_id, received, destination, auto_start=auto_start)
        except BaseException:
            destination.unlink(missing_ok=True)
            raise
        if state == "parsing":
            importer.start(import_id)
        elif state == "error":
            await importer.discard_file(import_id)
        return ImportAccepted(import_id=import_id, status=state)

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

    async def find_setup(import_id: str, organizer_id: str) -> tuple[Any, Inspection]:
        async with engine.connect() as conn:
            setup = await store.find_setup(conn, organizer_id=organizer_id, import_id=_checked_id(import_id))
        if setup is None:
            raise _not_found(import_id)
        if setup.inspection is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"the import's file could not be read, so it has no mapping: {setup.error}"
            )
        return setup, Inspection.from_json(setup.inspection)

    def not_waiting(setup: Any) -> HTTPException:
        detail = f"the import is {setup.status}: only an uploaded import, not yet started, can be mapped or started"
        if setup.status == "error" and setup.error:
            detail += f" ({setup.error})"
        return HTTPException(status.HTTP_409_CONFLICT, detail)

    @router.get("/{import_id}/mapping")
    async def get_mapping(import_id: str, organizer_id: OrganizerId) -> MappingView:
        """Every column with sample values and the proposed field (or null = skip), the reason (exact_name,
        known_alias, hubspot_profile, fuzzy_match) and a confidence; whether the file is a HubSpot export; its
        encoding and delimiter; and the confirmed mapping, if any."""
        setup, inspection = await find_setup(import_id, organizer_id)
        return mapping_view(setup, inspection, propose_for_file(setup.filename, inspection.header))

    @router.put("/{import_id}/mapping", responses={409: {"description": "The import was already started."}})
    async def put_mapping(import_id: str, choices: MappingChoices, organizer_id: OrganizerId) -> MappingView:
        """Confirm the mapping: each listed column gets a field (null = skip), unlisted columns are skipped;
        ``email`` is required and no field may be used twice (422 says which)."""
        setup, inspection = await find_setup(import_id, organizer_id)
        if setup.status != "uploaded":
            raise not_waiting(setup)
        columns = confirmed(choices, inspection.header)
        async with engine.begin() as conn:
            if not await store.save_mapping(
                conn, import_id=setup.import_id, organizer_id=organizer_id, columns=columns
            ):
                raise not_waiting(setup)
            saved = await store.find_setup(conn, organizer_id=organizer_id, import_id=setup.import_id)
        return mapping_view(saved, inspection, propose_for_file(setup.filename, inspection.header))

    @router.post(
        "/{import_id}/start",
        status_code=status.HTTP_202_ACCEPTED,
        responses={409: {"description": "Already started."}, 422: {"description": "No email column mapped."}},
    )
    async def start(import_id: str, organizer_id: OrganizerId) -> ImportAccepted:
        """Start reading the file with the confirmed mapping, or the proposed one if none was confirmed."""
        setup, inspection = await find_setup(import_id, organizer_id)
        if setup.status != "uploaded":
            raise not_waiting(setup)
        if setup.mapping:
            columns = ColumnMap.from_json(setup.mapping)
        else:
            columns = column_map(propose_for_file(setup.filename, inspection.header).columns)
            if "email" not in columns.positions:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    f"{no_email_column(inspection.header)}; map it with PUT /v1/imports/{import_id}/mapping",
                )
        async with engine.begin() as conn:
            started = await store.start_import(
                conn, import_id=setup.import_id, organizer_id=organizer_id, columns=columns
            )
        if not started:
            raise not_waiting(setup)
        importer.start(str(setup.import_id))
        return ImportAccepted(import_id=str(setup.import_id), status="parsing")

    return router
