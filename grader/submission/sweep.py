"""Bounded removal of files by directory descriptors: never a path, never a followed link.

:func:`sweep` walks a folder without recursion (an explicit stack of open directory
descriptors, each opened with ``O_NOFOLLOW`` relative to its parent and checked to be the
entry just examined) and removes entries with ``unlinkat``/``rmdir`` relative to those
descriptors, so swapping a folder for a symbolic link while it runs redirects nothing. It
stays within the starting file system, examines at most :data:`MAX_ENTRIES` entries and holds
at most :data:`MAX_DEPTH` descriptors; what it cannot remove is counted, never raised.

uid mode runs this file as a script (``python -I -S -c <this file> ARGS``) as the kernel's own
uid, after every process of that uid is dead: it can then remove only what that uid could
(:func:`grader.submission.sandbox.remove_uid_files`). The grader's own use (a kernel's scratch
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
    report = {"removed": 0, "left": 0, "problems": []}

    def problem(text: str) -> None:
        report["left"] += 1
        if text not in report["problems"] and len(report["problems"]) < 5:
            report["problems"].append(text)

    try:
        top_fd = os.open(top, _DIR_FLAGS)
        top_dev = os.fstat(top_fd).st_dev
        stack = [[top_fd, os.listdir(top_fd), 0, None, uid is None]]
    except OSError as exc:
        return {"removed": 0, "left": 0, "problems": [f"{top}: {exc.strerror}"]}
    seen = 0
    try:
        while stack:
            frame = stack[-1]
            fd, names, index, own_name, clear = frame
            if index >= len(names):
                stack.pop()
                os.close(fd)
                if stack and clear and own_name is not None:
                    try:
                        os.rmdir(own_name, dir_fd=stack[-1][0])
                        report["removed"] += 1
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        problem(f"a folder could not be removed: {exc.strerror}")
                continue
            frame[2] += 1
            name = names[index]
            seen += 1
            if seen > max_entries:
                problem(f"more than {max_entries:,} entries: the rest was left")
                break
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as exc:
                problem(f"an entry could not be examined: {exc.strerror}")
                continue
            mine = clear or info.st_uid == uid
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in keep or info.st_dev != top_dev:
                    continue
                if len(stack) >= MAX_DEPTH:
                    if mine:
                        problem(f"folders nested deeper than {MAX_DEPTH:,} levels were left")
                    continue
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if mine:
                        problem(f"a folder could not be opened: {exc.strerror}")
                    continue
                opened = os.fstat(child)
                if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                    os.close(child)  # swapped since it was examined: leave it
                    if mine:
                        problem("a folder changed while it was removed")
                    continue
                try:
                    inside = os.listdir(child)
                except OSError as exc:
                    os.close(child)
                    if mine:
                        problem(f"a folder could not be listed: {exc.strerror}")
                    continue
                stack.append([child, inside, 0, name, mine])
            elif mine:
                try:
                    os.unlink(name, dir_fd=fd)
                    report["removed"] += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    problem(f"a file could not be removed: {exc.strerror}")
    finally:
        for frame in stack:
            os.close(frame[0])
    return report


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
