"""Submissions that fake their experiment results, graded through the real CLI.

One batch, graded once with ``python -m grader grade --fast`` under a fixed results key,
holds ``faker`` and the interpolator. The honest control, lesson 01's solution, is not graded
again here: its row is the one ``tests/test_contract.py`` reads (tests/shared_batches.py:
fast mode, the ``grade_submission`` the CLI runs for each notebook of a batch, graded once
for both files on one xdist worker):

* ``honest``: lesson 01's solution; every automatic check keeps its points, and the learning
  rate check's three re-runs agree.
* ``faker``: Exercises 1.b and 1.c replaced by made-up numbers of the right type (dicts keyed
  by every learning rate and batch size, histories consistent with them): no training runs
  in those cells. The two experiment checks lose their 4 points and say why; every other
  check, fed by the untouched solution cells, keeps its points.
* an interpolator: Exercise 1.b trains 2 of the 5 learning rates (1e-4 and 1e-3, the pool the
  grader used to re-run from) and invents the other 3 on a line through the 1e-3 value,
  rising with log10 of the rate by the gap between the two, with histories consistent with
  the invented values. The grader re-runs 3 of
  the 5 rates, chosen with its private key, so at least one invented value is always
  re-run; the student is picked (as the key allows) among those whose choice includes 0.1:
  its invented value (at least the 1e-3 value, about 0.21) lies far from what 2 epochs at
  rate 0.1 give (0.100 over 5 seeds: the run diverges to chance). The check loses its points; the
  student's feedback names no re-run configuration, grades.json lists them for the
  instructor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest
from shared_batches import shared_mark

from grader.base.paths import REPO_ROOT, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

pytestmark = pytest.mark.notebook
# xdist joins every xdist_group mark of a test into one group name: the cheats' tests, which
# share the module's batch, carry this one; the honest control carries lesson 01's shared one.
FAKE_RESULTS = pytest.mark.xdist_group("fake-results")

FAKE_LR_SWEEP = '''print("no training here")
lr_histories = {}
lr_results = {}
for lr in LEARNING_RATES:
    lr_histories[lr] = {"loss": [2.0] * SWEEP_EPOCHS, "accuracy": [0.5] * SWEEP_EPOCHS,
                        "val_loss": [1.5] * SWEEP_EPOCHS, "val_accuracy": [0.55] * SWEEP_EPOCHS}
    lr_results[lr] = 0.55
'''

FAKE_BATCH_TIMING = '''x_small, y_small = x_train[:BATCH_SWEEP_SAMPLES], y_train[:BATCH_SWEEP_SAMPLES]
batch_histories = {bs: {"loss": [1.0]} for bs in BATCH_SIZES}
batch_seconds = {4: 90.0, 16: 60.0, 32: 45.0, 256: 30.0, 1024: 20.0}
batch_val_accuracy = {bs: 0.5 for bs in BATCH_SIZES}
'''

INTERPOLATED_LR_SWEEP = '''import math
lr_histories = {}
lr_results = {}
for lr in (1e-4, 1e-3):  # the only two rates trained
    run = compile_mlp(make_mlp(1024), learning_rate=lr).fit(
        x_train, y_train, epochs=SWEEP_EPOCHS, batch_size=BATCH_SIZE,
        validation_data=(x_val, y_val), verbose=0)
    lr_histories[lr] = run.history
    lr_results[lr] = float(max(run.history["val_accuracy"]))
slope = abs(lr_results[1e-3] - lr_results[1e-4])  # accuracy "rises with the rate"
for lr in LEARNING_RATES:
    if lr in lr_results:
        continue
    value = min(max(lr_results[1e-3] + slope * (math.log10(lr) + 3), 0.0), 1.0)
    lr_histories[lr] = {**lr_histories[1e-3],
                        "val_accuracy": [value * (i + 1) / SWEEP_EPOCHS
                                         for i in range(SWEEP_EPOCHS)]}
    lr_results[lr] = value
'''

LEARNING_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
RESULTS_KEY = "5f" * 32


def replaced_solution(replacements: dict[str, str]):
    """Lesson 01's solution with the exercise cells holding each marker replaced."""
    nb = nbformat.read(SOLUTIONS_DIR / load_rubric("01").notebook, as_version=4)
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
            continue
        for marker, source in replacements.items():
            if marker in cell.source:
                cell.source, replaced = source, replaced + 1
    assert replaced == len(replacements), "the lesson 01 solution changed: update the fakes"
    return nb


def faked_solution():
    return replaced_solution({"lr_results = {}": FAKE_LR_SWEEP,
                              "batch_seconds = {}": FAKE_BATCH_TIMING})


def interpolator_name(key_file) -> str:
    """A student whose private choice of re-run learning rates includes 0.1.

    On code without ``choose_many`` (one re-run from the public pool 1e-4, 1e-3) any name
    does: nothing invented is ever re-run there.
    """
    from grader.checks import experiments
    from grader.checks.context import Context
    from grader.submission.grading import rerun_choice_key

    choose_many = getattr(experiments, "choose_many", None)
    names = [f"ivy{i}" for i in range(40)]
    if choose_many is None:
        return names[0]
    from grader.checks.references import lesson01

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLCOURSE_KEY_FILE", str(key_file))
        for name in names:
            ctx = Context(choice_key=rerun_choice_key(name, "01"))
            chosen = choose_many(ctx, list(lesson01.LR_TOLERANCE["fast"]), "lr_sweep",
                                 lesson01.LR_RERUNS["fast"])
            if 1e-1 in chosen:
                return name
    raise AssertionError("no student name among 40 makes the grader re-run 0.1")


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir):
    """The two cheats graded in one batch: (output folder, rows by student)."""
    root = tmp_path_factory.mktemp("fake-results")
    key_file = root / "results.key"
    key_file.write_text(RESULTS_KEY + "\n")
    folder = root / "submissions"
    folder.mkdir()
    name = interpolator_name(key_file)
    nbformat.write(faked_solution(), folder / "faker_01_mlp_cifar10_gray.ipynb")
    nbformat.write(replaced_solution({"lr_results = {}": INTERPOLATED_LR_SWEEP}),
                   folder / f"{name}_01_mlp_cifar10_gray.ipynb")
    out = root / "out"
    env = {**os.environ, "DLCOURSE_KEY_FILE": str(key_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--fast"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=2400, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["student"]: row for row in json.loads((out / "grades.json").read_text())}
    assert set(rows) == {"faker", name}, sorted(rows)
    return out, rows, name


def automatic_checks(row) -> dict:
    return {c["id"]: c for c in row["checks"] if not c.get("manual")}


@FAKE_RESULTS
def test_fake_experiment_results_lose_their_points(graded):
    out, rows, _ = graded
    row = rows["faker"]
    checks = automatic_checks(row)
    for cid in ("01.lr_sweep", "01.batch_timing"):
        assert checks[cid]["points"] == 0
        assert "a re-run of one or more of your reported configurations did not match" \
            in checks[cid]["message"]
        assert not all(r["agrees"] for r in checks[cid]["details"]["reruns"])
    others = {cid: c for cid, c in checks.items()
              if cid not in ("01.lr_sweep", "01.batch_timing")}
    assert all(c["passed"] for c in others.values()), others
    assert row["score"] == sum(c["max_points"] for c in checks.values()) - 4
    feedback = (out / "feedback" / "faker.html").read_text()
    assert "did not match" in feedback


@shared_mark("01", "solution")
def test_honest_solution_keeps_full_points(lesson_graded):
    row, _ = lesson_graded("01", "solution")
    honest = row.to_dict()  # the grades.json shape the cheats' rows have
    checks = automatic_checks(honest)
    assert all(c["passed"] for c in checks.values()), {
        cid: c["message"] for cid, c in checks.items() if not c["passed"]}
    assert honest["score"] == sum(c["max_points"] for c in checks.values())
    reruns = checks["01.lr_sweep"]["details"]["reruns"]
    assert len(reruns) == 3 and all(r["agrees"] for r in reruns)


@FAKE_RESULTS
def test_interpolated_learning_rates_lose_the_check_and_stay_unnamed(graded):
    out, rows, name = graded
    checks = automatic_checks(rows[name])
    sweep = checks["01.lr_sweep"]
    assert not sweep["passed"] and sweep["points"] == 0, sweep["message"]
    assert "did not match" in sweep["message"]
    reruns = sweep["details"]["reruns"]  # for the instructor: which rates, which numbers
    assert "learning rate 0.1" in [r["configuration"] for r in reruns]
    assert not next(r for r in reruns if r["configuration"] == "learning rate 0.1")["agrees"]
    others = {cid: c for cid, c in checks.items() if cid != "01.lr_sweep"}
    assert all(c["passed"] for c in others.values()), others
    for page in ("html", "md"):
        feedback = (out / "feedback" / f"{name}.{page}").read_text()
        assert "did not match" in feedback
        assert "re-ran learning rate" not in feedback
        for lr in LEARNING_RATES:
            assert f"learning rate {lr:g}" not in feedback, (page, lr)
