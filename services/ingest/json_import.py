"""Contacts sent as JSON (the REST API and the MCP tools), free of I/O: checking the request as a whole, and turning
each element into a CSV row under the standard header, so a JSON import is then read exactly like a CSV upload.

An element that cannot become a row (not an object, a value that is an object or a list, an unknown email
permission, an object with no value at all) is refused here with a reason code; the caller stores that refusal
for the element's row before the file is read. Its line in the CSV has an empty email, so the reader refuses it
too, and the row keeps the first (clearer) refusal: a row's outcome is stored once. Missing and malformed emails,
and values too long, are left to the reader's row checks, exactly as for a CSV. Keys other than the ones in
``JSON_KEYS`` are ignored."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from services.ingest.domain import CONSENT_FIELDS, MISSING_EMAIL
from shared.events import EmailPermission

JSON_KEYS: tuple[str, ...] = (
    "email", "first_name", "last_name", "company", "title", "phone", "external_id", "email_permission",
)
"""What a contact object may hold; other keys are ignored."""

HEADER: tuple[str, ...] = (*JSON_KEYS[:-1], *CONSENT_FIELDS)
"""The CSV header written for a JSON import: field names that ``domain.map_columns`` maps as they are. The
permission travels as the consent columns that state it (``PERMISSION_CELLS``)."""

PERMISSION_CELLS: dict[str, tuple[str, str]] = {
    "subscribed": ("marketing contact", ""),
    "unknown": ("non-marketing contact", ""),
    "unsubscribed": ("", "true"),
    "": ("", ""),
}
"""``email_permission`` -> (marketing contact status, unsubscribed from all email): the cells from which
``domain.email_permission`` reads that permission back."""

EMAIL_PERMISSIONS: frozenset[str] = frozenset(get_args(EmailPermission))

NOT_AN_OBJECT = "NOT_AN_OBJECT"
INVALID_VALUE = "INVALID_VALUE"

REFUSED_MARKER = "(refused before reading: see the row's error)"
"""What a refused element's line holds (with an empty email): not blank, so it keeps its row number and counts."""


class JsonRefused(ValueError):
    """The request as a whole cannot be imported: the HTTP status to answer and a message the client can act on."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class Refusal:
    """An element refused before reading: its row number (position in the array, from 1), reason and the element
    as JSON text (the row's "cells")."""

    row_number: int
    code: str
    message: str
    cells: list[str]


def fingerprint(body: bytes) -> str:
    """SHA-256 of the request body: a retry with the same Idempotency-Key must send the same bytes."""
    return hashlib.sha256(body).hexdigest()


def canonical_body(contacts: Sequence[Any]) -> bytes:
    """The same contacts always give the same bytes (for fingerprinting MCP tool arguments)."""
    return json.dumps(contacts, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except UnicodeDecodeError as error:
        raise JsonRefused(422, "the body is not UTF-8 text: send the contacts as UTF-8 JSON") from error
    except json.JSONDecodeError as error:
        raise JsonRefused(
            422, f"the body is not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"
        ) from error


def check_contacts(value: Any, *, max_contacts: int) -> list[Any]:
    """The request's elements; ``JsonRefused`` unless it is a non-empty array of at most ``max_contacts``."""
    if not isinstance(value, list):
        kind = _kind(value)
        raise JsonRefused(
            422, f"expected a JSON array of contact objects (each with an \"email\"), got {kind}"
        )
    if not value:
        raise JsonRefused(422, "the array is empty: send at least one contact object")
    if len(value) > max_contacts:
        raise JsonRefused(
            413, f"the request holds {len(value):,} contacts; at most {max_contacts:,} per request: split it"
        )
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def cell(value: Any) -> str | None:
    """A JSON value as a CSV cell: null is blank, numbers without a spurious ``.0`` (phone numbers arrive as
    numbers), booleans as ``true``/``false``; ``None`` for an object or an array, which no field can hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    return None


def to_row(row_number: int, element: Any) -> list[str] | Refusal:
    """The CSV cells of one element (in ``HEADER`` order), or why it cannot be a row."""
    if not isinstance(element, dict):
        return Refusal(
            row_number, NOT_AN_OBJECT, f"element {row_number} is {_kind(element)}, not a contact object",
            [_as_json(element)],
        )
    cells: list[str] = []
    for key in JSON_KEYS:
        value = cell(element.get(key))
        if value is None:
            return Refusal(
                row_number, INVALID_VALUE,
                f"{key!r} is {_kind(element[key])}; it must be a string or a number", [_as_json(element)],
            )
        cells.append(value)
    if not "".join(cells).strip():
        # a CSV line of blank cells is not a row at all: refused here, or the element would vanish
        return Refusal(row_number, MISSING_EMAIL, f"element {row_number} has no email (and no other value)",
                       [_as_json(element)])
    permission = cells.pop().strip()
    if permission not in PERMISSION_CELLS:
        allowed = ", ".join(sorted(EMAIL_PERMISSIONS))
        return Refusal(
            row_number, INVALID_VALUE, f"'email_permission' is {permission!r}; expected one of {allowed} or null",
            [_as_json(element)],
        )
    cells.extend(PERMISSION_CELLS[permission])
    return cells


def _as_json(element: Any) -> str:
    return json.dumps(element, ensure_ascii=False)


def placeholder_row() -> list[str]:
    """The line written for a refused element: empty email (the reader refuses it), not blank."""
    return ["", REFUSED_MARKER, *([""] * (len(HEADER) - 2))]


@dataclass(frozen=True)
class Converted:
    """What a request's elements become: the CSV text and the elements refused before reading."""

    csv_text: str
    refusals: list[Refusal]


def to_csv(elements: Iterable[Any]) -> Converted:
    """The whole CSV for ``elements`` (bounded by the request's byte and count limits), row ``n`` being element
    ``n``. Line breaks inside values are quoted, as any CSV writer does."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    refusals: list[Refusal] = []
    for row_number, element in enumerate(elements, start=1):
        row = to_row(row_number, element)
        if isinstance(row, Refusal):
            refusals.append(row)
            writer.writerow(placeholder_row())
        else:
            writer.writerow(row)
    return Converted(csv_text=out.getvalue(), refusals=refusals)
