"""execute_notebook on small pure-Python notebooks in real kernels (no TensorFlow: quick)."""

from __future__ import annotations

import nbformat
import pytest

from grader.kernel.execute import execute_notebook, kernel_env
from grader.kernel.limits import Limits

pytestmark = pytest.mark.notebook


def notebook(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    return nb


def run(nb, tmp_path, **limits):
    base = dict(cell_timeout_s=5, notebook_timeout_s=60, export_timeout_s=5, kill_grace_s=3)
    base.update(limits)
    return execute_notebook(nb, workdir=tmp_path, limits=Limits(**base),
                            env=kernel_env(fast=True, data_dir="/nowhere", threads=1))


def test_errors_and_timeouts_are_data_and_later_cells_run(tmp_path):
    nb = notebook("x = 1", "1/0", "while True:\n    pass", "y = x + 1\nprint(y)")
    result = run(nb, tmp_path)
    assert result.cell_errors["c1"].startswith("ZeroDivisionError")
    assert result.timed_out == ["c2"] and "KeyboardInterrupt" in result.cell_errors["c2"]
    assert result.ok == ["c0", "c3"] and not result.kernel_died
    assert nb.cells[3].outputs[0]["text"] == "2\n"
    assert set(result.durations) == {"kernel_start", "execute", "slowest_cell"}
    assert 4.5 < result.durations["slowest_cell"] < 15  # the looping cell, stopped at 5 s


def test_when_notebook_budget_is_spent_then_later_cells_are_skipped(tmp_path):
    nb = notebook("import time", "time.sleep(30)", "z = 1", "z = 2")
    result = run(nb, tmp_path, cell_timeout_s=20, notebook_timeout_s=4)
    assert result.notebook_timed_out and result.timed_out == ["c1"]
    assert result.not_run == ["c2", "c3"]


def test_kernel_that_ignores_interrupts_is_killed(tmp_path):
    nb = notebook("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
                  "after = 1")
    result = run(nb, tmp_path, cell_timeout_s=3, kill_grace_s=3)
    assert result.kernel_died and "ignored the interrupt" in result.death_reason
    assert result.not_run == ["c1"]


def test_kernel_exit_is_reported(tmp_path):
    result = run(notebook("a = 1", "import os\nos._exit(3)", "b = 2"), tmp_path)
    assert result.kernel_died and "died" in result.death_reason
    assert "exit code 3" in result.death_reason
    assert result.cell_errors["c1"].startswith("KernelDied") and result.not_run == ["c2"]


def test_memory_watchdog_stops_the_kernel(tmp_path):
    hog = "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))"
    result = run(notebook(hog), tmp_path, cell_timeout_s=60, memory_mb=800)
    assert result.kernel_died and "800 MB" in result.death_reason
    assert 800 <= result.peak_memory_mb < 2500


def test_output_is_capped_as_it_arrives(tmp_path):
    nb = notebook("print('x' * 5_000_000)", "for i in range(3000):\n    print('y' * 1000)",
                  "raise ValueError('v' * 1_000_000)")
    result = run(nb, tmp_path, output_bytes=10_000, notebook_output_bytes=30_000)
    assert result.output_truncated
    assert len(nbformat.writes(nb)) < 60_000
    assert "truncated" in nb.cells[0].outputs[-1]["text"]


def test_kernel_gets_mode_data_dir_threads_and_runs_in_workdir(tmp_path):
    probe = ("import os\nprint(os.getcwd(), os.environ['DLCOURSE_FAST'],"
             " os.environ['DLCOURSE_DATA_DIR'], os.environ['OMP_NUM_THREADS'],"
             " os.environ['TF_NUM_INTRAOP_THREADS'], os.environ['TF_NUM_INTEROP_THREADS'])")
    nb = notebook(probe)
    run(nb, tmp_path)
    assert nb.cells[0].outputs[0]["text"].split() == [str(tmp_path), "1", "/nowhere", "1", "1", "1"]


def test_epilogue_runs_in_the_same_kernel_after_the_notebook(tmp_path):
    nb = notebook("secret = 41")
    seen = []

    def epilogue() -> str:
        seen.append((tmp_path / "out.txt").exists())
        return "open('out.txt', 'w').write(str(secret + 1))"

    result = execute_notebook(nb, workdir=tmp_path, limits=Limits(), env=kernel_env(fast=True),
                              epilogue=epilogue)
    assert seen == [False] and result.epilogue_ran and result.epilogue_error is None
    assert (tmp_path / "out.txt").read_text() == "42" and len(nb.cells) == 1


def test_limits_validate_their_values():
    with pytest.raises(ValueError, match="expected Limits.memory_mb > 0"):
        Limits(memory_mb=0)


def test_full_mode_allows_its_measured_slowest_cell_and_overrides_win():
    """Full mode's per-cell and per-notebook limits come from bench/results/calibration.md."""
    from grader.kernel.limits import FULL_CELL_TIMEOUT_S, FULL_NOTEBOOK_TIMEOUT_S, mode_limits

    assert mode_limits(fast=True) == Limits()
    full = mode_limits(fast=False)
    assert (full.cell_timeout_s, full.notebook_timeout_s) == (FULL_CELL_TIMEOUT_S,
                                                              FULL_NOTEBOOK_TIMEOUT_S)
    assert full.cell_timeout_s > Limits().cell_timeout_s
    assert mode_limits(fast=False, cell_timeout_s=90, memory_mb=None).cell_timeout_s == 90
    assert mode_limits(fast=False, memory_mb=None).memory_mb == Limits().memory_mb


def test_an_early_export_runs_right_after_its_cell_and_leaves_no_trace(tmp_path):
    """The early export (a Midway) runs once, right after the first cell with its id: it
    sees the value of that moment, the next cells see none of its names, the notebook keeps
    its cells and counts, and a value planted later is not read."""
    from grader.kernel.execute import Midway
    from grader.scoring.export import names_export_source, read_early_values

    folder = tmp_path / "early"
    seen: list = []
    nb = notebook("table = {'64': 0.8}", "table = {'512': 0.9}",
                  "assert not [n for n in globals() if 'dlcourse' in n]; print('clean')",
                  "import json, os\nfor d in os.listdir('.'):\n    if d.startswith('early'):\n"
                  "        json.dump({'value': 'planted'}, open(os.path.join(d, 'table.json'), 'w'))")
    nb.cells[1]["id"] = "c0"  # a second cell with the same id: the export still runs once
    midway = {"c0": Midway(source=lambda: names_export_source(["table", "absent"], folder),
                           done=lambda: seen.append(read_early_values(folder, ["table", "absent"])))}
    result = execute_notebook(nb, workdir=tmp_path, limits=Limits(cell_timeout_s=20),
                              env=kernel_env(fast=True, data_dir="/nowhere", threads=1),
                              midway=midway)
    assert seen == [{"table": {"64": 0.8}}]
    assert not result.cell_errors and nb.cells[2].outputs[0]["text"] == "clean\n"
    assert len(nb.cells) == 4 and [c.execution_count for c in nb.cells] == [1, 2, 3, 4]


@pytest.mark.parametrize("plant", [
    "os.symlink('/etc/passwd', p)",
    "os.mkfifo(p)",
    "open(p, 'w').write('{\"value\": \"' + 'x' * 300_000 + '\"}')",
    "open(p, 'w').write('[' * 100_000)",
    "open(p, 'w').write('{\"value\": ' + '[' * 50 + ']' * 50 + '}')",
])
def test_an_early_export_file_the_kernel_replaced_is_left_out(tmp_path, plant):
    """What the early export reads is the kernel's: a link, a FIFO, a file too large, not
    JSON or nested deeper than any export writes is left out (never followed, never blocks),
    and the run goes on."""
    from grader.kernel.execute import Midway
    from grader.scoring.export import read_early_values

    folder = tmp_path / "early"
    source = (f"import os\nos.makedirs({str(folder)!r}, exist_ok=True)\n"
              f"p = os.path.join({str(folder)!r}, 'table.json')\n{plant}")
    seen: list = []
    nb = notebook("table = {'64': 0.8}", "after = 1")
    midway = {"c0": Midway(source=lambda: source,
                           done=lambda: seen.append(read_early_values(folder, ["table"])))}
    result = execute_notebook(nb, workdir=tmp_path, limits=Limits(cell_timeout_s=20),
                              env=kernel_env(fast=True, data_dir="/nowhere", threads=1),
                              midway=midway)
    assert seen == [{}] and result.ok == ["c0", "c1"]
