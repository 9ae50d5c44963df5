"""uid mode through the real CLI: ``--sandbox auto`` where bubblewrap is missing picks it (the
grader is root), the kernel runs as a leased uid without capabilities, and files kept private
by their modes stay private. The full hostile suite runs under it with
``DLCOURSE_TEST_SANDBOX=uid`` (tests/test_sandbox_hostile.py, bench/results/uid_sandbox.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import pytest

from grader.kernel.uid_lease import KERNEL_UID_BASE, KERNEL_UID_SLOTS
from grader.kernel.uid_mode import UID_WARNING, uid_problem

pytestmark = [pytest.mark.notebook]

SPY = '''param_bytes = model.count_params() * 4
import os, resource
open({planted!r}, "w").write("left for the next kernel")
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
read = []
for target in ({private!r}, {out!r} + "/grades.csv"):
    try:
        read.append(open(target).read(30))
    except OSError as exc:
        read.append(type(exc).__name__)
raise RuntimeError("ID " + repr((os.getuid(), os.geteuid(), os.getgroups(), caps,
                   resource.getrlimit(resource.RLIMIT_NPROC))) + " READ " + repr(read))
'''


@pytest.fixture(scope="module")
def uid_batch(tmp_path_factory, data_dir):
    if os.geteuid() != 0 or uid_problem() is not None:
        pytest.skip(f"uid mode needs root and util-linux here: {uid_problem()}")
    root = tmp_path_factory.mktemp("uidmode")
    os.chmod(root, 0o755)  # readable by all: what protects the files below is their own mode
    for parent in root.parents:  # pytest's own folders (0700): passable, not listable
        if parent.stat().st_mode & 0o001:
            break
        os.chmod(parent, parent.stat().st_mode | 0o001)
    private = root / "private.txt"
    private.write_text("the instructor's secret\n")
    os.chmod(private, 0o600)
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    subs, out = root / "subs", root / "out"
    fx.write(fx.submission(solution), subs / "victim" / "01_fixture.ipynb")
    planted = f"/tmp/dlcourse-test-planted-{os.getpid()}-{root.name}"
    spy = SPY.format(private=str(private), out=str(out), planted=planted)
    fx.write(fx.submission(solution, value=spy), subs / "spy" / "01_fixture.ipynb")
    tools = root / "bin"  # a PATH with util-linux but without bwrap
    tools.mkdir()
    for name in ("setpriv", "prlimit", "unshare", "kill"):
        os.symlink(shutil.which(name), tools / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(PATH=str(tools), DLCOURSE_KEY_FILE=str(root / "key" / "results.key"),
               PYTHONPATH=str(Path(fx.__file__).parent))
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                           "--fast", "--rubric", str(rubric.path), "--solution",
                           str(solution_path), "--import", "helpers_notebooks"],
                          env=env, capture_output=True, text=True, timeout=1200)
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    return {"done": done, "rows": rows, "out": out, "subs": subs, "max": rubric.max_score,
            "planted": Path(planted)}


def test_auto_without_bubblewrap_picks_uid_mode_and_tells_only_the_instructor(uid_batch):
    done = uid_batch["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"WARNING: {UID_WARNING}" in done.stderr and "bwrap` command is not installed" in done.stderr
    victim = uid_batch["rows"]["victim"]
    assert victim["error"] is None and victim["score"] == uid_batch["max"], victim
    assert victim["instructor_notes"][0].startswith(UID_WARNING)
    # the submissions are readable by all here: the batch read them as a kernel uid and says so
    exposed = victim["instructor_notes"][0].split("Readable by the kernels here: ", 1)[1]
    assert str(uid_batch["subs"]) in exposed and str(uid_batch["out"]) not in exposed
    assert not any(n.startswith(UID_WARNING) for n in victim["instructor_notes"][1:])  # once
    assert not any(UID_WARNING[:40] in n for n in victim["notes"])  # never the student's
    page = (uid_batch["out"] / "feedback" / "victim.html").read_text()
    assert UID_WARNING[:40] not in page
    assert UID_WARNING[:40] in (uid_batch["out"] / "report.html").read_text()
    assert oct(uid_batch["out"].stat().st_mode & 0o777) == "0o700"


def test_the_kernel_is_a_leased_uid_without_privileges_and_private_files_stay_private(uid_batch):
    notes = "\n".join(uid_batch["rows"]["spy"]["notes"])
    identity = notes.split("ID (", 1)[1].split(" READ ", 1)[0]
    uid = int(identity.split(",")[0])
    assert KERNEL_UID_BASE <= uid < KERNEL_UID_BASE + KERNEL_UID_SLOTS, identity
    assert identity.startswith(f"{uid}, {uid}, [], '0000000000000000', (4096, 4096))"), identity
    read = notes.split(" READ [", 1)[1].split("]", 1)[0]
    assert "secret" not in read and "student" not in read, read
    assert read.count("PermissionError") == 2, read


def test_what_a_kernel_leaves_in_tmp_is_removed_after_it(uid_batch):
    assert "ID (" in "\n".join(uid_batch["rows"]["spy"]["notes"])  # the cell ran past the write
    assert not uid_batch["planted"].exists()
