"""Contacts sent as JSON (``POST /v1/imports`` with ``application/json``, and the MCP tools): each element becomes a
row at once (``reading.json_rows``), the rows are kept as the import's file, and the import is created and
started in one transaction; from then on the importer hands the rows on like an uploaded file's. An
``Idempotency-Key`` makes a retry return the import the first request created; the unique index on
``(organizer_id, idempotency_key)`` decides between racing requests."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import HTTPException, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest import files, store
from services.ingest.domain import Source, Status
from services.ingest.jobs import ImportJobs
from services.ingest.reading.json_rows import JSON_KEYS, check_contacts, contact_rows
from services.ingest.reading.row_file import encode_rows
from services.ingest.reading.rows import RejectedRow

log = structlog.get_logger(__name__)

IDEMPOTENCY_INDEX = "imports_by_idempotency_key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
SOURCE_HEADER = "X-Contacts-Source"
"""Optional: ``mcp`` when the request comes from the ``contacts mcp`` stdio server (default ``json``)."""
REPLAYED_HEADER = "Idempotent-Replayed"


JSON_UPLOAD_CONTENT: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "array",
            "minItems": 1,
            "description": "Contacts to import at once (no mapping step). Send an Idempotency-Key header to retry "
            "safely. An element that is not an object or has no valid email becomes an error row.",
            "items": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    key: {"type": ["string", "number", "null"]}
                    for key in JSON_KEYS
                    if key != "email_permission"
                }
                | {"email_permission": {"enum": ["subscribed", "unsubscribed", "unknown", None]}},
            },
        },
        "example": [{"email": "ada@example.com", "first_name": "Ada", "phone": 4930123456}],
    }
}
"""The JSON body of ``POST /v1/imports`` for the OpenAPI document (the handler reads the body itself)."""


class IdempotencyConflict(Exception):
    """The key was already used by this organizer for a different request body."""


@dataclass(frozen=True)
class Accepted:
    import_id: str
    status: Status
    replayed: bool


@dataclass(frozen=True)
class Previous:
    import_id: str
    status: Status
    request_fingerprint: str | None


class JsonImports:
    """The JSON import use case, shared by the REST handler and the MCP tools."""

    def __init__(self, *, engine: AsyncEngine, jobs: ImportJobs, max_contacts: int, max_bytes: int) -> None:
        self._engine = engine
        self._jobs = jobs
        self.max_contacts = max_contacts
        self.max_bytes = max_bytes

    async def accept(
        self, *, organizer_id: str, contacts: Any, request_fingerprint: str, idempotency_key: str | None,
        source: Source,
    ) -> Accepted:
        """Create and start the import of ``contacts`` (a parsed JSON value); ``reading.json_rows.JsonRefused``
        when the request cannot be imported as a whole, ``IdempotencyConflict`` when the key was used for
        another body."""
        elements = check_contacts(contacts, max_contacts=self.max_contacts)
        if idempotency_key is not None:
            previous = await self._previous(organizer_id, idempotency_key)
            if previous is not None:
                return _replay(previous, idempotency_key, request_fingerprint)
        import_id = str(uuid.uuid4())
        rows = await asyncio.to_thread(contact_rows, elements)
        refused = sum(1 for row in rows if isinstance(row, RejectedRow))
        try:
            async with self._engine.begin() as conn:
                await store.create_import(
                    conn, import_id=import_id, organizer_id=organizer_id, source=source, filename=None,
                    idempotency_key=idempotency_key, request_fingerprint=request_fingerprint,
                )
                await files.keep_bytes(conn, import_id, encode_rows(rows))
                started = await store.start_import(conn, import_id=import_id, organizer_id=organizer_id, columns=None)
                assert started, "a new import is uploaded until started"
        except IntegrityError as error:
            if idempotency_key is None or _constraint(error) != IDEMPOTENCY_INDEX:
                raise
            previous = await self._previous(organizer_id, idempotency_key)
            assert previous is not None, "the unique index was violated by a committed import"
            return _replay(previous, idempotency_key, request_fingerprint)
        self._jobs.want(import_id)
        log.info("import.json_accepted", import_id=import_id, organizer_id=organizer_id, source=source,
                 contacts=len(elements), refused=refused)
        return Accepted(import_id=import_id, status="parsing", replayed=False)

    async def _previous(self, organizer_id: str, idempotency_key: str) -> Previous | None:
        async with self._engine.connect() as conn:
            row = await store.find_by_idempotency_key(
                conn, organizer_id=organizer_id, idempotency_key=idempotency_key
            )
        return None if row is None else Previous(str(row.import_id), row.status, row.request_fingerprint)


def _replay(previous: Previous, idempotency_key: str, request_fingerprint: str) -> Accepted:
    if previous.request_fingerprint != request_fingerprint:
        raise IdempotencyConflict(
            f"the Idempotency-Key {idempotency_key!r} was already used for a different request (import "
            f"{previous.import_id}); send the same body to get that import again, or use a new key"
        )
    return Accepted(import_id=previous.import_id, status=previous.status, replayed=True)


def _constraint(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


# --- reading the REST request ---------------------------------------------------------------------------------


def is_json_request(request: Request) -> bool:
    """``application/json`` (or any ``+json`` type), whatever its parameters."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def too_large(max_bytes: int) -> str:
    return f"the JSON body is larger than the limit of {max_bytes:,} bytes; split the contacts into several requests"


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``max_bytes`` (never read beyond)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, too_large(max_bytes))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise HTTPException(413, too_large(max_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise HTTPException(
            400, f"the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters"
        )
    return key


def source_of(request: Request) -> Source:
    source = request.headers.get(SOURCE_HEADER, "json").strip().lower()
    if source not in ("json", "mcp"):
        raise HTTPException(422, f"the {SOURCE_HEADER} header must be 'json' or 'mcp', not {source[:20]!r}")
    return "mcp" if source == "mcp" else "json"
