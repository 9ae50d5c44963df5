"""Where a student's kernel runs: a bubblewrap sandbox, or (with a loud warning) no sandbox.

With ``bwrap`` (Linux, Debian package ``bubblewrap``) every kernel gets:

* a read-only view of just what it needs: the system's ``/usr`` (and the ``/bin``, ``/lib``
  links), a few files of ``/etc`` (dynamic linker cache, fonts), the Python installation and
  environment the grader runs in, and the course packages ``helpers`` and ``grader`` with the
  rubric folder hidden under an empty file system;
* its own writable scratch folder (the kernel's working folder, holding its copy of the
  notebook and what the export cell writes; its size is watched by the grader), a read-only
  *inbox* (the inputs the grader generates for function checks), the data folder read-only
  at ``/data``, a private ``/tmp`` and a private home ``/home/student`` (both in memory, with
  a size cap);
* no network (a new network namespace: only its own loopback), its own PID namespace (it
  cannot see or signal the grader or other kernels, and every process it starts dies with
  it), its own IPC and UTS namespaces, a new session (no terminal to inject into), a
  non-root user (when the grader runs as root, a uid of its own leased for this kernel, see
  :data:`KERNEL_UID_BASE`, with no capabilities; else uid 65534 in a user namespace), at most
  :data:`MAX_TASKS` processes and threads counted for this kernel alone (its own ``pids``
  cgroup where one can be made, and its own uid's ``RLIMIT_NPROC``), one busy process's share
  of the CPU however many it runs (its own ``cpu`` cgroup where one can be made:
  :mod:`grader.submission.cgroups`), and an environment built from an allow-list;
* the Python the grader runs and its packages mounted wherever they live, after the private
  ``/tmp`` (a virtual environment under ``/tmp`` is not hidden).

The grader talks to the kernel over ZeroMQ's ``ipc`` transport: the sockets live in a short
private folder shared with the sandbox, so no TCP port is opened.

Nothing of the submissions folder, the output folder, the rubric sources, the solutions or
the instructor's home is mounted.

``--sandbox uid`` (and ``auto`` where bubblewrap cannot start but the grader is root, as in
many containers) runs the kernel without bubblewrap as a leased uid (``setpriv``: no
capabilities, no new privileges, no groups), with the task limit (its cgroup and
``RLIMIT_NPROC``) and CPU share (its cgroup), no core dumps, its own network namespace when
``unshare --net`` works, and
every process of that uid killed (and its files in ``/tmp``, ``/var/tmp``, ``/dev/shm``
removed) when the notebook ends. It sees the real file system: what
protects the grader's files is their modes (:func:`uid_exposures` checks them).

``--sandbox none`` (or ``auto`` where bubblewrap does not
work, e.g. macOS) runs the kernel as the grader's own user: time, memory and output limits
and everything decided outside the kernel still hold, but the kernel can read and write
whatever the grader's user can.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from grader.base.errors import GraderError
from grader.base.processes import thread_environment
from grader.submission.cgroups import (
    MAX_TASKS,
    cgroup_prefix,
    make_kernel_groups,
    memory_group,
    remove_group,
)
from grader.submission.kernel_view import hidden_folders, view_binds
from grader.submission.sweep import remove_folder

MODES = ("auto", "bwrap", "uid", "none")
SANDBOX_UID = 65534
SANDBOX_HOME = "/home/student"
SANDBOX_DATA = "/data"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message the grader accepts from a kernel; bigger ones are dropped by ZeroMQ before
they reach the grader's memory (a cell printing a 1 GB string in one go is never seen;
smaller floods are cut by the output limits as they stream in). A notebook keeps at most a
few MB of output, so nothing a grader needs is ever this large."""
RECEIVE_QUEUE = 16
"""Messages ZeroMQ may hold for the grader before it reads them (its receive high-water mark):
with :data:`MAX_MESSAGE_BYTES` this bounds what a kernel flooding its output channel can make
the grader hold in memory (16 x 16 MB); the kernel's side drops what does not fit."""

PYTHON_PROBLEM = "bubblewrap works here, but not with the grader's Python"
NAMESPACE_PROBLEM = "bubblewrap is installed but cannot start a sandbox here"
UNSANDBOXED_WARNING = (
    "graded WITHOUT a sandbox: the student's kernel ran as the grader's own user, with its"
    " files, its network and its other processes in reach; grades are still decided outside"
    " the kernel, but a hostile notebook could have tampered with other files. Grade on Linux"
    " with bubblewrap installed (apt-get install bubblewrap) and --sandbox bwrap."
)

TMPFS_BYTES = {"/dev/shm": 512 * 2**20, "/tmp": 1024 * 2**20, SANDBOX_HOME: 256 * 2**20}
"""Sizes of the sandbox's in-memory folders: files there take RAM that no process's resident
memory shows, so they are capped instead."""
KERNEL_UID_BASE = 63000
KERNEL_UID_SLOTS = 500
"""When the grader runs as root, each sandboxed kernel runs as its own uid, leased from
``KERNEL_UID_BASE`` .. ``KERNEL_UID_BASE + KERNEL_UID_SLOTS - 1`` for the kernel's lifetime
(a lock file per uid, shared by every grader process on the machine: local workers, Dask
workers, concurrent batches). The kernel's task limit (``RLIMIT_NPROC``) counts the tasks of
its real uid, so a kernel holding thousands of threads exhausts only its own limit. Uids of
accounts in the password database are skipped."""

INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Variables a kernel inherits from the grader (locale, and the OpenBLAS settings some
processors need for NumPy not to crash). Everything else is set explicitly: no secret from
the grader's environment reaches a kernel."""


UID_WARNING = (
    "graded with --sandbox uid (bubblewrap cannot start here): each kernel ran as an"
    " unprivileged uid of its own, without capabilities and with its own task limit, but it"
    " shares the grader's file system, /tmp and process list: it can read every file that is"
    " readable by all users"
)
"""The start of the note a batch graded in uid mode carries (instructor-only, like the
no-sandbox warning): what the kernels could reach that bubblewrap would have hidden."""


@dataclass(frozen=True)
class SandboxSetting:
    """The sandbox the batch resolved: ``mode`` is ``"bwrap"``, ``"uid"`` or ``"none"``."""

    mode: str
    warning: str | None = None

    @property
    def sandboxed(self) -> bool:
        """True in bubblewrap mode (the kernel sees only what is mounted for it)."""
        return self.mode == "bwrap"


@dataclass(frozen=True)
class KernelHome:
    """The folders of one kernel run (all made by the grader, under a private root).

    ``scratch`` is the kernel's writable working folder, ``inbox`` holds files the grader
    hands to the kernel (read-only inside the sandbox), ``sockets`` the connection file and
    the ZeroMQ ``ipc`` sockets, ``home`` the kernel's home when it is not sandboxed.

    ``uid`` is the user the sandboxed kernel runs as: a uid leased for this kernel alone when
    the grader runs as root (:data:`KERNEL_UID_BASE`), else :data:`SANDBOX_UID` inside a user
    namespace. ``cgroups`` are the kernel's own control groups (:mod:`grader.submission.cgroups`:
    its task limit, ``pids.max`` = :data:`MAX_TASKS`, and its CPU share) where the machine lets
    the grader create them, else empty.
    """

    root: Path
    scratch: Path
    inbox: Path
    sockets: Path
    home: Path
    uid: int = SANDBOX_UID
    cgroups: tuple[Path, ...] = ()
    lease: int | None = None

    @classmethod
    def create(cls, root: Path, memory_mb: int | None = None) -> KernelHome:
        root = Path(root)
        scratch, inbox, home = root / "scratch", root / "inbox", root / "home"
        for folder in (scratch, inbox, home):
            folder.mkdir(mode=0o700)
        # ipc socket paths must stay short (108 bytes on Linux): a folder of its own in /tmp
        sockets = Path(tempfile.mkdtemp(prefix="dlk-"))
        os.chmod(inbox, 0o755)  # read-only inside the sandbox, readable by its user
        uid, lease = SANDBOX_UID, None
        if os.geteuid() == 0:
            uid, lease = lease_kernel_uid()
            for folder in (scratch, sockets, home):
                os.chown(folder, uid, uid)
        write_identity(root / "etc", uid)
        return cls(root, scratch, inbox, sockets, home, uid, make_kernel_groups(memory_mb), lease)

    def remove(self) -> None:
        """Remove the kernel's folders (by descriptors, bounded: :func:`remove_folder`) and
        groups, and release its uid."""
        for folder in (self.root, self.sockets):
            remove_folder(folder)
        for group in self.cgroups:
            remove_group(group)
        if self.lease is not None:
            os.close(self.lease)  # releases the uid's lock


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


def kernel_environment(*, fast: bool, data_dir: str | None, threads: int | None,
                       sandboxed: bool, home: Path | None = None) -> dict[str, str]:
    """The kernel's whole environment, built from an allow-list (no inherited secrets).

    Inside the sandbox the data folder is mounted at ``/data`` and the home is private; without
    it ``home`` (a folder of the grader's scratch) replaces the grader's home so that caches
    the kernel writes (Keras, Matplotlib) stay out of the instructor's home.
    """
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = SANDBOX_HOME if sandboxed else str(home or tempfile.gettempdir())
    env["TMPDIR"] = "/tmp" if sandboxed else tempfile.gettempdir()
    env["MPLBACKEND"] = "Agg"
    env["MPLCONFIGDIR"] = f"{env['HOME']}/.config/matplotlib"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["DLCOURSE_GRADING"] = "1"
    env["DLCOURSE_FAST"] = "1" if fast else "0"
    if data_dir is not None:
        env["DLCOURSE_DATA_DIR"] = SANDBOX_DATA if sandboxed else os.fspath(data_dir)
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"expected threads >= 1, got {threads!r}")
        env.update(thread_environment(threads))
    return env


def _python_needs() -> list[Path]:
    """Paths the grader's Python needs to start and import its packages: the environment and
    the installation it comes from, its site-packages folders and what their ``.pth`` files
    add (editable installs). Not the current folder and not ``PYTHONPATH``: a kernel gets
    neither."""
    import site

    skip = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    skip.add(os.path.realpath(os.getcwd()))
    raw = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
           os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
           os.path.dirname(os.path.abspath(sys.executable)), *site.getsitepackages()]
    raw += [p for p in sys.path[1:] if p and os.path.realpath(p) not in skip]
    return [Path(os.path.abspath(p)) for p in raw if os.path.isdir(p)]


def _python_binds() -> list[tuple[Path, Path]]:
    """``(source, target)`` read-only mounts for :func:`_python_needs`: each at its resolved
    path and, when reached through symbolic links, at the path the grader uses too."""
    binds: list[tuple[Path, Path]] = []
    for path in _python_needs():
        real = Path(os.path.realpath(path))
        for target in dict.fromkeys((real, path)):
            if target == Path("/") or target == Path("/usr") or Path("/usr") in target.parents:
                continue  # /usr is mounted anyway
            if any(_covers(src, dst, real, target) for src, dst in binds):
                continue
            binds = [(s, d) for s, d in binds if not _covers(real, target, s, d)]
            binds.append((real, target))
    return sorted(binds, key=lambda b: (len(b[1].parts), str(b[1])))


def _covers(src: Path, dst: Path, inner_src: Path, inner_dst: Path) -> bool:
    """True when mounting ``src`` at ``dst`` already shows ``inner_src`` at ``inner_dst``,
    directly or through a symbolic link inside ``src`` (a virtual environment whose
    ``site-packages`` links elsewhere: nothing may be mounted on that link, the mount of
    its target serves it)."""
    if inner_dst != dst and dst not in inner_dst.parents:
        return False
    shown = src / inner_dst.relative_to(dst)
    return shown == inner_src or os.path.realpath(shown) == os.path.realpath(inner_src)


_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "alternatives",
        "nsswitch.conf", "mime.types", "ssl")


def _ancestors(paths: list[Path]) -> list[str]:
    dirs: set[str] = set()
    for path in paths:
        for parent in Path(path).parents:
            if str(parent) != "/":
                dirs.add(str(parent))
    return sorted(dirs, key=lambda p: (p.count("/"), p))


def bwrap_args(home: KernelHome, *, data_dir: str | None, env: dict[str, str]) -> list[str]:
    """The ``bwrap`` command line (without the command) for one kernel."""
    identity = home.root / "etc"  # passwd and group naming the sandbox user
    args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--new-session", "--die-with-parent",
            "--hostname", "grading"]
    root_as_user = os.geteuid() != 0
    if root_as_user:  # an unprivileged grader needs a user namespace; map it to uid 65534
        args += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    python_binds = _python_binds()
    python_folders = [*_python_needs(), *(target for _, target in python_binds)]
    binds = [*python_binds, *view_binds(python_folders)]  # the course code: the kernel's copy
    rw = [home.scratch, home.sockets]
    mounts = [Path("/usr"), *(target for _, target in binds), *rw, home.inbox]
    for folder in _ancestors(mounts):  # those under /tmp come after the private /tmp below
        if folder in ("/tmp", "/usr", "/home") or folder.startswith(("/usr/", "/tmp/")):
            continue
        args += ["--perms", "0755", "--dir", folder]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", str(identity / "passwd"), "/etc/passwd",
             "--ro-bind", str(identity / "group"), "/etc/group"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for folder in ("/dev/shm", "/tmp"):
        args += ["--size", str(TMPFS_BYTES[folder]), "--perms", "1777", "--tmpfs", folder]
    args += ["--perms", "0755", "--dir", "/home",
             "--size", str(TMPFS_BYTES[SANDBOX_HOME]), "--perms", "1777", "--tmpfs", SANDBOX_HOME]
    for folder in _ancestors(mounts):  # after the private /tmp, which would hide them
        if folder.startswith("/tmp/"):
            args += ["--perms", "0755", "--dir", folder]
    for source, target in binds:  # Python, then the course code's copy over the packages
        args += ["--ro-bind", str(source), str(target)]
    for folder in hidden_folders(python_folders):
        args += ["--tmpfs", str(folder)]
    args += ["--bind", str(home.scratch), str(home.scratch),
             "--bind", str(home.sockets), str(home.sockets),
             "--ro-bind", str(home.inbox), str(home.inbox)]
    if data_dir is not None and Path(data_dir).is_dir():
        args += ["--ro-bind", str(Path(data_dir).resolve()), SANDBOX_DATA]
    args += ["--chdir", str(home.scratch), "--clearenv"]
    for key, value in sorted(env.items()):
        args += ["--setenv", key, value]
    args.append("--")
    if not root_as_user:  # really drop root: uid 65534, no capabilities, no new privileges
        args += ["prlimit", f"--nproc={MAX_TASKS}:{MAX_TASKS}", "--",
                 "setpriv", f"--reuid={home.uid}", f"--regid={home.uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return args


def write_identity(folder: Path, uid: int = SANDBOX_UID) -> Path:
    """``passwd`` and ``group`` files naming only root and the sandbox user (``uid``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"student:x:{uid}:{uid}:student:{SANDBOX_HOME}:/usr/sbin/nologin\n")
    (folder / "group").write_text(f"root:x:0:\nstudent:x:{uid}:\n")
    for name in ("passwd", "group"):
        os.chmod(folder / name, 0o644)
    return folder


def make_kernel_manager(sockets: Path, *, wrap=None):
    """A jupyter_client kernel manager that talks to its kernel over ``ipc`` in ``sockets``.

    ``wrap(cmd) -> cmd`` prefixes the kernel command (the bubblewrap sandbox); ``None`` starts
    the kernel directly. Messages larger than :data:`MAX_MESSAGE_BYTES` are refused by ZeroMQ
    itself, so a kernel cannot make the grader hold a huge message in memory.
    """
    import zmq
    import zmq.asyncio
    from jupyter_client.manager import AsyncKernelManager

    class GradingKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):  # noqa: D102 - jupyter_client hook
            cmd = super().format_kernel_cmd(extra_arguments)
            return cmd if wrap is None else wrap(self, cmd)

        def client(self, **kwargs):  # noqa: D102 - every client socket refuses huge messages
            context = zmq.asyncio.Context()
            context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            context.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
            kwargs.setdefault("context", context)
            return super().client(**kwargs)

    km = GradingKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "k"),
                              connection_file=str(Path(sockets) / "connection.json"))
    km.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    return km


def sandboxed_kernel_manager(home: KernelHome, *, data_dir: str | None, env: dict[str, str]):
    """A kernel manager whose kernel starts inside a bubblewrap sandbox (see module docstring)."""

    def wrap(km, cmd: list[str]) -> list[str]:
        if os.geteuid() == 0:  # the kernel runs as the sandbox user and must read this file
            os.chown(km.connection_file, home.uid, home.uid)
        return [*cgroup_prefix(home.cgroups), *bwrap_args(home, data_dir=data_dir, env=env), *cmd]

    km = make_kernel_manager(home.sockets, wrap=wrap)
    km.memory_group = memory_group(home.cgroups)
    # bwrap does not pass signals on to the kernel: interrupt it with a control message
    km.kernel_spec.interrupt_mode = "message"
    return km


def kernel_data_dir(data_dir: str | None) -> str:
    """The data folder mounted (read-only) into sandboxed kernels, which have no network.

    ``data_dir`` (``DLCOURSE_DATA_DIR``) when set. Otherwise the grader, which may download,
    writes the course datasets as ``.npz`` files once into
    ``$XDG_CACHE_HOME/dlcourse/data`` (default ``~/.cache/dlcourse/data``) through
    ``keras.datasets`` and uses that folder for the kernels and for scoring.

    Raises
    ------
    GraderError
        A dataset can be neither found nor downloaded.
    """
    if data_dir:
        return os.fspath(data_dir)
    import numpy as np

    from helpers.data import DATASETS, DatasetUnavailableError, load_dataset

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(cache) / "dlcourse" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        target = folder / f"{name}.npz"
        if target.is_file():
            continue
        try:
            (x_train, y_train), (x_test, y_test) = load_dataset(name, fast=False, data_dir=None)
        except DatasetUnavailableError as exc:
            raise GraderError(f"the sandboxed kernels have no network, so the grader provides the"
                              f" datasets, and it could not get {name!r}: {exc}") from exc
        tmp = folder / f".{name}.{os.getpid()}.npz"
        np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        os.replace(tmp, target)
    return str(folder)


@cache
def bwrap_problem() -> str | None:
    """``None`` when a bubblewrap sandbox can be started here, else the reason it cannot."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux; this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return "the `bwrap` command is not installed"
    root = Path(tempfile.mkdtemp(prefix="dlcourse-probe-"))
    home = None
    try:
        home = KernelHome.create(root)
        env = kernel_environment(fast=True, data_dir=None, threads=1, sandboxed=True)
        cmd = [*bwrap_args(home, data_dir=None, env=env),
               sys.executable, "-c", "import os; print(os.getuid())"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"starting bwrap failed: {exc}"
        if done.returncode != 0 or done.stdout.strip() != str(home.uid):
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            if _bare_bwrap_starts():  # bubblewrap itself works: its mounts or Python failed
                return (f"{PYTHON_PROBLEM}: the grader's Python ({sys.executable}) did not run"
                        f" inside the sandbox (exit code {done.returncode}: {detail}); mounted"
                        f" for it: {', '.join(str(t) for _, t in _python_binds())}")
            return f"{NAMESPACE_PROBLEM} (exit code {done.returncode}: {detail})"
        return None
    finally:
        if home is not None:
            home.remove()
        shutil.rmtree(root, ignore_errors=True)


def _bare_bwrap_starts() -> bool:
    """True when bubblewrap starts here with the kernel's namespaces and no mounts of ours."""
    args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    if os.geteuid() != 0:
        args += ["--unshare-user"]
    try:
        return subprocess.run([*args, "/bin/true"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def resolve_sandbox(requested: str) -> SandboxSetting:
    """Turn ``--sandbox auto|bwrap|uid|none`` into the setting used for every kernel.

    ``auto``: bubblewrap when it works here, else uid mode when the grader is root and
    ``setpriv`` works (:func:`uid_problem`), else no sandbox (with a warning).

    Raises
    ------
    GraderError
        ``bwrap`` or ``uid`` was asked for and does not work here, or the mode is unknown.
    """
    if requested not in MODES:
        raise GraderError(f"expected --sandbox to be one of {', '.join(MODES)}, got {requested!r}")
    if requested == "none":
        return SandboxSetting("none", UNSANDBOXED_WARNING)
    if requested == "uid":
        problem = uid_problem()
        if problem is not None:
            raise GraderError(f"--sandbox uid: {problem}. Fix: grade as root on Linux with"
                              " util-linux (setpriv, prlimit) installed, or use --sandbox bwrap")
        return SandboxSetting("uid", uid_warning())
    problem = bwrap_problem()
    if problem is None:
        return SandboxSetting("bwrap")
    if problem.startswith(PYTHON_PROBLEM):
        fix = (" Fix: report this as a grader bug with the message above; meanwhile install the"
               " grader into an environment outside /tmp, or pass --sandbox none.")
        if requested == "bwrap":
            raise GraderError(f"--sandbox bwrap: {problem}.{fix}")
        return SandboxSetting("none", f"{UNSANDBOXED_WARNING} (no sandbox: {problem}.{fix})")
    if requested == "bwrap" and problem.startswith(NAMESPACE_PROBLEM):
        raise GraderError(f"--sandbox bwrap: {problem}. Fix: allow the namespaces bubblewrap"
                          " needs (unprivileged user namespaces when not grading as root; in a"
                          " container, a seccomp/AppArmor profile that permits them), or grade"
                          " as root with --sandbox uid, or pass --sandbox none.")
    if requested == "bwrap":
        raise GraderError(f"--sandbox bwrap: {problem}. Fix: on Debian/Ubuntu `apt-get install"
                          " bubblewrap` (and allow unprivileged user namespaces when not"
                          " grading as root); on macOS grade inside a Linux container; or"
                          " pass --sandbox none to grade without isolation.")
    if uid_problem() is None:
        return SandboxSetting("uid", f"{uid_warning()} (bubblewrap unavailable: {problem})")
    return SandboxSetting("none", f"{UNSANDBOXED_WARNING} (bubblewrap unavailable: {problem})")


# ----------------------------------------------------------------------------------------
# uid mode: where bubblewrap cannot start (containers refusing namespaces) but the grader is
# root. The kernel runs as a leased uid with setpriv; see the README, "The sandbox".
# ----------------------------------------------------------------------------------------


def _drop_to(uid: int) -> list[str]:
    """``setpriv`` dropping every privilege and becoming ``uid`` (no groups, no capabilities)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


@cache
def _unshare_works(flag: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", flag, "--", "/bin/true"], capture_output=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def network_cut_works() -> bool:
    """True when ``unshare --net`` can give a kernel a network namespace of its own here."""
    return _unshare_works("--net")


def ipc_namespace_works() -> bool:
    """True when ``unshare --ipc`` can give a kernel System V IPC and POSIX message queues of
    its own here (they then disappear with the kernel's last process)."""
    return _unshare_works("--ipc")


def uid_args(home: KernelHome) -> list[str]:
    """The command prefix of a uid-mode kernel: its cgroups, network and IPC namespaces of
    its own where they can be made, the task and core-dump limits, then :func:`_drop_to`."""
    args = [*cgroup_prefix(home.cgroups)]
    flags = [f for f, works in (("--net", network_cut_works()), ("--ipc", ipc_namespace_works()))
             if works]
    if flags:
        args += ["unshare", *flags, "--"]
    return [*args, "prlimit", f"--nproc={MAX_TASKS}:{MAX_TASKS}", "--core=0:0", "--",
            *_drop_to(home.uid)]


def uid_warning() -> str:
    """:data:`UID_WARNING`, saying whether the network could be cut."""
    network = ("its own network namespace (no network)" if network_cut_works() else
               "the network: this container refuses network namespaces (unshare --net)")
    return f"{UID_WARNING}; network: {network}"


@cache
def uid_problem() -> str | None:
    """``None`` when uid mode works here, else why not (tried once: a probe kernel command)."""
    if not sys.platform.startswith("linux"):
        return f"uid mode needs Linux; this is {sys.platform}"
    if os.geteuid() != 0:
        return "uid mode needs the grader to run as root (it switches each kernel to a uid of its own)"
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return f"the `{tool}` command (util-linux) is not installed"
    root = Path(tempfile.mkdtemp(prefix="dlcourse-probe-"))
    home = None
    try:
        home = KernelHome.create(root)
        open_to_kernel(home)
        blocked = next((str(f) for f in (*reversed(home.scratch.parents),
                                         *reversed(home.sockets.parents))
                        if not f.stat().st_mode & 0o001), None)
        if blocked is not None:
            return (f"a kernel's uid could not reach its folders under {tempfile.gettempdir()}:"
                    f" {blocked} is not passable by other users (no o+x). Fix: set TMPDIR to a"
                    " folder such as /tmp")
        cmd = [*uid_args(home), sys.executable, "-c", "import os, numpy; print(os.getuid())"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=home.scratch)
        if done.returncode != 0 or done.stdout.strip() != str(home.uid):
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return (f"the grader's Python ({sys.executable}) did not start as an unprivileged"
                    f" uid (exit code {done.returncode}: {detail}); every folder on its path"
                    " must be readable by all users")
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"a probe kernel did not start: {exc}"
    finally:
        if home is not None:
            home.remove()
        shutil.rmtree(root, ignore_errors=True)


def open_to_kernel(home: KernelHome, data_dir: str | None = None) -> None:
    """Let a uid-mode kernel reach its folders: the grader's own temporary folders on the way
    (``home.root``, its ``dlcourse-*`` parent, the data copy's root and, for the shared fast
    copy, its cache folder) get ``o+x`` only, so the kernel can pass through them without
    listing them."""
    folders = [home.root]
    if home.root.parent.name.startswith("dlcourse-"):
        folders.append(home.root.parent)
    if data_dir is not None:  # the copy's root, and the shared fast copy's cache folder
        folders += [p for p in Path(data_dir).parents[:2] if p.name.startswith("dlcourse-")]
    for folder in folders:
        info = folder.stat()
        if info.st_uid == os.geteuid():
            os.chmod(folder, (info.st_mode & 0o777) | 0o001)


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
        if "uid" not in header or "id" not in header:
            continue
        for line in lines[1:]:
            fields = dict(zip(header, line.split(), strict=False))
            if str(uid) in (fields.get("uid"), fields.get("cuid")):
                found.append((option, fields["id"]))
    return found


def remove_uid_files(uid: int, keep: tuple[Path, ...] = ()) -> list[str]:
    """Remove what ``uid`` left for the next kernel of that uid: its entries in
    :data:`SHARED_WRITABLE` (and all inside folders it owns), except the folders ``keep``,
    and its System V IPC objects. Run once the uid's processes are dead.

    The files are removed by :mod:`grader.submission.sweep` running as ``uid`` itself (a
    short process that dropped to it: it can remove nothing that uid could not), walking by
    directory descriptors without following links. Returns what could not be removed (empty
    when everything is gone); never raises.
    """
    import json

    from grader.submission import sweep

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


def end_kernel_uid(home: KernelHome) -> list[str]:
    """After a uid-mode kernel: kill every process of its uid, then remove what it left in the
    shared writable folders and System V IPC (its own scratch, home and sockets stay for the
    grader). Returns what could not be removed; the uid is then kept from later kernels
    (:func:`lease_kernel_uid`) until a clean-up of it succeeds."""
    kill_uid(home.uid)
    left = remove_uid_files(home.uid, keep=(home.root, home.sockets))
    if left:
        mark_dirty(home.uid)
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


def uid_kernel_manager(home: KernelHome, *, data_dir: str | None):
    """A kernel manager whose kernel starts as the leased uid ``home.uid`` (uid mode)."""

    open_to_kernel(home, data_dir)

    def wrap(km, cmd: list[str]) -> list[str]:
        os.chown(km.connection_file, home.uid, home.uid)  # the kernel must read it
        return [*uid_args(home), *cmd]

    km = make_kernel_manager(home.sockets, wrap=wrap)
    km.memory_group = memory_group(home.cgroups)
    return km


_PROBE = r"""
import os, sys
found = []
for top in sys.argv[1:]:
    if os.path.isfile(top):
        files = [top]
    else:
        try:
            files = [os.path.join(d, f) for d, _, names in os.walk(top) for f in names][:500]
        except OSError:
            files = []
    for path in files:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            found.append(top)
            break
        except OSError:
            continue
print("\n".join(found))
"""


def uid_exposures(paths: list[Path]) -> list[str]:
    """Which of ``paths`` (files or folders) hold a file an unprivileged kernel uid could read:
    checked by reading them as a leased uid. Empty when the uid could read none."""
    uid, lease = lease_kernel_uid()
    try:
        cmd = [*_drop_to(uid), sys.executable, "-c", _PROBE, *(str(p) for p in paths)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return [f"(not checked: the probe failed with exit code {done.returncode}: {detail})"]
        return [line for line in done.stdout.splitlines() if line]
    finally:
        os.close(lease)
