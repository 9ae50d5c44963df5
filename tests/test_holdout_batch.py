"""Private scoring data through the real CLI: a model trained on the test split is flagged.

One batch (``python -m grader grade ... --fast``, the tiny fixture module passed with
``--rubric/--solution/--import``) grades an honest submission and one whose training cell
fits the model on ``x_test, y_test`` loaded through ``helpers.data.load_dataset``. The
kernels run as in real grading (sandboxed when bubblewrap works), on the per-run copy of the
data without the private hold-out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import helpers_notebooks as fx
import pytest

from grader.data.holdout import KERNEL_DATA_PREFIX

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("holdout")]

CHEAT_TRAIN = '''model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
(_, _), (x_seen, y_seen) = load_dataset("mnist", fast=FAST)
history = model.fit(normalize_images(x_seen), y_seen, epochs=60, batch_size=32,
                    verbose=0).history'''

PEEK = '''param_bytes = model.count_params() * 4
import os
folder = os.environ["DLCOURSE_DATA_DIR"]
raise RuntimeError("SEEN " + repr((folder, sorted(os.listdir(folder)), [
    (len(load_dataset(n, fast=False)[0][0]), len(load_dataset(n, fast=False)[1][0]))
    for n in ("mnist", "fashion_mnist", "cifar10")])))'''


def _kernel_copies() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith(KERNEL_DATA_PREFIX)}


@pytest.fixture(scope="module")
def batch(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("holdout")
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    subs, out = root / "submissions", root / "out"
    fx.write(fx.submission(solution), subs / "honest" / "01_fixture.ipynb")
    fx.write(fx.submission(solution, value=PEEK), subs / "peeker" / "01_fixture.ipynb")
    fx.write(fx.submission(solution, train=CHEAT_TRAIN), subs / "cheat" / "01_fixture.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DLCOURSE_KEY_FILE=str(root / "key" / "results.key"),
               PYTHONPATH=os.pathsep.join([str(Path(fx.__file__).parent),
                                           env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    before = _kernel_copies()
    args = [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast",
            "--jobs", "1", "--cell-timeout", "120", "--rubric", str(rubric.path),
            "--solution", str(solution_path), "--import", "helpers_notebooks"]
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        stdout, stderr = proc.communicate(timeout=1200)
    done = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    # Other batches (another test worker, an instructor's run) may have copies of their own
    # meanwhile: only a copy this batch wrote (its owner.pid) counts as left behind.
    left = {name for name in _kernel_copies() - before
            if _owner(Path(tempfile.gettempdir()) / name) == proc.pid}
    return {"done": done, "rows": rows, "out": out, "left": left}


def _owner(folder: Path) -> int | None:
    """The pid in a kernel copy's owner file (None when it cannot be read)."""
    try:
        return int((folder / "owner.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _check(row: dict, check_id: str = "01.fx_accuracy") -> dict:
    return next(c for c in row["checks"] if c["id"] == check_id)


def test_the_batch_exits_0_and_removes_its_kernel_copy(batch):
    assert batch["done"].returncode == 0, batch["done"].stderr[-3000:]
    assert set(batch["rows"]) == {"honest", "cheat", "peeker"}
    assert not batch["left"], batch["left"]


def test_the_honest_model_passes_on_the_private_holdout_unflagged(batch):
    row = batch["rows"]["honest"]
    check = _check(row)
    assert check["passed"] and check["points"] == 2, check
    assert "flag" not in check and not row.get("flags")
    details = check["details"]
    assert details["private_accuracy"] >= 0.75
    assert details["gap"] <= details["margin"]
    assert "kept aside" in check["message"]
    assert row["score"] == row["max_score"], [c["message"] for c in row["checks"]]


def test_the_cheat_scores_0_and_every_output_says_why(batch):
    row = batch["rows"]["cheat"]
    check = _check(row)
    assert check["points"] == 0 and not check["passed"]
    assert check["flag"] == "saw_test_set"
    assert check["details"]["gap"] > check["details"]["margin"], check["details"]
    assert "appears to have seen the test set" in check["message"]
    assert row["flags"] == ["saw_test_set"]
    assert any("appears to have seen the test set" in n for n in row["notes"])
    page = (batch["out"] / "feedback" / "cheat.html").read_text()
    assert "flag-saw-test-set" in page and "appears to have seen the test set" in page
    assert "saw_test_set" not in (batch["out"] / "feedback" / "honest.html").read_text()
    report = (batch["out"] / "report.html").read_text()
    flagged = report.split('id="flagged"', 1)[1].split("</section>", 1)[0]
    assert "cheat" in flagged and "honest" not in flagged
    assert "01: saw_test_set" in report.split('id="students"', 1)[1]


def test_the_kernel_saw_only_the_fast_subsets_not_the_instructors_folder(batch, data_dir):
    notes = " ".join(batch["rows"]["peeker"]["notes"])
    assert "SEEN" in notes, notes
    seen = notes.split("SEEN ", 1)[1]
    assert data_dir not in seen
    assert "['cifar10.npz', 'fashion_mnist.npz', 'mnist.npz']" in seen
    assert "[(6000, 2000), (6000, 2000), (6000, 2000)]" in seen  # fast subsets only
