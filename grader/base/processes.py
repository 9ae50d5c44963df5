"""Processes as trees: the resident memory of a process and its descendants, killing them,
watching them against memory and time limits, a child's thread environment, and the guard
that ends a child whose parent is gone.

A kernel in the sandbox is a tree (bwrap, its PID namespace's init, the kernel, whatever the
kernel started: a double fork re-parents to that init, so it stays in the tree); so is the
scoring child. Limits and clean-up apply to the whole tree.
"""

from __future__ import annotations

import os
import threading
import time


def thread_environment(threads: int) -> dict[str, str]:
    """The variables that cap a process's BLAS/OpenMP and TensorFlow thread pools at
    ``threads`` (TensorFlow's inter-op pool at ``min(threads, 2)``)."""
    return {"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
            "TF_NUM_INTEROP_THREADS": str(min(threads, 2))}


def exit_when_orphaned(parent: int, *, code: int = 0, kill_children: bool = False,
                       interval_s: float = 1.0) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(code)``) once its parent is no
    longer ``parent`` (the parent died and this process was re-parented); with
    ``kill_children`` its descendants are killed first. Returns the started thread."""
    def guard() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                if kill_children:
                    kill_tree(os.getpid(), root=False)
                os._exit(code)

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    return thread


def over_limits(pid: int, *, memory_mb: float, deadline: float) -> tuple[str, float] | None:
    """One look of a watch loop: ``("memory", rss_mb)`` when ``pid``'s tree holds more than
    ``memory_mb``, else ``("time", rss_mb)`` past ``deadline`` (a :func:`time.monotonic`
    value), else None."""
    rss = tree_rss_mb(pid)
    if rss > memory_mb:
        return "memory", rss
    if time.monotonic() > deadline:
        return "time", rss
    return None


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (0 when it is gone).

    A ``pid`` running as a uid other than the grader's (a uid-mode kernel, whose uid is
    leased to it alone) also counts every other process of that uid: a double-forked child
    leaves the tree but not the uid.
    """
    import os

    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        uid = proc.uids().real
    except psutil.Error:
        return 0.0
    if uid != os.geteuid():
        seen = {p.pid for p in procs}
        for other in psutil.process_iter(["uids"]):
            uids = other.info.get("uids")
            if other.pid not in seen and uids is not None and uids.real == uid:
                procs.append(other)
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e6


def kill_tree(pid: int, *, root: bool = True) -> None:
    """SIGKILL ``pid``'s descendants, then ``pid`` unless ``root`` is false (whatever is
    already gone is skipped)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), *([proc] if root else [])]
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            continue


def folder_mb(path, max_entries: int = 20_000) -> float:
    """Bytes of the files below ``path`` in MB, links not followed; ``inf`` past ``max_entries``
    entries (a folder of a million tiny files is as much a problem as one huge file)."""
    import os

    total, seen, stack = 0, 0, [os.fspath(path)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return float("inf")
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total / 1e6
