"""Kernel uids: leased one per kernel, and cleaned before they are leased again.

When the grader runs as root, each sandboxed kernel (bubblewrap or uid mode) runs as a uid of
its own, leased through a lock file per uid shared by every grader process on the machine.
In uid mode a kernel's uid can leave files in the shared writable folders and System V IPC
objects: :func:`remove_uid_files` removes them once the uid's processes are dead, as that uid
itself (:mod:`grader.kernel.sweep`), and a uid left unclean (:func:`mark_dirty`) is not
leased again until a clean-up of it succeeds.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.base.errors import GraderError

KERNEL_UID_BASE = 63000
KERNEL_UID_SLOTS = 500
"""When the grader runs as root, each sandboxed kernel runs as its own uid, leased from
``KERNEL_UID_BASE`` .. ``KERNEL_UID_BASE + KERNEL_UID_SLOTS - 1`` for the kernel's lifetime
(a lock file per uid, shared by every grader process on the machine: local workers, Dask
workers, concurrent batches). The kernel's task limit (``RLIMIT_NPROC``) counts the tasks of
its real uid, so a kernel holding thousands of threads exhausts only its own limit. Uids of
accounts in the password database are skipped."""

def _uid_lock_dir() -> Path:
    """One folder per machine (``/run`` when writable, whatever ``TMPDIR`` says)."""
    base = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    folder = base / "dlcourse-kernel-uids"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.geteuid():
        raise GraderError(f"{folder} is not a folder owned by the grader's user, so kernel uids"
                          " cannot be leased safely. Fix: remove it and rerun.")
    return folder


def _uid_in_use(uid: int) -> bool:
    import pwd

    import psutil

    try:
        pwd.getpwuid(uid)
        return True  # an account of this machine
    except KeyError:
        pass
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if uids is not None and uid in (uids.real, uids.effective):
            return True  # a kernel of a grader that died without its lock
    return False


def lease_kernel_uid(wait_s: float = 600.0) -> tuple[int, int]:
    """A uid no other kernel on this machine uses, and the open lock file that holds it.

    Closing the returned descriptor (or the process ending) releases the uid.
    """
    import fcntl
    import time

    folder = _uid_lock_dir()
    deadline = time.monotonic() + wait_s
    while True:
        for uid in range(KERNEL_UID_BASE, KERNEL_UID_BASE + KERNEL_UID_SLOTS):
            fd = os.open(folder / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            if _uid_in_use(uid) or not _clean_before_lease(uid, folder):
                os.close(fd)
                continue
            return uid, fd
        if time.monotonic() > deadline:
            raise GraderError(f"all {KERNEL_UID_SLOTS} kernel uids from {KERNEL_UID_BASE} are in"
                              " use on this machine. Fix: grade with fewer --jobs or wait for"
                              " other batches to finish.")
        time.sleep(0.5)


def _drop_to(uid: int) -> list[str]:
    """``setpriv`` dropping every privilege and becoming ``uid`` (no groups, no capabilities)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (a leased kernel uid: all of them are that kernel's,
    wherever they went: double-forked daemons included). ``kill -KILL -1`` run as that uid
    signals exactly the processes that uid owns."""
    for _ in range(3):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([*_drop_to(uid), "kill", "-KILL", "-1"], capture_output=True,
                           timeout=30)


SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/dev/mqueue")
"""Folders every uid may write to (files and POSIX message queues): a uid-mode kernel's
entries there are removed after it."""


def _sysv_objects(uid: int) -> list[tuple[str, str]]:
    """``(ipcrm option, id)`` of every System V object ``uid`` owns or created."""
    found = []
    for kind, option in (("shm", "-m"), ("msg", "-q"), ("sem", "-s")):
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        header = lines[0].split() if lines else []
        if len(header) < 2 or "uid" not in header:
            continue
        for line in lines[1:]:  # columns: key, its id (shmid, msqid, semid), ..., uid, cuid
            fields = dict(zip(header, line.split(), strict=False))
            if str(uid) in (fields.get("uid"), fields.get("cuid")):
                found.append((option, fields[header[1]]))
    return found


def remove_uid_files(uid: int, keep: tuple[Path, ...] = ()) -> list[str]:
    """Remove what ``uid`` left for the next kernel of that uid: its entries in
    :data:`SHARED_WRITABLE` (and all inside folders it owns), except the folders ``keep``,
    and its System V IPC objects. Run once the uid's processes are dead.

    The files are removed by :mod:`grader.kernel.sweep` running as ``uid`` itself (a
    short process that dropped to it: it can remove nothing that uid could not), walking by
    directory descriptors without following links. Returns what could not be removed (empty
    when everything is gone); never raises.
    """
    import json

    from grader.kernel import sweep

    keep_ids = []
    for folder in keep:
        with contextlib.suppress(OSError):
            info = os.lstat(folder)
            keep_ids.append([info.st_dev, info.st_ino])
    tops = list(dict.fromkeys(os.path.realpath(t) for t in SHARED_WRITABLE if os.path.isdir(t)))
    spec = json.dumps({"tops": tops, "uid": uid, "keep": keep_ids})
    left: list[str] = []
    try:
        done = subprocess.run([*_drop_to(uid), sys.executable, "-I", "-S", "-c",
                               Path(sweep.__file__).read_text(encoding="utf-8"), spec],
                              capture_output=True, text=True, timeout=120, cwd="/")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        if report["left"]:
            left.append(f"{report['left']} file(s) left in the shared folders"
                        f" ({'; '.join(report['problems'])})")
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, KeyError) as exc:
        left.append(f"the clean-up of the shared folders failed: {exc}")
    for option, ident in _sysv_objects(uid):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["ipcrm", option, ident], capture_output=True, timeout=30)
    if _sysv_objects(uid):
        left.append("System V IPC objects of the uid could not be removed")
    return left


def mark_dirty(uid: int) -> None:
    """Keep ``uid`` from being leased until what it left is removed."""
    with contextlib.suppress(OSError):
        fd = os.open(_uid_lock_dir() / f"{uid}.dirty", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW,
                     0o600)
        os.close(fd)


def _clean_before_lease(uid: int, folder: Path) -> bool:
    """True when ``uid`` holds nothing a previous kernel left (cleaning it now if marked)."""
    marker = folder / f"{uid}.dirty"
    if not marker.exists():
        return True
    kill_uid(uid)
    if remove_uid_files(uid):
        return False
    with contextlib.suppress(OSError):
        marker.unlink()
    return True
