"""Cells of a CSV file that people open in a spreadsheet (OWASP, CSV injection): a cell starting like a formula
(``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading ``'`` so the spreadsheet shows it as text; the
original is the cell without it. Write every cell quoted (``csv.QUOTE_ALL``)."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet run a cell as a formula."""


def neutralized(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell



def cell_sql(text_expression: str) -> str:
    """SQL of the cell ``csv.writer(quoting=csv.QUOTE_ALL)`` writes for ``neutralized(value or "")``, where
    ``text_expression`` is the value as text: for files PostgreSQL formats itself."""
    value = f"coalesce({text_expression}, '')"
    starts = ", ".join(f"chr({ord(start)})" for start in FORMULA_STARTS)
    shown = f"CASE WHEN left({value}, 1) IN ({starts}) THEN '''' || {value} ELSE {value} END"
    return f"""('"' || replace({shown}, '"', '""') || '"')"""
