"""Contacts sent as JSON (the REST API and the MCP tools), free of I/O: the request as a whole (``parse_body``,
``check_contacts``), then each element straight into a row (``contact_row``), checked like a CSV row.

An element that cannot be a row (not an object, a value that is an object, an array or not a finite number, an
unknown email permission, an object with no value at all) is refused with a reason code; so are missing and
malformed emails, values too long and NUL characters, exactly as for a CSV. Keys other than ``JSON_KEYS`` are
ignored. A refused row's cells are its values in ``JSON_KEYS`` order, or the element as JSON when it is no
object of values."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any, get_args

import msgspec

from services.ingest.reading.checks import MAX_FIELD_LENGTH, check_email, too_long
from services.ingest.reading.rows import (
    INVALID_VALUE,
    MISSING_EMAIL,
    NOT_AN_OBJECT,
    NUL_CHARACTER,
    RejectedRow,
    ValidRow,
)
from shared.events import CONTACT_FIELDS, EmailPermission

JSON_KEYS: tuple[str, ...] = ("email", *CONTACT_FIELDS, "external_id", "email_permission")
"""What a contact object may hold; other keys are ignored."""

EMAIL_PERMISSIONS: frozenset[str] = frozenset(get_args(EmailPermission))
MAX_SHOWN = 1000
"""Characters of an element kept as the refused row's cell when it is not an object of values."""


class JsonRefused(ValueError):
    """The request as a whole cannot be imported: the HTTP status to answer and a message the client can act on."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def fingerprint(body: bytes) -> str:
    """SHA-256 of the request body: a retry with the same Idempotency-Key must send the same bytes."""
    return hashlib.sha256(body).hexdigest()


def canonical_body(contacts: Sequence[Any]) -> bytes:
    """The same contacts always give the same bytes (for fingerprinting MCP tool arguments)."""
    try:
        return json.dumps(contacts, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    except (ValueError, RecursionError) as error:
        raise JsonRefused(422, f"the contacts cannot be read as JSON: {error}") from error


_BYTE = re.compile(r"\(byte (\d+)\)")
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters no contact field holds (tabs and line breaks may be in a value, as in a CSV)."""


def parse_body(body: bytes) -> Any:
    """The JSON value of a request body; ``JsonRefused`` (422) for anything that is not strict JSON in UTF-8:
    ``NaN`` and ``Infinity``, raw control characters, lone surrogates, nesting deeper than the decoder allows
    and integers out of range are refused with the rest."""
    try:
        return msgspec.json.decode(body)
    except UnicodeDecodeError as error:
        raise JsonRefused(422, "the body is not UTF-8 text: send the contacts as UTF-8 JSON") from error
    except RecursionError as error:
        raise JsonRefused(422, "the body is not valid JSON for an import: it is nested too deeply") from error
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        reason = str(error).removeprefix("JSON is malformed: ")
        found = _BYTE.search(reason)
        if found is not None:
            offset = int(found.group(1))
            line = body.count(b"\n", 0, offset) + 1
            column = offset - (body.rfind(b"\n", 0, offset) + 1) + 1
            reason = f"(line {line}, column {column}): {_BYTE.sub('', reason).strip()}"
        else:
            reason = f"({reason})" if reason else ""
        raise JsonRefused(422, f"the body is not valid JSON {reason}".strip()) from error


def check_contacts(value: Any, *, max_contacts: int) -> list[Any]:
    """The request's elements; ``JsonRefused`` unless it is a non-empty array of at most ``max_contacts``."""
    if not isinstance(value, list):
        raise JsonRefused(
            422, f"expected a JSON array of contact objects (each with an \"email\"), got {kind_of(value)}"
        )
    if not value:
        raise JsonRefused(422, "the array is empty: send at least one contact object")
    if len(value) > max_contacts:
        raise JsonRefused(
            413, f"the request holds {len(value):,} contacts; at most {max_contacts:,} per request: split it"
        )
    return value


def kind_of(value: Any) -> str:
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
    """A JSON value as the text of a field: null is blank, numbers without a spurious ``.0`` (phone numbers
    arrive as numbers), booleans as ``true``/``false``; ``None`` for what no field can hold: an object, an
    array, a number that is not finite or too long to write out, a string with a lone surrogate."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return str(int(value)) if value.is_integer() else repr(value)
    except ValueError:  # an integer of more digits than Python writes out
        return None
    return None


def as_json(element: Any) -> str:
    """An element shown as JSON in a refused row's cell (cut short when long)."""
    try:
        shown = json.dumps(element, ensure_ascii=False)
    except (ValueError, RecursionError):
        shown = f"({kind_of(element)} that cannot be shown)"
    return shown if len(shown) <= MAX_SHOWN else shown[:MAX_SHOWN] + "…"


def _refused(row_number: int, code: str, message: str, element: Any) -> RejectedRow:
    return RejectedRow(row_number, code, message, [as_json(element)])


def contact_row(row_number: int, element: Any) -> ValidRow | RejectedRow:
    """One element of the array (row ``row_number``) as a row to hand on, or why it cannot be one."""
    if not isinstance(element, dict):
        return _refused(
            row_number, NOT_AN_OBJECT, f"element {row_number} is {kind_of(element)}, not a contact object", element
        )
    cells: list[str] = []
    for key in JSON_KEYS:
        value = element.get(key)
        text = cell(value)
        if text is None:
            what = kind_of(value) if isinstance(value, dict | list) else f"{kind_of(value)} that no field can hold"
            return _refused(
                row_number, INVALID_VALUE, f"{key!r} is {what}; it must be a string or a number", element
            )
        cells.append(text)
    if not "".join(cells).strip():
        return _refused(row_number, MISSING_EMAIL, f"element {row_number} has no email (and no other value)", element)
    permission = cells[-1].strip()
    if permission and permission not in EMAIL_PERMISSIONS:
        allowed = ", ".join(sorted(EMAIL_PERMISSIONS))
        shown = permission[:50]
        return RejectedRow(
            row_number, INVALID_VALUE, f"'email_permission' is {shown!r}; expected one of {allowed} or null", cells
        )
    joined = "".join(cells)
    if "\x00" in joined:
        return RejectedRow(row_number, NUL_CHARACTER, "the row contains a NUL character", cells)
    if _CONTROL.search(joined):
        name = next(key for key, value in zip(JSON_KEYS, cells, strict=True) if _CONTROL.search(value))
        return RejectedRow(row_number, INVALID_VALUE, f"{name!r} holds a control character", cells)
    email = cells[0]
    refused = check_email(row_number, email, cells)
    if refused is not None:
        return refused
    for name, value in zip(JSON_KEYS[1:-1], cells[1:-1], strict=True):
        if len(value.strip() if name == "external_id" else value) > MAX_FIELD_LENGTH:
            return too_long(row_number, cells, name, value, MAX_FIELD_LENGTH)
    first_name, last_name, company, title, phone, external_id = cells[1:-1]
    return ValidRow(
        row_number, email, email.strip().lower(), first_name or None, last_name or None, company or None,
        title or None, phone or None, external_id.strip() or None, permission or None,  # type: ignore[arg-type]
    )


def contact_rows(elements: Sequence[Any]) -> list[ValidRow | RejectedRow]:
    """Row ``n`` is element ``n`` (from 1); every element is exactly one row, valid or refused."""
    return [contact_row(row_number, element) for row_number, element in enumerate(elements, start=1)]
