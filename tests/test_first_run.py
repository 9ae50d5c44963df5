"""The first run of an untouched notebook says what to do, instead of bare errors.

* every placeholder of a released exercise cell names its exercise and what to do with it;
* self-check cells name only the check, so ``check`` looks the objects up in the notebook
  and a name not defined yet gives "not yet: define ..." instead of a ``NameError``
  (checked in a real kernel on the released lesson 02);
* the grader still recognises the labelled placeholder as a blank answer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from grader.authoring.cells import CODE_STUB, code_stub, is_stub_line, role
from grader.base.paths import NOTEBOOKS_DIR
from grader.classroom.similarity import exercise_code
from grader.kernel.execute import ExecutionResult
from grader.scoring.score import _exercise_problem

RELEASED = sorted(NOTEBOOKS_DIR.glob("0*.ipynb"))
LABELLED = re.compile(r'raise NotImplementedError\("Exercise (\d+)\.\w+: replace this line with'
                      r' your code"\)')


def _cells(path: Path, kind: str):
    nb = nbformat.read(str(path), as_version=4)
    return [cell for cell in nb.cells if cell.cell_type == "code" and role(cell) == kind]


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_every_placeholder_names_its_exercise(path):
    module = path.name[:2].lstrip("0")
    unlabelled = [cell.id for cell in _cells(path, "exercise")
                  if [m.group(1) for m in LABELLED.finditer(cell.source)] != [module]]
    assert unlabelled == [], f"{path.name}: exercise cells without a labelled placeholder"


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_check_cells_pass_no_name_that_may_not_exist_yet(path):
    passing = []
    for cell in _cells(path, "check"):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
                if node.keywords or len(node.args) != 1:
                    passing.append(cell.id)
    assert passing == [], f"{path.name}: check cells that pass names: {passing}"


def test_the_grader_and_the_similarity_scan_know_both_placeholders():
    labelled = code_stub("2.1")
    assert code_stub(None) == CODE_STUB
    assert all(is_stub_line(stub.splitlines()[-1]) for stub in (labelled, CODE_STUB))
    assert not is_stub_line('raise NotImplementedError("not done")')
    cell = nbformat.v4.new_code_cell(labelled + "\nprint(1)")
    cell["id"] = "ex"
    problem = _exercise_problem([cell], ExecutionResult(nb=nbformat.v4.new_notebook()))
    assert problem and "still holds the placeholder" in problem
    blank = {"cells": [{"cell_type": "code", "source": labelled,
                        "metadata": {"nbgrader": {"solution": True}}}]}
    assert exercise_code(blank) == ""


@pytest.mark.notebook
@pytest.mark.slow
def test_an_untouched_lesson_says_what_to_do_in_a_real_kernel(tmp_path, data_dir, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("DLCOURSE_FAST", "1")
    monkeypatch.setenv("DLCOURSE_DATA_DIR", data_dir)
    monkeypatch.delenv("DLCOURSE_GRADING", raising=False)
    nb = nbformat.read(str(NOTEBOOKS_DIR / "02_dense_mnist_fashion.ipynb"), as_version=4)
    ids = [cell.id for cell in nb.cells]
    nb.cells = nb.cells[:ids.index("m02-021") + 1]          # up to Exercise 2.1's self-check
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    by_id = {cell.id: cell for cell in nb.cells}

    def errors(cid):
        return [(o.ename, o.evalue) for o in by_id[cid].get("outputs", []) if o.output_type == "error"]

    assert errors("m02-020") == [("NotImplementedError",
                                  "Exercise 2.1: replace this line with your code")]
    printed = "".join(o.get("text", "") for o in by_id["m02-021"].outputs
                      if o.output_type == "stream")
    assert "[02.one_hot_row] not yet: define `one_hot_row` in Exercise 2.1 above" in printed
    assert [name for name, _ in errors("m02-021")] == ["AssertionError"]
    before = [cid for cid in ids[:ids.index("m02-020")] if errors(cid)]
    assert before == [], f"cells before the first exercise raised: {before}"
