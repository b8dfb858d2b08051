"""Hostile files end as a clear file problem, with bounded memory: a row too large (one line of 50 MB, a
million cells, a quote never closed), a NUL in the header (a UTF-16 file's too); what inspecting a file keeps is
short and storable."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from services.ingest.domain import FileProblem
from services.ingest.reading.csv_rows import CsvRows
from services.ingest.reading.records import MAX_SHOWN_CHARS, FileLimits, inspect_file


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_single_line_of_50_mb_is_a_row_too_large_read_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "upload.csv"
    with path.open("wb") as file:
        file.write(b"email,first_name\na@example.com,A\nb@example.com,")
        for _ in range(50):
            file.write(b"x" * (1024 * 1024))
        file.write(b"\nc@example.com,C\n")
    before = peak_rss_mib()

    with pytest.raises(FileProblem) as refused:
        CsvRows(path)

    assert "record 3 (line 3): the row is too large (more than 1,048,576 characters)" in str(refused.value)
    assert "never closed" not in str(refused.value)
    assert peak_rss_mib() - before < 30, "the 50 MB line was never held whole"


def test_a_quote_never_closed_is_refused_once_it_swallows_more_than_a_row_may_hold(tmp_path: Path) -> None:
    content = b'email,first_name\n"a@example.com,A\n' + b"b@example.com,B\n" * 100_000
    path = write(tmp_path, content)

    with pytest.raises(FileProblem, match="record 2 .*the row is too large.*check the quotes"):
        CsvRows(path)


def test_a_line_of_a_million_cells_is_a_row_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,first_name\na@example.com,A\n" + b"," * 1_000_000 + b"\n")

    with pytest.raises(FileProblem, match=r"record 3 \(line 3\): the row is too large \(1,000,001 cells"):
        CsvRows(path)


def test_a_header_of_a_million_cells_is_refused_as_too_many_columns(tmp_path: Path) -> None:
    path = write(tmp_path, b"email" + b"," * 999_999 + b"\na@example.com\n")

    with pytest.raises(FileProblem, match="1,000,000 columns; at most 1,000"):
        inspect_file(path)


def test_the_record_limit_is_a_setting(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,notes\na@example.com," + b"y" * 5000 + b"\n")

    assert CsvRows(path).next_batch(10).valid[0].email == "a@example.com"
    with pytest.raises(FileProblem, match="more than 1,000 characters"):
        CsvRows(path, limits=FileLimits(max_record_chars=1000))


@pytest.mark.parametrize(
    ("encoding", "reason"),
    [("utf-16", "the header row has a NUL character in column 2"), ("utf-8", "binary data"),
     ("utf-16-le", "binary data")],
)
def test_a_nul_in_the_header_is_a_file_problem_whatever_the_encoding(
    tmp_path: Path, encoding: str, reason: str
) -> None:
    path = write(tmp_path, "email,first\x00name\na@example.com,A\n".encode(encoding))

    with pytest.raises(FileProblem, match=reason):
        inspect_file(path)


def test_what_an_inspection_keeps_is_short_and_free_of_nul(tmp_path: Path) -> None:
    long_name = "n" * 10_000
    content = f"email,{long_name}\na@example.com,{'v' * 10_000}\nb@example.com,x\x00y\n"
    path = write(tmp_path, content.encode("utf-16"))

    stored = inspect_file(path).to_json()

    assert stored["header"] == ["email", "n" * MAX_SHOWN_CHARS + "…"]
    assert stored["samples"][0][1] == "v" * MAX_SHOWN_CHARS + "…"
    assert stored["samples"][1] == ["b@example.com", "x\ufffdy"]
