"""A submission that fakes its experiment results, graded through the real CLI.

Lesson 01's solution with Exercises 1.b and 1.c replaced by made-up numbers of the right
type (dicts keyed by every learning rate and batch size, histories consistent with them):
no training runs in those cells. Graded with ``python -m grader grade --fast`` in the
sandbox, the two experiment checks lose their 4 points and say why; every other check, fed
by the untouched solution cells, keeps its points.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from grader.base.paths import REPO_ROOT, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("fake-results")]

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


def faked_solution():
    nb = nbformat.read(SOLUTIONS_DIR / load_rubric("01").notebook, as_version=4)
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "lr_results = {}" in cell.source and "### BEGIN SOLUTION" in cell.source:
            cell.source, replaced = FAKE_LR_SWEEP, replaced + 1
        elif "batch_seconds = {}" in cell.source and "### BEGIN SOLUTION" in cell.source:
            cell.source, replaced = FAKE_BATCH_TIMING, replaced + 1
    assert replaced == 2, "the lesson 01 solution changed: update the fake cells"
    return nb


def test_fake_experiment_results_lose_their_points(tmp_path, data_dir):
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(faked_solution(), folder / "faker_01_mlp_cifar10_gray.ipynb")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--fast"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads((out / "grades.json").read_text())
    checks = {c["id"]: c for c in row["checks"]}
    assert checks["01.lr_sweep"]["points"] == 0
    assert "the grader re-ran learning rate" in checks["01.lr_sweep"]["message"]
    assert checks["01.batch_timing"]["points"] == 0
    assert "the grader timed batch size" in checks["01.batch_timing"]["message"]
    automatic = {cid: c for cid, c in checks.items() if not c.get("manual")}
    others = {cid: c for cid, c in automatic.items()
              if cid not in ("01.lr_sweep", "01.batch_timing")}
    assert all(c["passed"] for c in others.values()), others
    assert row["score"] == sum(c["max_points"] for c in automatic.values()) - 4
    feedback = (out / "feedback" / f"{row['student']}.html").read_text()
    assert "the grader re-ran learning rate" in feedback
