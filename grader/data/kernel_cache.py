"""Which kernel copy a run uses; fast mode's is written once per machine and verified at every use.

In fast mode the kernel copy (:class:`grader.data.holdout.KernelData`) holds exactly the
fast subsets :func:`helpers.data.load_dataset` returns with ``fast=True``: the images every
student's own fast run uses, chosen with a public seed. Nothing in it depends on the
grader's secret (the private hold-out is drawn from the rows outside it), so every fast
batch can share one copy instead of writing its own, which cost each batch about 2 s
(decompressing the instructor's files, importing scikit-learn for the stratified subsets).
Full mode's copy depends on the secret hold-out and is still written per run. A machine's
first fast batch writes the shared copy in under 1 s (0.76 s alone here; the draws need
no scikit-learn now, :mod:`helpers.sampling`; two dataset splits are decompressed at once)
and starts it before anything else (:func:`prepare_fast_copy`: the CLI, before its slower imports; a batch
called from Python, with its first step).

Where it lives, and who could have written it:

* ``<tempdir>/dlcourse-kcache-<uid>/``, made by the grader's user with mode 0700 (uid mode
  adds ``o+x`` so a kernel's uid can pass through, never list it). It is used only while it
  is a real folder owned by this user that no one else can write; anything else (a link, a
  folder someone else made first) and the batch writes its own copy, as in full mode.
* One entry per set of dataset files, ``dlcourse-fast-<digest>/``: ``data/<name>.npz``
  (0444, in a 0755 folder) and ``manifest.json`` (the SHA-256 of every file). The digest
  covers each dataset file's resolved path, size, modification time and inode, the fast
  sizes and seed, and :data:`~grader.data.holdout.HOLDOUT_VERSION`: a changed dataset file
  gets a new entry.
* An entry is written in a temporary folder and renamed into place complete; when two
  batches write the same entry at once, the first rename wins and the other is dropped.
* Every use checks owners and modes and hashes the files against the manifest (37 MB for
  the three datasets; a batch's whole data copy step then takes about 0.05 s): an entry
  that fails is removed and written again. An entry unused for a week whose dataset files
  changed or are gone is removed.

A container image (the Gradescope autograder's) sets :data:`CACHE_DIR_ENV` to a folder of its
own: ``setup.sh`` writes the copy there once while the image is built and every submission's
container uses it. A container started from the image keeps the dataset files' paths, sizes
and modification times to the second, not their inodes (nor the nanoseconds, which image
layers drop), so entries in that folder are keyed by those alone; the files there are the
image's own and are not replaced in place.

A kernel only ever reads the entry: bubblewrap mounts it read-only and a uid-mode kernel's
uid owns nothing in it. Without a sandbox the kernel runs as the grader's user and could
change it, as it could change everything else that user owns (``--sandbox none`` warns).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from grader.data.holdout import (
    HOLDOUT_VERSION,
    HoldoutPlan,
    KernelData,
    dataset_files,
    write_kernel_files,
)

CACHE_PREFIX = "dlcourse-kcache-"
ENTRY_PREFIX = "dlcourse-fast-"
MANIFEST = "manifest.json"
WRITING_PREFIX = ".writing-"
CACHE_DIR_ENV = "DLCOURSE_KCACHE_DIR"
"""Environment variable naming the cache's parent folder in a container image (see above)."""
ABANDONED_S = 3600.0
"""A temporary folder older than this was left by a killed batch and is removed."""
UNUSED_S = 7 * 86400.0
"""An entry unused this long whose dataset files changed or are gone is removed."""


_STARTED: dict[tuple[str, str | None], threading.Thread] = {}
"""The copy threads :func:`prepare_fast_copy` started in this process, by folder."""
_STARTED_LOCK = threading.Lock()


def kernel_copy(plan: HoldoutPlan) -> KernelData:
    """The kernel copy for ``plan``: in fast mode the shared, verified copy when it can be
    used (:func:`shared_fast_copy`), else one written for this run."""
    shared = shared_fast_copy(plan) if plan.mode == "fast" else None
    return shared if shared is not None else KernelData.create(plan)


def with_kernel_data(plan: HoldoutPlan) -> tuple[HoldoutPlan, KernelData | None]:
    """``plan`` with a kernel copy that exists here: reused when ``plan.kernel_dir`` is a
    folder on this machine, else :func:`kernel_copy` now (returned, for the caller to
    remove: a shared copy's removal keeps it)."""
    if plan.kernel_dir is not None and Path(plan.kernel_dir).is_dir():
        return plan, None
    made = kernel_copy(plan)
    return replace(plan, kernel_dir=str(made.path)), made


def prepare_fast_copy(source_dir: str | None,
                      parent: str | None = None) -> threading.Thread | None:
    """Start writing the shared fast copy of ``source_dir`` in a background thread (None
    when there is no folder to copy), so that a machine's first batch writes it while it
    still finds and reads the submissions (a thread still running for the same folder is
    returned instead of a second one). Join the thread before :func:`kernel_copy`: that
    call then finds the copy ready, or (the thread failed: a missing or broken dataset file)
    writes it itself and raises the error where the batch reports it. The copy does not
    depend on the grader's secret (the seed only moves the hold-out), so no key is needed.
    """
    if not source_dir or not Path(source_dir).is_dir():
        return None
    key = (os.path.realpath(source_dir), parent)
    with _STARTED_LOCK:  # one thread per folder at a time: the CLI starts it before its imports
        running = _STARTED.get(key)
        if running is not None and running.is_alive():
            return running
        _STARTED[key] = thread = _start_copy(source_dir, parent)
    return thread


def _start_copy(source_dir: str, parent: str | None) -> threading.Thread:
    plan = HoldoutPlan(mode="fast", seed=0, source_dir=os.fspath(source_dir))

    def write() -> None:
        try:
            shared_fast_copy(plan, parent)
        except Exception:  # noqa: BLE001 - kernel_copy meets the same error and reports it
            pass

    thread = threading.Thread(target=write, name="fast-copy", daemon=True)
    thread.start()
    return thread


def cache_root(parent: str | None = None) -> Path:
    """The cache folder of this user (``<parent>/dlcourse-kcache-<uid>``; ``parent`` defaults
    to ``$DLCOURSE_KCACHE_DIR``, else the temporary folder)."""
    parent = parent or os.environ.get(CACHE_DIR_ENV) or tempfile.gettempdir()
    return Path(parent) / f"{CACHE_PREFIX}{os.geteuid()}"


def _stamp(info: os.stat_result) -> tuple[str, str, str]:
    """What identifies a dataset file's version: size, modification time and inode; in an
    image's cache (:data:`CACHE_DIR_ENV`) size and modification time to the second."""
    if os.environ.get(CACHE_DIR_ENV):
        return str(info.st_size), str(int(info.st_mtime)), "image"
    return str(info.st_size), str(info.st_mtime_ns), str(info.st_ino)


def shared_fast_copy(plan: HoldoutPlan, parent: str | None = None) -> KernelData | None:
    """The verified shared copy for a fast ``plan`` (written now when missing or damaged), or
    None when no shared copy can be used (full mode, no datasets, an unsafe cache folder):
    the caller then writes a copy of its own."""
    if plan.mode != "fast" or plan.source_dir is None:
        return None
    names = dataset_files(plan.source_dir)
    root = cache_root(parent)
    if not names or not _own_folder(root, create=True):
        return None
    sources = _source_lines(plan.source_dir, names)
    entry = root / (ENTRY_PREFIX + hashlib.sha256("\n".join(sources).encode()).hexdigest()[:32])
    _remove_unused(root, keep=entry)
    if os.path.lexists(entry):
        if _verified(entry, names):
            os.utime(entry / MANIFEST)  # last used now (see _remove_unused)
            return KernelData(entry, entry / "data", owned=False)
        _remove(entry)
    staging = Path(tempfile.mkdtemp(prefix=WRITING_PREFIX, dir=root))  # mode 0700
    try:
        write_kernel_files(plan, names, staging / "data")
        digests = {f.name: _sha256(f) for f in sorted((staging / "data").iterdir())}
        (staging / MANIFEST).write_text(json.dumps({"files": digests, "sources": sources},
                                                   indent=1) + "\n")
        try:
            os.rename(staging, entry)
        except OSError:  # another batch renamed the same entry first: use that one
            _remove(staging)
    except BaseException:
        _remove(staging)
        raise
    return KernelData(entry, entry / "data", owned=False) if _verified(entry, names) else None


def _source_lines(source_dir: str, names: list[str]) -> list[str]:
    """What an entry is a copy of: the version and fast sizes, then one line per dataset file
    (``name|path|`` and :func:`_stamp`); its digest names the entry."""
    from helpers.data import FAST_SUBSET_SEED, FAST_TEST_SIZE, FAST_TRAIN_SIZE

    lines = [f"holdout v{HOLDOUT_VERSION}", f"fast {FAST_TRAIN_SIZE} {FAST_TEST_SIZE}"
             f" {FAST_SUBSET_SEED}"]
    for name in names:
        path = (Path(source_dir) / f"{name}.npz").resolve()
        lines.append("|".join((name, str(path), *_stamp(path.stat()))))
    return lines


def _still_current(lines: list[str]) -> bool:
    """Whether every dataset file an entry was copied from is still the same file."""
    for line in lines[2:]:
        name, path, size, mtime, inode = line.split("|")
        try:
            info = os.stat(path)
        except OSError:
            return False
        if _stamp(info) != (size, mtime, inode):
            return False
    return True


def _remove_unused(root: Path, keep: Path) -> None:
    """Remove what no batch will use again: entries unused for :data:`UNUSED_S` whose dataset
    files changed or are gone (a batch running on an older entry is never older than that),
    and temporary folders of killed batches."""
    now = time.time()
    for folder in root.iterdir():
        try:
            if folder.name.startswith(WRITING_PREFIX):
                if now - os.lstat(folder).st_mtime > ABANDONED_S:
                    _remove(folder)
            elif folder.name.startswith(ENTRY_PREFIX) and folder != keep:
                manifest = folder / MANIFEST
                if now - os.lstat(manifest).st_mtime > UNUSED_S and not _still_current(
                        json.loads(manifest.read_text(encoding="utf-8"))["sources"]):
                    _remove(folder)
        except (OSError, ValueError, KeyError, TypeError):
            continue


def _own_folder(path: Path, *, create: bool = False) -> bool:
    """True when ``path`` is a real folder of this user that no one else can write."""
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & 0o022)


def _verified(entry: Path, names: list[str]) -> bool:
    """Owners, modes and every file's SHA-256 as the manifest says; exactly ``names``."""
    data = entry / "data"
    if not (_own_folder(entry) and _own_folder(data)):
        return False
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        expected = manifest["files"]
        files = sorted(os.listdir(data))
        if files != sorted(f"{n}.npz" for n in names) or sorted(expected) != files:
            return False
        for name in files:
            info = os.lstat(data / name)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                    or info.st_mode & 0o222 or _sha256(data / name) != expected[name]):
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(folder: Path) -> None:
    """Remove a folder of the cache (its read-only parts made writable first)."""
    if os.path.islink(folder):
        os.unlink(folder)
        return
    for inner in (folder, folder / "data"):
        if inner.is_dir() and not inner.is_symlink():
            os.chmod(inner, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


