"""An uploaded CSV coming in: streamed to the import's file, inspected (format, header, first rows) and recorded
as a new import that waits for its mapping, or starts at once (``auto_start``, or a ``mapping`` field sent with
the file), or is accepted in ``error`` when the file cannot be read."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from services.ingest import files, store
from services.ingest.domain import ColumnMap, FileProblem, Status, no_email_column
from services.ingest.importer import Importer
from services.ingest.intake.multipart import ReceivedFile, receive_file
from services.ingest.jobs import ImportJobs
from services.ingest.mapping.proposal import column_map, propose_for_file
from services.ingest.mapping.views import MAPPING_FIELD, parse_mapping_field
from services.ingest.reading.records import inspect_file

FILE_FIELD = "file"


@dataclass(frozen=True)
class Uploaded:
    import_id: str
    status: Status


class Uploads:
    """The upload use case (``POST /v1/imports`` with a multipart body)."""

    def __init__(self, *, engine: AsyncEngine, importer: Importer, jobs: ImportJobs, max_upload_bytes: int) -> None:
        self._engine = engine
        self._importer = importer
        self._jobs = jobs
        self.max_upload_bytes = max_upload_bytes

    async def receive(self, request: Request, *, organizer_id: str, auto_start: bool) -> Uploaded:
        """Store the upload and record its import. ``multipart.UploadRefused`` when the body cannot be taken,
        ``mapping.proposal.MappingRefused`` for an unusable ``mapping`` field: then nothing is kept."""
        import_id = str(uuid.uuid4())
        local = self._importer.local_path(import_id)
        received = await receive_file(request, field=FILE_FIELD, destination=local, max_bytes=self.max_upload_bytes)
        try:
            status = await self._register(import_id, organizer_id, received, local, auto_start=auto_start)
        except BaseException:
            await self._importer.discard_local(import_id)
            raise
        if status == "parsing":
            self._jobs.want(import_id)  # read here first: this instance's copy is already on its disk
        else:
            await self._importer.discard_local(import_id)
        return Uploaded(import_id, status)

    async def _register(
        self, import_id: str, organizer_id: str, received: ReceivedFile, path: Path, *, auto_start: bool
    ) -> Status:
        """Inspect the received file and record the import with its file, in one transaction: ``error`` if the
        file cannot be read (it is not kept), else ``uploaded``, or ``parsing`` when the upload asked to start
        (with its mapping or the proposal)."""
        try:
            inspection = await asyncio.to_thread(inspect_file, path, limits=self._importer.limits)
        except FileProblem as problem:
            async with self._engine.begin() as conn:
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
        async with self._engine.begin() as conn:
            await store.create_import(
                conn, import_id=import_id, organizer_id=organizer_id,
                source="hubspot" if proposal.hubspot else "csv", filename=received.filename,
                inspection=inspection.to_json(), error=error,
            )
            if error is not None:
                return "error"
            await files.keep(conn, import_id, path)
            if columns is None:
                return "uploaded"
            await store.start_import(conn, import_id=import_id, organizer_id=organizer_id, columns=columns)
        return "parsing"
