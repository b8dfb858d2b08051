"""Reading an uploaded file: find its encoding, delimiter and header (``inspect_file``), then stream its records
with bounded memory and turn every row into an event, in batches (``RowReader``). Blocking: call from a thread."""

from __future__ import annotations

import contextlib
import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.ingest.domain import ColumnMap, FileProblem, RejectedRow, ValidRow, check_row, is_blank, map_columns
from services.ingest.file_format import HEAD_BYTES, STRAY_BYTES, FileFormat, detect_format
from shared.envelope import Envelope, Headers
from shared.events import ImportRowReceivedV1
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage

SOURCE = "kagibag-contacts/ingest"
ROW_EVENT_NAMESPACE = uuid.UUID("5b0f6c1e-8f5e-4f43-9d59-3c0a6f7e2b14")
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class FileLimits:
    """What one file may hold (defaults like HubSpot's); beyond them the import fails with a clear error."""

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_048_576
    max_columns: int = 1_000


@dataclass(frozen=True)
class Inspection:
    """What the head of a file shows: its format, the header row and the first data records (for mapping)."""

    format: FileFormat
    header: list[str]
    samples: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "encoding": self.format.encoding,
            "delimiter": self.format.delimiter,
            "quotechar": self.format.quotechar,
            "header": self.header,
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inspection:
        return cls(
            format=FileFormat(encoding=data["encoding"], delimiter=data["delimiter"], quotechar=data["quotechar"]),
            header=list(data["header"]),
            samples=[list(sample) for sample in data["samples"]],
        )


def inspect_file(path: Path, *, limits: FileLimits = FileLimits()) -> Inspection:
    """The file's format, header and first records (blocking); ``FileProblem`` when it cannot be a CSV of
    contacts: too large, empty, binary, header only, too many columns or broken quoting in its first records."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise FileProblem(f"the file has {size:,} bytes; at most {limits.max_bytes:,} are allowed: split it")
    with path.open("rb") as file:
        fmt = detect_format(file.read(HEAD_BYTES))
    with open_records(path, fmt) as records:
        header = _header(records, limits)
        samples: list[list[str]] = []
        for cells in records:
            if not is_blank(cells):
                samples.append(cells)
            if len(samples) >= SAMPLE_ROWS:
                break
    if not samples:
        raise FileProblem("the file has a header row but no rows of contacts below it")
    return Inspection(format=fmt, header=header, samples=samples)


class Records:
    """A file's CSV records as lists of cells, read as a stream; a CSV error becomes a ``FileProblem`` that
    says where (record and line) and what."""

    def __init__(self, file: IO[str], fmt: FileFormat) -> None:
        self._file = file
        self._reader = csv.reader(file, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
        self.records_read = 0

    def __iter__(self) -> Iterator[list[str]]:
        return self

    def __next__(self) -> list[str]:
        try:
            cells = next(self._reader)
        except csv.Error as error:
            raise FileProblem(_csv_problem(error, record=self.records_read + 1, line=self._reader.line_num)) from error
        self.records_read += 1
        return cells

    def close(self) -> None:
        self._file.close()


def _csv_problem(error: csv.Error, *, record: int, line: int) -> str:
    reason = str(error)
    if "field larger than field limit" in reason or "unexpected end of data" in reason:
        reason = "a quoted value is never closed (check the quotes around that line)"
    return f"the file is not valid CSV at record {record} (line {line}): {reason}"


@contextlib.contextmanager
def open_records(path: Path, fmt: FileFormat) -> Iterator[Records]:
    file = path.open(encoding=fmt.encoding, errors=STRAY_BYTES, newline="")
    records = Records(file, fmt)
    try:
        yield records
    finally:
        records.close()


def _header(records: Iterator[list[str]], limits: FileLimits) -> list[str]:
    header = next(records, None)
    if header is None or is_blank(header):
        raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
    if len(header) > limits.max_columns:
        raise FileProblem(f"the file has {len(header):,} columns; at most {limits.max_columns:,} are allowed")
    return header


def survey(path: Path, fmt: FileFormat, limits: FileLimits) -> int:
    """Read the whole file once before any row is handed on: its number of rows (blank records are not
    rows), or a ``FileProblem`` for broken quoting anywhere, a header only, or more rows than allowed."""
    rows = 0
    with open_records(path, fmt) as records:
        _header(records, limits)
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


def row_event_id(import_id: str, row_number: int) -> str:
    """The same row of the same import always travels under the same event id, so identity applies a row
    published twice (after a crash) only once: ``uuid.uuid5(ROW_EVENT_NAMESPACE, "<import>/<row>")``."""
    return derived_id(import_id, row_number, namespace=ROW_EVENT_NAMESPACE)


@dataclass
class Batch:
    """What one read produced: events to publish, rows refused, and where the reader now stands."""

    messages: list[OutgoingMessage] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    last_row: int = 0
    done: bool = False


class RowReader:
    """A CSV file read record by record with bounded memory. Blocking: call it from a worker thread.

    Row numbers count data records from 1 (the record after the header). Blank records keep their number but
    are not rows of the import. Rows up to ``skip_through`` were handled by an earlier attempt and are only
    counted."""

    def __init__(
        self,
        path: Path,
        *,
        import_id: str,
        organizer_id: str,
        topic: str,
        inspection: Inspection | None = None,
        columns: ColumnMap | None = None,
        limits: FileLimits = FileLimits(),
        skip_through: int = 0,
    ) -> None:
        self._import_id = import_id
        self._organizer_id = organizer_id
        self._topic = topic
        self._skip_through = skip_through
        fmt = (inspection or inspect_file(path, limits=limits)).format
        survey(path, fmt, limits)  # refuses the file before any row is handed on
        self._records = Records(path.open(encoding=fmt.encoding, errors=STRAY_BYTES, newline=""), fmt)
        self._row_number = 0
        self._id_header = 0
        self.total_rows = 0
        try:
            header = _header(self._records, limits)
            self._columns = columns if columns is not None else map_columns(header)
        except BaseException:
            self.close()
            raise

    def _message(self, row: ValidRow, headers: Headers) -> OutgoingMessage:
        """The row's event in the batch's envelope, under the row's own id."""
        event = ImportRowReceivedV1(
            import_id=self._import_id,
            organizer_id=self._organizer_id,
            row_number=row.row_number,
            email=row.email,
            **row.fields,
            external_id=row.external_id,
            email_permission=row.email_permission,
        )
        row_headers = headers.copy()
        row_headers[self._id_header] = ("ce_id", row_event_id(self._import_id, row.row_number).encode())
        value = event.model_dump_json().encode()
        return OutgoingMessage(topic=self._topic, key=row.key.encode(), value=value, headers=row_headers)

    def _batch_headers(self) -> Headers:
        """Every row of a batch travels in the same envelope except for its id (building an envelope per row
        was a fifth of the reading cost)."""
        envelope = Envelope(
            id="", type=ImportRowReceivedV1.TYPE, source=SOURCE, subject=self._import_id,
            correlation_id=self._import_id,
        )
        headers = envelope.to_headers()
        self._id_header = next(i for i, (name, _) in enumerate(headers) if name == "ce_id")
        return headers

    def next_batch(self, size: int) -> Batch:
        """Up to ``size`` rows of the import (blank records and already-handled rows do not count)."""
        batch = Batch()
        headers = self._batch_headers()
        handled = 0
        while handled < size:
            cells = next(self._records, None)
            if cells is None:
                batch.done = True
                break
            self._row_number += 1
            if is_blank(cells):
                continue
            self.total_rows += 1
            if self._row_number <= self._skip_through:
                continue
            handled += 1
            checked = check_row(self._row_number, cells, self._columns)
            if isinstance(checked, ValidRow):
                batch.messages.append(self._message(checked, headers))
            else:
                batch.rejected.append(checked)
        batch.last_row = self._row_number
        return batch

    def close(self) -> None:
        self._records.close()
