"""The MCP server (official ``mcp`` SDK): tools ``import_contacts`` and ``check_import_status``, defined once and
served two ways. Inside the ingest service over streamable HTTP at ``/mcp/``, behind the same bearer tokens as the
REST API (``http_app``); and over stdio by ``contacts mcp``, a thin process that calls the ingest REST API with the
caller's token (``ApiImports``). Either way the organizer comes from the token and scopes everything."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Protocol

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse

from services.ingest import store
from services.ingest.domain import Status
from services.ingest.intake.json_imports import SOURCE_HEADER, IdempotencyConflict, JsonImports
from services.ingest.reading.json_rows import JSON_KEYS, JsonRefused, canonical_body, fingerprint
from shared.auth import InvalidToken, organizer_of

SERVER_NAME = "kagibag-contacts"
ORGANIZER_SCOPE_KEY = "kagibag.organizer_id"
"""Where ``http_app`` leaves the token's organizer in the ASGI scope for the tools to read."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ImportStatus(BaseModel):
    """An import's status and counts (``GET /v1/imports/{id}``)."""

    import_id: str
    status: Status
    total_rows: int | None = Field(description="rows in the import; null until the whole file has been read")
    processed_rows: int = Field(description="rows with an outcome (created, matched or error)")
    created: int = Field(description="rows that created a new contact")
    matched: int = Field(description="rows that matched an existing contact")
    errors: int = Field(description="rows refused: see GET /v1/imports/{id}/rows?outcome=error")
    error: str | None = Field(description="why the import failed as a whole, if it did")


class Imports(Protocol):
    """What the tools need, answered in the ingest service or through its REST API."""

    async def import_contacts(self, ctx: Context, contacts: list[Any], idempotency_key: str | None) -> str:
        """Create and start an import; its id."""
        ...

    async def import_status(self, ctx: Context, import_id: str) -> ImportStatus:
        """The caller's import; ``ToolError`` if it has none with that id."""
        ...


CONTACTS_DESCRIPTION = (
    "A JSON array of contact objects, at most 10,000 by default. Keys: "
    + ", ".join(JSON_KEYS)
    + ". 'email' is required; 'email_permission' is one of subscribed, unsubscribed, unknown. Numbers are "
    "accepted for text fields (e.g. phone). Other keys are ignored. An element that is not an object or has no "
    "valid email becomes an error row; the other rows still go through."
)


def build_server(imports: Imports) -> MCPServer[Any]:
    """The MCP server with both tools; ``imports`` decides how they reach the import system."""
    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        title="Kagibag Contacts",
        instructions=(
            "Import an organizer's contacts with import_contacts, then poll check_import_status until the "
            "status is processed (every row succeeded) or error (see errors and error)."
        ),
    )

    @server.tool(
        name="import_contacts",
        description="Import contacts for the organizer of your token. Returns the import's id and status; "
        "rows are processed in the background: follow them with check_import_status.",
    )
    async def import_contacts(
        contacts: Annotated[list[Any], Field(description=CONTACTS_DESCRIPTION)],
        ctx: Context,
        idempotency_key: Annotated[
            str | None,
            Field(description="Optional: the same key with the same contacts returns the first import instead "
                  "of creating another (safe retries); with different contacts it is refused."),
        ] = None,
    ) -> ImportStatus:
        import_id = await imports.import_contacts(ctx, contacts, idempotency_key)
        return await imports.import_status(ctx, import_id)

    @server.tool(
        name="check_import_status",
        description="Status and counts of one of your imports: uploaded, parsing, processing, then processed "
        "(every row succeeded) or error (some rows failed, or the import as a whole: see 'error').",
    )
    async def check_import_status(
        import_id: Annotated[str, Field(description="the id import_contacts returned")], ctx: Context
    ) -> ImportStatus:
        return await imports.import_status(ctx, import_id)

    return server


def _not_found(import_id: str) -> ToolError:
    return ToolError(f"no import {import_id}")


# --- in the ingest service: streamable HTTP --------------------------------------------------------------------


class ServiceImports:
    """The tools inside the ingest service: the organizer is the one ``http_app`` authenticated."""

    def __init__(self, *, engine: AsyncEngine, json_imports: JsonImports) -> None:
        self._engine = engine
        self._json_imports = json_imports

    @staticmethod
    def _organizer(ctx: Context) -> str:
        request = ctx.request_context.request
        organizer = getattr(request, "scope", {}).get(ORGANIZER_SCOPE_KEY)
        if not isinstance(organizer, str):  # http_app lets no request through without one
            raise ToolError("not authenticated")
        return organizer

    async def import_contacts(self, ctx: Context, contacts: list[Any], idempotency_key: str | None) -> str:
        try:
            accepted = await self._json_imports.accept(
                organizer_id=self._organizer(ctx), contacts=contacts,
                request_fingerprint=fingerprint(canonical_body(contacts)), idempotency_key=idempotency_key,
                source="mcp",
            )
        except (JsonRefused, IdempotencyConflict) as refused:
            raise ToolError(str(refused)) from refused
        return accepted.import_id

    async def import_status(self, ctx: Context, import_id: str) -> ImportStatus:
        try:
            checked = str(uuid.UUID(import_id))
        except ValueError as error:
            raise _not_found(import_id) from error
        async with self._engine.connect() as conn:
            row = await store.find_import(conn, organizer_id=self._organizer(ctx), import_id=checked)
        if row is None:
            raise _not_found(import_id)
        return ImportStatus.model_validate({**row._mapping, "import_id": str(row.import_id)})


def http_app(server: MCPServer[Any], *, auth_secret: str) -> ASGIApp:
    """The server over streamable HTTP (stateless, JSON responses: any instance can answer any request), behind
    the REST API's bearer tokens: none or an invalid one is 401. Mount it at ``/mcp``; ``server.session_manager
    .run()`` must be entered in the app's lifespan. DNS-rebinding protection (checking ``Host``) is off: it guards
    servers that trust the browser's ambient credentials, and this one trusts only the bearer token."""
    inner = server.streamable_http_app(
        streamable_http_path="/",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _unauthorized("missing bearer token")(scope, receive, send)
            return
        try:
            organizer = organizer_of(secret=auth_secret, token=token.strip())
            if not organizer.isprintable():
                raise InvalidToken("organizer_id has control characters")
        except InvalidToken as error:
            await _unauthorized(f"invalid token: {error}")(scope, receive, send)
            return
        scope[ORGANIZER_SCOPE_KEY] = organizer
        await inner(scope, receive, send)

    return guarded


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


# --- contacts mcp: stdio, through the REST API -----------------------------------------------------------------


class ApiImports:
    """The tools in ``contacts mcp``: every call is a REST request with the caller's token, so the service
    authenticates and scopes it exactly as any API call."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def import_contacts(self, ctx: Context, contacts: list[Any], idempotency_key: str | None) -> str:
        headers = {"Content-Type": "application/json", SOURCE_HEADER: "mcp"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        response = await self._call("POST", "/v1/imports", content=canonical_body(contacts), headers=headers)
        return str(response.json()["import_id"])

    async def import_status(self, ctx: Context, import_id: str) -> ImportStatus:
        response = await self._call("GET", f"/v1/imports/{import_id}", not_found=import_id)
        return ImportStatus.model_validate(response.json())

    async def _call(self, method: str, path: str, *, not_found: str | None = None, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ToolError(f"the ingest service at {self._client.base_url} cannot be reached: {error}") from error
        if response.status_code == 404 and not_found is not None:
            raise _not_found(not_found)
        if response.is_error:
            raise ToolError(f"the ingest service refused the request ({response.status_code}): {_detail(response)}")
        return response


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail is not None else response.text[:500]


async def serve_stdio(*, url: str, token: str) -> None:
    """``contacts mcp``: the tools over stdin/stdout, calling the ingest API at ``url`` with ``token``."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60.0) as client:
        await build_server(ApiImports(client)).run_stdio_async()
