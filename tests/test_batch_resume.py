"""Resume: kill ``python -m grader grade`` with SIGKILL mid-batch, rerun, lose and duplicate nothing.

Uses the real CLI on the released (blank) notebook of module 02, which runs quickly
because its exercises stop at ``NotImplementedError``, plus malformed files that are graded
instantly.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from grader.base.paths import NOTEBOOKS_DIR, REPO_ROOT

pytestmark = pytest.mark.notebook

NOTEBOOK = "02_dense_mnist_fashion.ipynb"


def _cli(subs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast",
            "--jobs", "1", *extra]


def _env(data_dir: str) -> dict[str, str]:
    return {**os.environ, "DLCOURSE_DATA_DIR": data_dir, "PYTHONUNBUFFERED": "1"}


def _kill_tree(pid: int) -> None:
    """SIGKILL the grader and everything it started (workers, kernels), as a crash would."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(procs, timeout=30)


def _students_in(out: Path) -> tuple[list[str], list[str]]:
    data = json.loads((out / "grades.json").read_text())
    with open(out / "grades.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert not data or table[0]["student"] == "Points Possible"  # the maxima row comes first
    return sorted(d["student"] for d in data), sorted(r["student"] for r in table[1:])


def test_sigkill_mid_batch_then_rerun_grades_every_submission_exactly_once(tmp_path, data_dir):
    blank = NOTEBOOKS_DIR / NOTEBOOK
    if not blank.exists():
        pytest.skip(f"{blank} is not released yet")
    subs = tmp_path / "subs"
    for student in ("b_blank", "c_blank"):
        (subs / student).mkdir(parents=True)
        shutil.copy(blank, subs / student / NOTEBOOK)
    for student in ("a_broken", "d_broken"):
        (subs / student).mkdir(parents=True)
        (subs / student / NOTEBOOK).write_text('{"cells": [')
    students = ["a_broken", "b_blank", "c_blank", "d_broken"]
    out = tmp_path / "out"

    proc = subprocess.Popen(_cli(subs, out), cwd=REPO_ROOT, env=_env(data_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "results").glob("*.json")):
            assert proc.poll() is None, "the grader exited before writing a result"
            assert time.monotonic() < deadline, "no result file appeared within 300 s"
            time.sleep(0.1)
    finally:
        _kill_tree(proc.pid)
    first = sorted(p.stem for p in (out / "results").glob("*.json"))
    assert 1 <= len(first) < len(students)
    json.loads((out / "grades.json").read_text())  # never half-written

    rerun = subprocess.run(_cli(subs, out), cwd=REPO_ROOT, env=_env(data_dir),
                           capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(first)} already up to date" in rerun.stdout
    in_json, in_csv = _students_in(out)
    assert in_json == in_csv == students

    again = subprocess.run(_cli(subs, out), cwd=REPO_ROOT, env=_env(data_dir),
                           capture_output=True, text=True, timeout=600)
    assert "graded 0 submission(s), 4 already up to date" in again.stdout
    assert _students_in(out) == (students, students)
