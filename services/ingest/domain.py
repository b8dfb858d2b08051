"""Import rules, free of I/O: which column holds which field, whether a row can be imported, and which
status an import's counters imply."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email

from shared.events import CONTACT_FIELDS, ContactField, EmailPermission

Status = Literal["uploaded", "parsing", "processing", "processed", "error"]
STATUSES: tuple[Status, ...] = ("uploaded", "parsing", "processing", "processed", "error")
FINISHED: frozenset[Status] = frozenset({"processed", "error"})
PARSABLE: frozenset[Status] = frozenset({"parsing"})
"""Statuses from which the file is (re)read: an uploaded import waits for its mapping to be confirmed and
``POST /v1/imports/{id}/start`` (or ``auto_start``) moves it to ``parsing``."""

Source = Literal["csv", "hubspot", "json", "mcp"]

StandardField = Literal["email", "first_name", "last_name", "company", "title", "phone"]
STANDARD_FIELDS: tuple[StandardField, ...] = ("email", *CONTACT_FIELDS)

ConsentField = Literal["marketing_contact_status", "unsubscribed_from_all_email"]
CONSENT_FIELDS: tuple[ConsentField, ...] = ("marketing_contact_status", "unsubscribed_from_all_email")
"""Columns that state the email permission (as in HubSpot exports); see ``email_permission``."""

Target = Literal[StandardField, "external_id", ConsentField]
TARGETS: tuple[Target, ...] = (*STANDARD_FIELDS, "external_id", *CONSENT_FIELDS)
"""Every field a column can be mapped to; a column mapped to none of them is skipped."""
_EXTRA_TARGETS: tuple[Target, ...] = ("external_id", *CONSENT_FIELDS)

MISSING_EMAIL = "MISSING_EMAIL"
INVALID_EMAIL = "INVALID_EMAIL"
VALUE_TOO_LONG = "VALUE_TOO_LONG"
COLUMN_COUNT_MISMATCH = "COLUMN_COUNT_MISMATCH"
NUL_CHARACTER = "NUL_CHARACTER"

MAX_EMAIL_LENGTH = 254
"""RFC 5321's limit on a forward path, less the angle brackets."""
MAX_FIELD_LENGTH = 255
"""Every other mapped value (names, company, title, phone, external id, consent cells)."""


class FileProblem(ValueError):
    """The file as a whole cannot be imported; the message is shown to the organizer as the import's error."""


@dataclass(frozen=True)
class ColumnMap:
    """Which column (0-based) holds each mapped field, and how many cells every row must have. This is the
    mapping an import is started with; it is stored as ``to_json()`` in ``imports.mapping``."""

    positions: dict[Target, int]
    width: int
    contact_positions: tuple[tuple[ContactField, int], ...] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    """The mapped contact fields and their columns, worked out once: ``check_row`` runs for every row."""

    extra_positions: tuple[tuple[Target, int], ...] = dataclasses.field(init=False, repr=False, compare=False)
    """The mapped external id and consent columns."""

    def __post_init__(self) -> None:
        mapped = tuple((name, self.positions[name]) for name in CONTACT_FIELDS if name in self.positions)
        object.__setattr__(self, "contact_positions", mapped)
        extras = tuple((name, self.positions[name]) for name in _EXTRA_TARGETS if name in self.positions)
        object.__setattr__(self, "extra_positions", extras)

    def to_json(self) -> dict[str, Any]:
        return {"fields": dict(self.positions), "width": self.width}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnMap:
        return cls(positions={name: int(index) for name, index in data["fields"].items()}, width=data["width"])


def describe_columns(header: Sequence[str]) -> str:
    """The header's non-blank names, for messages that say what was found instead."""
    return ", ".join(repr(name.strip()) for name in header if name.strip()) or "none"


def no_email_column(header: Sequence[str]) -> FileProblem:
    return FileProblem(f"no column looks like an email address; columns found: {describe_columns(header)}")


def map_columns(header: Sequence[str]) -> ColumnMap:
    """The mapping for a header that names the fields exactly (``email``, ``first_name``... ``external_id``),
    case-insensitively after trimming; the first column of a name wins and other columns are skipped. This is
    the mapping of a JSON import's file. Without an email column nothing can be imported."""
    positions: dict[Target, int] = {}
    for index, name in enumerate(header):
        wanted = name.strip().lower()
        for field in TARGETS:
            if wanted == field and field not in positions:
                positions[field] = index
    if "email" not in positions:
        raise FileProblem(f"the header row has no 'email' column (columns found: {describe_columns(header)})")
    return ColumnMap(positions=positions, width=len(header))


@dataclass(frozen=True)
class ValidRow:
    """A row to hand on: the email as received, its matching key, the other mapped fields (blank = None), the
    source system's id for the record and the email permission the file states (None = not stated)."""

    row_number: int
    email: str
    key: str
    fields: dict[ContactField, str | None]
    external_id: str | None = None
    email_permission: EmailPermission | None = None


@dataclass(frozen=True)
class RejectedRow:
    """A row ingest refused, with the cells exactly as read so the organizer can fix and re-import it."""

    row_number: int
    code: str
    message: str
    cells: list[str]


def matching_key(email: str) -> str:
    """What identity matches on (whitespace stripped, lowercased): rows for one person share a partition."""
    return email.strip().lower()


def is_blank(cells: Sequence[str]) -> bool:
    """Empty lines and lines of empty cells are skipped: they are not rows of the import."""
    return not "".join(cells).strip()


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
    if at and len(local) <= 64 and len(email) <= MAX_EMAIL_LENGTH and _SIMPLE_LOCAL_PART.fullmatch(local):
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


_NO_FIELDS: dict[ContactField, str | None] = dict.fromkeys(CONTACT_FIELDS)


def _too_long(row_number: int, cells: list[str], field: str, value: str, limit: int) -> RejectedRow:
    return RejectedRow(
        row_number, VALUE_TOO_LONG, f"{field} is {len(value)} characters long; the limit is {limit}", cells
    )


def check_row(row_number: int, cells: list[str], columns: ColumnMap) -> ValidRow | RejectedRow:
    """Each row is judged on its own, so one bad row never blocks the rest: the cell count, NUL characters,
    the email (present, at most ``MAX_EMAIL_LENGTH``, valid syntax) and every mapped value's length."""
    if len(cells) != columns.width:
        return RejectedRow(
            row_number,
            COLUMN_COUNT_MISMATCH,
            f"expected {columns.width} cells as in the header row, found {len(cells)}",
            cells,
        )
    if "\x00" in "".join(cells):
        return RejectedRow(row_number, NUL_CHARACTER, "the row contains a NUL character", cells)
    positions = columns.positions
    email = cells[positions["email"]]
    trimmed = email.strip()
    if not trimmed:
        return RejectedRow(row_number, MISSING_EMAIL, "the email cell is empty", cells)
    if len(trimmed) > MAX_EMAIL_LENGTH:
        return _too_long(row_number, cells, "email", trimmed, MAX_EMAIL_LENGTH)
    problem = email_problem(trimmed)
    if problem is not None:
        return RejectedRow(row_number, INVALID_EMAIL, f"{trimmed!r} is not a valid email address: {problem}", cells)
    fields = dict(_NO_FIELDS)
    for name, position in columns.contact_positions:
        value = cells[position]
        if value:
            if len(value) > MAX_FIELD_LENGTH:
                return _too_long(row_number, cells, name, value, MAX_FIELD_LENGTH)
            fields[name] = value
    if not columns.extra_positions:
        return ValidRow(row_number=row_number, email=email, key=matching_key(email), fields=fields)
    extras: dict[Target, str | None] = dict.fromkeys(_EXTRA_TARGETS)
    for target, column in columns.extra_positions:
        extra = cells[column].strip()
        if len(extra) > MAX_FIELD_LENGTH:
            return _too_long(row_number, cells, target, extra, MAX_FIELD_LENGTH)
        extras[target] = extra or None
    permission = (
        email_permission(extras["marketing_contact_status"], extras["unsubscribed_from_all_email"])
        if "marketing_contact_status" in positions or "unsubscribed_from_all_email" in positions
        else None
    )
    return ValidRow(
        row_number=row_number, email=email, key=matching_key(email), fields=fields,
        external_id=extras["external_id"], email_permission=permission,
    )


def next_status(total_rows: int | None, processed_rows: int, errors: int) -> Status:
    """The status an import's counters imply: still ``parsing`` until the whole file has been read (the total
    is unknown), ``processing`` until every row has an outcome, then ``processed`` or, if any row failed,
    ``error``."""
    if total_rows is None:
        return "parsing"
    if processed_rows < total_rows:
        return "processing"
    return "processed" if errors == 0 else "error"


def advance(current: Status, *, total_rows: int | None, processed_rows: int, errors: int) -> Status:
    """The status after the counters changed. Only a file being read or rows being processed move on: an
    uploaded import waits to be started, and a finished one (also one failed as a whole file) stays put."""
    if current not in ("parsing", "processing"):
        return current
    return next_status(total_rows, processed_rows, errors)
