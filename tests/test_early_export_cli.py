"""The early export (re-runs of what the student chose, run while the notebook still runs),
tried by hostile submissions through the real CLI.

Lesson 02's architecture table is exported once more right after its exercise cell, and the
warm scorer re-runs the architectures the check will choose while the rest of the notebook
runs (:mod:`grader.checks.speculation`). Two submissions, built from the lesson's solution:

* ``changer`` replaces the table in the next exercise cell with architectures it never
  trained and made-up accuracies: the early export saw the honest table, the check must
  re-run what the final table says. Graded twice, with re-runs ahead (as shipped) and with
  ``DLCOURSE_RERUN_AHEAD=0``: the check's re-runs (configurations, seeds, values) and its
  outcome are the same.
* ``planter`` patches ``json.dump`` so that every file an early export writes becomes a FIFO
  before the grader reads it, and later guesses the final export's folder from the early
  one's name and plants a file there: the grader never blocks, the early folder's name gives
  nothing away, and the honest table still earns its point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from grader.base.paths import REPO_ROOT, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("early-export")]

RESULTS_KEY = "6a" * 32
CHECK = "02.fashion_architectures"

CHANGED_TABLE = ('fashion_architectures = {"16": 0.5, "48": 0.5, "96": 0.5, "24-12": 0.5}\n'
                 'print("the table changed after the exercise")\n')

PLANTER = '''import json, os

_dump = json.dump


def _dump_then_swap(value, handle, *args, **kwargs):
    # Every export writes its files with json.dump: an early export's file becomes a FIFO
    # the moment it is written, before the grader reads it.
    _dump(value, handle, *args, **kwargs)
    path = getattr(handle, "name", "")
    if isinstance(path, str) and os.path.basename(os.path.dirname(path)).startswith("early"):
        handle.flush()
        os.unlink(path)
        os.mkfifo(path)
        with open("fifos_planted.txt", "a") as log:
            log.write(path + "\\n")


json.dump = _dump_then_swap
'''


PLANTED = '''assert os.path.exists("fifos_planted.txt"), "the early export was not seen"
# Guess the final export's folder from the early one's name and plant a file there first:
# were the names related, the table would load as a broken figure and lose its point.
for seen in os.listdir("."):
    if seen.startswith("early-"):
        token = seen[len("early-"):]
        for guess in {token, token.rsplit("-", 1)[0]}:
            os.makedirs("export-" + guess, exist_ok=True)
            with open(os.path.join("export-" + guess, "fashion_architectures.figure.json"),
                      "w") as planted:
                planted.write("{}")
'''


def _exercise_index(nb) -> int:
    spec = next(c for c in load_rubric("02").checks if c.id == CHECK)
    return next(i for i, c in enumerate(nb.cells) if c.get("id") == spec.ahead_after)


def _solution_with(code: str, *, later: bool):
    """Lesson 02's solution with ``code`` added to an exercise cell (the grader ignores cells a
    student adds): at the top of the architecture exercise, or at the end of the next
    exercise cell after it (``later``)."""
    nb = nbformat.read(SOLUTIONS_DIR / load_rubric("02").notebook, as_version=4)
    if later:
        _add_later(nb, code)
    else:
        cell = nb.cells[_exercise_index(nb)]
        cell.source = code + "\n" + cell.source
    return nb


def _add_later(nb, code: str) -> None:
    """Append ``code`` to the first exercise cell after the architecture exercise."""
    cell = next(c for c in nb.cells[_exercise_index(nb) + 1:] if c.cell_type == "code"
                and c.metadata.get("nbgrader", {}).get("solution"))
    cell.source += "\n" + code


def _grade(folder, out, key_file, **env) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--fast",
         "--jobs", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "DLCOURSE_KEY_FILE": str(key_file), **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {row["student"]: row for row in json.loads((out / "grades.json").read_text())}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("early-export")
    key_file = root / "results.key"
    key_file.write_text(RESULTS_KEY + "\n")
    both, alone = root / "both", root / "alone"
    both.mkdir()
    alone.mkdir()
    changer = _solution_with(CHANGED_TABLE, later=True)
    nbformat.write(changer, both / "changer_02_dense_mnist_fashion.ipynb")
    nbformat.write(changer, alone / "changer_02_dense_mnist_fashion.ipynb")
    planter = _solution_with(PLANTER, later=False)
    _add_later(planter, PLANTED)
    nbformat.write(planter, both / "planter_02_dense_mnist_fashion.ipynb")
    ahead = _grade(both, root / "out-ahead", key_file)
    after = _grade(alone, root / "out-after", key_file, DLCOURSE_RERUN_AHEAD="0")
    return ahead, after


def _check(row) -> dict:
    return next(c for c in row["checks"] if c["id"] == CHECK)


def test_a_table_changed_after_the_early_export_is_graded_as_without_it(graded):
    ahead, after = graded
    early, late = _check(ahead["changer"]), _check(after["changer"])
    assert not ahead["changer"]["error"] and not any("added" in n for n in ahead["changer"]["notes"])
    reruns = early["details"]["reruns"]
    assert {r["configuration"].split()[-1] for r in reruns} <= {"16", "48", "96", "24-12"}
    assert early == late and not early["passed"] and early["points"] == 0


def test_fifos_planted_in_the_early_export_block_nothing(graded):
    ahead, _ = graded
    row = ahead["planter"]
    assert not row["error"] and _check(row)["passed"], _check(row)
    assert not [n for n in row["notes"] if "raised" in n or "not seen" in n], row["notes"]
    assert sorted(ahead) == ["changer", "planter"]
