"""ingest's import rules, given/when/then, without I/O: header mapping, row checks (email syntax, lengths,
consent), status transitions."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import strategies as st

from services.ingest.domain import (
    FINISHED,
    PARSABLE,
    ColumnMap,
    FileProblem,
    Pace,
    Status,
    advance,
    describe_ranges,
    map_columns,
    next_status,
    no_answer,
    pace,
    row_ranges,
)
from services.ingest.reading.checks import (
    MAX_EMAIL_LENGTH,
    MAX_FIELD_LENGTH,
    check_row,
    email_permission,
    email_problem,
)
from services.ingest.reading.rows import (
    COLUMN_COUNT_MISMATCH,
    INVALID_EMAIL,
    MISSING_EMAIL,
    NUL_CHARACTER,
    VALUE_TOO_LONG,
    RejectedRow,
    ValidRow,
    is_blank,
    matching_key,
)
from shared.events import CONTACT_FIELDS

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
        row_number=7, email="  Jane@Example.COM ", key="jane@example.com",
        first_name="Jane", last_name="Doe", company="Acme", title="CTO", phone="+1 555",
    )


def test_a_valid_row_holds_the_contact_fields_in_the_contracts_order() -> None:
    assert ValidRow._fields[3:8] == CONTACT_FIELDS


def test_empty_cells_and_unmapped_fields_are_absent_values() -> None:
    columns = map_columns(["email", "first_name", "notes"])

    row = check_row(1, ["jane@example.com", "", "likes tea"], columns)

    assert isinstance(row, ValidRow)
    assert (row.first_name, row.last_name, row.company, row.title, row.phone) == (None,) * 5


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
        assert result.code in {MISSING_EMAIL, INVALID_EMAIL, VALUE_TOO_LONG, COLUMN_COUNT_MISMATCH, NUL_CHARACTER}


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


def test_a_column_map_survives_its_json_form() -> None:
    columns = map_columns(["external_id", "email", "x", "marketing_contact_status", "phone"])

    assert ColumnMap.from_json(columns.to_json()) == columns
    assert columns.positions == {"external_id": 0, "email": 1, "marketing_contact_status": 3, "phone": 4}


# --- email syntax, lengths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["jane", "jane@", "@example.com", "jane@@example.com", "jane doe@example.com", "jane..doe@example.com",
     ".jane@example.com", "jane@example", "jane@-example.com", "jane@example..com", "jane@localhost",
     "jane@exa_mple.com", "jane@example.com.", "j\"ane@example.com"],
)
def test_a_row_with_a_malformed_email_is_refused_in_the_validators_words(email: str) -> None:
    row = check_row(5, [email, "Jane", "", "", "", ""], COLUMNS)

    assert isinstance(row, RejectedRow)
    assert (row.code, row.cells) == (INVALID_EMAIL, [email, "Jane", "", "", "", ""])
    assert row.message.startswith(f"{email!r} is not a valid email address: ")
    with pytest.raises(EmailNotValidError) as raised:
        validate_email(email, check_deliverability=False)
    assert row.message.endswith(str(raised.value))


@pytest.mark.parametrize(
    "email",
    ["jane@example.com", " Jane.Doe+tag@Example.co.uk ", "o'brien@example.ie", "jürgen@beispiel.de",
     "jane@bücher.example", "user_1%x@sub-domain.example.org"],
)
def test_well_formed_emails_pass(email: str) -> None:
    assert isinstance(check_row(1, [email, "", "", "", "", ""], COLUMNS), ValidRow)


local_parts = st.text(alphabet="abcXYZ019._%+-'!#&é", min_size=0, max_size=70)
domains = st.text(alphabet="abcz09.-_é", min_size=0, max_size=20).map(lambda d: d + ".com")


@given(local=local_parts, domain=st.one_of(domains, st.sampled_from(["example.com", "localhost", "a.b", "x.invalid"])))
@example(local="a" * 64, domain="example.com")
@example(local="a" * 65, domain="example.com")
@example(local="a.", domain="example.com")
def test_the_fast_path_reaches_the_validators_verdict(local: str, domain: str) -> None:
    email = f"{local}@{domain}"
    try:
        validate_email(email, check_deliverability=False)
        valid = True
    except EmailNotValidError:
        valid = False

    assert (email_problem(email) is None) == valid


def test_an_email_longer_than_the_limit_is_too_long() -> None:
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".com"
    assert len(email) > MAX_EMAIL_LENGTH

    row = check_row(1, [email, "", "", "", "", ""], COLUMNS)

    assert isinstance(row, RejectedRow)
    assert row.code == VALUE_TOO_LONG
    assert row.message == f"email is {len(email)} characters long; the limit is {MAX_EMAIL_LENGTH}"


@pytest.mark.parametrize("position", [1, 2, 3, 4, 5])
def test_a_value_longer_than_the_limit_is_refused_naming_the_field_and_the_limit(position: int) -> None:
    cells_read = ["jane@example.com", "", "", "", "", ""]
    cells_read[position] = "x" * (MAX_FIELD_LENGTH + 1)

    row = check_row(1, cells_read, COLUMNS)

    assert isinstance(row, RejectedRow)
    assert row.code == VALUE_TOO_LONG
    assert row.message == f"{STANDARD_HEADER[position]} is 256 characters long; the limit is {MAX_FIELD_LENGTH}"


def test_a_value_at_the_limit_is_kept_whole() -> None:
    row = check_row(1, ["jane@example.com", "x" * MAX_FIELD_LENGTH, "", "", "", ""], COLUMNS)

    assert isinstance(row, ValidRow)
    assert row.first_name == "x" * MAX_FIELD_LENGTH


# --- external id and email permission -----------------------------------------------------------------------


HUBSPOT_LIKE = map_columns(["email", "external_id", "marketing_contact_status", "unsubscribed_from_all_email"])


def test_the_external_id_travels_with_the_row_trimmed() -> None:
    row = check_row(1, ["jane@example.com", " 1234 ", "", ""], HUBSPOT_LIKE)

    assert isinstance(row, ValidRow)
    assert (row.external_id, row.email_permission) == ("1234", None)


@pytest.mark.parametrize(
    ("marketing", "unsubscribed", "permission"),
    [
        ("Marketing contact", "", "subscribed"),
        ("Marketing contact", "false", "subscribed"),
        ("Marketing contact", "true", "unsubscribed"),
        ("Non-marketing contact", "Yes", "unsubscribed"),
        ("Non-marketing contact", "", "unknown"),
        ("", "TRUE", "unsubscribed"),
        ("", "false", None),
        ("", "", None),
        ("something else", "", None),
        ("true", "", "subscribed"),
        ("false", "No", "unknown"),
    ],
)
def test_the_consent_columns_become_the_rows_email_permission(
    marketing: str, unsubscribed: str, permission: str | None
) -> None:
    row = check_row(1, ["jane@example.com", "", marketing, unsubscribed], HUBSPOT_LIKE)

    assert isinstance(row, ValidRow)
    assert row.email_permission == permission == email_permission(marketing, unsubscribed)


@given(marketing=st.one_of(st.none(), st.text(max_size=30)))
def test_an_unsubscribe_from_all_email_always_wins(marketing: str | None) -> None:
    assert email_permission(marketing, " true ") == "unsubscribed"


def test_an_external_id_longer_than_the_limit_is_refused() -> None:
    row = check_row(1, ["jane@example.com", "9" * (MAX_FIELD_LENGTH + 1), "", ""], HUBSPOT_LIKE)

    assert isinstance(row, RejectedRow)
    assert (row.code, row.message) == (VALUE_TOO_LONG, "external_id is 256 characters long; the limit is 255")


def test_without_consent_columns_a_row_states_no_permission() -> None:
    row = check_row(1, ["jane@example.com", "", "", "", "", ""], COLUMNS)

    assert isinstance(row, ValidRow)
    assert (row.external_id, row.email_permission) == (None, None)


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


def test_only_started_imports_are_read() -> None:
    assert "uploaded" not in PARSABLE
    assert "parsing" in PARSABLE


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


# --- the deadline for identity's answers -----------------------------------------------------------------


def test_an_import_that_gave_up_waiting_finishes_once_late_answers_cover_every_row() -> None:
    assert advance("error", total_rows=3, processed_rows=2, errors=0, timed_out=True) == "error"
    assert advance("error", total_rows=3, processed_rows=3, errors=0, timed_out=True) == "processed"
    assert advance("error", total_rows=3, processed_rows=3, errors=1, timed_out=True) == "error"


def test_row_numbers_become_ranges_and_a_short_description() -> None:
    ranges = row_ranges([1, 2, 3, 7, 9, 10])

    assert ranges == [(1, 3), (7, 7), (9, 10)]
    assert describe_ranges(ranges) == "rows 1-3, 7, 9-10"
    assert describe_ranges(row_ranges(range(1, 100, 2)), shown=3) == "rows 1, 3, 5 and 47 more ranges"
    assert row_ranges(range(1, 100, 2), limit=4) == [(1, 1), (3, 3), (5, 5), (7, 7)]


@given(st.lists(st.integers(min_value=1, max_value=500), unique=True).map(sorted))
def test_ranges_cover_exactly_the_rows(rows: list[int]) -> None:
    covered = [n for first, last in row_ranges(rows, limit=10**6) for n in range(first, last + 1)]
    assert covered == rows


def test_the_deadline_message_says_how_many_rows_which_and_why() -> None:
    message = no_answer(4, [(5, 7), (12, 12)], deadline_seconds=600)

    assert message.startswith("identity did not answer 4 rows within 600 s, even after they were published again")
    assert "(rows 5-7, 12)" in message
    assert "later are still counted" in message


def test_pace_is_the_average_since_the_start_and_the_rest_at_that_pace() -> None:
    assert pace(answered=3000, expected=9000, elapsed_seconds=10, finished=False) == Pace(300.0, 20.0)
    assert pace(answered=0, expected=9000, elapsed_seconds=10, finished=False) == Pace(None, None)
    assert pace(answered=3000, expected=None, elapsed_seconds=10, finished=False) == Pace(300.0, None)
    assert pace(answered=9000, expected=9000, elapsed_seconds=30, finished=True) == Pace(300.0, 0.0)
    assert pace(answered=9500, expected=9000, elapsed_seconds=10, finished=False).estimated_seconds_left == 0
