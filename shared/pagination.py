"""One cursor format for every list endpoint. A page is ``{"items": [...], "next_cursor": "..." | null}``; the cursor
is the unpadded base64url of a JSON array ``[scope, key, ...]``: which list (and sort order) it continues and the
last item's sort keys (times as ISO 8601). A cursor this API did not return for that list is a 422 in FastAPI's own
error shape, the same everywhere."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

T = TypeVar("T")
Key = str | int | bool | datetime | None
NOT_A_CURSOR = "not a cursor returned by this API: pass back the next_cursor of the previous page"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def invalid_input(location: str, parameter: str, message: str, value: object) -> RequestValidationError:
    """A 422 in FastAPI's own shape for a request's ``parameter`` in ``location`` (``query``, ``header``...), for
    rules a declaration cannot express."""
    return RequestValidationError([{"type": "value_error", "loc": (location, parameter), "msg": message,
                                    "input": value}])


def invalid_query(parameter: str, message: str, value: object) -> RequestValidationError:
    """``invalid_input`` for a query parameter."""
    return invalid_input("query", parameter, message, value)


def encode_cursor(scope: str, *keys: Key) -> str:
    values = [key.isoformat() if isinstance(key, datetime) else key for key in keys]
    return base64.urlsafe_b64encode(json.dumps([scope, *values], separators=(",", ":")).encode()).decode().rstrip("=")


def _parse(value: Any, kind: type | tuple[type, ...]) -> Key:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if value is None and type(None) in kinds:
        return None
    if datetime in kinds and isinstance(value, str):
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("a cursor's times carry their zone")
        return at
    for candidate in kinds:
        if candidate in (str, int, bool) and type(value) is candidate:
            return value
    raise ValueError(f"{value!r} is not a {kinds}")


def decode_cursor(cursor: str, scope: str, shape: Sequence[type | tuple[type, ...]], *,
                  parameter: str = "cursor") -> tuple[Key, ...]:
    """The keys ``cursor`` holds for ``scope``, each of the type ``shape`` names (a tuple allows several, ``None``
    among them); a 422 for anything else, and one that says so for a cursor of another list or sort order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True).decode())
        if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
            raise ValueError("not a cursor")
        found, *values = decoded
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise invalid_query(parameter, NOT_A_CURSOR, cursor) from error
    if found != scope:
        raise invalid_query(parameter, f"this cursor continues {found}, not {scope}", cursor)
    try:
        if len(values) != len(shape):
            raise ValueError("keys of another shape")
        return tuple(_parse(value, kind) for value, kind in zip(values, shape, strict=True))
    except (ValueError, TypeError) as error:
        raise invalid_query(parameter, NOT_A_CURSOR, cursor) from error


def page(rows: Sequence[T], limit: int, *, scope: str, keys: Callable[[T], tuple[Key, ...]]) -> Page[T]:
    """The first ``limit`` of ``rows`` (fetched with ``limit + 1`` to learn whether more follow) and the cursor that
    continues after the last of them."""
    items = list(rows[:limit])
    more = len(rows) > limit and items
    return Page[T](items=items, next_cursor=encode_cursor(scope, *keys(items[-1])) if more else None)
