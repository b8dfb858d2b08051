"""Reading an uploaded file: find its encoding, delimiter and header (``inspect_file``), then stream its records
with bounded memory and turn every row into an event, in batches (``RowReader``). Blocking: call from a thread."""

from __future__ import annotations

import codecs
import csv
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.ingest.domain import ColumnMap, FileProblem, RejectedRow, ValidRow, check_row, is_blank, map_columns
from shared.envelope import Envelope, Headers
from shared.events import ImportRowReceivedV1
from shared.inbox import derived_id
from shared.kafka import OutgoingMessage

SOURCE = "kagibag-contacts/ingest"
ROW_EVENT_NAMESPACE = uuid.UUID("5b0f6c1e-8f5e-4f43-9d59-3c0a6f7e2b14")
READ_CHUNK = 1024 * 1024
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class FileLimits:
    """What one file may hold (defaults like HubSpot's); beyond them the import fails with a clear error."""

    max_bytes: int = 512 * 1024 * 1024
    max_rows: int = 1_048_576
    max_columns: int = 1_000


@dataclass(frozen=True)
class FileFormat:
    """How to read a file: a Python codec name (``utf-8-sig``, ``utf-16``, ``cp1252``...) and the CSV dialect."""

    encoding: str = "utf-8-sig"
    delimiter: str = ","
    quotechar: str = '"'


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
    """The file's format, header and sample records; ``FileProblem`` when it cannot be a CSV of contacts."""
    fmt = FileFormat()
    with path.open(encoding=fmt.encoding, newline="") as file:
        records = csv.reader(file, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
        header = next(records, None)
        if header is None or is_blank(header):
            raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
        samples: list[list[str]] = []
        for cells in records:
            if not is_blank(cells):
                samples.append(cells)
            if len(samples) >= SAMPLE_ROWS:
                break
    return Inspection(format=fmt, header=header, samples=samples)


def row_event_id(import_id: str, row_number: int) -> str:
    """The same row of the same import always travels under the same event id, so identity applies a row
    published twice (after a crash) only once: ``uuid.uuid5(ROW_EVENT_NAMESPACE, "<import>/<row>")``."""
    return derived_id(import_id, row_number, namespace=ROW_EVENT_NAMESPACE)


def check_utf8(path: Path) -> None:
    """Raise ``FileProblem`` unless the whole file is UTF-8, before any row is handed on (blocking)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as file:
        while chunk := file.read(READ_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise FileProblem(
                    f"the file is not UTF-8 text (invalid byte at offset {offset + error.start}); "
                    "save it as CSV UTF-8 and upload it again"
                ) from error
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            raise FileProblem("the file is not UTF-8 text (it ends in the middle of a character)") from error


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
        fmt = inspection.format if inspection is not None else FileFormat()
        self._limits = limits
        self._file: IO[str] = path.open(encoding=fmt.encoding, newline="")
        self._records = csv.reader(self._file, delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
        self._row_number = 0
        self._id_header = 0
        self.total_rows = 0
        try:
            header = self._next()
            if header is None or is_blank(header):
                raise FileProblem("the file is empty: expected a header row naming the columns, with 'email'")
            self._columns = columns if columns is not None else map_columns(header)
        except BaseException:
            self.close()
            raise

    def _next(self) -> list[str] | None:
        try:
            return next(self._records, None)
        except csv.Error as error:
            where = f"record {self._row_number + 1}"
            raise FileProblem(f"the file is not valid CSV ({where}): {error}") from error

    def _message(self, row: ValidRow, headers: Headers) -> OutgoingMessage:
        """The row's event in the batch's envelope, under the row's own id."""
        event = ImportRowReceivedV1(
            import_id=self._import_id,
            organizer_id=self._organizer_id,
            row_number=row.row_number,
            email=row.email,
            **row.fields,
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
            cells = self._next()
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
        self._file.close()
