"""The one cursor format: what a page hands out comes back as the same keys; anything else, a cursor of another
list and a tampered one are the same 422."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st

from shared.pagination import NOT_A_CURSOR, decode_cursor, encode_cursor, page

AT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@given(st.text(), st.integers(), st.datetimes(timezones=st.just(UTC)) | st.none())
def test_keys_come_back_as_they_went(text: str, number: int, at: datetime | None) -> None:
    cursor = encode_cursor("contacts:engagement", text, number, at)
    assert decode_cursor(cursor, "contacts:engagement", (str, int, (datetime, type(None)))) == (text, number, at)
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor


def error_of(cursor: str, scope: str = "imports", shape: tuple = (datetime, str)) -> dict:  # type: ignore[type-arg]
    with pytest.raises(RequestValidationError) as raised:
        decode_cursor(cursor, scope, shape)
    (error,) = raised.value.errors()
    assert error["loc"] == ("query", "cursor") and error["input"] == cursor
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", encode_cursor("imports", "yesterday", "x"),
                                    encode_cursor("imports", AT), encode_cursor("imports", AT, 7),
                                    encode_cursor("imports", AT.replace(tzinfo=None), "x")])
def test_anything_but_a_cursor_of_this_list_is_a_422(cursor: str) -> None:
    assert error_of(cursor)["msg"] == NOT_A_CURSOR


def test_a_cursor_of_another_list_or_sort_order_says_so() -> None:
    assert error_of(encode_cursor("contacts:id", "c-1"))["msg"] == "this cursor continues contacts:id, not imports"


def test_a_page_continues_after_its_last_item_only_when_more_follow() -> None:
    rows = [("a", 1), ("b", 2), ("c", 3)]
    first = page(rows, 2, scope="letters", keys=lambda row: (row[0],))
    assert first.items == rows[:2] and decode_cursor(first.next_cursor or "", "letters", (str,)) == ("b",)
    assert page(rows, 3, scope="letters", keys=lambda row: (row[0],)).next_cursor is None
    assert page([], 3, scope="letters", keys=lambda row: (row,)).model_dump() == {"items": [], "next_cursor": None}
