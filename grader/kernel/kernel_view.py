"""The course code a grading kernel sees: ``helpers`` and the self-check, nothing else.

A lesson imports ``helpers`` and ``from grader import check``. Each grader process copies
exactly those files (:func:`grader.authoring.closure.selfcheck_files`, derived from the
self-check's imports, and the ``helpers`` package) into a folder of its own,
:func:`kernel_view`. The kernels import the course code from that copy:

* bubblewrap mounts the copy's ``grader`` and ``helpers`` over the real packages' folders
  (and over any other copy of the grader package found in the Python folders it mounts),
  so the scoring code, rubrics and references are not in the kernel's file system at all;
* uid mode puts the copy first on the kernel's ``PYTHONPATH``, and the real ``grader``
  package and the solutions folder are closed to other users
  (:func:`close_to_kernels`: ``chmod o-rwx``), so the kernel's uid cannot read them.

Only the grader's user writes the copy (a fresh ``mkdtemp`` folder, made read-only).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

from grader.authoring.closure import selfcheck_files
from grader.base.paths import PACKAGE_DIR, SOLUTIONS_DIR


def helpers_dir() -> Path:
    """The ``helpers`` package the grader itself imports."""
    import helpers

    return Path(helpers.__file__).resolve().parent


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    shutil.copyfile(source, target, follow_symlinks=True)
    os.chmod(target, 0o444)


@cache
def kernel_view() -> Path:
    """A folder holding ``grader`` (the self-check's files only) and ``helpers`` for kernels."""
    root = Path(tempfile.mkdtemp(prefix="dlcourse-view-"))
    atexit.register(shutil.rmtree, root, True)
    for rel in selfcheck_files():
        _copy(PACKAGE_DIR.parent / rel, root / rel)
    for path in sorted(helpers_dir().glob("*.py")):
        _copy(path, root / "helpers" / path.name)
    for folder in (root, *[p for p in root.rglob("*") if p.is_dir()]):
        os.chmod(folder, 0o555)
    os.chmod(root, 0o755)  # the grader removes it at exit
    return root


def grader_copies(folders: list[Path]) -> list[Path]:
    """Copies of the ``grader`` package (with its scoring code) inside ``folders``, which a
    kernel's Python folders may hold besides :data:`PACKAGE_DIR` (an installed copy)."""
    found = [PACKAGE_DIR]
    for folder in folders:
        candidate = Path(folder) / "grader"
        if (candidate / "checks").is_dir() and candidate not in found:
            found.append(candidate)
    return found


def view_binds(python_folders: list[Path]) -> list[tuple[Path, Path]]:
    """``(source, target)`` read-only mounts putting the view over every grader package and
    over ``helpers`` (bubblewrap), to be mounted after the Python folders."""
    view = kernel_view()
    binds = [(view / "grader", copy) for copy in grader_copies(python_folders)]
    return [*binds, (view / "helpers", helpers_dir())]


def hidden_folders(python_folders: list[Path]) -> list[Path]:
    """Folders a mounted Python folder would show but a kernel must not see (the solutions,
    when the repository itself is on the grader's path): hidden under an empty file system."""
    return [SOLUTIONS_DIR for folder in python_folders
            if SOLUTIONS_DIR.is_dir() and Path(folder) in SOLUTIONS_DIR.parents]


def close_to_kernels() -> list[Path]:
    """uid mode: make the grader package and the solutions unreadable by other users (their
    owner and group keep their access); returns the folders changed."""
    changed = []
    for folder in (PACKAGE_DIR, SOLUTIONS_DIR):
        try:
            info = folder.stat()
        except OSError:
            continue
        if info.st_mode & 0o007:
            os.chmod(folder, info.st_mode & 0o7770)
            changed.append(folder)
    return changed
