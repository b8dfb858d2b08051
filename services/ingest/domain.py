"""Import rules, free of I/O: which column holds which field, whether a row can be imported, and which
status an import's counters imply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shared.events import CONTACT_FIELDS, ContactField, EmailPermission

Status = Literal["uploaded", "parsing", "processing", "processed", "error"]
STATUSES: tuple[Status, ...] = ("uploaded", "parsing", "processing", "processed", "error")
FINISHED: frozenset[Status] = frozenset({"processed", "error"})
PARSABLE: frozenset[Status] = frozenset({"uploaded", "parsing"})
"""Statuses from which the file is (re)read. ``uploaded`` is in it while imports start on upload; once a
mapping step exists, an uploaded import waits for its mapping instead."""

StandardField = Literal["email", "first_name", "last_name", "company", "title", "phone"]
STANDARD_FIELDS: tuple[StandardField, ...] = ("email", *CONTACT_FIELDS)

MISSING_EMAIL = "MISSING_EMAIL"
COLUMN_COUNT_MISMATCH = "COLUMN_COUNT_MISMATCH"
NUL_CHARACTER = "NUL_CHARACTER"


class FileProblem(ValueError):
    """The file as a whole cannot be imported; the message is shown to the organizer as the import's error."""


@dataclass(frozen=True)
class ColumnMap:
    """Which column (0-based) holds each mapped field, and how many cells every row must have."""

    positions: dict[StandardField, int]
    width: int


def map_columns(header: Sequence[str]) -> ColumnMap:
    """Header names are matched to standard field names case-insensitively after trimming; the first column
    of a name wins and unknown columns are ignored. Without an email column nothing can be imported."""
    positions: dict[StandardField, int] = {}
    for index, name in enumerate(header):
        wanted = name.strip().lower()
        for field in STANDARD_FIELDS:
            if wanted == field and field not in positions:
                positions[field] = index
    if "email" not in positions:
        found = ", ".join(repr(name.strip()) for name in header if name.strip()) or "none"
        raise FileProblem(f"the header row has no 'email' column (columns found: {found})")
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


def check_row(row_number: int, cells: list[str], columns: ColumnMap) -> ValidRow | RejectedRow:
    """Each row is judged on its own, so one bad row never blocks the rest."""
    if len(cells) != columns.width:
        return RejectedRow(
            row_number,
            COLUMN_COUNT_MISMATCH,
            f"expected {columns.width} cells as in the header row, found {len(cells)}",
            cells,
        )
    if any("\x00" in cell for cell in cells):
        return RejectedRow(row_number, NUL_CHARACTER, "the row contains a NUL character", cells)
    email = cells[columns.positions["email"]]
    if not email.strip():
        return RejectedRow(row_number, MISSING_EMAIL, "the email cell is empty", cells)
    fields: dict[ContactField, str | None] = {}
    for field in CONTACT_FIELDS:
        position = columns.positions.get(field)
        fields[field] = (cells[position] or None) if position is not None else None
    return ValidRow(row_number=row_number, email=email, key=matching_key(email), fields=fields)


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
