"""Spreadsheet-safe CSV cells: every CSV the grader writes goes through :func:`neutralise`,
every CSV of ours it reads back through :func:`restore`.

A spreadsheet (Excel, LibreOffice, Google Sheets) reads a cell starting with ``=``, ``+``,
``-`` or ``@`` as a formula, and some also act on a leading tab or carriage return (OWASP,
*CSV Injection*). A student id such as ``-A1-A2`` or ``=HYPERLINK(...)`` would run as one.
:func:`neutralise` puts a ``'`` in front of such a cell, which spreadsheets show as text.

The rule is reversible: a cell that already starts with one or more ``'`` followed by one of
those characters gets one more ``'``, so :func:`restore` (drop one leading ``'`` when what
follows the run of ``'`` starts with a formula character) gives back exactly the original,
for every string. Numbers the grader writes are never negative, so numeric columns stay
numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_START = frozenset("=+-@\t\r")
"""First characters a spreadsheet may treat as the start of a formula (OWASP's list)."""
QUOTE = "'"


def _risky(text: str) -> bool:
    return text.lstrip(QUOTE)[:1] in FORMULA_START


def neutralise(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text, never runs as a formula.

    >>> neutralise("-A1-A2"), neutralise("ada"), neutralise(3)
    ("'-A1-A2", 'ada', '3')
    """
    text = str(value)
    return QUOTE + text if _risky(text) else text


def restore(cell: str) -> str:
    """Undo :func:`neutralise`: ``restore(neutralise(x)) == x`` for every string ``x``.

    >>> restore("'-A1-A2"), restore("ada"), restore("''=x")
    ('-A1-A2', 'ada', "'=x")
    """
    return cell[1:] if cell.startswith(QUOTE) and _risky(cell) else cell


def safe_row(values: Iterable[object]) -> list[str]:
    """Every cell of a CSV row through :func:`neutralise`."""
    return [neutralise(v) for v in values]
