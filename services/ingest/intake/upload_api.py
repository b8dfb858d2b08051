"""``POST /v1/imports``: a CSV upload (multipart) or contacts as JSON, answered ``202`` with the import's id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import BaseModel

from services.ingest import store
from services.ingest.domain import Status
from services.ingest.intake.dependencies import Engine, ImportId, JsonImportsDep, Organizer, UploadsDep, not_found
from services.ingest.intake.json_imports import (
    JSON_UPLOAD_CONTENT,
    REPLAYED_HEADER,
    IdempotencyConflict,
    idempotency_key_of,
    is_json_request,
    read_body,
    source_of,
)
from services.ingest.intake.multipart import UploadRefused
from services.ingest.intake.uploads import FILE_FIELD
from services.ingest.mapping.proposal import MappingRefused
from services.ingest.mapping.views import MAPPING_FIELD
from services.ingest.reading.json_rows import JsonRefused, fingerprint, parse_body

router = APIRouter(prefix="/v1/imports", tags=["imports"])


class ImportAccepted(BaseModel):
    import_id: str
    status: Status


_UPLOAD_BODY: dict[str, Any] = {
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


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_UPLOAD_BODY,
    responses={
        413: {"description": "The file (or JSON body) is larger than the limit."},
        422: {"description": "No file part, a mapping field that cannot be used, or JSON that cannot be imported."},
    },
)
async def upload_import(
    request: Request,
    response: Response,
    organizer_id: Organizer,
    uploads: UploadsDep,
    json_imports: JsonImportsDep,
    auto_start: Annotated[
        bool, Query(description="start at once with the proposed mapping (which must find an email column)")
    ] = False,
) -> ImportAccepted:
    """Upload a CSV. It is stored and inspected, then waits (``uploaded``) for its mapping to be checked at
    ``GET /v1/imports/{id}/mapping`` and ``POST /v1/imports/{id}/start``; with ``auto_start=true`` or a
    ``mapping`` field it starts at once. A file that cannot be read is accepted in ``error``, with the reason
    in ``GET /v1/imports/{id}``. A JSON array of contacts is imported at once (``parsing``)."""
    if is_json_request(request):
        idempotency_key = idempotency_key_of(request)
        source = source_of(request)
        body = await read_body(request, max_bytes=json_imports.max_bytes)
        try:
            accepted = await json_imports.accept(
                organizer_id=organizer_id, contacts=parse_body(body), request_fingerprint=fingerprint(body),
                idempotency_key=idempotency_key, source=source,
            )
        except JsonRefused as refused:
            raise HTTPException(refused.status_code, refused.message) from refused
        except IdempotencyConflict as conflict:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(conflict)) from conflict
        if accepted.replayed:
            response.headers[REPLAYED_HEADER] = "true"
        return ImportAccepted(import_id=accepted.import_id, status=accepted.status)
    try:
        uploaded = await uploads.receive(request, organizer_id=organizer_id, auto_start=auto_start)
    except UploadRefused as refused:
        raise HTTPException(refused.status_code, refused.detail) from refused
    except MappingRefused as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from refused
    return ImportAccepted(import_id=uploaded.import_id, status=uploaded.status)


@router.delete(
    "/{import_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such import of yours."}, 409: {"description": "The import was started."}},
)
async def delete_import(import_id: ImportId, organizer_id: Organizer, engine: Engine) -> Response:
    """Delete an upload that was never started, with its file. A started import cannot be withdrawn: its rows
    are on their way to the contacts (409)."""
    async with engine.begin() as conn:
        deleted = await store.delete_unstarted(conn, import_id=import_id, organizer_id=organizer_id)
    if deleted is None:
        raise not_found(import_id)
    if not deleted:
        raise HTTPException(
            status.HTTP_409_CONFLICT, "the import was started: its rows are on their way and it cannot be deleted"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
