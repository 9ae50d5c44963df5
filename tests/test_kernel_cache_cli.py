"""A planted shared data copy, graded through the real CLI: the batch never uses it.

Someone else created the grader's cache folder first (``<tmp>/dlcourse-kcache-<uid>``, owned
by another user) and put in it a copy that passes every content check: the right entry name
for the instructor's dataset files, a manifest whose digests match, but every training
label shifted by one. A batch that used it would train the honest student's model on wrong
labels and fail its accuracy check. The batch must refuse the folder, write its own copy,
grade the honest submission with full marks, exit 0 and leave the planted files untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import numpy as np
import pytest

from grader.data.holdout import plan_holdout
from grader.data.kernel_cache import cache_root, shared_fast_copy

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("kernel-cache-cli")]


def _poison(entry: Path) -> dict[str, str]:
    """Shift every label of the entry's MNIST copy and fix its manifest; returns the file
    digests after poisoning."""
    data = entry / "data"
    os.chmod(data, 0o755)
    target = data / "mnist.npz"
    with np.load(target) as arrays:
        content = {k: arrays[k] for k in arrays.files}
    content["y_train"] = (content["y_train"] + 1) % 10
    os.chmod(target, 0o644)
    target.unlink()
    with open(target, "xb") as handle:
        np.savez(handle, **content)
    os.chmod(target, 0o444)
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"]["mnist.npz"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (entry / "manifest.json").write_text(json.dumps(manifest))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir())}


def test_a_planted_cache_folder_is_refused_and_the_honest_row_keeps_its_points(tmp_path,
                                                                              data_dir):
    source = tmp_path / "data"
    source.mkdir()
    shutil.copy(Path(data_dir) / "mnist.npz", source / "mnist.npz")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    planted = shared_fast_copy(plan_holdout(str(source), fast=True, key=b"k" * 32),
                               parent=str(tmp))
    digests = _poison(planted.root)
    root = cache_root(str(tmp))
    if os.geteuid() == 0:  # another user made the folder first
        for path in [root, *root.rglob("*")]:
            os.lchown(path, 65534, 65534)
    else:  # without root: a folder others can write
        os.chmod(root, 0o777)
    before = sorted(p.name for p in root.iterdir())

    rubric = fx.build_rubric(tmp_path)
    solution = fx.build_solution(rubric)
    solution_path = fx.write(solution, tmp_path / "solution" / "01_fixture.ipynb")
    fx.write(fx.submission(solution), tmp_path / "subs" / "honest" / "01_fixture.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(TMPDIR=str(tmp), DLCOURSE_DATA_DIR=str(source),
               DLCOURSE_KEY_FILE=str(tmp_path / "key" / "results.key"),
               PYTHONPATH=os.pathsep.join([str(Path(fx.__file__).parent),
                                           env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(tmp_path / "subs"), "--out", str(out),
         "--fast", "--jobs", "1", "--cell-timeout", "120", "--rubric", str(rubric.path),
         "--solution", str(solution_path), "--import", "helpers_notebooks"],
        env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    row = rows["honest"]
    assert row["error"] is None, row["error"]
    assert row["score"] == row["max_score"], [c["message"] for c in row["checks"]]
    # the planted folder: untouched, still someone else's, nothing added
    assert sorted(p.name for p in root.iterdir()) == before
    data = planted.root / "data"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.iterdir())} == digests
    if os.geteuid() == 0:
        assert root.stat().st_uid == 65534
