"""Whether one row can be imported (pure): its cell count, NUL characters, the email (present, not too long,
valid syntax), every mapped value's length, and the email permission the consent columns state."""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from services.ingest.domain import EXTRA_TARGETS, ColumnMap, Target
from services.ingest.reading.rows import (
    COLUMN_COUNT_MISMATCH,
    INVALID_EMAIL,
    MISSING_EMAIL,
    NUL_CHARACTER,
    VALUE_TOO_LONG,
    RejectedRow,
    ValidRow,
)
from shared.events import CONTACT_FIELDS, EmailPermission

MAX_EMAIL_LENGTH = 254
"""RFC 5321's limit on a forward path, less the angle brackets."""
MAX_FIELD_LENGTH = 255
"""Every other mapped value (names, company, title, phone, external id, consent cells)."""

_SIMPLE_LOCAL_PART = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")
"""A dot-atom of plain ASCII characters: always a valid local part (up to 64 characters), so such addresses
only need their domain checked, and domains repeat (see ``_domain_problem``)."""


@lru_cache(maxsize=65_536)
def _domain_problem(domain: str) -> str | None:
    """The validator's objection to a domain (None = fine), remembered: a file has few distinct domains."""
    try:
        validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return None


def email_problem(email: str) -> str | None:
    """Why ``email`` (already trimmed) is not a syntactically valid address, in the validator's words; None if
    it is. Plain ASCII local parts take a fast path that reaches the same verdict as ``validate_email``."""
    local, at, domain = email.rpartition("@")
    if (
        at
        and len(local) <= 64
        and len(email) <= MAX_EMAIL_LENGTH
        and ((local.isalnum() and local.isascii()) or _SIMPLE_LOCAL_PART.fullmatch(local))
    ):
        return _domain_problem(domain)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        return str(error)
    return None


_TRUE = frozenset({"true", "yes", "y", "1", "x"})
_MARKETING = frozenset({"marketing contact", "marketing", "true", "set to non-marketing on next update"})
_NON_MARKETING = frozenset({"non-marketing contact", "non-marketing", "false", "set to marketing on next update"})


def email_permission(marketing_status: str | None, unsubscribed_from_all: str | None) -> EmailPermission | None:
    """What a HubSpot-style row says about email permission. An unsubscribe from all email wins (``true``,
    ``yes``...): ``unsubscribed``. Otherwise a marketing contact (``Marketing contact``, ``true``, or one set to
    become non-marketing at the next update, which still is one today) is ``subscribed``; a non-marketing
    contact is ``unknown`` (no consent stated, but no unsubscribe either). Blank or unrecognised cells state
    nothing: None."""
    if unsubscribed_from_all and unsubscribed_from_all.strip().lower() in _TRUE:
        return "unsubscribed"
    status = (marketing_status or "").strip().lower()
    if status in _MARKETING:
        return "subscribed"
    if status in _NON_MARKETING:
        return "unknown"
    return None


def too_long(row_number: int, cells: list[str], field: str, value: str, limit: int) -> RejectedRow:
    return RejectedRow(
        row_number, VALUE_TOO_LONG, f"{field} is {len(value)} characters long; the limit is {limit}", cells
    )


def check_email(row_number: int, email: str, cells: list[str]) -> RejectedRow | None:
    """The email's own checks: present, at most ``MAX_EMAIL_LENGTH`` once trimmed, valid syntax."""
    trimmed = email.strip()
    if not trimmed:
        return RejectedRow(row_number, MISSING_EMAIL, "the email cell is empty", cells)
    if len(trimmed) > MAX_EMAIL_LENGTH:
        return too_long(row_number, cells, "email", trimmed, MAX_EMAIL_LENGTH)
    problem = email_problem(trimmed)
    if problem is not None:
        return RejectedRow(row_number, INVALID_EMAIL, f"{trimmed!r} is not a valid email address: {problem}", cells)
    return None


def check_row(row_number: int, cells: list[str], columns: ColumnMap) -> ValidRow | RejectedRow:
    """Each row is judged on its own, so one bad row never blocks the rest: the cell count, NUL characters,
    the email and every mapped value's length."""
    if len(cells) != columns.width:
        return RejectedRow(
            row_number,
            COLUMN_COUNT_MISMATCH,
            f"expected {columns.width} cells as in the header row, found {len(cells)}",
            cells,
        )
    if "\x00" in "".join(cells):
        return RejectedRow(row_number, NUL_CHARACTER, "the row contains a NUL character", cells)
    email = cells[columns.email_position]
    key = email.strip()
    if not key or len(key) > MAX_EMAIL_LENGTH or email_problem(key) is not None:
        refused = check_email(row_number, email, cells)  # the same checks, now saying which failed
        assert refused is not None
        return refused
    key = key.lower()
    values: list[str | None] = [None, None, None, None, None]
    for index, position in columns.contact_positions:
        value = cells[position]
        if value:
            if len(value) > MAX_FIELD_LENGTH:
                return too_long(row_number, cells, CONTACT_FIELDS[index], value, MAX_FIELD_LENGTH)
            values[index] = value
    first_name, last_name, company, title, phone = values
    if not columns.extra_positions:
        return ValidRow(row_number, email, key, first_name, last_name, company, title, phone)
    extras: dict[Target, str | None] = dict.fromkeys(EXTRA_TARGETS)
    for target, column in columns.extra_positions:
        extra = cells[column].strip()
        if len(extra) > MAX_FIELD_LENGTH:
            return too_long(row_number, cells, target, extra, MAX_FIELD_LENGTH)
        extras[target] = extra or None
    positions = columns.positions
    permission = (
        email_permission(extras["marketing_contact_status"], extras["unsubscribed_from_all_email"])
        if "marketing_contact_status" in positions or "unsubscribed_from_all_email" in positions
        else None
    )
    return ValidRow(
        row_number, email, key, first_name, last_name, company, title, phone, extras["external_id"], permission
    )

