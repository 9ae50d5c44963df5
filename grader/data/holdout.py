"""Private scoring data: the kernels get a copy of the datasets without a hidden hold-out.

During grading, a student's kernel never sees the instructor's data folder. Once per grading
run the grader writes a *kernel copy* of every dataset file found there
(:class:`KernelData`):

* full mode: the training split minus a private, stratified hold-out of
  :data:`HOLDOUT_SIZE` ``["full"]`` images, plus the whole public test split;
* fast mode: exactly the fast subsets ``helpers.data.load_dataset(fast=True)`` returns
  (:data:`helpers.data.FAST_TRAIN_SIZE` training and :data:`helpers.data.FAST_TEST_SIZE`
  test images); the hold-out (:data:`HOLDOUT_SIZE` ``["fast"]`` images) is drawn from the
  training images outside the fast subset.

Rows keep their original order minus the removed ones. The hold-out's choice comes from a
seed derived from the instructor's private results key (:func:`grader.base.keys.load_result_key`)
with HMAC-SHA256, so it cannot be reproduced from the public code, and the same key always
picks the same images (a resumed batch scores the same).

``accuracy`` checks then score on the hold-out (pass/fail) and on the public test split; a
model whose public accuracy exceeds its private accuracy by more than :data:`FLAG_MARGIN`
has most likely been trained on the test split and is flagged (:mod:`grader.checks.kinds`).

Without the sandbox (``--sandbox none``) the kernel runs as the grader's user and can read
the instructor's data folder itself: the hold-out is then not hidden.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.base.errors import GraderError

HOLDOUT_SIZE = {"full": 5000, "fast": 2000}
"""Hold-out images per dataset. Full: 5,000 (500 per class) keeps the standard error of an
accuracy near 0.5 at 0.007 and leaves 55,000 (MNIST, Fashion-MNIST) or 45,000 (CIFAR-10)
training images, the split Keras's own examples use for CIFAR-10. Fast: 2,000, the size of
the fast test subset, so private and public accuracy are equally noisy."""

FLAG_MARGIN = {"full": 0.06, "fast": 0.06}
"""Largest public - private accuracy gap an honest model is allowed; above it the accuracy
check is flagged and scores 0. Fast: calibrated by ``bench/calibrate_holdout.py``
(``bench/results/holdout_calibration.md``): the largest honest gap over the 9 accuracy
checks of the four solutions and seeds 0, 1, 42 was +0.021, plus a margin of 0.03, rounded
up; models trained only on the fast test split showed gaps of 0.128 (Fashion-MNIST) and
0.190 (CIFAR-10). Full: not measured (full runs are too long here); its larger samples
(5,000 and 10,000 images against 2,000 and 2,000) make honest gaps smaller than in fast
mode, so the fast margin is kept."""

HOLDOUT_VERSION = 1
"""Changes whenever the way hold-outs are chosen changes (part of the resume fingerprint)."""

KERNEL_DATA_PREFIX = "dlcourse-kdata-"
OWNER_FILE = "owner.pid"


@dataclass(frozen=True)
class HoldoutPlan:
    """Everything needed to rebuild the hold-out and to find the kernel copy.

    Picklable: it travels to worker processes, Dask workers and the scoring child.

    Attributes
    ----------
    mode : {"full", "fast"}
    seed : int
        Secret seed derived from the instructor's key (:func:`holdout_seed`).
    source_dir : str or None
        The instructor's data folder (never mounted into a kernel); ``None`` means "resolve
        it where grading runs" (a Dask worker's own cache).
    kernel_dir : str or None
        The per-run kernel copy, once written.
    """

    mode: str
    seed: int
    source_dir: str | None = None
    kernel_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in HOLDOUT_SIZE:
            raise ValueError(f"expected mode 'full' or 'fast', got {self.mode!r}")


def holdout_seed(key: bytes) -> int:
    """A 63-bit seed from the instructor's private key (HMAC-SHA256, fixed label)."""
    digest = hmac.new(key, b"dlcourse holdout seed v1", hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def plan_holdout(source_dir: str | None, *, fast: bool, key: bytes | None = None) -> HoldoutPlan:
    """The hold-out plan of a grading run; ``key`` defaults to the results key."""
    if key is None:
        from grader.base.keys import load_result_key

        key = load_result_key()
    return HoldoutPlan(mode="fast" if fast else "full", seed=holdout_seed(key),
                       source_dir=os.fspath(source_dir) if source_dir else None)


def _dataset_seed(seed: int, name: str, mode: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}:{mode}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _stratified_pick(labels: np.ndarray, candidates: np.ndarray, size: int, seed: int,
                     name: str) -> np.ndarray:
    from helpers.sampling import stratified_train_rows

    if len(candidates) < 2 * size:
        raise GraderError(
            f"the {name} training split is too small for a private hold-out: expected at"
            f" least {2 * size:,} images to draw {size:,} from, found {len(candidates):,}."
            f" Fix: use the full {name} dataset (keras.datasets layout) in the data folder")
    # the rows scikit-learn's train_test_split(candidates, train_size=size,
    # stratify=labels[candidates], random_state=seed) picks: the hold-out is unchanged
    return np.sort(candidates[stratified_train_rows(labels[candidates], size, seed)])


def split_indices(y_train: np.ndarray, *, name: str, mode: str,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the original training split: ``(kernel_rows, holdout_rows)``, sorted.

    Full mode: the kernel gets every training row outside the hold-out; the first row is
    never held out (the lessons show and discuss the first training image and its label, in
    full mode as in the seeds). Fast mode: the kernel gets the fast training subset, the hold-out comes
    from the rows outside it. The two never overlap.
    """
    from helpers.data import FAST_SUBSET_SEED, FAST_TRAIN_SIZE, stratified_indices

    labels = np.asarray(y_train).reshape(len(y_train), -1)[:, 0]
    every = np.arange(len(labels))
    size = HOLDOUT_SIZE[mode]
    dseed = _dataset_seed(seed, name, mode)
    if mode == "fast":
        kernel = stratified_indices(labels, min(FAST_TRAIN_SIZE, len(labels)),
                                    seed=FAST_SUBSET_SEED)
        rest = np.setdiff1d(every, kernel, assume_unique=True)
        return kernel, _stratified_pick(labels, rest, size, dseed, name)
    held = _stratified_pick(labels, every[1:], size, dseed, name)  # the first row stays
    return np.setdiff1d(every, held, assume_unique=True), held


def _source_arrays(source_dir: str, name: str) -> dict[str, np.ndarray]:
    from helpers.data import load_dataset

    (x_train, y_train), (x_test, y_test) = load_dataset(name, fast=False, data_dir=source_dir)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_holdout(plan: HoldoutPlan, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The private hold-out of dataset ``name``: uint8 images and 1-D integer labels.

    Read from the instructor's folder (``plan.source_dir``) and rebuilt from the seed; only
    the grader calls this.
    """
    if plan.source_dir is None:
        raise ValueError("expected a hold-out plan with its source folder resolved")
    arrays = _source_arrays(plan.source_dir, name)
    _, held = split_indices(arrays["y_train"], name=name, mode=plan.mode, seed=plan.seed)
    y = np.asarray(arrays["y_train"][held]).reshape(len(held), -1)[:, 0].astype(np.int64)
    return arrays["x_train"][held], y


def dataset_files(source_dir: str) -> list[str]:
    """Names of the course datasets present in ``source_dir`` (``<name>.npz``)."""
    from helpers.data import DATASETS

    return [n for n in DATASETS if (Path(source_dir) / f"{n}.npz").is_file()]


def require_datasets(source_dir: str, needed: dict[str, set[str]]) -> None:
    """Stop with a clear error when ``source_dir`` lacks a dataset a module needs.

    ``needed`` maps dataset name -> the modules that score on it.

    Raises
    ------
    GraderError
        Naming the missing files, the modules that need them and the fix.
    """
    present = set(dataset_files(source_dir))
    missing = {name: mods for name, mods in sorted(needed.items()) if name not in present}
    if missing:
        what = "; ".join(f"{name}.npz (module {', '.join(sorted(mods))})"
                         for name, mods in missing.items())
        raise GraderError(
            f"the data folder {source_dir!r} lacks {what}: the grader carves its private"
            " hold-out from each dataset it scores on. Expected the whole dataset as"
            " <name>.npz with keys x_train, y_train, x_test, y_test (the keras.datasets"
            " layout). Fix: copy the file(s) into that folder or point DLCOURSE_DATA_DIR at"
            " a folder holding mnist.npz, fashion_mnist.npz and cifar10.npz")


def _kernel_arrays(source_dir: str, name: str, mode: str, seed: int,
                   split: str) -> dict[str, np.ndarray]:
    """The kernel's rows of one split (``"train"`` or ``"test"``) of dataset ``name``."""
    from helpers.data import FAST_SUBSET_SEED, FAST_TEST_SIZE, read_npz, stratified_indices

    # not cached: read, cut, drop
    arrays = read_npz(name, Path(source_dir) / f"{name}.npz", splits=(split,))
    if split == "train":
        kernel, _ = split_indices(arrays["y_train"], name=name, mode=mode, seed=seed)
        return {"x_train": arrays["x_train"][kernel], "y_train": arrays["y_train"][kernel]}
    if mode == "fast":
        test = stratified_indices(arrays["y_test"], min(FAST_TEST_SIZE, len(arrays["y_test"])),
                                  seed=FAST_SUBSET_SEED)
        return {"x_test": arrays["x_test"][test], "y_test": arrays["y_test"][test]}
    return arrays


def _compressed_size(path: Path, member: str) -> int:
    """Bytes of ``member`` in the zip archive ``path`` (0 when it cannot be told: reading
    it then reports the problem)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.getinfo(member).compress_size
    except (OSError, KeyError, zipfile.BadZipFile):
        return 0


@dataclass(frozen=True)
class KernelData:
    """A per-run kernel copy of the datasets: ``root`` (0700, the grader's) holds ``data/``
    and ``owner.pid`` (the process that wrote it: a copy whose owner was killed is removed
    by the next run, :func:`remove_stale`).

    ``data/`` (0755, mounted read-only at ``/data`` in the sandbox) holds one read-only
    ``<name>.npz`` per dataset of the source folder, written into a temporary folder first
    and renamed into place when complete.
    """

    root: Path
    path: Path
    owned: bool = True
    """False for the shared fast-mode copy of :mod:`grader.data.kernel_cache`."""

    @classmethod
    def create(cls, plan: HoldoutPlan, parent: str | None = None) -> KernelData:
        """Write the kernel copy for ``plan`` (one dataset in memory at a time).

        Raises
        ------
        GraderError
            The source folder holds none of the course datasets.
        """
        from helpers.data import DATASETS

        if plan.source_dir is None:
            raise ValueError("expected a hold-out plan with its source folder resolved")
        names = dataset_files(plan.source_dir)
        if not names:
            raise GraderError(
                f"the data folder {plan.source_dir!r} holds none of the course datasets:"
                f" expected {', '.join(n + '.npz' for n in DATASETS)} (keys x_train, y_train,"
                " x_test, y_test, as keras.datasets returns them). Fix: point"
                " DLCOURSE_DATA_DIR (or --data-dir) at a folder holding them")
        remove_stale(parent)
        root = Path(tempfile.mkdtemp(prefix=KERNEL_DATA_PREFIX, dir=parent))  # mode 0700
        try:
            (root / OWNER_FILE).write_text(f"{os.getpid()}\n")
            staging = root / "staging"
            write_kernel_files(plan, names, staging)
            final = root / "data"
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, final)

    def remove(self) -> None:
        """Delete the copy (files are read-only; their folders are the grader's); a shared
        copy (:mod:`grader.data.kernel_cache`) is kept."""
        if not self.owned:
            return
        for folder in (self.path, self.root / "staging"):
            if folder.is_dir():
                os.chmod(folder, 0o700)
        shutil.rmtree(self.root, ignore_errors=True)


def write_kernel_files(plan: HoldoutPlan, names: list[str], folder: Path) -> None:
    """Write the kernel copy of datasets ``names`` into the new ``folder`` (0755), one
    read-only ``<name>.npz`` each.

    Two splits are read at once, the largest first (decompressing the instructor's files
    releases the GIL, so a first batch waits about as long as CIFAR-10's training images
    take, while the other thread reads everything else: ``bench/results/data_copy.md``);
    each is cut to the kernel's rows by the thread that read it, and a dataset is written
    when both its splits are cut, so at most two full splits are in memory at a time.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    folder.mkdir(mode=0o755)
    cut: dict[str, dict[str, np.ndarray]] = {}
    lock = threading.Lock()

    def write(name: str, split: str) -> None:
        arrays = _kernel_arrays(plan.source_dir, name, plan.mode, plan.seed, split)
        with lock:
            both = cut.setdefault(name, {})
            both.update(arrays)
            if len(both) < 4:  # the other split is still being read
                return
            del cut[name]
        target = folder / f"{name}.npz"
        with open(target, "xb") as handle:
            np.savez(handle, **both)
        os.chmod(target, 0o444)

    source = Path(plan.source_dir)
    parts = sorted(((n, s) for n in names for s in ("train", "test")),
                   key=lambda p: -_compressed_size(source / f"{p[0]}.npz", f"x_{p[1]}.npy"))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="kernel-copy") as pool:
        for done in [pool.submit(write, name, split) for name, split in parts]:
            done.result()  # the first error, as when written one after another
    os.chmod(folder, 0o755)


def remove_stale(parent: str | None = None) -> list[Path]:
    """Remove kernel copies left by grading runs that were killed (their owner is gone).

    Only folders named ``dlcourse-kdata-*`` that this user owns and whose ``owner.pid``
    names a process that no longer runs are removed; returns them.
    """
    folder = Path(parent or tempfile.gettempdir())
    removed = []
    for root in folder.glob(KERNEL_DATA_PREFIX + "*"):
        try:
            if root.is_symlink() or not root.is_dir() or root.stat().st_uid != os.geteuid():
                continue
            pid = int((root / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if _alive(pid):
            continue
        KernelData(root, root / "data").remove()
        removed.append(root)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
