"""Reading an import's file: CSV records become row events (deterministic ids, normalized keys, the import's
correlation) or refused rows, batch by batch, and file-level problems are named before anything is sent."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain import COLUMN_COUNT_MISMATCH, MISSING_EMAIL, FileProblem
from services.ingest.reading import ROW_EVENT_NAMESPACE, SOURCE, Batch, RowReader, row_event_id
from shared.events import ImportRowReceivedV1
from shared.kafka import OutgoingMessage, decode

IMPORT_ID = "6f1c2a9e-0d4b-4c1e-9a51-2b7f3c8d9e01"


def reader(tmp_path: Path, content: str | bytes, *, skip_through: int = 0) -> RowReader:
    path = tmp_path / "upload.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return RowReader(path, import_id=IMPORT_ID, organizer_id="org-1", topic="rows", skip_through=skip_through)


def read_all(rows: RowReader, size: int = 1000) -> list[Batch]:
    batches = [rows.next_batch(size)]
    while not batches[-1].done:
        batches.append(rows.next_batch(size))
    return batches


def as_record(message: OutgoingMessage, offset: int = 0) -> ConsumerRecord:
    return ConsumerRecord(
        topic=message.topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=message.key,
        value=message.value, checksum=None, serialized_key_size=0, serialized_value_size=0,
        headers=tuple(message.headers),
    )


def decoded(message: OutgoingMessage) -> ImportRowReceivedV1:
    _, event = decode(as_record(message), (ImportRowReceivedV1,))
    assert isinstance(event, ImportRowReceivedV1)
    return event


@given(import_id=st.uuids().map(str), row_number=st.integers(min_value=1, max_value=2**31 - 1))
def test_a_row_event_id_is_the_uuid5_of_import_and_row(import_id: str, row_number: int) -> None:
    expected = uuid.uuid5(ROW_EVENT_NAMESPACE, f"{import_id}/{row_number}")

    assert row_event_id(import_id, row_number) == str(expected)


def test_valid_rows_become_events_keyed_by_normalized_email_in_the_imports_envelope(tmp_path: Path) -> None:
    rows = reader(
        tmp_path, "\ufeffEmail,First_Name,notes\r\n  Jane@Example.COM ,Jane,x\r\nbob@example.com,,y\r\n"
    )

    (batch,) = read_all(rows)

    assert batch.rejected == [] and rows.total_rows == 2
    first, second = batch.messages
    assert (first.topic, first.key, second.key) == ("rows", b"jane@example.com", b"bob@example.com")
    event = decoded(first)
    assert (event.import_id, event.organizer_id, event.row_number) == (IMPORT_ID, "org-1", 1)
    assert (event.email, event.first_name, event.last_name) == ("  Jane@Example.COM ", "Jane", None)
    assert decoded(second).first_name is None
    envelope, _ = decode(as_record(first), (ImportRowReceivedV1,))
    assert envelope.id == row_event_id(IMPORT_ID, 1)
    assert (envelope.source, envelope.subject, envelope.correlation_id) == (SOURCE, IMPORT_ID, IMPORT_ID)
    assert envelope.type == ImportRowReceivedV1.TYPE
    assert decode(as_record(second), (ImportRowReceivedV1,))[0].id == row_event_id(IMPORT_ID, 2)


def test_reading_the_same_file_twice_produces_identical_ids_and_payloads(tmp_path: Path) -> None:
    content = "email\na@example.com\nb@example.com\n"

    first = read_all(reader(tmp_path, content))[0].messages
    second = read_all(reader(tmp_path, content))[0].messages

    assert [(m.key, m.value, dict(m.headers)["ce_id"]) for m in first] == [
        (m.key, m.value, dict(m.headers)["ce_id"]) for m in second
    ]


def test_refused_rows_keep_their_number_code_and_cells(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email,first_name\n,Nobody\na@example.com,A,extra\nb@example.com,B\n")

    (batch,) = read_all(rows)

    assert [(r.row_number, r.code, r.cells) for r in batch.rejected] == [
        (1, MISSING_EMAIL, ["", "Nobody"]),
        (2, COLUMN_COUNT_MISMATCH, ["a@example.com", "A", "extra"]),
    ]
    assert [decoded(m).row_number for m in batch.messages] == [3]
    assert rows.total_rows == 3


def test_blank_records_keep_their_number_but_are_not_rows(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\n\na@example.com\n , \n\nb@example.com")

    (batch,) = read_all(rows)

    assert [decoded(m).row_number for m in batch.messages] == [2, 5]
    assert rows.total_rows == 2
    assert batch.last_row == 5


def test_quoted_cells_may_hold_commas_and_line_breaks(tmp_path: Path) -> None:
    rows = reader(tmp_path, 'email,company\n"a@example.com","Acme, Inc.\nBerlin"\nb@example.com,B\n')

    (batch,) = read_all(rows)

    assert [decoded(m).company for m in batch.messages] == ["Acme, Inc.\nBerlin", "B"]


def test_a_file_is_read_in_batches_of_the_requested_size(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\n" + "".join(f"p{i}@example.com\n" for i in range(1, 26)))

    batches = read_all(rows, size=10)

    assert [len(b.messages) for b in batches] == [10, 10, 5]
    assert [b.last_row for b in batches] == [10, 20, 25]
    assert [b.done for b in batches] == [False, False, True]


def test_a_resumed_read_skips_rows_up_to_the_checkpoint_but_counts_them(tmp_path: Path) -> None:
    rows = reader(tmp_path, "email\nx@example.com,extra\nb@example.com\n\nc@example.com\nd@example.com\n",
                  skip_through=3)

    (batch,) = read_all(rows)

    assert [decoded(m).row_number for m in batch.messages] == [4, 5]
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

    (message,) = batches[0].messages
    assert ImportRowReceivedV1.model_validate_json(message.value).first_name == "J\u00fcrgen \u20ac"


def test_utf8_split_across_read_chunks_is_read_intact(tmp_path: Path) -> None:
    content = b"email,first_name\n" + ("j@example.com,J\u00fcrgen\u20ac\n" * 200_000).encode()

    batches = read_all(reader(tmp_path, content), size=50_000)

    names = {ImportRowReceivedV1.model_validate_json(m.value).first_name for b in batches for m in b.messages}
    assert names == {"J\u00fcrgen\u20ac"}
