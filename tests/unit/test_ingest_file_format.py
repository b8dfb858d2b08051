"""Recognizing encodings and delimiters, and refusing what is not a CSV, from real bytes on disk."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from services.ingest.domain import FileProblem
from services.ingest.reading.file_format import STRAY_BYTES, detect_delimiter, detect_encoding, detect_format
from services.ingest.reading.records import FileLimits, inspect_file, survey

GERMAN = (
    "E-Mail;Vorname;Nachname;Firma\n"
    "juergen@example.de;Jürgen;Müller;Bäckerei Größe GmbH\n"
    "soeren@example.de;Sören;Weiß;Straßenbau AG\n"
    "francois@example.fr;François;Lefèvre;Société Générale – “Paris” €\n"
)


def write(tmp_path: Path, data: bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (GERMAN.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + GERMAN.encode("utf-8"), "utf-8-sig"),
        (GERMAN.encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + GERMAN.encode("utf-16-be"), "utf-16"),
        (GERMAN.encode("utf-16-le"), "utf-16-le"),
        (GERMAN.encode("utf-16-be"), "utf-16-be"),
        (GERMAN.encode("cp1252"), "cp1252"),
        (GERMAN.replace("–", "-").replace("“", '"').replace("”", '"').replace("€", "EUR").encode("latin-1"), "cp1252"),
        (b"email,name\nann@example.com,Ann\n", "utf-8"),
    ],
)
def test_the_encoding_is_recognized_and_every_character_survives(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    assert detect_encoding(data) == expected
    inspection = inspect_file(write(tmp_path, data))
    decoded_text = data.decode(expected)
    assert inspection.header[0] in decoded_text
    assert all(cell in decoded_text for sample in inspection.samples for cell in sample)


def test_the_german_sample_reads_back_exactly_in_every_encoding(tmp_path: Path) -> None:
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252"):
        inspection = inspect_file(write(tmp_path, GERMAN.encode(encoding)))
        assert inspection.header == ["E-Mail", "Vorname", "Nachname", "Firma"], encoding
        assert inspection.samples[2] == [
            "francois@example.fr", "François", "Lefèvre", "Société Générale – “Paris” €"
        ], encoding


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_recognized(tmp_path: Path, delimiter: str) -> None:
    rows = [["email", "first_name", "company"], ["a@example.com", "Ann", "Acme, Inc; Tools|Co"],
            ["b@example.com", "Bob", "Plain"]]
    text = "".join(delimiter.join(f'"{cell}"' if any(d in cell for d in ",;\t|") else cell for cell in row) + "\r\n"
                   for row in rows)

    inspection = inspect_file(write(tmp_path, text.encode()))

    assert inspection.format.delimiter == delimiter
    assert inspection.header == rows[0]
    assert inspection.samples == rows[1:]


def test_quoted_values_keep_delimiters_quotes_and_line_breaks(tmp_path: Path) -> None:
    text = 'email,notes,company\na@example.com,"line one\nline two, with comma","Say ""hi"""\n'

    inspection = inspect_file(write(tmp_path, text.encode()))

    assert inspection.samples == [["a@example.com", "line one\nline two, with comma", 'Say "hi"']]


def test_a_one_column_file_is_comma_separated() -> None:
    assert detect_delimiter("email\na@example.com\nb@example.com\n") == ","


@pytest.mark.parametrize("rows", [2_000, 60_000])  # the stray byte within the head, and beyond it
def test_a_stray_windows_1252_byte_in_a_utf8_file_keeps_everything_else(tmp_path: Path, rows: int) -> None:
    head = "email,first_name\n" + "".join(f"p{i}@example.com,Zoë\n" for i in range(rows))
    data = head.encode("utf-8") + "late@example.com,Müller\n".encode("cp1252")
    path = write(tmp_path, data)

    inspection = inspect_file(path)

    assert inspection.format.encoding == "utf-8"
    assert survey(path, inspection.format, FileLimits()) == rows + 1
    with open(path, encoding="utf-8", errors=STRAY_BYTES) as file:
        lines = file.read().splitlines()
    assert (lines[1], lines[-1]) == ("p0@example.com,Zoë", "late@example.com,Müller")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\r\n", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "Excel 97-2003"),
        (b"%PDF-1.7\n" + bytes(range(256)), "PDF"),
        (bytes(range(256)) * 40, "binary data"),
        (b"email,name\n" + bytes([1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19]) * 20, "binary"),
        (b"email,first_name\n", "header row but no rows"),
        (b'email,first_name\n"a@example.com,Ann\nb@example.com,Bob\n', "quoted value is never closed"),
        (b'email,first_name\n"a@example.com"x,Ann\n', "not valid CSV at record 2"),
    ],
)
def test_what_is_not_a_csv_of_contacts_is_refused_with_the_reason(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(FileProblem, match=reason):
        inspect_file(write(tmp_path, data))


def test_broken_quoting_far_into_the_file_is_found_before_any_row_is_handed_on(tmp_path: Path) -> None:
    rows = "".join(f"p{i}@example.com,P\n" for i in range(10_000))
    path = write(tmp_path, f'email,first_name\n{rows}"broken@example.com,B\n'.encode())
    inspection = inspect_file(path)

    with pytest.raises(FileProblem, match="record 10002"):
        survey(path, inspection.format, FileLimits())


def test_limits_on_rows_columns_and_bytes_are_clear(tmp_path: Path) -> None:
    path = write(tmp_path, b"email,a,b\n" + b"x@example.com,1,2\n" * 11)
    limits = FileLimits(max_bytes=10_000, max_rows=10, max_columns=3)
    inspection = inspect_file(path, limits=limits)
    with pytest.raises(FileProblem, match="more than 10 rows"):
        survey(path, inspection.format, limits)
    with pytest.raises(FileProblem, match="3 columns; at most 2"):
        inspect_file(path, limits=FileLimits(max_columns=2))
    with pytest.raises(FileProblem, match="at most 100 are allowed"):
        inspect_file(path, limits=FileLimits(max_bytes=100))


def test_detect_format_describes_what_it_found() -> None:
    fmt = detect_format("email;name\na@example.com;Ann\n".encode("utf-16"))
    assert (fmt.encoding, fmt.delimiter, fmt.describe()) == ("utf-16", ";", "utf-16, semicolon-separated")
