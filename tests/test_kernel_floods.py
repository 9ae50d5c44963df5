"""Kernels that starve their neighbours or flood the grader, graded through the real CLI.

One batch (``python -m grader grade ... --jobs 2 --sandbox bwrap``, the tiny fixture module)
runs a submission that starts thousands of threads and holds them while a victim notebook
trains in the other worker slot, next to output floods of every shape: displays updated with
15 MB each, comm messages, a huge error message, three prints larger than ZeroMQ's message cap,
and a mix of many small stdout, stderr and display messages. A second batch grades the
oversized prints with ``--sandbox none``, and a third grades with a Python whose environment
lives under /tmp (the sandbox's private /tmp must not hide it).

While a batch runs, a thread samples the peak resident memory (``VmHWM``) of every grader
process (kernels excluded: their memory is limited by the watchdog) and the bytes in the
batch's temporary folder, where the executed notebooks are written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import helpers_notebooks as fx
import psutil
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("floods")]

GOOD_FUNCTION = fx.EX_FUNCTION.replace("### BEGIN SOLUTION\n", "").replace(
    "    ### END SOLUTION", "")
GOOD_VALUE = "param_bytes = model.count_params() * 4\n"

HOLD_S = 120  # long enough for the victim beside it to finish even on a busy machine
THREADS = GOOD_FUNCTION + f'''
import threading, time
threading.stack_size(128 * 1024)
held, start = [], time.time()
try:
    while len(held) < 20_000:
        thread = threading.Thread(target=time.sleep, args=({HOLD_S + 30},), daemon=True)
        thread.start()
        held.append(thread)
except RuntimeError:
    pass
time.sleep({HOLD_S})
raise RuntimeError(f"HELD {{len(held)}} threads from {{start}} to {{time.time()}}")
'''
VICTIM = GOOD_FUNCTION + "\nimport time\ntime.sleep(20)  # the neighbour grabs its threads now\n"

DISPLAYS = GOOD_VALUE + '''
from IPython.display import display, update_display
big = "u" * 15_000_000
for i in range(40):
    display({"text/plain": "small"}, raw=True, display_id=f"d{i}")
for _ in range(2):
    for i in range(40):
        update_display({"text/plain": big}, raw=True, display_id=f"d{i}")
'''
COMMS = GOOD_VALUE + '''
from ipykernel.comm import Comm
comm = Comm(target_name="flood")
big = "c" * 10_000_000
for _ in range(80):
    comm.send({"blob": big})
'''
TRACEBACK = GOOD_VALUE + 'raise ValueError("t" * 30_000_000)\n'
OVERSIZED = GOOD_VALUE + 'for _ in range(3):\n    print("p" * 100_000_000)\n'
MIXED = GOOD_VALUE + '''
import sys
from IPython.display import display
for i in range(10_000):
    print(i, "o" * 50)
    sys.stderr.write("e" * 50 + "\\n")
    if i % 3 == 0:
        display({"text/plain": "m" * 200}, raw=True)
'''
FLOODS = {"c_displays": DISPLAYS, "d_comms": COMMS, "e_traceback": TRACEBACK,
          "f_oversized": OVERSIZED, "h_mixed": MIXED}

GRADER_PEAK_MB = 1500
"""Peak resident memory of any one grader process. The scoring process, which loads Keras,
is the largest (measured about 700-900 MB); a stored flood (old code) passes 2 GB."""
TMP_PEAK_MB = 400
"""Bytes in the batch's temporary folder at any time (executed notebooks, kernel folders)."""


class Sampler:
    """Peak memory of the grader's processes and bytes under a folder, while a batch runs."""

    def __init__(self, proc: subprocess.Popen, tmp: Path) -> None:
        self.proc, self.tmp = proc, tmp
        self.peak_mb: dict[str, float] = {}
        self.tmp_peak_mb = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _grader_processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        found = []
        for proc in tree:
            try:
                cmd = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if "python" in cmd and "ipykernel" not in cmd and not cmd.startswith(
                    ("bwrap", "/bin/sh", "prlimit", "setpriv")):
                found.append(proc)
        return found

    def _run(self) -> None:
        while self.proc.poll() is None:
            for proc in self._grader_processes():
                try:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    cmd = " ".join(proc.cmdline())[:120]
                except (OSError, psutil.Error):
                    continue
                hwm = next((int(line.split()[1]) / 1024 for line in status.splitlines()
                            if line.startswith("VmHWM")), 0.0)
                key = f"{proc.pid} {cmd}"
                self.peak_mb[key] = max(self.peak_mb.get(key, 0.0), hwm)
            self.tmp_peak_mb = max(self.tmp_peak_mb, _folder_mb(self.tmp))
            time.sleep(0.25)

    def join(self) -> None:
        self.thread.join(30)


def _folder_mb(folder: Path) -> float:
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total / 2**20


def _grade(root: Path, subs: Path, rubric, solution_path: Path, sandbox: str,
           python: str = sys.executable) -> dict:
    out, tmp = root / "out", root / "tmp"
    tmp.mkdir()
    if sandbox == "uid":  # kernel uids must pass through to their folders under TMPDIR
        for folder in (tmp, *tmp.parents):
            os.chmod(folder, folder.stat().st_mode | 0o001)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(TMPDIR=str(tmp), DLCOURSE_KEY_FILE=str(root / "key" / "results.key"),
               PYTHONPATH=os.pathsep.join([str(Path(fx.__file__).parent),
                                           env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    args = [python, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast",
            "--jobs", "2", "--sandbox", sandbox, "--memory-mb", "3000", "--cell-timeout",
            str(HOLD_S + 60), "--rubric", str(rubric.path), "--solution", str(solution_path),
            "--import", "helpers_notebooks"]
    start = time.time()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=root)
    sampler = Sampler(proc, tmp)
    stdout, stderr = proc.communicate(timeout=1500)
    sampler.join()
    table = out / "grades.json"
    rows = {r["student"]: r for r in json.loads(table.read_text())} if table.is_file() else {}
    return {"code": proc.returncode, "stdout": stdout, "stderr": stderr, "rows": rows,
            "out": out, "start": start, "peak_mb": sampler.peak_mb,
            "tmp_peak_mb": sampler.tmp_peak_mb, "max": rubric.max_score}


def _setup(root: Path):
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    return rubric, solution, solution_path


SANDBOX = os.environ.get("DLCOURSE_TEST_SANDBOX", "bwrap")
"""``uid`` runs the sandboxed batch with ``--sandbox uid`` (bench/results/uid_sandbox.md)."""


@pytest.fixture(scope="module")
def bwrap_batch(tmp_path_factory, data_dir, request):
    if SANDBOX == "bwrap":
        request.getfixturevalue("bwrap_required")
    root = tmp_path_factory.mktemp("floods")
    rubric, solution, solution_path = _setup(root)
    subs = root / "submissions"
    cells = {"a_threads": {"function": THREADS}, "b_victim": {"function": VICTIM},
             "g_plain": {}, **{name: {"value": code} for name, code in FLOODS.items()}}
    for student, edits in cells.items():
        fx.write(fx.submission(solution, **edits), subs / student / "01_fixture.ipynb")
    digests = {p: p.read_bytes() for p in subs.rglob("*.ipynb")}
    batch = _grade(root, subs, rubric, solution_path, SANDBOX)
    batch["untouched"] = all(p.read_bytes() == data for p, data in digests.items())
    return batch


@pytest.fixture(scope="module")
def unsandboxed_batch(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("floods-none")
    rubric, solution, solution_path = _setup(root)
    subs = root / "submissions"
    fx.write(fx.submission(solution), subs / "g_plain" / "01_fixture.ipynb")
    fx.write(fx.submission(solution, value=OVERSIZED), subs / "f_oversized" / "01_fixture.ipynb")
    return _grade(root, subs, rubric, solution_path, "none")


def _text(row: dict) -> str:
    return json.dumps(row)


def _assert_bounded(batch) -> None:
    worst = max(batch["peak_mb"].items(), key=lambda item: item[1])
    print(f"grader peak {worst[1]:.0f} MB ({worst[0][:60]}), temporary folder peak"
          f" {batch['tmp_peak_mb']:.0f} MB, durations"
          f" {({s: r['duration_s'] for s, r in batch['rows'].items()})}")
    assert worst[1] < GRADER_PEAK_MB, worst
    assert batch["tmp_peak_mb"] < TMP_PEAK_MB, batch["tmp_peak_mb"]
    executed = [p.stat().st_size for p in batch["out"].rglob("*") if p.is_file()]
    assert max(executed) < 50 * 2**20, max(executed)


def _assert_quick(batch, student: str, factor: float = 2.0, extra_s: float = 30.0) -> None:
    plain = batch["rows"]["g_plain"]["duration_s"]
    took = batch["rows"][student]["duration_s"]
    assert took < factor * plain + extra_s, (student, took, plain)


def _assert_no_stall(batch, student: str) -> None:
    """A few oversized messages cost seconds, not a 10 s wait in each of the later cells."""
    plain = batch["rows"]["g_plain"]["timings"]["execute"]
    took = batch["rows"][student]["timings"]["execute"]
    assert took < plain + 30, (student, took, plain)


def test_a_kernel_holding_thousands_of_threads_does_not_starve_its_neighbour(bwrap_batch):
    rows = bwrap_batch["rows"]
    found = re.search(r"HELD (\d+) threads from ([\d.]+) to ([\d.]+)", "\n".join(
        rows["a_threads"]["notes"]))
    assert found, rows["a_threads"]["notes"]
    count, start, end = int(found[1]), float(found[2]), float(found[3])
    assert count > 2000, count  # the attack really held thousands of threads
    # the victim ran while the threads were held: it finished inside the holding window,
    # at least 10 s after it began (it sleeps 20 s before building and training its model)
    victim_done = (bwrap_batch["out"] / "results" / "b_victim__01.json").stat().st_mtime
    assert start + 10 < victim_done < end, (start, victim_done, end)
    victim = rows["b_victim"]
    assert victim["error"] is None, victim["error"]
    assert victim["score"] == bwrap_batch["max"], victim["checks"]
    assert "died" not in _text(victim) and "KernelDied" not in _text(victim)


def test_every_kind_of_output_flood_is_capped_and_noted(bwrap_batch):
    assert bwrap_batch["code"] == 0, bwrap_batch["stderr"][-3000:]
    assert bwrap_batch["untouched"]
    assert "WITHOUT a sandbox" not in bwrap_batch["stdout"] + bwrap_batch["stderr"]
    rows = bwrap_batch["rows"]
    assert len(rows) == 3 + len(FLOODS)
    assert rows["g_plain"]["score"] == bwrap_batch["max"] and rows["g_plain"]["notes"] == []
    for student in FLOODS:
        row = rows[student]
        assert row["error"] is None, (student, row["error"])
        assert row["score"] == bwrap_batch["max"], (student, row["checks"])
        assert any("output was cut" in n for n in row["notes"]), (student, row["notes"])
    assert "MB more output was dropped" in _text(rows["c_displays"])
    assert "larger than 16 MB" in _text(rows["e_traceback"])
    feedback = (bwrap_batch["out"] / "feedback" / "f_oversized.md").read_text()
    assert "output was cut" in feedback


def test_grader_memory_and_disk_stay_bounded_under_floods(bwrap_batch):
    _assert_bounded(bwrap_batch)


def test_floods_cost_the_time_the_kernel_takes_not_a_timeout_per_cell(bwrap_batch):
    for student in ("e_traceback", "f_oversized", "h_mixed"):
        _assert_quick(bwrap_batch, student)
    for student in ("e_traceback", "f_oversized"):
        _assert_no_stall(bwrap_batch, student)
    for student in ("c_displays", "d_comms"):  # 1.2 GB and 800 MB sent through the grader
        _assert_quick(bwrap_batch, student, factor=3.0, extra_s=60.0)


def test_oversized_messages_without_a_sandbox(unsandboxed_batch):
    batch = unsandboxed_batch
    assert batch["code"] == 0, batch["stderr"][-3000:]
    row = batch["rows"]["f_oversized"]
    assert row["error"] is None and row["score"] == batch["max"], row
    assert any("output was cut" in n for n in row["notes"])
    assert batch["rows"]["g_plain"]["score"] == batch["max"]
    _assert_quick(batch, "f_oversized")
    _assert_no_stall(batch, "f_oversized")
    _assert_bounded(batch)


def _venv_under_tmp(root: Path) -> str:
    """A Python environment under /tmp whose packages are this one's (a ``.pth`` file adds
    them), like a clone in /tmp with its own ``.venv``."""
    venv = root / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "dlcourse_outer.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def test_a_grader_python_under_tmp_still_grades_sandboxed(tmp_path_factory, data_dir,
                                                          bwrap_required):
    root = Path(tmp_path_factory.mktemp("tmpvenv"))
    assert str(root).startswith("/tmp/"), root  # the case: the private /tmp would hide it
    python = _venv_under_tmp(root)
    rubric, solution, solution_path = _setup(root)
    subs = root / "submissions"
    fx.write(fx.submission(solution), subs / "alice" / "01_fixture.ipynb")
    batch = _grade(root, subs, rubric, solution_path, "bwrap", python=python)
    assert batch["code"] == 0, batch["stderr"][-3000:]
    console = batch["stdout"] + batch["stderr"]
    assert "WITHOUT a sandbox" not in console and "bubblewrap" not in console, console[-2000:]
    row = batch["rows"]["alice"]
    assert row["error"] is None and row["score"] == batch["max"], row
