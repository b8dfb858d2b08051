"""ingest's import rules, given/when/then, without I/O: header mapping, row checks, status transitions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain import (
    COLUMN_COUNT_MISMATCH,
    FINISHED,
    MISSING_EMAIL,
    NUL_CHARACTER,
    ColumnMap,
    FileProblem,
    RejectedRow,
    Status,
    ValidRow,
    advance,
    check_row,
    is_blank,
    map_columns,
    matching_key,
    next_status,
)

STANDARD_HEADER = ["email", "first_name", "last_name", "company", "title", "phone"]
COLUMNS = map_columns(STANDARD_HEADER)

cells = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)


# --- header mapping -----------------------------------------------------------------------------------------


def test_header_names_match_standard_fields_ignoring_case_and_surrounding_spaces() -> None:
    columns = map_columns([" Email ", "FIRST_NAME", "last_name\t", "Company", "TiTlE", "phone"])

    assert columns.positions == {
        "email": 0, "first_name": 1, "last_name": 2, "company": 3, "title": 4, "phone": 5,
    }
    assert columns.width == 6


def test_unknown_columns_are_ignored_but_still_count_towards_the_row_width() -> None:
    columns = map_columns(["notes", "email", "shoe size"])

    assert columns.positions == {"email": 1}
    assert columns.width == 3


def test_when_a_name_appears_twice_the_first_column_wins() -> None:
    assert map_columns(["email", "Email"]).positions == {"email": 0}


@pytest.mark.parametrize("header", [["name", "company"], ["e-mail", "first_name"], [""], []])
def test_a_header_without_an_email_column_is_a_problem_with_the_whole_file(header: list[str]) -> None:
    with pytest.raises(FileProblem, match="no 'email' column"):
        map_columns(header)


def test_the_file_problem_names_the_columns_that_were_found() -> None:
    with pytest.raises(FileProblem, match="'name', 'company'"):
        map_columns(["name", " company "])


# --- rows ---------------------------------------------------------------------------------------------------


def test_a_complete_row_is_valid_with_its_email_as_received_and_a_normalized_key() -> None:
    row = check_row(7, ["  Jane@Example.COM ", "Jane", "Doe", "Acme", "CTO", "+1 555"], COLUMNS)

    assert row == ValidRow(
        row_number=7,
        email="  Jane@Example.COM ",
        key="jane@example.com",
        fields={
            "first_name": "Jane", "last_name": "Doe", "company": "Acme", "title": "CTO", "phone": "+1 555",
        },
    )


def test_empty_cells_and_unmapped_fields_are_absent_values() -> None:
    columns = map_columns(["email", "first_name", "notes"])

    row = check_row(1, ["jane@example.com", "", "likes tea"], columns)

    assert isinstance(row, ValidRow)
    assert row.fields == dict.fromkeys(["first_name", "last_name", "company", "title", "phone"])


@pytest.mark.parametrize("email", ["", "   ", "\t"])
def test_a_row_without_an_email_is_refused_with_its_cells(email: str) -> None:
    row = check_row(3, [email, "Jane", "", "", "", ""], COLUMNS)

    assert row == RejectedRow(3, MISSING_EMAIL, "the email cell is empty", [email, "Jane", "", "", "", ""])


@pytest.mark.parametrize("width", [1, 5, 7])
def test_a_row_with_another_number_of_cells_than_the_header_is_refused(width: int) -> None:
    cells_read = ["jane@example.com"] + ["x"] * (width - 1)

    row = check_row(2, cells_read, COLUMNS)

    assert isinstance(row, RejectedRow)
    assert (row.code, row.cells) == (COLUMN_COUNT_MISMATCH, cells_read)
    assert row.message == f"expected 6 cells as in the header row, found {width}"


def test_a_row_with_a_nul_character_is_refused_before_it_can_poison_a_database_write() -> None:
    row = check_row(4, ["jane@example.com", "Ja\x00ne", "", "", "", ""], COLUMNS)

    assert isinstance(row, RejectedRow)
    assert row.code == NUL_CHARACTER


@given(row=st.lists(cells, min_size=0, max_size=8), row_number=st.integers(min_value=1, max_value=10**6))
def test_every_row_is_judged_on_its_own_without_raising(row: list[str], row_number: int) -> None:
    result = check_row(row_number, row, COLUMNS)

    assert result.row_number == row_number
    if isinstance(result, ValidRow):
        assert len(row) == COLUMNS.width and row[0].strip()
        assert result.key == row[0].strip().lower()
    else:
        assert result.cells == row
        assert result.code in {MISSING_EMAIL, COLUMN_COUNT_MISMATCH, NUL_CHARACTER}


@given(email=st.emails())
def test_emails_that_differ_only_in_case_and_surrounding_spaces_share_a_key(email: str) -> None:
    assert matching_key(f"  {email.upper()}\t") == matching_key(email.lower()) == email.strip().lower()


@pytest.mark.parametrize(
    ("row", "blank"), [([], True), ([""], True), (["", "  ", "\t"], True), (["", "x"], False)]
)
def test_blank_records_are_not_rows(row: list[str], blank: bool) -> None:
    assert is_blank(row) is blank


def test_a_column_map_is_a_plain_value() -> None:
    assert map_columns(["Email"]) == ColumnMap(positions={"email": 0}, width=1)


# --- status -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "processed", "errors", "status"),
    [
        (None, 0, 0, "parsing"),
        (None, 10, 3, "parsing"),
        (4, 3, 0, "processing"),
        (4, 4, 0, "processed"),
        (4, 4, 1, "error"),
        (0, 0, 0, "processed"),
    ],
)
def test_the_counters_imply_the_status(total: int | None, processed: int, errors: int, status: str) -> None:
    assert next_status(total, processed, errors) == status


@given(
    total=st.integers(min_value=0, max_value=10**7),
    processed=st.integers(min_value=0, max_value=10**7),
    errors=st.integers(min_value=0, max_value=10**7),
)
def test_an_import_finishes_exactly_when_every_row_has_an_outcome(
    total: int, processed: int, errors: int
) -> None:
    status = next_status(total, processed, errors)

    assert (status in FINISHED) == (processed >= total)
    if status in FINISHED:
        assert status == ("processed" if errors == 0 else "error")


@pytest.mark.parametrize("current", ["uploaded", "processed", "error"])
def test_counters_never_move_an_import_that_is_waiting_or_finished(current: str) -> None:
    assert advance(current, total_rows=2, processed_rows=2, errors=0) == current  # type: ignore[arg-type]


def test_an_import_failed_as_a_whole_file_stays_failed_when_late_outcomes_complete_it() -> None:
    assert advance("error", total_rows=3, processed_rows=3, errors=0) == "error"


@given(
    current=st.sampled_from(["parsing", "processing"]),
    total=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
    processed=st.integers(min_value=0, max_value=1000),
    errors=st.integers(min_value=0, max_value=1000),
)
def test_reading_and_processing_imports_follow_their_counters(
    current: Status, total: int | None, processed: int, errors: int
) -> None:
    status = advance(current, total_rows=total, processed_rows=processed, errors=errors)

    assert status == next_status(total, processed, errors)
