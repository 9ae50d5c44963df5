"""Each kernel's own control groups: a task limit and a CPU share counted for it alone.

A kernel that starts thousands of threads or a few dozen busy processes must not starve the
kernel beside it (``--jobs 2``) or the grader's own timings. Where the machine lets the
grader create control groups (as root with cgroup v1's ``pids`` and ``cpu`` hierarchies
writable, as on this project's machines; or cgroup v2 with the controllers delegated), every
kernel gets a group of its own in each:

* ``pids``: ``pids.max`` = :data:`MAX_TASKS`, so a kernel
  holding thousands of threads exhausts only its own count;
* ``memory``: a hard limit a little above the kernel's memory budget
  (:func:`memory_ceiling`; v2 ``memory.max`` with no swap, v1 ``memory.limit_in_bytes`` and
  ``memory.memsw.limit_in_bytes`` where swap is accounted), which counts what resident memory
  does not show: memfd files, System V and POSIX shared memory, tmpfs files. The grader's
  watchdog reads the group's anonymous plus shared memory (:func:`group_memory_mb`) beside
  the processes' resident memory and stops the kernel over its budget; the hard limit
  catches what grows faster than the watchdog samples (:func:`hit_memory_limit`);
* ``cpu``: the default weight (v1 ``cpu.shares`` 1024, v2 ``cpu.weight`` 100), the weight of
  one busy process: however many processes a kernel runs, the scheduler gives the whole
  group one process's share against its neighbour kernel's group and against each of the
  grader's own processes (which stay in the grader's group). Linux's autogroups (one
  scheduling group per session, where ``kernel.sched_autogroup_enabled`` is on) would do
  the same for a kernel's own session, but a process that starts a new session leaves it; it
  cannot leave its cgroup.

The groups are made under the grader's own group of each hierarchy, named
``dlcourse-kernel-<grader pid>-<random>``; the kernel's first process moves itself into all
of them before it starts the sandbox (:func:`cgroup_prefix`), so everything it starts
inherits them. When the kernel ends, whatever is left in its groups is killed and the groups
removed; groups of graders that no longer run are removed by the next grader.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path

MAX_TASKS = 4096
"""Processes and threads one kernel may have at once (a fork bomb stops there; TensorFlow needs
about a hundred threads per kernel). Each kernel has its own count: its ``pids`` group here,
and in the sandbox its own uid's ``RLIMIT_NPROC`` (:class:`grader.kernel.sandbox.KernelHome`)."""
CONTROLLERS = ("pids", "cpu", "memory")
"""The controllers each kernel gets a group of its own in."""
CONTROL_FILES = {"pids": ("pids.max",), "cpu": ("cpu.shares", "cpu.weight"),
                 "memory": ("memory.limit_in_bytes", "memory.max")}
"""A group's files that show a controller is enabled in it (cgroup v1 or v2)."""
GROUP_PREFIX = "dlcourse-kernel-"


def _own_groups() -> dict[Path, tuple[str, ...]]:
    """The grader's own group folder in each writable hierarchy that has one of
    :data:`CONTROLLERS`: folder -> the controllers used there (cgroup v1: a hierarchy per
    controller; v2: one folder for those its parent delegates)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return {}
    own = {}
    for line in lines:
        number, controllers, path = line.split(":", 2)
        own["v2" if number == "0" else controllers] = path
    found: dict[Path, tuple[str, ...]] = {}
    for mount in mounts:
        if " - " not in mount:
            continue
        point = mount.split()[4]
        fstype, _source, options = mount.split(" - ", 1)[1].split()[:3]
        if fstype == "cgroup":
            wanted = [c for c in CONTROLLERS if c in options.split(",")]
            key = next((k for k in own if set(wanted) & set(k.split(","))), None)
        elif fstype == "cgroup2":
            key, wanted = "v2", None
        else:
            continue
        if key is None or key not in own:
            continue
        folder = Path(point) / own[key].lstrip("/")
        if wanted is None:  # v2: what the parent delegates to the grader's group
            available = _read(folder / "cgroup.controllers").split()
            wanted = [c for c in CONTROLLERS if c in available]
        wanted = [c for c in wanted if not any(c in used for used in found.values())]
        if wanted and os.access(folder, os.W_OK):
            found[folder] = tuple(wanted)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def memory_ceiling(memory_mb: int) -> int:
    """The memory group's hard limit in bytes for a kernel budget of ``memory_mb``: a quarter
    (at least 256 MB) above it, so that the watchdog, which names the budget, normally stops
    the kernel first."""
    return (memory_mb + max(256, memory_mb // 4)) * 2**20


def _limit(group: Path, controllers: Sequence[str], memory_mb: int | None = None) -> None:
    """Write the limits of a new kernel group (the CPU weight stays the default)."""
    if "pids" in controllers:
        (group / "pids.max").write_text(str(MAX_TASKS))
    if "memory" in controllers and memory_mb is not None:
        ceiling = str(memory_ceiling(memory_mb))
        if (group / "memory.max").exists():  # v2; swap off for the kernel
            (group / "memory.max").write_text(ceiling)
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
        else:  # v1: memory and memory + swap (where swap is accounted), in that order
            (group / "memory.limit_in_bytes").write_text(ceiling)
            if (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(ceiling)


def memory_group(groups: Sequence[Path]) -> Path | None:
    """The memory group among a kernel's groups, if it has one."""
    return next((g for g in groups if any((g / f).exists() for f in CONTROL_FILES["memory"])),
                None)


def _stat(group: Path) -> dict[str, int]:
    found = {}
    for line in _read(group / "memory.stat").splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            found[name] = int(value)
    return found


def group_memory_mb(group: Path | None) -> float:
    """Anonymous plus shared memory (memfd, System V and POSIX shared memory, tmpfs) charged
    to a kernel's memory group, in MB; 0 without a group. Page cache (reclaimable) is not
    counted."""
    if group is None:
        return 0.0
    stat = _stat(group)
    if "anon" in stat:  # v2
        used = stat.get("anon", 0) + stat.get("shmem", 0)
    else:  # v1
        used = stat.get("total_rss", stat.get("rss", 0)) + stat.get(
            "total_shmem", stat.get("shmem", 0))
    return used / 2**20


def hit_memory_limit(group: Path | None) -> bool:
    """True when the group's hard memory limit was reached (the kernel then stops for memory)."""
    if group is None:
        return False
    events = _read(group / "memory.events").split()
    if events:  # v2: "max N" counts reaching memory.max, "oom_kill N" kills
        counts = dict(zip(events[::2], events[1::2], strict=False))
        return any(counts.get(k, "0") != "0" for k in ("oom", "oom_kill"))
    control = _read(group / "memory.oom_control").split()  # v1: "oom_kill N" (Linux 4.13+)
    counts = dict(zip(control[::2], control[1::2], strict=False))
    if "oom_kill" in counts:
        return counts["oom_kill"] != "0"
    return _read(group / "memory.failcnt").strip() not in ("", "0")


@cache
def usable_hierarchies() -> tuple[tuple[Path, tuple[str, ...]], ...]:
    """Where kernel groups can be made here (tried once: a probe group is made, limited and
    entered by a process): (parent folder, its controllers) pairs, empty when none can."""
    usable = []
    for parent, controllers in _own_groups().items():
        remove_stale_groups(parent)
        probe = parent / f"dlcourse-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            missing = [c for c in controllers
                       if not any((probe / f).exists() for f in CONTROL_FILES[c])]
            if missing:  # cgroup v2: enable the controllers below the grader's group
                (parent / "cgroup.subtree_control").write_text(
                    " ".join(f"+{c}" for c in missing))
            _limit(probe, controllers, 1024)
            moved = subprocess.run([*cgroup_prefix([probe]), "/bin/true"], capture_output=True,
                                   timeout=30)  # moving a process in must work too
            if moved.returncode == 0:
                usable.append((parent, controllers))
        except (OSError, subprocess.SubprocessError):
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
    return tuple(usable)


def controllers_in_use() -> tuple[str, ...]:
    """The controllers kernels get a group of their own in on this machine."""
    return tuple(c for _parent, used in usable_hierarchies() for c in used)


def remove_stale_groups(parent: Path) -> None:
    """Remove kernel groups left by grader processes that no longer run (killed batches)."""
    import psutil

    for folder in parent.glob(f"{GROUP_PREFIX}*"):
        owner = folder.name.split("-")[2]
        if owner.isdigit() and not psutil.pid_exists(int(owner)):
            remove_group(folder)


def make_kernel_groups(memory_mb: int | None = None) -> tuple[Path, ...]:
    """Fresh groups for one kernel, one per usable hierarchy (empty where none can be made);
    its memory group limited from ``memory_mb`` (:func:`memory_ceiling`)."""
    name = f"{GROUP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    made = []
    for parent, controllers in usable_hierarchies():
        folder = parent / name
        try:
            folder.mkdir()
            _limit(folder, controllers, memory_mb)
        except OSError:
            with contextlib.suppress(OSError):
                folder.rmdir()
            continue
        made.append(folder)
    return tuple(made)


def remove_group(folder: Path) -> None:
    """Kill whatever is left in a kernel's group and remove it."""
    for _ in range(50):
        pids = [int(p) for p in _read(folder / "cgroup.procs").split() if p.isdigit()]
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def cgroup_prefix(groups: Sequence[Path]) -> list[str]:
    """A command prefix that moves itself into every one of ``groups`` before starting the
    rest, so the sandbox and everything it starts count against the kernel's task limit and
    share its CPU weight. It exits with status 125 when a move fails."""
    if not groups:
        return []
    script = ('n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs" || exit 125;'
              ' shift; n=$((n - 1)); done; exec "$@"')
    return ["/bin/sh", "-c", script, "sh", str(len(groups)), *map(str, groups)]
