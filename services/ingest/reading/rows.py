"""What reading a file yields: valid rows to hand on, rows refused with a reason, in batches. Plain values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from shared.events import EmailPermission

MISSING_EMAIL = "MISSING_EMAIL"
INVALID_EMAIL = "INVALID_EMAIL"
VALUE_TOO_LONG = "VALUE_TOO_LONG"
COLUMN_COUNT_MISMATCH = "COLUMN_COUNT_MISMATCH"
NUL_CHARACTER = "NUL_CHARACTER"
NOT_AN_OBJECT = "NOT_AN_OBJECT"
INVALID_VALUE = "INVALID_VALUE"


class ValidRow(NamedTuple):
    """A row to hand on: the email as received, its matching key, the contact fields (blank = None), the source
    system's id for the record and the email permission the file states (None = not stated). A tuple: a file
    has a million of them."""

    row_number: int
    email: str
    key: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    external_id: str | None = None
    email_permission: EmailPermission | None = None


@dataclass(frozen=True)
class RejectedRow:
    """A row ingest refused, with the cells as read so the organizer can fix and re-import it."""

    row_number: int
    code: str
    message: str
    cells: list[str]


@dataclass
class RowBatch:
    """What one read produced: rows to hand on, rows refused, and where the reader now stands (the row number
    of the last record read: the checkpoint once the batch is handled)."""

    valid: list[ValidRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    last_row: int = 0
    done: bool = False


def matching_key(email: str) -> str:
    """What identity matches on (whitespace stripped, lowercased): rows for one person share a partition."""
    return email.strip().lower()


def is_blank(cells: Sequence[str]) -> bool:
    """Empty lines and lines of empty cells are skipped: they are not rows of the import."""
    return not "".join(cells).strip()


class RowSource(Protocol):
    """A file being read for the importer: a CSV (``csv_rows.CsvRows``) or a JSON import's rows
    (``row_file.RowFile``)."""

    total_rows: int
    """Rows read so far (after the last batch: the file's total)."""

    expected_rows: int
    """The file's rows, known before any is handed on."""

    def next_batch(self, size: int) -> RowBatch: ...

    def close(self) -> None: ...
