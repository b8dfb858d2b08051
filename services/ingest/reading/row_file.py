"""The rows of a JSON import, kept as the import's file (JSON, one array per row) so that the importer reads them
like an uploaded CSV: in batches, from a checkpoint, again after a crash."""

from __future__ import annotations

from pathlib import Path

import msgspec

from services.ingest.reading.rows import RejectedRow, RowBatch, ValidRow

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[ValidRow | RejectedRow])


def encode_rows(rows: list[ValidRow | RejectedRow]) -> bytes:
    return _encoder.encode(rows)


def decode_rows(data: bytes) -> list[ValidRow | RejectedRow]:
    return _decoder.decode(data)


class RowFile:
    """The stored rows of a JSON import, read in batches (they were checked when the request came in). Rows up
    to ``skip_through`` were handled by an earlier attempt and are only counted. Blocking: call from a thread."""

    def __init__(self, path: Path, *, skip_through: int = 0) -> None:
        self._rows = decode_rows(path.read_bytes())  # bounded by the request's byte and count limits
        self._next = 0
        self._skip_through = skip_through
        self.total_rows = self.expected_rows = len(self._rows)

    def next_batch(self, size: int) -> RowBatch:
        batch = RowBatch()
        while self._next < len(self._rows) and len(batch.valid) + len(batch.rejected) < size:
            row = self._rows[self._next]
            self._next += 1
            if row.row_number <= self._skip_through:
                continue
            if isinstance(row, ValidRow):
                batch.valid.append(row)
            else:
                batch.rejected.append(row)
        batch.last_row = self._rows[self._next - 1].row_number if self._next else 0
        batch.done = self._next >= len(self._rows)
        return batch

    def close(self) -> None:
        self._rows = []
