"""Contacts sent as JSON become CSV rows under the standard header; a bad element becomes a refused row, a bad
request as a whole a clear error."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain import MISSING_EMAIL, ValidRow, check_row, is_blank, map_columns
from services.ingest.json_import import (
    HEADER,
    INVALID_VALUE,
    NOT_AN_OBJECT,
    JsonRefused,
    Refusal,
    canonical_body,
    cell,
    check_contacts,
    fingerprint,
    parse_body,
    to_csv,
    to_row,
)


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


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
        parse_body(b'[{"email": "a@example.com",]')
    assert refused.value.status_code == 422
    assert "not valid JSON (line 1, column" in refused.value.message
    with pytest.raises(JsonRefused, match="not UTF-8"):
        parse_body(b'["\xff"]')


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


def test_an_object_becomes_cells_in_header_order_and_unknown_keys_are_ignored() -> None:
    element = {
        "phone": "+49 30 1234", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
        "company": "Analytical Engines", "title": "Analyst", "external_id": "hs-17",
        "email_permission": "subscribed", "favourite_colour": "green",
    }
    assert to_row(1, element) == [
        "ada@example.com", "Ada", "Lovelace", "Analytical Engines", "Analyst", "+49 30 1234", "hs-17",
        "marketing contact", "",
    ]


@pytest.mark.parametrize("permission", [None, "subscribed", "unsubscribed", "unknown"])
def test_the_permission_travels_as_consent_cells_that_read_back_as_the_same_permission(
    permission: str | None,
) -> None:
    columns = map_columns(HEADER)
    assert sorted(columns.positions.values()) == list(range(len(HEADER))), "every column is mapped as named"
    row = to_row(1, {"email": "ada@example.com", "email_permission": permission})
    assert isinstance(row, list)
    checked = check_row(1, row, columns)
    assert isinstance(checked, ValidRow)
    assert checked.email_permission == permission


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""), ("x", "x"), (4930123456, "4930123456"), (4930123456.0, "4930123456"), (1.5, "1.5"),
        (True, "true"), (False, "false"), (0, "0"), ({"a": 1}, None), ([1], None), (float("nan"), "nan"),
    ],
)
def test_scalars_are_converted_sensibly(value: Any, expected: str | None) -> None:
    assert cell(value) == expected


def test_missing_keys_are_blank_cells() -> None:
    assert to_row(3, {"email": "bob@example.com"}) == ["bob@example.com"] + [""] * (len(HEADER) - 1)


def test_a_csv_row_from_json_is_checked_like_any_row() -> None:
    columns = map_columns(HEADER)
    good = check_row(1, to_row(1, {"email": " Ada@Example.com", "phone": 4930123, "external_id": 17}), columns)
    assert isinstance(good, ValidRow)
    assert (good.key, good.fields["phone"], good.external_id) == ("ada@example.com", "4930123", "17")
    bad = check_row(2, to_row(2, {"email": "ada@"}), columns)
    assert not isinstance(bad, ValidRow) and bad.code == "INVALID_EMAIL"


@pytest.mark.parametrize(
    ("element", "code", "message"),
    [
        ("ada@example.com", NOT_AN_OBJECT, "element 2 is a string, not a contact object"),
        (None, NOT_AN_OBJECT, "element 2 is null"),
        ([1, 2], NOT_AN_OBJECT, "element 2 is an array"),
        ({"email": "a@x.io", "phone": {"home": "1"}}, INVALID_VALUE, "'phone' is an object"),
        ({"email": ["a@x.io"]}, INVALID_VALUE, "'email' is an array"),
        ({"email": "a@x.io", "email_permission": "maybe"}, INVALID_VALUE, "'email_permission' is 'maybe'"),
        ({}, MISSING_EMAIL, "element 2 has no email"),
        ({"email": "  ", "notes": "ignored"}, MISSING_EMAIL, "element 2 has no email"),
    ],
)
def test_an_element_that_cannot_be_a_row_is_refused_with_a_code_and_kept_as_json(
    element: Any, code: str, message: str
) -> None:
    refused = to_row(2, element)
    assert isinstance(refused, Refusal)
    assert (refused.row_number, refused.code) == (2, code)
    assert message in refused.message
    assert refused.cells == [json.dumps(element)]


def test_a_missing_or_malformed_email_is_left_to_the_reader_like_a_csv_row() -> None:
    assert to_row(1, {"first_name": "Ada"}) == ["", "Ada"] + [""] * (len(HEADER) - 2)
    assert to_row(1, {"email": "not an email"})[0] == "not an email"  # type: ignore[index]
    assert to_row(1, {"email": 42})[0] == "42"  # type: ignore[index]


# --- the whole file -----------------------------------------------------------------------------------------


def test_row_n_of_the_csv_is_element_n_and_refused_elements_keep_a_non_blank_line() -> None:
    converted = to_csv([{"email": "a@x.io", "first_name": "A,\"B\"\nC"}, 7, {"email": "b@x.io"}])
    rows = read_back(converted.csv_text)
    assert rows[0] == list(HEADER)
    assert rows[1][:2] == ["a@x.io", "A,\"B\"\nC"]
    assert rows[2][0] == "" and not is_blank(rows[2])
    assert rows[3][0] == "b@x.io"
    assert [(r.row_number, r.code) for r in converted.refusals] == [(2, NOT_AN_OBJECT)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
elements = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={key: json_values for key in HEADER}),
)


@given(st.lists(elements, min_size=1, max_size=20))
def test_every_element_is_exactly_one_row_or_one_refusal_never_lost(batch: list[Any]) -> None:
    converted = to_csv(batch)
    rows = read_back(converted.csv_text)[1:]
    assert len(rows) == len(batch)
    refused = {r.row_number for r in converted.refusals}
    for row_number, (row, element) in enumerate(zip(rows, batch, strict=True), start=1):
        assert len(row) == len(HEADER)
        assert not is_blank(row), "a blank line would not be a row of the import"
        if row_number in refused:
            assert row[0] == ""
        else:
            assert row == to_row(row_number, element)
