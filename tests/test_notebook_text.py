"""Every lesson notebook (solutions and released) is free of control characters."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted([*ROOT.glob("solutions/*.ipynb"), *ROOT.glob("notebooks/*.ipynb")])
#: C0 controls except tab and newline, DEL, and C1 controls (a "\a" in "\approx" is a BEL).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_cells_hold_no_control_characters(path):
    nb = nbformat.read(path, as_version=4)
    found = [(cell.get("id"), repr(m.group()), cell.source[max(0, m.start() - 20):m.end() + 20])
             for cell in nb.cells for m in CONTROL.finditer(cell.source)]
    assert found == [], f"control characters in {path.name}: {found}"


def test_the_control_character_scan_finds_a_bel():
    assert CONTROL.search("ln 10 \x07pprox 2.30") and not CONTROL.search("a\tb\nc")
