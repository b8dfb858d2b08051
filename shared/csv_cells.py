"""Cells of a CSV file that people open in a spreadsheet (OWASP, CSV injection): a cell starting like a formula
(``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'`` so the spreadsheet shows it as text; the
original is the cell without it. Write every cell quoted (``csv.QUOTE_ALL``)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet run a cell as a formula."""


def neutralized(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell

