"""Contacts sent as JSON become rows directly: each element one row, valid or refused with a reason; a bad request
as a whole a clear error; hostile JSON (NaN, deep nesting, lone surrogates, huge numbers) is refused, never a
crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.reading.json_rows import (
    JSON_KEYS,
    JsonRefused,
    canonical_body,
    cell,
    check_contacts,
    contact_row,
    contact_rows,
    fingerprint,
    parse_body,
)
from services.ingest.reading.row_file import RowFile, decode_rows, encode_rows
from services.ingest.reading.rows import (
    INVALID_EMAIL,
    INVALID_VALUE,
    MISSING_EMAIL,
    NOT_AN_OBJECT,
    NUL_CHARACTER,
    VALUE_TOO_LONG,
    RejectedRow,
    ValidRow,
)

# --- the request as a whole ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"email": "a@example.com"}', "got an object"),
        (b'"a@example.com"', "got a string"),
        (b"null", "got null"),
        (b"42", "got a number"),
        (b"[]", "the array is empty"),
    ],
)
def test_anything_but_a_non_empty_array_is_refused_with_422(body: bytes, expected: str) -> None:
    with pytest.raises(JsonRefused) as refused:
        check_contacts(parse_body(body), max_contacts=10)
    assert refused.value.status_code == 422
    assert expected in refused.value.message


def test_malformed_json_and_non_utf8_are_refused_with_where_and_why() -> None:
    with pytest.raises(JsonRefused) as refused:
        parse_body(b'[{"email": "a@example.com"},\n ]')
    assert refused.value.status_code == 422
    assert "not valid JSON (line 2, column 2)" in refused.value.message
    with pytest.raises(JsonRefused, match="not UTF-8"):
        parse_body(b'["\xff"]')


@pytest.mark.parametrize(
    "body",
    [
        b'[{"email": "a@example.com", "phone": NaN}]',
        b'[{"email": "a@example.com", "phone": Infinity}]',
        b'[{"email": "a@example.com", "phone": 1e999}]',
        b'[{"email": "a@example.com", "first_name": "\\ud800"}]',
        b'[{"email": "a@example.com", "first_name": "a\x01b"}]',
        b'[{"email": "a@example.com", "phone": ' + b"9" * 5000 + b"}]",
        b"[" * 100_000 + b"]" * 100_000,
        b'[{"email": ',
    ],
    ids=["nan", "infinity", "overflow", "lone-surrogate", "raw-control", "huge-integer", "deep", "truncated"],
)
def test_hostile_json_is_refused_with_a_short_422(body: bytes) -> None:
    with pytest.raises(JsonRefused) as refused:
        parse_body(body)
    assert refused.value.status_code == 422
    assert refused.value.message.startswith("the body is not valid JSON")
    assert len(refused.value.message) < 300


def test_more_contacts_than_allowed_is_413_naming_both_numbers() -> None:
    assert len(check_contacts([{}] * 3, max_contacts=3)) == 3
    with pytest.raises(JsonRefused) as refused:
        check_contacts([{}] * 4, max_contacts=3)
    assert refused.value.status_code == 413
    assert "4 contacts; at most 3 per request" in refused.value.message


def test_the_fingerprint_is_the_sha256_of_the_exact_bytes() -> None:
    assert fingerprint(b"[]") == "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
    assert fingerprint(b'[{"email":"a@x.io"}]') != fingerprint(b'[{"email": "a@x.io"}]')


def test_the_canonical_body_ignores_key_order() -> None:
    assert canonical_body([{"email": "a@x.io", "phone": 1}]) == canonical_body([{"phone": 1, "email": "a@x.io"}])
    assert canonical_body([{"email": "a@x.io"}]) != canonical_body([{"email": "b@x.io"}])


# --- one element --------------------------------------------------------------------------------------------


def test_an_object_becomes_a_valid_row_and_unknown_keys_are_ignored() -> None:
    element = {
        "phone": "+49 30 1234", "email": " Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "Analytical Engines", "title": "Analyst", "external_id": " hs-17 ",
        "email_permission": "subscribed", "favourite_colour": "green",
    }
    assert contact_row(1, element) == ValidRow(
        1, " Ada@Example.com", "ada@example.com", "Ada", "Lovelace", "Analytical Engines", "Analyst", "+49 30 1234",
        "hs-17", "subscribed",
    )


@pytest.mark.parametrize("permission", [None, "subscribed", "unsubscribed", "unknown"])
def test_the_permission_is_the_rows_permission(permission: str | None) -> None:
    row = contact_row(1, {"email": "ada@example.com", "email_permission": permission})
    assert isinstance(row, ValidRow)
    assert row.email_permission == permission


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""), ("x", "x"), (4930123456, "4930123456"), (4930123456.0, "4930123456"), (1.5, "1.5"),
        (True, "true"), (False, "false"), (0, "0"), ({"a": 1}, None), ([1], None), (float("nan"), None),
        (float("inf"), None), ("\ud800", None), (10**5000, None),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, int) and not isinstance(value, bool) else None,
)
def test_scalars_are_converted_sensibly_and_what_no_field_can_hold_is_none(value: Any, expected: str | None) -> None:
    assert cell(value) == expected


def test_numbers_are_text_and_blanks_are_absent() -> None:
    row = contact_row(3, {"email": "bob@example.com", "phone": 4930123, "external_id": 17, "company": ""})
    assert row == ValidRow(3, "bob@example.com", "bob@example.com", phone="4930123", external_id="17")


@pytest.mark.parametrize(
    ("element", "code", "message"),
    [
        ("ada@example.com", NOT_AN_OBJECT, "element 2 is a string, not a contact object"),
        (None, NOT_AN_OBJECT, "element 2 is null"),
        ([1, 2], NOT_AN_OBJECT, "element 2 is an array"),
        ({"email": "a@x.io", "phone": {"home": "1"}}, INVALID_VALUE, "'phone' is an object"),
        ({"email": ["a@x.io"]}, INVALID_VALUE, "'email' is an array"),
        ({"email": "a@x.io", "phone": float("nan")}, INVALID_VALUE, "'phone' is a number that no field can hold"),
        ({}, MISSING_EMAIL, "element 2 has no email"),
        ({"email": "  ", "notes": "ignored"}, MISSING_EMAIL, "element 2 has no email"),
    ],
)
def test_an_element_that_cannot_be_a_row_is_refused_with_a_code_and_kept_as_json(
    element: Any, code: str, message: str
) -> None:
    refused = contact_row(2, element)
    assert isinstance(refused, RejectedRow)
    assert (refused.row_number, refused.code) == (2, code)
    assert message in refused.message
    assert refused.cells == [json.dumps(element, ensure_ascii=False)]


@pytest.mark.parametrize(
    ("element", "code", "message"),
    [
        ({"first_name": "Ada"}, MISSING_EMAIL, "the email cell is empty"),
        ({"email": "not an email"}, INVALID_EMAIL, "is not a valid email address"),
        ({"email": 42}, INVALID_EMAIL, "'42' is not a valid email address"),
        ({"email": "a@x.io", "email_permission": "maybe"}, INVALID_VALUE, "'email_permission' is 'maybe'"),
        ({"email": "a@x.io", "first_name": "A\x00da"}, NUL_CHARACTER, "NUL"),
        ({"email": "a@x.io", "title": "x" * 200_000}, VALUE_TOO_LONG, "title is 200000 characters long"),
    ],
)
def test_an_object_with_a_bad_value_is_refused_like_a_csv_row_with_its_values_as_cells(
    element: dict[str, Any], code: str, message: str
) -> None:
    refused = contact_row(5, element)
    assert isinstance(refused, RejectedRow)
    assert (refused.row_number, refused.code) == (5, code)
    assert message in refused.message
    assert len(refused.cells) == len(JSON_KEYS)
    assert refused.cells[0] == str(element.get("email", ""))


def test_a_refused_element_is_shown_cut_short() -> None:
    refused = contact_row(1, ["x" * 100_000])
    assert isinstance(refused, RejectedRow)
    assert len(refused.cells[0]) <= 1001


# --- the rows as the import's file ----------------------------------------------------------------------------


def test_the_rows_read_back_from_the_file_in_batches_from_a_checkpoint(tmp_path: Path) -> None:
    rows = contact_rows([{"email": f"p{n}@example.com"} if n % 3 else 7 for n in range(1, 11)])
    path = tmp_path / "rows.json"
    path.write_bytes(encode_rows(rows))

    resumed = RowFile(path, skip_through=4)
    first, second = resumed.next_batch(4), resumed.next_batch(4)

    assert [r.row_number for r in first.valid] == [5, 7, 8] and [r.row_number for r in first.rejected] == [6]
    assert (first.last_row, first.done) == (8, False)
    assert [r.row_number for r in second.valid] == [10] and [r.row_number for r in second.rejected] == [9]
    assert (second.last_row, second.done, resumed.total_rows) == (10, True, 10)
    assert RowFile(path).next_batch(100).valid == [row for row in rows if isinstance(row, ValidRow)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
elements = st.one_of(json_values, st.fixed_dictionaries({}, optional={key: json_values for key in JSON_KEYS}))


@given(st.lists(elements, min_size=1, max_size=20))
def test_every_element_is_exactly_one_row_in_order_and_survives_the_file(batch: list[Any]) -> None:
    rows = contact_rows(batch)

    assert [row.row_number for row in rows] == list(range(1, len(batch) + 1))
    assert decode_rows(encode_rows(rows)) == rows
