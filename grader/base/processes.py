"""Processes as trees: the resident memory of a process and its descendants, and killing them.

A kernel in the sandbox is a tree (bwrap, its PID namespace's init, the kernel, whatever the
kernel started: a double fork re-parents to that init, so it stays in the tree); so is the
scoring child. Limits and clean-up apply to the whole tree.
"""

from __future__ import annotations


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MB (0 when it is gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 1e6


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s descendants, then ``pid`` (whatever is already gone is skipped)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), proc]
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
