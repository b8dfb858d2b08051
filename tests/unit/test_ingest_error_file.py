"""The error-row file is safe to open in a spreadsheet: a cell that would run as a formula is shown as text, and
its original is the cell without the leading quote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.csv_cells import FORMULA_STARTS, neutralized


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
        ("+1 555 0100", "'+1 555 0100"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
        ("\rx", "'\rx"), ("ada@example.com", "ada@example.com"), ("", ""), (" =x", " =x"),
    ],
)
def test_cells_a_spreadsheet_would_run_as_a_formula_start_with_a_quote(cell: str, shown: str) -> None:
    assert neutralized(cell) == shown


@given(st.text())
def test_no_neutralized_cell_starts_like_a_formula_and_the_original_is_kept(cell: str) -> None:
    shown = neutralized(cell)
    assert not shown.startswith(FORMULA_STARTS)
    assert shown == cell or (shown[0] == "'" and shown[1:] == cell)
