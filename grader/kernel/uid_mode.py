"""uid mode: a kernel runs as a leased uid of its own where bubblewrap cannot start.

Containers often refuse the namespaces bubblewrap needs while the grader runs there as root.
Each kernel then runs through ``setpriv`` as a uid leased to it alone
(:data:`grader.kernel.uid_lease.KERNEL_UID_BASE`): no capabilities, no new privileges, no
groups, its own task limit and control groups, network and IPC namespaces of its own where
``unshare`` can make them. It sees the real file system: what protects the grader's files is
their modes (:func:`uid_exposures` checks them). When the notebook ends every process of the
uid is killed and what the uid left in the shared writable folders and in System V IPC is
removed by a process running as that uid (:func:`remove_uid_files`); a uid left unclean is not
leased again until a clean-up of it succeeds. See docs/sandbox.md, "uid mode".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from grader.kernel.cgroups import MAX_TASKS, cgroup_prefix, memory_group
from grader.kernel.sandbox import KernelHome, make_kernel_manager
from grader.kernel.uid_lease import (
    _drop_to,
    kill_uid,
    lease_kernel_uid,
    mark_dirty,
    remove_uid_files,
)

UID_WARNING = (
    "graded with --sandbox uid (bubblewrap cannot start here): each kernel ran as an"
    " unprivileged uid of its own, without capabilities and with its own task limit, but it"
    " shares the grader's file system, /tmp and process list: it can read every file that is"
    " readable by all users"
)
"""The start of the note a batch graded in uid mode carries (instructor-only, like the
no-sandbox warning): what the kernels could reach that bubblewrap would have hidden."""


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
