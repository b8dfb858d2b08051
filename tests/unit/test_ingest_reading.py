"""Reading an import's file: CSV records become valid rows (normalized keys, the mapped fields) or refused rows,
batch by batch, from a checkpoint, and file-level problems are named before any row is handed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ingest.domain import FileProblem
from services.ingest.reading.csv_rows import CsvRows
from services.ingest.reading.rows import COLUMN_COUNT_MISMATCH, MISSING_EMAIL, RowBatch, ValidRow


def reader(tmp_path: Path, content: str | bytes, *, skip_through: int = 0) -> CsvRows:
    path = tmp_path / "upload.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return CsvRows(path, skip_through=skip_through)


def read_all(rows: CsvRows, size: int = 1000) -> list[RowBatch]:
    batches = [rows.next_batch(size)]
    while not batches[-1].done:
        batches.append(rows.next_batch(size))
    return batches


def test_valid_rows_carry_the_email_as_received_its_key_and_the_mapped_fields(tmp_path: Path) -> None:
    rows = reader(
        tmp_path, "\ufeffEmail,First_Name,notes\r\n  Jane@Example.COM ,Jane,x\r\nbob@example.com,,y\r\n"
    )

    (batch,) = read_all(rows)

    assert batch.rejected == [] and rows.total_rows == 2
    assert batch.valid == [
        ValidRow(1, "  Jane@Example.COM ", "jane@example.com", first_name="Jane"),
        ValidRow(2, "bob@example.com", "bob@example.com"),
    ]


def test_refused_rows_keep_their_number_code_and_cells(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email,first_name\n,Nobody\na@example.com,A,extra\nb@example.com,B\n")

    (batch,) = read_all(rows)

    assert [(r.row_number, r.code, r.cells) for r in batch.rejected] == [
        (1, MISSING_EMAIL, ["", "Nobody"]),
        (2, COLUMN_COUNT_MISMATCH, ["a@example.com", "A", "extra"]),
    ]
    assert [r.row_number for r in batch.valid] == [3]
    assert rows.total_rows == 3


def test_blank_records_keep_their_number_but_are_not_rows(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\n\na@example.com\n , \n\nb@example.com")

    (batch,) = read_all(rows)

    assert [r.row_number for r in batch.valid] == [2, 5]
    assert rows.total_rows == 2
    assert batch.last_row == 5


def test_quoted_cells_may_hold_commas_and_line_breaks(tmp_path: Path) -> None:
    rows = reader(tmp_path, 'email,company\n"a@example.com","Acme, Inc.\nBerlin"\nb@example.com,B\n')

    (batch,) = read_all(rows)

    assert [r.company for r in batch.valid] == ["Acme, Inc.\nBerlin", "B"]


def test_a_file_is_read_in_batches_of_the_requested_size(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\n" + "".join(f"p{i}@example.com\n" for i in range(1, 26)))

    batches = read_all(rows, size=10)

    assert [len(b.valid) for b in batches] == [10, 10, 5]
    assert [b.last_row for b in batches] == [10, 20, 25]
    assert [b.done for b in batches] == [False, False, True]


def test_a_resumed_read_skips_rows_up_to_the_checkpoint_but_counts_them(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\nx@example.com,extra\nb@example.com\n\nc@example.com\nd@example.com\n",
                  skip_through=3)

    (batch,) = read_all(rows)

    assert [r.row_number for r in batch.valid] == [4, 5]
    assert batch.rejected == []
    assert rows.total_rows == 4


@pytest.mark.parametrize("content", ["email,first_name\n", "email,first_name\n\n ,\n"])
def test_a_header_only_file_is_a_file_problem(tmp_path: Path, content: str) -> None:
    with pytest.raises(FileProblem, match="header row but no rows"):
        reader(tmp_path, content)


@pytest.mark.parametrize("content", ["", "\n\n", "\ufeff"])
def test_an_empty_file_is_a_file_problem(tmp_path: Path, content: str) -> None:
    with pytest.raises(FileProblem, match="empty"):
        reader(tmp_path, content)


def test_a_file_without_an_email_column_is_a_file_problem(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="no 'email' column"):
        reader(tmp_path, "name,company\nJane,Acme\n")


def test_a_windows_1252_file_is_read_in_its_own_encoding(tmp_path: Path) -> None:
    batches = read_all(reader(tmp_path, "email,first_name\nj@example.com,J\u00fcrgen \u20ac\n".encode("cp1252")))

    (row,) = batches[0].valid
    assert row.first_name == "J\u00fcrgen \u20ac"


def test_utf8_split_across_read_chunks_is_read_intact(tmp_path: Path) -> None:
    content = b"email,first_name\n" + ("j@example.com,J\u00fcrgen\u20ac\n" * 200_000).encode()

    batches = read_all(reader(tmp_path, content), size=50_000)

    names = {r.first_name for b in batches for r in b.valid}
    assert names == {"J\u00fcrgen\u20ac"}
