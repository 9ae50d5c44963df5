"""A timing the grader takes while the student's kernel runs, tried by a hostile submission
through the real CLI.

Lesson 01's batch-size timings run ahead in the warm scorer while the kernel runs
(:mod:`grader.checks.speculation`). A kernel can slow them: ``spinner`` starts eight busy
processes in its first exercise cell, keeps them running for 30 s, then stops them, times its
own batch sizes honestly and reports eight times what it measured (a made-up "slow machine").
The timing taken beside the kernel is refused (its bounds, from its CPU seconds,
:func:`grader.checks.experiments.rerun_timing`), the batch sizes are timed again after the
kernel, and the check fails as it would with nothing run ahead.

How much the spinners overlap the timings ahead depends on when the first exercise cell
runs (in lesson 01 the scorer often times before it): that the bound refuses what a slowed
timing would have let in is tested with a certain overlap in
``tests/test_scoring_server.py`` (busy processes started around the request). Graded alone,
as an instructor grades one late notebook or Gradescope grades every one, so the timings
after the kernel run alone (in a batch they run beside the next notebook's kernel).
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

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("timing-beside")]

CHECK = "01.batch_timing"
FIRST_EXERCISE = "46912284"
TIMING_EXERCISE = "e9c36861"
FACTOR = 8

SPIN = '''import subprocess as _subprocess, sys as _sys, time as _time

_SPIN = "import time\\nend = time.time() + 150\\nwhile time.time() < end:\\n    pass\\n"
_spinners = [_subprocess.Popen([_sys.executable, "-c", _SPIN]) for _ in range(8)]
_spin_started = _time.time()
'''

STOP = '''# Keep spinning until the grader has surely timed ahead (it starts with the kernel), then stop.
_time.sleep(max(0.0, 30 - (_time.time() - _spin_started)))
_spinning = [p.poll() is None for p in _spinners]
assert all(_spinning), "a spinner stopped early"
for _p in _spinners:
    _p.kill()
    _p.wait()
'''

INFLATE = f'''
batch_seconds = {{size: seconds * {FACTOR} for size, seconds in batch_seconds.items()}}
'''


def _spinner():
    nb = nbformat.read(SOLUTIONS_DIR / load_rubric("01").notebook, as_version=4)
    cells = {c.get("id"): c for c in nb.cells}
    cells[FIRST_EXERCISE].source = SPIN + "\n" + cells[FIRST_EXERCISE].source
    cells[TIMING_EXERCISE].source = STOP + "\n" + cells[TIMING_EXERCISE].source + INFLATE
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("timing-beside")
    folder, out = root / "in", root / "out"
    folder.mkdir()
    nbformat.write(_spinner(), folder / "spinner_01_mlp_cifar10_gray.ipynb")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    key_file = root / "results.key"
    key_file.write_text("5b" * 32 + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), "--fast",
         "--jobs", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "DLCOURSE_KEY_FILE": str(key_file)})
    rows = {row["student"]: row for row in json.loads((out / "grades.json").read_text())}
    return proc, rows, before, folder


def _check(row) -> dict:
    return next(c for c in row["checks"] if c["id"] == CHECK)


def test_a_kernel_that_slows_the_timing_done_ahead_gains_nothing(graded):
    proc, rows, before, folder = graded
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # submissions untouched
    row = rows["spinner"]
    assert not row["error"], row["error"]
    check = _check(row)
    assert not check["passed"] and check["points"] == 0, check
    reruns = check["details"]["reruns"]
    assert reruns and all("beside_rerun_seconds" in r and "beside_kernel" not in r
                          for r in reruns), reruns  # timed ahead, refused, timed again after
    assert all(r["reported_seconds"] > 4 * r["rerun_seconds"] for r in reruns), reruns
