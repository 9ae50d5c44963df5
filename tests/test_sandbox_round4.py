"""Hostile submissions of the fourth reliability round, graded through the real CLI in both
sandbox modes (``--sandbox bwrap`` and ``--sandbox uid``):

* ``reader`` imports the self-check (``from grader import check`` must still work) and tries
  to read the grader's references, rubrics, scoring code, the results key and the solutions;
* ``memhog`` holds more than ``--memory-mb`` in a memfd and in detached System V segments
  (memory no process's resident size shows): it must be stopped as over the memory limit
  while the victim beside it scores full marks;
* ``chain`` leaves a 1,200-level folder chain and a wide tree in ``/tmp`` and in its scratch
  folder: clean-up must be bounded, later rows and a later batch unaffected;
* uid mode only: ``a_leaver`` leaves System V shared memory and files in ``/run/lock``,
  ``/dev/shm``, ``/tmp`` and ``/var/tmp``; ``a_follower``, the first kernel of the later
  batch (on the same uid when no other grader holds it), must find none of them; and under
  ``--jobs 2`` ``racer_b`` swaps a folder ``racer_a`` left in ``/tmp`` for links to the
  victim's submission folder and to a root-only folder, over and over, while ``racer_a``'s
  clean-up runs: both must survive.

bench/results/hostile_round4.md records a run of this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import pytest

from grader.base.paths import PACKAGE_DIR, RUBRIC_DIR, SOLUTIONS_DIR

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("hostile")]

GOOD_VALUE = "param_bytes = model.count_params() * 4\n"
MEMORY_MB = 1500

READER = GOOD_VALUE + '''
import contextlib, io, os
out = io.StringIO()
with contextlib.redirect_stdout(out):
    from grader import check
    check("01.fx_value", param_bytes=param_bytes)
found = ["CHECK " + out.getvalue().strip()]
for target in {targets!r}:
    try:
        with open(target, "rb") as handle:
            found.append("READ " + target + " " + repr(handle.read(40)))
    except OSError as exc:
        found.append("DENIED " + type(exc).__name__)
try:
    import grader.checks.references
    found.append("IMPORTED references")
except ImportError:
    found.append("DENIED import")
raise RuntimeError("PROBE " + repr(found))
'''

MEMHOG = GOOD_VALUE + '''
import ctypes, os, time
MB = 2 ** 20
fd = os.memfd_create("hog")
chunk = b"x" * (50 * MB)
for _ in range(20):
    os.write(fd, chunk)
    time.sleep(0.05)
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
for _ in range(8):
    sid = libc.shmget(0, 128 * MB, 0o1600)
    addr = libc.shmat(sid, None, 0)
    ctypes.memset(addr, 1, 128 * MB)
    libc.shmdt(addr)
    time.sleep(0.05)
time.sleep(40)
raise RuntimeError("HOG survived holding 2 GB")
'''

CHAIN = GOOD_VALUE + '''
import os
for top in ("/tmp", "."):
    base = os.path.join(top, "round4-chain-{token}")
    os.mkdir(base)
    fd = os.open(base, os.O_RDONLY)
    for _ in range(1200):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    os.makedirs(base + "-wide")
    for i in range(3000):
        open(f"{{base}}-wide/f{{i}}", "w").close()
'''

LEAVER = GOOD_VALUE + '''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
sid = libc.shmget({key}, 1 * 2 ** 20, 0o1666)
addr = libc.shmat(sid, None, 0)
ctypes.memmove(addr, b"left by the leaver", 18)
libc.shmdt(addr)
for path in {files!r}:
    with open(path, "w") as handle:
        handle.write("left by the leaver")
raise RuntimeError(f"LEAVER uid={{os.getuid()}} shm={{sid}}")
'''

FOLLOWER = GOOD_VALUE + '''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
seen = []
if libc.shmget({key}, 0, 0) != -1:
    seen.append("shm")
for path in {files!r}:
    if os.path.exists(path):
        seen.append(path)
raise RuntimeError(f"FOLLOWER uid={{os.getuid()}} seen={{seen!r}}")
'''

RACER_A = GOOD_VALUE + '''
import os
base = "/tmp/round4-race-{token}"
os.mkdir(base)
os.chmod(base, 0o777)
for sub in ("x", "y"):
    os.mkdir(f"{{base}}/{{sub}}")
    os.chmod(f"{{base}}/{{sub}}", 0o777)
    for i in range(4000):
        open(f"{{base}}/{{sub}}/f{{i}}", "w").close()
    for name in {names!r}:
        open(f"{{base}}/{{sub}}/{{name}}", "w").close()
open(base + "/ready", "w").close()
'''

RACER_B = GOOD_VALUE + '''
import os, time
base = "/tmp/round4-race-{token}"
deadline = time.time() + 45
while not os.path.exists(base + "/ready") and time.time() < deadline:
    time.sleep(0.01)
swaps, stop = 0, time.time() + 40
while os.path.isdir(base) and time.time() < stop:
    if not os.path.exists(base + "/ready"):  # its clean-up has begun: go on a little longer
        stop = min(stop, time.time() + 5)
    for sub, target in (("x", {victim_dir!r}), ("y", {private_dir!r})):
        try:
            os.rename(f"{{base}}/{{sub}}", f"{{base}}/{{sub}}.real")
            os.symlink(target, f"{{base}}/{{sub}}")
            swaps += 1
            os.unlink(f"{{base}}/{{sub}}")
            os.rename(f"{{base}}/{{sub}}.real", f"{{base}}/{{sub}}")
        except OSError:
            pass
raise RuntimeError(f"SWAPS {{swaps}}")
'''


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _grade(subs: Path, out: Path, mode: str, fixture: dict, *extra: str,
           env: dict[str, str], python: str = sys.executable) -> dict:
    done = subprocess.run(
        [python, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast", "--sandbox",
         mode, "--memory-mb", str(MEMORY_MB), "--cell-timeout", "90", "--rubric",
         str(fixture["rubric"].path), "--solution", str(fixture["solution_path"]), "--import",
         "helpers_notebooks", *extra], env=env, capture_output=True, text=True, timeout=1500,
        cwd="/")
    rows = {}
    if (out / "grades.json").is_file():
        rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    return {"done": done, "rows": rows, "out": out}


def _fixture(root: Path) -> dict:
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    return {"rubric": rubric, "solution": solution,
            "solution_path": fx.write(solution, root / "solution" / "01_fixture.ipynb")}


def _write(fixture: dict, subs: Path, student: str, value: str | None = None) -> Path:
    sources = {} if value is None else {"value": value}
    return fx.write(fx.submission(fixture["solution"], **sources),
                    subs / student / "01_fixture.ipynb")


def _secret_targets(key_file: Path) -> list[str]:
    solution = sorted(SOLUTIONS_DIR.glob("*.ipynb"))
    return [str(PACKAGE_DIR / "checks" / "references" / "lesson02.py"),
            str(RUBRIC_DIR / "02.toml"), str(PACKAGE_DIR / "submission" / "score.py"),
            str(PACKAGE_DIR / "base" / "keys.py"), str(key_file),
            *(str(p) for p in solution[:1])]


@pytest.fixture(scope="module", params=["bwrap", "uid"])
def mode(request) -> str:
    if request.param == "uid":
        from grader.kernel.uid_mode import uid_problem

        if os.geteuid() != 0 or uid_problem() is not None:
            pytest.skip(f"uid mode needs root and util-linux here: {uid_problem()}")
    else:
        request.getfixturevalue("bwrap_required")
    return request.param


@pytest.fixture(scope="module")
def batch(mode, tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp(f"round4-{mode}")
    fixture = _fixture(root)
    env = fx.cli_env(root)
    key_file = root / "key" / "results.key"
    token = secrets.token_hex(4)
    subs = root / "subs"
    victim = _write(fixture, subs, "victim")
    _write(fixture, subs, "reader", READER.format(targets=_secret_targets(key_file)))
    _write(fixture, subs, "memhog", MEMHOG)
    _write(fixture, subs, "chain", CHAIN.format(token=token))
    leftovers = [f"/run/lock/round4-{token}", f"/dev/shm/round4-{token}",
                 f"/tmp/round4-{token}", f"/var/tmp/round4-{token}"]
    shm_key = 0x39000000 + int(token[:4], 16)
    later_subs = root / "later"
    if mode == "uid":  # the first kernel of each batch leases the lowest free uid
        _write(fixture, subs, "a_leaver", LEAVER.format(key=shm_key, files=leftovers))
        _write(fixture, later_subs, "a_follower", FOLLOWER.format(key=shm_key, files=leftovers))
    _write(fixture, subs, "z_after", None)
    victim_sha = _sha(victim)
    first = _grade(subs, root / "out", mode, fixture, "--jobs", "1" if mode == "uid" else "2",
                   env=env)
    _write(fixture, later_subs, "later_victim")
    later = _grade(later_subs, root / "out-later", mode, fixture, "--jobs", "1", env=env)
    shm_keys = Path("/proc/sysvipc/shm").read_text()
    return {"mode": mode, "first": first, "later": later, "max": fixture["rubric"].max_score,
            "victim_sha": (victim_sha, _sha(victim)), "token": token, "leftovers": leftovers,
            "shm_key": shm_key, "shm_table": shm_keys, "root": root}


def _notes(row: dict) -> str:
    return "\n".join(row["notes"])


def test_the_batches_exit_0_and_honest_rows_score_full_marks(batch):
    for run in (batch["first"], batch["later"]):
        assert run["done"].returncode == 0, run["done"].stderr[-3000:]
    rows = batch["first"]["rows"]
    for student in ("victim", "z_after", "chain"):
        assert rows[student]["error"] is None and rows[student]["score"] == batch["max"], \
            rows[student]
    later = batch["later"]["rows"]["later_victim"]
    assert later["error"] is None and later["score"] == batch["max"], later
    assert batch["victim_sha"][0] == batch["victim_sha"][1]


def test_the_kernel_reads_no_grader_code_rubric_reference_key_or_solution(batch):
    notes = _notes(batch["first"]["rows"]["reader"])
    probe = notes.split("PROBE [", 1)[1].split("\n", 1)[0]
    assert "self-check skipped while grading" in probe, probe  # the self-check still imports
    assert "READ " not in probe and "IMPORTED" not in probe, probe
    assert probe.count("DENIED") == len(_secret_targets(Path("k"))) + 1, probe


def test_shared_memory_counts_against_the_memory_limit(batch):
    row = batch["first"]["rows"]["memhog"]
    assert row["error"] is not None and "MB limit" in row["error"], row
    assert f"{MEMORY_MB:,} MB limit" in row["error"]
    assert row["score"] == 0
    assert "HOG survived" not in json.dumps(row)


def test_a_deep_chain_and_a_wide_tree_are_removed_and_cost_no_point(batch):
    rows = batch["first"]["rows"]
    assert not any("internal grader error" in (r["error"] or "") for r in rows.values())
    assert not list(Path("/tmp").glob(f"round4-chain-{batch['token']}*"))
    for row in rows.values():  # clean-up went through: nothing for the instructor either
        assert not any("clean-up" in n for n in row.get("instructor_notes", [])), row


def test_uid_mode_leaves_nothing_for_the_next_kernel_on_the_same_uid(batch):
    if batch["mode"] != "uid":
        pytest.skip("bubblewrap kernels have private /tmp, /dev/shm and IPC: nothing is shared")
    leaver = re.search(r"LEAVER uid=(\d+) shm=\d+", _notes(batch["first"]["rows"]["a_leaver"]))
    follower = re.search(r"FOLLOWER uid=(\d+) seen=(\[.*?\])",
                         _notes(batch["later"]["rows"]["a_follower"]))
    assert follower.group(2) == "[]", follower.group(0)
    # the later batch's first kernel leases the lowest free uid, the leaver's unless other
    # graders run beside this test: then only the host-side checks below bind
    print(f"leaver uid {leaver.group(1)}, follower uid {follower.group(1)}")
    assert not any(os.path.exists(p) for p in batch["leftovers"])
    assert f"{batch['shm_key']:10d}" not in batch["shm_table"]


LEAVE_AS_UID = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for key in (0, int(sys.argv[1])):
    assert libc.shmget(key, 2 ** 20, 0o1600) >= 0
for path in sys.argv[2:]:
    open(path, "w").write("left")
os.makedirs("/tmp/" + os.path.basename(sys.argv[2]) + "-dir/a/b")
"""


def test_remove_uid_files_takes_what_a_uid_left_in_every_shared_folder_and_ipc():
    """Without namespaces (the fallback where ``unshare --ipc`` is refused): files in every
    shared writable folder and System V segments, made by a process running as the uid."""
    from grader.kernel.uid_lease import (
        _drop_to,
        _sysv_objects,
        lease_kernel_uid,
        remove_uid_files,
    )
    from grader.kernel.uid_mode import uid_problem

    if os.geteuid() != 0 or uid_problem() is not None:
        pytest.skip(f"uid mode needs root and util-linux here: {uid_problem()}")
    uid, lease = lease_kernel_uid()
    try:
        token = secrets.token_hex(4)
        files = [f"{folder}/round4-direct-{token}" for folder in ("/tmp", "/var/tmp",
                                                                  "/dev/shm", "/run/lock")
                 if os.access(folder, os.W_OK)]
        done = subprocess.run([*_drop_to(uid), sys.executable, "-c", LEAVE_AS_UID,
                               str(0x39100000 + int(token[:4], 16)), *files],
                              capture_output=True, text=True, timeout=60, cwd="/")
        assert done.returncode == 0, done.stderr
        assert len(_sysv_objects(uid)) == 2 and all(os.path.exists(f) for f in files)
        assert remove_uid_files(uid) == []
        assert _sysv_objects(uid) == [] and not any(os.path.lexists(f) for f in files)
        assert not os.path.lexists(f"{files[0]}-dir")
    finally:
        os.close(lease)


@pytest.fixture(scope="module")
def race(tmp_path_factory, data_dir):
    from grader.kernel.uid_mode import uid_problem

    if os.geteuid() != 0 or uid_problem() is not None:
        pytest.skip(f"uid mode needs root and util-linux here: {uid_problem()}")
    root = tmp_path_factory.mktemp("round4-race")
    fixture = _fixture(root)
    token = secrets.token_hex(4)
    subs = root / "subs"
    victim = _write(fixture, subs, "victim")
    private = Path(f"/var/tmp/round4-private-{token}")
    private.mkdir(mode=0o700)
    (private / "secret").write_text("root only\n")
    names = ["01_fixture.ipynb", "secret"]
    _write(fixture, subs, "racer_a", RACER_A.format(token=token, names=names))
    _write(fixture, subs, "racer_b", RACER_B.format(token=token, victim_dir=str(victim.parent),
                                                    private_dir=str(private)))
    before = _sha(victim)
    run = _grade(subs, root / "out", "uid", fixture, "--jobs", "2", env=fx.cli_env(root))
    survived = {"victim": victim.is_file() and _sha(victim) == before,
                "private": (private / "secret").is_file()}
    (private / "secret").unlink(missing_ok=True)
    private.rmdir()
    return {"run": run, "survived": survived, "max": fixture["rubric"].max_score,
            "token": token}


def test_swapping_a_folder_for_a_link_during_clean_up_deletes_nothing_else(race):
    run = race["run"]
    assert run["done"].returncode == 0, run["done"].stderr[-3000:]
    swaps = int(re.search(r"SWAPS (\d+)", _notes(run["rows"]["racer_b"])).group(1))
    assert swaps > 0  # the attack ran while the other kernel's files were removed
    assert race["survived"] == {"victim": True, "private": True}
    victim = run["rows"]["victim"]
    assert victim["error"] is None and victim["score"] == race["max"], victim


def test_a_venv_under_tmp_whose_site_packages_is_a_link_grades_in_bubblewrap(
        tmp_path, data_dir, bwrap_required):
    import sysconfig

    venv = tmp_path / "venv"  # under /tmp: pytest's folders live there
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    for child in site.iterdir():
        child.unlink() if child.is_file() else None
    site.rmdir()
    site.symlink_to(sysconfig.get_paths()["purelib"], target_is_directory=True)
    fixture = _fixture(tmp_path)
    _write(fixture, tmp_path / "subs", "victim")
    run = _grade(tmp_path / "subs", tmp_path / "out", "bwrap", fixture, env=fx.cli_env(tmp_path),
                 python=str(venv / "bin" / "python"))
    assert run["done"].returncode == 0, run["done"].stderr[-3000:]
    row = run["rows"]["victim"]
    assert row["error"] is None and row["score"] == fixture["rubric"].max_score, row


def test_a_failing_mount_is_reported_as_such_not_as_a_missing_bubblewrap(
        monkeypatch, tmp_path, bwrap_required):
    from grader.base.errors import GraderError
    from grader.kernel import sandbox, sandbox_choice

    real = sandbox._python_binds
    missing = tmp_path / "gone"
    monkeypatch.setattr(sandbox, "_python_binds",
                        lambda: [*real(), (missing, Path("/opt/dlcourse-missing"))])
    sandbox.bwrap_problem.cache_clear()
    try:
        with pytest.raises(GraderError) as raised:
            sandbox_choice.resolve_sandbox("bwrap")
    finally:
        sandbox.bwrap_problem.cache_clear()
    message = str(raised.value)
    assert message.startswith(f"--sandbox bwrap: {sandbox.PYTHON_PROBLEM}"), message
    assert "Can't" in message or "No such file" in message, message  # bubblewrap's own words
    assert "apt-get install" not in message and "install bubblewrap" not in message, message


def test_instructor_notes_reach_neither_the_feedback_page_nor_gradescope(batch):
    from grader.lms.gradescope_results import results_document

    row = batch["first"]["rows"]["victim"]
    if batch["mode"] == "uid":  # the uid-mode warning is the batch's first instructor note
        from grader.kernel.uid_mode import UID_WARNING

        assert row["instructor_notes"][0].startswith(UID_WARNING), row
    row = {**row, "instructor_notes": [*row["instructor_notes"], "INSTRUCTOR ONLY"]}
    checks = [c["id"] for c in row["checks"]]
    settings = {"module": "01", "names": {c: c for c in checks},
                "points": {c["id"]: c["max_points"] for c in row["checks"]}, "questions": {},
                "visibility": "visible", "mode": "fast"}
    document = json.dumps(results_document(settings, row, error=None, execution_time=1.0))
    assert "INSTRUCTOR ONLY" not in document
    for note in row["instructor_notes"]:
        assert note[:40] not in document
    page = (batch["first"]["out"] / "feedback" / "victim.html").read_text()
    for note in row["instructor_notes"][:-1]:
        assert note[:40] not in page
