"""Papermill-style parameter injection.

A lesson has one cell tagged ``parameters`` (``FAST = None``, ``SEED = 42``). To run it in
another mode, a new cell tagged ``injected-parameters`` is placed right after it, so the
new values win and the original cell stays as the student saw it.
"""

from __future__ import annotations

import nbformat

INJECTED_TAG = "injected-parameters"


def inject_parameters(nb, **values) -> int:
    """Insert the injected cell after the ``parameters`` cell (in place); return its index.

    Values must be Python literals (bool, int, float, str, None). Any earlier injected cell
    is replaced. Without a ``parameters`` cell the values go first, as papermill does.
    """
    for name, value in values.items():
        if not name.isidentifier():
            raise ValueError(f"expected parameter names that are Python identifiers, got {name!r}")
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise ValueError(f"expected a literal value for {name}, got {type(value).__name__}")
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    cell["id"] = "injected-parameters"
    index = 0
    for i, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            index = i + 1
            break
    nb.cells.insert(index, cell)
    return index
