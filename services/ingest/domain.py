"""Import rules, free of I/O: the fields a column can be mapped to, the mapping an import is started with, and
which status an import's counters imply. (The rules for one row are in ``reading/checks.py``.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.events import CONTACT_FIELDS

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
"""Columns that state the email permission (as in HubSpot exports); see ``reading.checks.email_permission``."""

Target = Literal[StandardField, "external_id", ConsentField]
TARGETS: tuple[Target, ...] = (*STANDARD_FIELDS, "external_id", *CONSENT_FIELDS)
"""Every field a column can be mapped to; a column mapped to none of them is skipped."""
EXTRA_TARGETS: tuple[Target, ...] = ("external_id", *CONSENT_FIELDS)

MAX_DESCRIBED = 500
"""Characters of a header shown in a message (a header may be megabytes of junk)."""


class FileProblem(ValueError):
    """The file as a whole cannot be imported; the message is shown to the organizer as the import's error."""


@dataclass(frozen=True)
class ColumnMap:
    """Which column (0-based) holds each mapped field, and how many cells every row must have. This is the
    mapping an import is started with; it is stored as ``to_json()`` in ``imports.mapping``."""

    positions: dict[Target, int]
    width: int
    contact_positions: tuple[tuple[int, int], ...] = dataclasses.field(init=False, repr=False, compare=False)
    """(index in ``CONTACT_FIELDS``, column) of every mapped contact field, worked out once: every row needs it."""

    extra_positions: tuple[tuple[Target, int], ...] = dataclasses.field(init=False, repr=False, compare=False)
    """The mapped external id and consent columns."""

    email_position: int = dataclasses.field(init=False, repr=False, compare=False)
    """The email's column (-1 when none is mapped: then no row is valid)."""

    def __post_init__(self) -> None:
        mapped = tuple(
            (index, self.positions[name]) for index, name in enumerate(CONTACT_FIELDS) if name in self.positions
        )
        object.__setattr__(self, "contact_positions", mapped)
        extras = tuple((name, self.positions[name]) for name in EXTRA_TARGETS if name in self.positions)
        object.__setattr__(self, "extra_positions", extras)
        object.__setattr__(self, "email_position", self.positions.get("email", -1))

    def to_json(self) -> dict[str, Any]:
        return {"fields": dict(self.positions), "width": self.width}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnMap:
        return cls(positions={name: int(index) for name, index in data["fields"].items()}, width=data["width"])


def describe_columns(header: Sequence[str]) -> str:
    """The header's non-blank names, for messages that say what was found instead (cut short when long)."""
    described = ", ".join(repr(name.strip()[:100]) for name in header if name.strip()) or "none"
    return described if len(described) <= MAX_DESCRIBED else described[:MAX_DESCRIBED] + "…"


def no_email_column(header: Sequence[str]) -> FileProblem:
    return FileProblem(f"no column looks like an email address; columns found: {describe_columns(header)}")


def map_columns(header: Sequence[str]) -> ColumnMap:
    """The mapping for a header that names the fields exactly (``email``, ``first_name``... ``external_id``),
    case-insensitively after trimming; the first column of a name wins and other columns are skipped. Without
    an email column nothing can be imported."""
    positions: dict[Target, int] = {}
    for index, name in enumerate(header):
        wanted = name.strip().lower()
        for field in TARGETS:
            if wanted == field and field not in positions:
                positions[field] = index
    if "email" not in positions:
        raise FileProblem(f"the header row has no 'email' column (columns found: {describe_columns(header)})")
    return ColumnMap(positions=positions, width=len(header))


def next_status(total_rows: int | None, processed_rows: int, errors: int) -> Status:
    """The status an import's counters imply: still ``parsing`` until the whole file has been read (the total
    is unknown), ``processing`` until every row has an outcome, then ``processed`` or, if any row failed,
    ``error``."""
    if total_rows is None:
        return "parsing"
    if processed_rows < total_rows:
        return "processing"
    return "processed" if errors == 0 else "error"


def advance(
    current: Status, *, total_rows: int | None, processed_rows: int, errors: int, timed_out: bool = False
) -> Status:
    """The status after the counters changed. Only a file being read or rows being processed move on: an
    uploaded import waits to be started, and a finished one (also one failed as a whole file) stays put, except
    one that gave up waiting for identity's answers (``timed_out``): once late answers have come for every row,
    it ends as if they had come in time."""
    if current == "error" and timed_out and total_rows is not None and processed_rows >= total_rows:
        return next_status(total_rows, processed_rows, errors)
    if current not in ("parsing", "processing"):
        return current
    return next_status(total_rows, processed_rows, errors)


MAX_RANGES = 1000
SHOWN_RANGES = 10


def row_ranges(row_numbers: Iterable[int], *, limit: int = MAX_RANGES) -> list[tuple[int, int]]:
    """Ascending row numbers as [first, last] ranges of consecutive rows, the first ``limit`` of them."""
    ranges: list[tuple[int, int]] = []
    for number in row_numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], number)
        elif len(ranges) == limit:
            break
        else:
            ranges.append((number, number))
    return ranges


def merge_ranges(ranges: list[tuple[int, int]], more: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` followed by ``more`` (both ascending), joined where they touch, at most ``MAX_RANGES``."""
    if ranges and more and more[0][0] == ranges[-1][1] + 1:
        ranges = [*ranges[:-1], (ranges[-1][0], more[0][1])]
        more = more[1:]
    return (ranges + more)[:MAX_RANGES]


def describe_ranges(ranges: Sequence[tuple[int, int]], *, shown: int = SHOWN_RANGES) -> str:
    """``rows 3-7, 12, 15-20`` (and how many more ranges when there are more than ``shown``)."""
    text = ", ".join(f"{first}-{last}" if last > first else f"{first}" for first, last in ranges[:shown])
    more = len(ranges) - shown
    return f"rows {text}" + (f" and {more:,} more ranges" if more > 0 else "") if ranges else "no rows"


def no_answer(unanswered: int, ranges: Sequence[tuple[int, int]], *, deadline_seconds: float) -> str:
    """The import's error when identity did not answer its rows in time, even after they were published again."""
    which = f" ({describe_ranges(ranges)})" if ranges else ""
    return (
        f"identity did not answer {unanswered:,} row{'s' if unanswered != 1 else ''} within {deadline_seconds:g} s, "
        f"even after they were published again{which}; the other rows were counted. Answers that come later are "
        "still counted, and the import finishes once every row has one."
    )


@dataclass(frozen=True)
class Pace:
    """How fast an import's rows are answered, and how long the rest should take at that pace."""

    rows_per_second: float | None
    estimated_seconds_left: float | None


def pace(*, answered: int, expected: int | None, elapsed_seconds: float, finished: bool) -> Pace:
    """The average pace since the import started (``answered`` rows in ``elapsed_seconds``) and the seconds its
    ``expected`` rows still need at it: 0 once finished, unknown (None) before the first answer or while the
    file's size is unknown."""
    rate = answered / elapsed_seconds if answered and elapsed_seconds > 0 else None
    if finished:
        return Pace(rate, 0.0)
    if rate is None or expected is None:
        return Pace(rate, None)
    return Pace(rate, max(0, expected - answered) / rate)
