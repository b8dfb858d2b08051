"""Which reader reads an import's file: a JSON import's stored rows, or an uploaded CSV with the mapping it was
started with. Blocking: call from a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.ingest.domain import ColumnMap
from services.ingest.reading.csv_rows import CsvRows
from services.ingest.reading.records import FileLimits, Inspection
from services.ingest.reading.row_file import RowFile
from services.ingest.reading.rows import RowSource


def open_rows(
    path: Path, *, json: bool, inspection: dict[str, Any] | None, mapping: dict[str, Any] | None,
    limits: FileLimits, skip_through: int,
) -> RowSource:
    """The rows of the file at ``path`` after row ``skip_through``; ``inspection`` and ``mapping`` as stored."""
    if json:
        return RowFile(path, skip_through=skip_through)
    return CsvRows(
        path,
        inspection=Inspection.from_json(inspection) if inspection else None,
        columns=ColumnMap.from_json(mapping) if mapping else None,
        limits=limits, skip_through=skip_through,
    )
