"""Where a student's kernel runs: a bubblewrap sandbox, or (with a loud warning) no sandbox.

With ``bwrap`` (Linux, Debian package ``bubblewrap``) every kernel gets:

* a read-only view of just what it needs: the system's ``/usr`` (and the ``/bin``, ``/lib``
  links), a few files of ``/etc`` (dynamic linker cache, fonts), the Python installation and
  environment the grader runs in, and of the course code only ``helpers`` and the
  self-check's files (:mod:`grader.kernel.kernel_view`: a copy mounted over the packages);
* its own writable scratch folder (the kernel's working folder, holding its copy of the
  notebook and what the export cell writes; its size is watched by the grader), a read-only
  *inbox* (the inputs the grader generates for function checks), the data folder read-only
  at ``/data``, a private ``/tmp`` and a private home ``/home/student`` (both in memory, with
  a size cap);
* no network (a new network namespace: only its own loopback), its own PID namespace (it
  cannot see or signal the grader or other kernels, and every process it starts dies with
  it), its own IPC and UTS namespaces, a new session (no terminal to inject into), a
  non-root user (when the grader runs as root, a uid of its own leased for this kernel, see
  :data:`grader.kernel.uid_lease.KERNEL_UID_BASE`, with no capabilities; else uid 65534
  in a user namespace), at most
  :data:`MAX_TASKS` processes and threads counted for this kernel alone (its own ``pids``
  cgroup where one can be made, and its own uid's ``RLIMIT_NPROC``), one busy process's share
  of the CPU however many it runs and a memory limit counting shared memory too (its own
  ``cpu`` and ``memory`` cgroups where they can be made: :mod:`grader.kernel.cgroups`),
  and an environment built from an allow-list;
* the Python the grader runs and its packages mounted wherever they live, after the private
  ``/tmp`` (a virtual environment under ``/tmp`` is not hidden).

The grader talks to the kernel over ZeroMQ's ``ipc`` transport: the sockets live in a short
private folder shared with the sandbox, so no TCP port is opened.

Nothing of the submissions folder, the output folder, the rubric sources, the solutions or
the instructor's home is mounted.

``--sandbox uid`` (and ``auto`` where bubblewrap cannot start but the grader is root, as in
many containers) runs the kernel without bubblewrap as a leased uid:
:mod:`grader.kernel.uid_mode`. :mod:`grader.kernel.sandbox_choice` picks the mode.

``--sandbox none`` (or ``auto`` where bubblewrap does not
work, e.g. macOS) runs the kernel as the grader's own user: time, memory and output limits
and everything decided outside the kernel still hold, but the kernel can read and write
whatever the grader's user can.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from grader.base.processes import thread_environment
from grader.kernel.cgroups import (
    MAX_TASKS,
    cgroup_prefix,
    make_kernel_groups,
    memory_group,
    remove_group,
)
from grader.kernel.kernel_view import hidden_folders, view_binds
from grader.kernel.sweep import remove_folder

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
INHERITED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Variables a kernel inherits from the grader (locale, and the OpenBLAS settings some
processors need for NumPy not to crash). Everything else is set explicitly: no secret from
the grader's environment reaches a kernel."""


@dataclass(frozen=True)
class SandboxSetting:
    """The sandbox the batch resolved: ``mode`` is ``"bwrap"``, ``"uid"`` or ``"none"`` (the
    name of a :mod:`grader.kernel.modes` class)."""

    mode: str
    warning: str | None = None


@dataclass(frozen=True)
class KernelHome:
    """The folders of one kernel run (all made by the grader, under a private root).

    ``scratch`` is the kernel's writable working folder, ``inbox`` holds files the grader
    hands to the kernel (read-only inside the sandbox), ``sockets`` the connection file and
    the ZeroMQ ``ipc`` sockets, ``home`` the kernel's home when it is not sandboxed.

    ``uid`` is the user the sandboxed kernel runs as: a uid leased for this kernel alone when
    the grader runs as root (:data:`KERNEL_UID_BASE`), else :data:`SANDBOX_UID` inside a user
    namespace. ``cgroups`` are the kernel's own control groups (:mod:`grader.kernel.cgroups`:
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
            from grader.kernel.uid_lease import lease_kernel_uid

            uid, lease = lease_kernel_uid()
            for folder in (scratch, sockets, home):
                os.chown(folder, uid, uid)
        write_identity(root / "etc", uid)
        return cls(root, scratch, inbox, sockets, home, uid, make_kernel_groups(memory_mb), lease)

    def remove(self) -> None:
        """Remove the kernel's socket folder (by descriptors, bounded: :func:`remove_folder`)
        and groups, and release its uid. The scratch folder ``root`` belongs to the caller:
        removed with the grader's own temporary folder, kept when the caller asked for it
        (``grade_submission(..., scratch_root=)``)."""
        remove_folder(self.sockets)
        for group in self.cgroups:
            remove_group(group)
        if self.lease is not None:
            os.close(self.lease)  # releases the uid's lock


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
