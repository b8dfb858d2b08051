"""What keeps hostile requests harmless before a route runs: request bodies bounded per route (the upload route
streams its own, larger ones), and validation errors that never echo a large input back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SMALL_BODY_BYTES = 1024 * 1024
"""Every body but an import's own (a mapping, an MCP call beyond its contacts) is small."""
MAX_ECHOED = 100
"""Characters of an invalid value shown back in a 422."""
MAX_ERRORS = 20


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a body larger than the limit of its route is refused with 413 as soon as its declared
    length or the bytes received show it, before anything reads it whole. ``limit_of(method, path)`` gives the
    limit, or None for a route that limits its body itself."""

    def __init__(self, app: ASGIApp, *, limit_of: Callable[[str, str], int | None]) -> None:
        self._app = app
        self._limit_of = limit_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = self._limit_of(scope["method"], scope["path"])
        if limit is None:
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, limited_receive, watched_send)
        except _TooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"the request body is larger than the limit of {limit:,} bytes"}, status_code=413)


def _short(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value if len(value) <= MAX_ECHOED else value[:MAX_ECHOED] + "…"
    if isinstance(value, dict | list | tuple):
        return f"({type(value).__name__} of {len(value)})"
    return value


async def short_validation_errors(_: Request, error: Exception) -> JSONResponse:
    """FastAPI's 422 (``detail[].loc``, ``msg``, ``type``, ``input``), with every input cut short and at most
    ``MAX_ERRORS`` errors: a request of megabytes is not sent back."""
    assert isinstance(error, RequestValidationError)
    errors = [
        {key: _short(value) if key == "input" else value for key, value in item.items() if key != "ctx"}
        for item in error.errors()[:MAX_ERRORS]
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
