"""One batch mixing good, failing, crashing, looping, memory-hungry, malformed, huge-output
and tampering submissions of the tiny fixture module, graded with ``jobs=2``.

Each submission must have exactly one row, good ones full marks, and the run must end
within the sum of its limits: one bad submission never affects another.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import helpers_notebooks as fx
import pytest

from grader.classroom.batch import grade_class
from grader.kernel.limits import Limits

pytestmark = pytest.mark.notebook

LIMITS = Limits(cell_timeout_s=40, notebook_timeout_s=240, export_timeout_s=90, memory_mb=2500,
                kill_grace_s=5, output_bytes=50_000, notebook_output_bytes=500_000)
SCORING_S = 120  # kernel start, export and scoring on top of the notebook's own limits

WRONG_MODEL = '''model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])'''


def _submissions(solution) -> dict[str, object]:
    """Student name -> notebook (or raw text for malformed files)."""
    return {
        "good_a": fx.submission(solution),
        "good_b": fx.submission(solution),
        "failing": fx.submission(solution, model=WRONG_MODEL, value="param_bytes = 1"),
        "crashing": fx.submission(solution, model="import os\nos._exit(1)"),
        "looping": fx.submission(solution, value="while True:\n    pass"),
        "stubborn": fx.submission(solution, value=(
            "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
            "    except KeyboardInterrupt:\n        pass")),
        "hungry": fx.submission(solution, value=(
            "hog = []\nwhile True:\n    hog.append(np.ones(50_000_000, dtype=np.uint8))")),
        "noisy": fx.submission(solution, value=(
            "for _ in range(2000):\n    print('x' * 10_000)\nparam_bytes = model.count_params() * 4")),
        "tampering": fx.submission(solution, model=WRONG_MODEL, **{
            "check-params": "model = keras.Sequential([keras.Input(shape=(784,)),"
                            " keras.layers.Dense(16), keras.layers.Dense(10)])",
            "setup": "check = lambda *a, **k: print('correct')\nimport numpy as np\nimport keras\n"
                     "from helpers.data import load_dataset"}),
        "malformed": '{"cells": [ this is not json',
        "not_a_notebook": json.dumps({"hello": "world"}),
    }


def _grade_batch(root: Path, data_dir: str) -> dict:
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    subs = root / "submissions"
    names = _submissions(solution)
    for student, nb in names.items():
        path = subs / student / "01_fixture.ipynb"
        if isinstance(nb, str):
            path.parent.mkdir(parents=True)
            path.write_text(nb)
        else:
            fx.write(nb, path)
    out = root / "out"
    start = time.monotonic()
    summary = grade_class(submissions=[subs], out=out, jobs=2, fast=True, limits=LIMITS,
                          data_dir=data_dir, rubric=rubric, solution=solution,
                          imports=["helpers_notebooks"], progress=False)
    wall = time.monotonic() - start
    rows = {r.student: r for r in summary.rows}
    return {"rows": rows, "out": out, "wall": wall, "names": names, "rubric": rubric}


def test_adversarial_batch_with_two_jobs(tmp_path, data_dir):
    """One test on purpose: the batch is graded once, even under ``pytest -n 2``."""
    batch = _grade_batch(tmp_path, data_dir)
    _every_submission_has_exactly_one_row(batch)
    _good_submissions_score_full_marks_despite_their_neighbours(batch)
    _huge_output_is_capped_and_noted(batch)
    _failing_submission_loses_exactly_the_failed_checks(batch)
    _crash_stubborn_loop_and_memory_hog_are_error_rows_with_reasons(batch)
    _interruptible_loop_costs_only_its_own_exercise(batch)
    _edits_to_protected_cells_are_undone(batch)
    _malformed_files_are_rows_that_say_what_to_fix(batch)
    _the_run_ends_within_the_sum_of_its_limits(batch)
    _outputs_exist_for_every_student(batch)


def _every_submission_has_exactly_one_row(batch):
    names = set(batch["names"])
    data = json.loads((batch["out"] / "grades.json").read_text())
    assert sorted(d["student"] for d in data) == sorted(names)
    with open(batch["out"] / "grades.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["student"] == "Points Possible"  # the maxima row comes first
    assert sorted(r["student"] for r in table[1:]) == sorted(names)


def _good_submissions_score_full_marks_despite_their_neighbours(batch):
    for student in ("good_a", "good_b", "noisy"):
        row = batch["rows"][student]
        assert row.error is None, (student, row.error, row.notes)
        assert row.score == row.max_score == batch["rubric"].max_score, (student, row.checks)


def _huge_output_is_capped_and_noted(batch):
    assert any("output was cut" in n for n in batch["rows"]["noisy"].notes)


def _failing_submission_loses_exactly_the_failed_checks(batch):
    row = batch["rows"]["failing"]
    failed = {c.id for c in row.checks if not c.passed}
    assert failed == {"01.fx_params", "01.fx_value"}
    assert row.error is None


def _crash_stubborn_loop_and_memory_hog_are_error_rows_with_reasons(batch):
    rows = batch["rows"]
    assert "died" in rows["crashing"].error
    assert "ignored the interrupt" in rows["stubborn"].error
    assert "MB limit" in rows["hungry"].error
    for student in ("crashing", "stubborn", "hungry"):
        assert rows[student].score == 0


def _interruptible_loop_costs_only_its_own_exercise(batch):
    row = batch["rows"]["looping"]
    assert row.error is None
    assert [c.id for c in row.checks if not c.passed] == ["01.fx_value"]
    assert any("interrupted at the time limit" in n for n in row.notes)


def _edits_to_protected_cells_are_undone(batch):
    row = batch["rows"]["tampering"]
    assert {c.id for c in row.checks if not c.passed} == {"01.fx_params", "01.fx_value"}
    assert any("restored" in n for n in row.notes)


def _malformed_files_are_rows_that_say_what_to_fix(batch):
    for student in ("malformed", "not_a_notebook"):
        row = batch["rows"][student]
        assert row.score == 0 and "Fix:" in row.error
        assert len(row.checks) == len(batch["rubric"].checks)


def _the_run_ends_within_the_sum_of_its_limits(batch):
    per_submission = (LIMITS.notebook_timeout_s + LIMITS.export_timeout_s + LIMITS.kill_grace_s
                      + SCORING_S)
    assert batch["wall"] < per_submission * len(batch["names"])
    for row in batch["rows"].values():
        assert row.duration_s < per_submission, (row.student, row.duration_s)


def _outputs_exist_for_every_student(batch):
    out: Path = batch["out"]
    for student in batch["names"]:
        assert (out / "feedback" / f"{student}.html").is_file()
        assert (out / "feedback" / f"{student}.md").is_file()
    report = (out / "report.html").read_text()
    assert "good_a" in report and "Similar code" in report
