"""--sandbox through the real CLI where bubblewrap is missing, and the kernel's environment.

A machine without bubblewrap is simulated by a PATH that does not hold ``bwrap`` (the CLI
runs in a subprocess, so the probe's cache starts empty). The submissions are broken files:
no kernel is needed to see what the batch does with the setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.kernel.sandbox import INHERITED_ENV, UNSANDBOXED_WARNING, kernel_environment


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    subs = tmp_path / "subs"
    subs.mkdir(exist_ok=True)
    (subs / "ann_01_mlp_cifar10_gray.ipynb").write_text("{ not a notebook")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = str(tmp_path / "no-bwrap-here")
    env["DLCOURSE_KEY_FILE"] = str(tmp_path / "key")
    return subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out",
                           str(tmp_path / "out"), "--fast", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_auto_without_bubblewrap_grades_unsandboxed_and_says_so_everywhere(tmp_path):
    done = _cli(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "WITHOUT a sandbox" in done.stderr
    assert "`bwrap` command is not installed" in done.stderr
    (row,) = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert row["instructor_notes"][0].startswith(UNSANDBOXED_WARNING)
    assert not any(UNSANDBOXED_WARNING[:40] in n for n in row["notes"])  # never the student's
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'id="sandbox-warning"' in report
    assert report.index('id="sandbox-warning"') < report.index('class="cards"')


def test_bwrap_without_bubblewrap_stops_with_a_fix_and_grades_nothing(tmp_path):
    done = _cli(tmp_path, "--sandbox", "bwrap")
    assert done.returncode == 2
    assert "--sandbox bwrap" in done.stderr and "Fix:" in done.stderr
    assert "apt-get install bubblewrap" in done.stderr
    assert not (tmp_path / "out" / "grades.json").exists()


def test_kernel_environment_is_an_allow_list(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    monkeypatch.setenv("LANG", "C.UTF-8")
    for sandboxed in (True, False):
        env = kernel_environment(fast=True, data_dir="/somewhere", threads=2, sandboxed=sandboxed,
                                 home=Path("/tmp/h"))
        assert "AWS_SECRET_ACCESS_KEY" not in env and "JPY_PARENT_PID" not in env
        assert env["LANG"] == "C.UTF-8" and env["DLCOURSE_FAST"] == "1"
        assert env["OMP_NUM_THREADS"] == "2" and env["TF_NUM_INTEROP_THREADS"] == "2"
        allowed = set(INHERITED_ENV) | {
            "PATH", "HOME", "TMPDIR", "MPLBACKEND", "MPLCONFIGDIR", "TF_CPP_MIN_LOG_LEVEL",
            "PYDEVD_DISABLE_FILE_VALIDATION", "PYTHONNOUSERSITE", "DLCOURSE_GRADING",
            "DLCOURSE_FAST", "DLCOURSE_DATA_DIR", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS"}
        assert set(env) <= allowed, set(env) - allowed
    assert kernel_environment(fast=True, data_dir="/x", threads=None, sandboxed=True)[
        "DLCOURSE_DATA_DIR"] == "/data"


def test_without_a_data_folder_or_network_the_batch_stops_before_grading(tmp_path):
    """Sandboxed kernels have no network: the grader must provide the data or say why not."""
    from grader.kernel.sandbox import bwrap_problem

    if bwrap_problem() is not None:
        pytest.skip(f"needs bubblewrap: {bwrap_problem()}")
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "ann_01_mlp_cifar10_gray.ipynb").write_text("{ not a notebook")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTEST") and k != "DLCOURSE_DATA_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), KERAS_HOME=str(tmp_path / "keras"),
               DLCOURSE_KEY_FILE=str(tmp_path / "key"), HTTP_PROXY="http://127.0.0.1:9",
               HTTPS_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out",
                           str(tmp_path / "out"), "--fast", "--sandbox", "bwrap"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "no network" in done.stderr and "DLCOURSE_DATA_DIR" in done.stderr
    assert not (tmp_path / "out" / "grades.json").exists()
