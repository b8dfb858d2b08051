"""The mapping step of an uploaded file: see the proposed mapping, confirm one, and start the import."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from services.ingest import store
from services.ingest.domain import ColumnMap, no_email_column
from services.ingest.intake.dependencies import Engine, ImportId, Jobs, Organizer, not_found
from services.ingest.intake.upload_api import ImportAccepted
from services.ingest.mapping.proposal import MappingRefused, column_map, propose_for_file
from services.ingest.mapping.views import MappingChoices, MappingView, confirmed, mapping_view
from services.ingest.reading.records import Inspection

router = APIRouter(prefix="/v1/imports", tags=["imports"])


async def _setup(engine: Engine, import_id: str, organizer_id: str) -> tuple[Any, Inspection]:
    async with engine.connect() as conn:
        setup = await store.find_setup(conn, organizer_id=organizer_id, import_id=import_id)
    if setup is None:
        raise not_found(import_id)
    if setup.inspection is None:
        why = (
            "contacts sent as JSON have no mapping step"
            if setup.source in ("json", "mcp")
            else f"the import's file could not be read, so it has no mapping: {setup.error}"
        )
        raise HTTPException(status.HTTP_409_CONFLICT, why)
    return setup, Inspection.from_json(setup.inspection)


def _not_waiting(setup: Any) -> HTTPException:
    detail = f"the import is {setup.status}: only an uploaded import, not yet started, can be mapped or started"
    if setup.status == "error" and setup.error:
        detail += f" ({setup.error})"
    return HTTPException(status.HTTP_409_CONFLICT, detail)


@router.get("/{import_id}/mapping")
async def get_mapping(import_id: ImportId, organizer_id: Organizer, engine: Engine) -> MappingView:
    """Every column with sample values and the proposed field (or null = skip), the reason (exact_name,
    known_alias, hubspot_profile, fuzzy_match) and a confidence; whether the file is a HubSpot export; its
    encoding and delimiter; and the confirmed mapping, if any."""
    setup, inspection = await _setup(engine, import_id, organizer_id)
    return mapping_view(setup, inspection, propose_for_file(setup.filename, inspection.header))


@router.put("/{import_id}/mapping", responses={409: {"description": "The import was already started."}})
async def put_mapping(
    import_id: ImportId, choices: MappingChoices, organizer_id: Organizer, engine: Engine
) -> MappingView:
    """Confirm the mapping: each listed column gets a field (null = skip), unlisted columns are skipped;
    ``email`` is required and no field may be used twice (422 says which)."""
    setup, inspection = await _setup(engine, import_id, organizer_id)
    if setup.status != "uploaded":
        raise _not_waiting(setup)
    try:
        columns = confirmed(choices, inspection.header)
    except MappingRefused as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from refused
    async with engine.begin() as conn:
        if not await store.save_mapping(conn, import_id=import_id, organizer_id=organizer_id, columns=columns):
            raise _not_waiting(setup)
        saved = await store.find_setup(conn, organizer_id=organizer_id, import_id=import_id)
    return mapping_view(saved, inspection, propose_for_file(setup.filename, inspection.header))


@router.post(
    "/{import_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "Already started."}, 422: {"description": "No email column mapped."}},
)
async def start(
    import_id: ImportId, organizer_id: Organizer, engine: Engine, jobs: Jobs
) -> ImportAccepted:
    """Start reading the file with the confirmed mapping, or the proposed one if none was confirmed."""
    setup, inspection = await _setup(engine, import_id, organizer_id)
    if setup.status != "uploaded":
        raise _not_waiting(setup)
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
        if not await store.start_import(conn, import_id=import_id, organizer_id=organizer_id, columns=columns):
            raise _not_waiting(setup)
    jobs.want(import_id)
    return ImportAccepted(import_id=import_id, status="parsing")
