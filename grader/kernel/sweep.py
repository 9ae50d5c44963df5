"""Bounded removal of files by directory descriptors: never a path, never a followed link.

:func:`sweep` walks a folder without recursion (an explicit stack of open directory
descriptors, each opened with ``O_NOFOLLOW`` relative to its parent and checked to be the
entry just examined) and removes entries with ``unlinkat``/``rmdir`` relative to those
descriptors, so swapping a folder for a symbolic link while it runs redirects nothing. It
stays within the starting file system, examines at most :data:`MAX_ENTRIES` entries and holds
at most :data:`MAX_DEPTH` descriptors; what it cannot remove is counted, never raised.

uid mode runs this file as a script (``python -I -S -c <this file> ARGS``) as the kernel's own
uid, after every process of that uid is dead: it can then remove only what that uid could
(:func:`grader.kernel.uid_lease.remove_uid_files`). The grader's own use (a kernel's scratch
folders, as the grader's user) goes through :func:`sweep` directly. The file imports nothing
from the grader, so it runs as a script on its own.
"""

from __future__ import annotations

import json
import os
import stat
import sys

MAX_ENTRIES = 200_000
"""Entries one sweep examines at most (a kernel may leave a million empty files)."""
MAX_DEPTH = 4_000
"""Folder levels one sweep descends at most (one open descriptor per level)."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _raise_descriptor_limit() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = MAX_DEPTH + 256 if hard == resource.RLIM_INFINITY else min(hard, MAX_DEPTH + 256)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass


class _Sweep:
    """One sweep's state: its stack of open folders (``[fd, names, next index, name in the
    parent, remove everything inside]``) and its report."""

    def __init__(self, uid: int | None, keep: frozenset, max_entries: int) -> None:
        self.uid, self.keep, self.max_entries = uid, keep, max_entries
        self.report = {"removed": 0, "left": 0, "problems": []}
        self.stack: list[list] = []
        self.seen = 0
        self.dev = 0

    def problem(self, text: str) -> None:
        self.report["left"] += 1
        if text not in self.report["problems"] and len(self.report["problems"]) < 5:
            self.report["problems"].append(text)

    def leave(self) -> None:
        """The top folder is done: close it and remove it from its parent when it was its."""
        fd, _names, _index, own_name, clear = self.stack.pop()
        os.close(fd)
        if self.stack and clear and own_name is not None:
            try:
                os.rmdir(own_name, dir_fd=self.stack[-1][0])
                self.report["removed"] += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.problem(f"a folder could not be removed: {exc.strerror}")

    def enter(self, fd: int, name: str, info: os.stat_result, mine: bool) -> None:
        """Open the folder ``name`` (no link followed, the very entry examined) and push it."""
        if (info.st_dev, info.st_ino) in self.keep or info.st_dev != self.dev:
            return
        if len(self.stack) >= MAX_DEPTH:
            if mine:
                self.problem(f"folders nested deeper than {MAX_DEPTH:,} levels were left")
            return
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if mine:
                self.problem(f"a folder could not be opened: {exc.strerror}")
            return
        opened = os.fstat(child)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            os.close(child)  # swapped since it was examined: leave it
            if mine:
                self.problem("a folder changed while it was removed")
            return
        try:
            inside = os.listdir(child)
        except OSError as exc:
            os.close(child)
            if mine:
                self.problem(f"a folder could not be listed: {exc.strerror}")
            return
        self.stack.append([child, inside, 0, name, mine])

    def step(self) -> bool:
        """Examine the next entry; False when the sweep must stop."""
        frame = self.stack[-1]
        fd, names, index, _own_name, clear = frame
        if index >= len(names):
            self.leave()
            return True
        frame[2] += 1
        self.seen += 1
        if self.seen > self.max_entries:
            self.problem(f"more than {self.max_entries:,} entries: the rest was left")
            return False
        name = names[index]
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        except OSError as exc:
            self.problem(f"an entry could not be examined: {exc.strerror}")
            return True
        mine = clear or info.st_uid == self.uid
        if stat.S_ISDIR(info.st_mode):
            self.enter(fd, name, info, mine)
        elif mine:
            try:
                os.unlink(name, dir_fd=fd)
                self.report["removed"] += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.problem(f"a file could not be removed: {exc.strerror}")
        return True


def sweep(top: str, *, uid: int | None = None, keep: frozenset = frozenset(),
          max_entries: int = MAX_ENTRIES) -> dict:
    """Remove what lies below ``top`` (``top`` itself stays).

    Parameters
    ----------
    top : str
        The folder to sweep (opened without following a link).
    uid : int or None
        Remove only entries owned by ``uid`` and everything inside folders it owns; ``None``
        removes everything.
    keep : frozenset of (st_dev, st_ino)
        Folders never entered nor removed.
    max_entries : int
        Entries examined at most; the rest is counted as left.

    Returns
    -------
    dict
        ``removed`` and ``left`` (entries it should have removed and could not) counts, and
        ``problems`` (why entries were left, each reason once).
    """
    _raise_descriptor_limit()
    state = _Sweep(uid, keep, max_entries)
    try:
        top_fd = os.open(top, _DIR_FLAGS)
    except OSError as exc:
        return {"removed": 0, "left": 0, "problems": [f"{top}: {exc.strerror}"]}
    try:
        state.dev = os.fstat(top_fd).st_dev
        state.stack.append([top_fd, os.listdir(top_fd), 0, None, uid is None])
    except OSError as exc:
        os.close(top_fd)
        return {"removed": 0, "left": 0, "problems": [f"{top}: {exc.strerror}"]}
    try:
        while state.stack and state.step():
            pass
    finally:
        for frame in state.stack:
            os.close(frame[0])
    return state.report


def remove_folder(folder) -> str | None:
    """Remove ``folder`` and everything in it (:func:`sweep`, then the folder itself);
    ``None`` when it is gone, else why not. Never raises."""
    if not os.path.lexists(folder):
        return None
    if os.path.islink(folder) or not os.path.isdir(folder):
        try:
            os.unlink(folder)
        except OSError as exc:
            return f"{folder}: {exc.strerror}"
        return None
    found = sweep(os.fspath(folder))
    try:
        os.rmdir(folder)
    except OSError as exc:
        return f"{folder}: {exc.strerror} ({found['left']} entries left: {found['problems']})"
    return None


def main(argv: list[str]) -> None:
    """``ARGS`` = a JSON object: ``tops`` (folders), ``uid``, ``keep`` ([dev, ino] pairs).
    Prints one JSON report summed over the folders."""
    spec = json.loads(argv[0])
    keep = frozenset(tuple(pair) for pair in spec.get("keep", []))
    total = {"removed": 0, "left": 0, "problems": []}
    for top in spec["tops"]:
        if not os.path.isdir(top):
            continue
        found = sweep(top, uid=spec.get("uid"), keep=keep)
        total["removed"] += found["removed"]
        total["left"] += found["left"]
        total["problems"] += [f"{top}: {p}" for p in found["problems"]]
    print(json.dumps(total))


if __name__ == "__main__":
    main(sys.argv[1:])
