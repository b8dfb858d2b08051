"""A CSV file read as a stream of records with bounded memory: its format, header and first records
(``inspect_file``, for the mapping step), and a first pass over the whole file (``survey``) that finds every
file-level problem before any row is handed on, a record too large among them: a single line of 50 MB, or an
unclosed quote that would swallow the rest of the file, is refused once it passes ``max_record_chars`` without
ever being held whole. Blocking: call from a thread."""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from services.ingest.domain import FileProblem
from services.ingest.reading.file_format import HEAD_BYTES, STRAY_BYTES, FileFormat, detect_format
from services.ingest.reading.rows import is_blank

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class FileLimits:
    """What one file may hold (defaults like HubSpot's); beyond them the import fails with a clear error."""

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_048_576
    max_columns: int = 1_000
    max_record_chars: int = 1024 * 1024


DEFAULT_LIMITS = FileLimits()
MAX_SHOWN_CHARS = 500
"""Characters of a header name or sample value kept in the inspection (shown on the mapping screen)."""

MAX_RECORD_CHARS = 64 * 1024 * 1024
"""The largest record limit a setting may choose."""

csv.field_size_limit(MAX_RECORD_CHARS)  # a value may be as large as a record: the record limit rules


@dataclass(frozen=True)
class Inspection:
    """What the head of a file shows: its format, the header row and the first data records (for mapping)."""

    format: FileFormat
    header: list[str]
    samples: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        """What is stored (and shown): names and sample values cut short, NUL characters replaced."""
        return {
            "encoding": self.format.encoding,
            "delimiter": self.format.delimiter,
            "quotechar": self.format.quotechar,
            "header": [_shown(name) for name in self.header],
            "samples": [[_shown(cell) for cell in sample[: len(self.header) + 1]] for sample in self.samples],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inspection:
        return cls(
            format=FileFormat(encoding=data["encoding"], delimiter=data["delimiter"], quotechar=data["quotechar"]),
            header=list(data["header"]),
            samples=[list(sample) for sample in data["samples"]],
        )


def inspect_file(path: Path, *, limits: FileLimits = DEFAULT_LIMITS) -> Inspection:
    """The file's format, header and first records (blocking); ``FileProblem`` when it cannot be a CSV of
    contacts: too large, empty, binary, header only, too many columns or broken quoting in its first records."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise FileProblem(f"the file has {size:,} bytes; at most {limits.max_bytes:,} are allowed: split it")
    with path.open("rb") as file:
        fmt = detect_format(file.read(HEAD_BYTES))
    with open_records(path, fmt, limits) as records:
        header = read_header(records, limits)
        samples: list[list[str]] = []
        for cells in records:
            if not is_blank(cells):
                samples.append(cells)
            if len(samples) >= SAMPLE_ROWS:
                break
    if not samples:
        raise FileProblem("the file has a header row but no rows of contacts below it")
    return Inspection(format=fmt, header=header, samples=samples)


def _shown(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


class RecordTooLarge(FileProblem):
    pass


class Records:
    """A file's CSV records as lists of cells, read as a stream; a CSV error becomes a ``FileProblem`` that
    says where (record and line) and what. With ``limits``, a record of more than ``max_record_chars``
    characters or ``max_columns`` cells is refused as soon as it shows (``RecordTooLarge``)."""

    def __init__(self, file: IO[str], fmt: FileFormat, limits: FileLimits | None = None) -> None:
        self._file = file
        self._limits = limits
        self._record_chars = 0
        lines: Iterator[str] | IO[str] = file if limits is None else self._bounded_lines(limits.max_record_chars)
        self.reader = csv.reader(lines, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
        """The records themselves, for a loop that counts them (``records_read``) and calls ``problem``."""
        self.records_read = 0

    def _bounded_lines(self, limit: int) -> Iterator[str]:
        """The file's lines, never reading more than ``limit`` characters of one record."""
        while line := self._file.readline(limit + 1):
            self._record_chars += len(line)
            if self._record_chars > limit:
                raise RecordTooLarge(
                    f"the file is not valid CSV at record {self.records_read + 1} (line {self.reader.line_num + 1}): "
                    f"the row is too large (more than {limit:,} characters); if it should not be this long, "
                    "check the quotes around that line"
                )
            yield line

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        try:
            cells = next(self.reader)
        except csv.Error as error:
            raise self.problem(error) from error
        self.records_read += 1
        self._record_chars = 0
        if self._limits is not None and len(cells) > self._limits.max_columns and self.records_read > 1:
            raise RecordTooLarge(
                f"the file is not valid CSV at record {self.records_read} (line {self.reader.line_num}): the row is "
                f"too large ({len(cells):,} cells; the header allows at most {self._limits.max_columns:,} columns)"
            )
        return cells

    def problem(self, error: csv.Error) -> FileProblem:
        """What a CSV error at the next record means, saying where."""
        return FileProblem(_csv_problem(error, record=self.records_read + 1, line=self.reader.line_num))

    def close(self) -> None:
        self._file.close()


def _csv_problem(error: csv.Error, *, record: int, line: int) -> str:
    reason = str(error)
    if "field larger than field limit" in reason or "unexpected end of data" in reason:
        reason = "a quoted value is never closed (check the quotes around that line)"
    return f"the file is not valid CSV at record {record} (line {line}): {reason}"


@contextlib.contextmanager
def open_records(path: Path, fmt: FileFormat, limits: FileLimits | None = None) -> Iterator[Records]:
    file = path.open(encoding=fmt.encoding, errors=STRAY_BYTES, newline="")
    records = Records(file, fmt, limits)
    try:
        yield records
    finally:
        records.close()


def read_header(records: Iterator[list[str]], limits: FileLimits) -> list[str]:
    header = next(records, None)
    if header is None or is_blank(header):
        raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
    if len(header) > limits.max_columns:
        raise FileProblem(f"the file has {len(header):,} columns; at most {limits.max_columns:,} are allowed")
    for index, name in enumerate(header):
        if "\x00" in name:
            raise FileProblem(
                f"the header row has a NUL character in column {index + 1}: the file is damaged or not text as "
                "it seems (save it as CSV UTF-8 and upload it again)"
            )
    return header


def survey(path: Path, fmt: FileFormat, limits: FileLimits) -> int:
    """Read the whole file once before any row is handed on: its number of rows (blank records are not
    rows), or a ``FileProblem`` for broken quoting anywhere, a header only, or more rows than allowed."""
    rows = 0
    with open_records(path, fmt, limits) as records:
        read_header(records, limits)
        for cells in records:
            if not is_blank(cells):
                rows += 1
                if rows > limits.max_rows:
                    raise FileProblem(
                        f"the file has more than {limits.max_rows:,} rows, the most one import takes: split it"
                    )
    if rows == 0:
        raise FileProblem("the file has a header row but no rows of contacts below it")
    return rows
