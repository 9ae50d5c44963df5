"""A kernel running many busy processes gets one kernel's share of the CPU, graded through
the real CLI.

One batch (``python -m grader grade ... --jobs 2 --sandbox bwrap``, the tiny fixture module)
grades a submission whose first exercise starts :data:`SPINNERS` busy processes, each in a
session of its own, and keeps them running for :data:`SPIN_S` seconds, beside a victim whose
first exercise spends :data:`WORK_CPU_S` seconds of its own CPU time in a loop. (In one
session the spinners would weigh as one process anyway where Linux's autogroups are on, as
here: the scheduler groups the processes of a session, and the sandbox starts each kernel in
a new one; a session per spinner undoes that.) Without CPU shares per kernel the victim is
one runnable process among about 25 on 2 cores (about 0.08 of a core: checked, the victim
then finished after the spinners' 60 s); with each kernel in a ``cpu`` cgroup of its own
(:mod:`grader.kernel.cgroups`) the spinners' kernel weighs as one process (the victim
gets about a core alone, half a core with another test's kernel and scorer busy beside it).
The victim's row must keep full marks and its slowest cell (the loop, after a 10 s pause)
must stay under ``PAUSE_S + WORK_CPU_S / MIN_SHARE``.
"""

from __future__ import annotations

import os
import re

import helpers_notebooks as fx
import pytest
from test_kernel_floods import GOOD_FUNCTION, _grade, _setup

from grader.kernel.cgroups import controllers_in_use

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("cpu-share")]

SPINNERS = 24
SPIN_S = 60
PAUSE_S = 10
WORK_CPU_S = 3.0
MIN_SHARE = 0.25
"""Smallest share of a core the victim's loop may get: 2 cores among the spinners' kernel,
the victim and up to two busy processes of another test leave it at least 0.4; without
shares it gets about 0.08."""

SPINNER = GOOD_FUNCTION + f'''
import subprocess, sys, time
# each in a session of its own: Linux's autogroups (one per session) would weigh them as one
spinners = [subprocess.Popen([sys.executable, "-c", "while True:\\n    pass\\n"],
                             start_new_session=True) for _ in range({SPINNERS})]
start = time.time()
time.sleep({SPIN_S})
running = sum(p.poll() is None for p in spinners)
for p in spinners:
    p.kill()
raise RuntimeError(f"SPUN {{running}} processes from {{start}} to {{time.time()}}")
'''
VICTIM = GOOD_FUNCTION + f'''
import time
time.sleep({PAUSE_S})  # the neighbour's spinners start meanwhile
_begin = time.process_time()
while time.process_time() - _begin < {WORK_CPU_S}:  # this kernel's own CPU seconds
    pass
'''


@pytest.fixture(scope="module")
def cpu_batch(tmp_path_factory, data_dir, bwrap_required):
    if "cpu" not in controllers_in_use():
        fail = pytest.fail if os.environ.get("DLCOURSE_REQUIRE_SANDBOX") == "1" else pytest.skip
        fail("expected the grader to create a cpu cgroup per kernel here (root with a"
                    " writable cgroup v1 cpu hierarchy, or cgroup v2 with cpu delegated);"
                    f" it can use: {controllers_in_use() or 'none'}")
    root = tmp_path_factory.mktemp("cpu-share")
    rubric, solution, solution_path = _setup(root)
    subs = root / "submissions"
    for student, source in {"a_spinner": SPINNER, "b_victim": VICTIM}.items():
        fx.write(fx.submission(solution, function=source), subs / student / "01_fixture.ipynb")
    digests = {p: p.read_bytes() for p in subs.rglob("*.ipynb")}
    batch = _grade(root, subs, rubric, solution_path, "bwrap")
    batch["untouched"] = all(p.read_bytes() == data for p, data in digests.items())
    return batch


def test_a_kernel_running_busy_processes_leaves_its_neighbour_a_kernels_share(cpu_batch):
    assert cpu_batch["code"] == 0, cpu_batch["stderr"][-3000:]
    assert cpu_batch["untouched"]
    rows = cpu_batch["rows"]
    found = re.search(r"SPUN (\d+) processes from ([\d.]+) to ([\d.]+)",
                      "\n".join(rows["a_spinner"]["notes"]))
    assert found, rows["a_spinner"]["notes"]
    running, start, end = int(found[1]), float(found[2]), float(found[3])
    assert running == SPINNERS, running  # every spinner ran for the whole window
    victim = rows["b_victim"]
    assert victim["error"] is None, victim["error"]
    assert victim["score"] == cpu_batch["max"], victim["checks"]
    slowest = victim["timings"]["slowest_cell"]
    print(f"victim's slowest cell {slowest:.1f} s (pause {PAUSE_S} s + {WORK_CPU_S} s of CPU)")
    assert slowest < PAUSE_S + WORK_CPU_S / MIN_SHARE, victim["timings"]
    # and it was graded while they spun: done inside the window, after its pause
    victim_done = (cpu_batch["out"] / "results" / "b_victim__01.json").stat().st_mtime
    assert start + PAUSE_S < victim_done < end, (start, victim_done, end)
