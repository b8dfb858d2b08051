"""Spreadsheet-safe CSV cells (OWASP, CSV injection): a cell starting like a formula is shown as text, and the
spreadsheet hides the added quote; any other cell is left alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.csv_cells import FORMULA_STARTS, neutralized


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://evil","x")', "+1 555", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_a_formula_start_is_neutralized(cell: str) -> None:
    assert neutralized(cell) == "'" + cell


@given(st.text())
def test_neutralizing_keeps_the_text_and_never_starts_a_formula(cell: str) -> None:
    shown = neutralized(cell)
    assert not shown.startswith(FORMULA_STARTS)
    assert shown == ("'" + cell if cell.startswith(FORMULA_STARTS) else cell)
