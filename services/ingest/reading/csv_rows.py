"""An uploaded CSV read row by row: every record checked against the import's mapping, in batches of valid and
refused rows. Blocking: call it from a worker thread."""

from __future__ import annotations

import csv
from pathlib import Path

from services.ingest.domain import ColumnMap, map_columns
from services.ingest.reading.checks import check_row
from services.ingest.reading.file_format import STRAY_BYTES
from services.ingest.reading.records import (
    DEFAULT_LIMITS,
    FileLimits,
    Inspection,
    Records,
    inspect_file,
    read_header,
    survey,
)
from services.ingest.reading.rows import RowBatch, ValidRow


class CsvRows:
    """A CSV file read record by record with bounded memory. The whole file is surveyed first (``survey``), so
    a file refused as a whole hands on no row at all.

    Row numbers count data records from 1 (the record after the header). Blank records keep their number but
    are not rows of the import. Rows up to ``skip_through`` were handled by an earlier attempt and are only
    counted."""

    def __init__(
        self,
        path: Path,
        *,
        inspection: Inspection | None = None,
        columns: ColumnMap | None = None,
        limits: FileLimits = DEFAULT_LIMITS,
        skip_through: int = 0,
    ) -> None:
        self._skip_through = skip_through
        fmt = (inspection or inspect_file(path, limits=limits)).format
        self.expected_rows = survey(path, fmt, limits)  # refuses the file before any row is handed on
        self._records = Records(path.open(encoding=fmt.encoding, errors=STRAY_BYTES, newline=""), fmt)
        self._row_number = 0
        self.total_rows = 0
        try:
            header = read_header(self._records, limits)
            self._columns = columns if columns is not None else map_columns(header)
        except BaseException:
            self.close()
            raise

    def next_batch(self, size: int) -> RowBatch:
        """Up to ``size`` rows of the import (blank records and already-handled rows do not count)."""
        batch = RowBatch(done=True)
        valid, rejected = batch.valid, batch.rejected
        columns, skip_through = self._columns, self._skip_through
        row_number, rows, handled = self._row_number, self.total_rows, 0
        try:
            for cells in self._records.reader:  # the hot loop: no call per record but the check
                row_number += 1
                if not "".join(cells).strip():  # reading.rows.is_blank, inlined
                    continue
                rows += 1
                if row_number <= skip_through:
                    continue
                checked = check_row(row_number, cells, columns)
                if type(checked) is ValidRow:
                    valid.append(checked)
                else:
                    rejected.append(checked)  # type: ignore[arg-type]
                handled += 1
                if handled == size:
                    batch.done = False
                    break
        except csv.Error as error:
            self._records.records_read = row_number
            raise self._records.problem(error) from error
        finally:
            self._row_number, self.total_rows = row_number, rows
        batch.last_row = row_number
        return batch

    def close(self) -> None:
        self._records.close()
