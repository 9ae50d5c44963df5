"""Where a run's datasets come from: the instructor's folder, or the grader's own download.

The grader, not the kernel, provides the data: a sandboxed kernel has no network, and the
hold-out (:mod:`grader.data.holdout`) is carved from what the grader provides. Fast mode's
shared kernel copy is started early by :func:`start_fast_copy`
(:mod:`grader.data.kernel_cache`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from grader.base.errors import GraderError


def provide_datasets(data_dir: str | None, *, for_sandbox: bool = True) -> str:
    """The data folder a run's kernels read (read-only; sandboxed kernels have no network) and
    scoring reads too.

    ``data_dir`` (``DLCOURSE_DATA_DIR``) when set. Otherwise the grader, which may download,
    writes the course datasets as ``.npz`` files once into
    ``$XDG_CACHE_HOME/dlcourse/data`` (default ``~/.cache/dlcourse/data``) through
    ``keras.datasets`` and uses that folder for the kernels and for scoring.

    Raises
    ------
    GraderError
        A dataset can be neither found nor downloaded (``for_sandbox``: the message says the
        sandboxed kernels have no network; else that the grader provides every kernel's data).
    """
    if data_dir:
        return os.fspath(data_dir)
    import numpy as np

    from helpers.data import DATASETS, DatasetUnavailableError, load_dataset

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(cache) / "dlcourse" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        target = folder / f"{name}.npz"
        if target.is_file():
            continue
        try:
            (x_train, y_train), (x_test, y_test) = load_dataset(name, fast=False, data_dir=None)
        except DatasetUnavailableError as exc:
            why = ("the sandboxed kernels have no network, so the grader provides the datasets"
                   if for_sandbox else "the grader provides the datasets to every kernel and"
                   " scores on them")
            raise GraderError(f"{why}, and it could not get {name!r}: {exc}") from exc
        tmp = folder / f".{name}.{os.getpid()}.npz"
        np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        os.replace(tmp, target)
    return str(folder)


def start_fast_copy(data_dir: str | None, *, fast: bool, local: bool) -> threading.Thread | None:
    """In fast mode on this machine, start writing the shared kernel copy now (a machine's
    first batch; later ones find it): :func:`grader.data.kernel_cache.prepare_fast_copy`."""
    if not (fast and local):
        return None
    from grader.data.kernel_cache import prepare_fast_copy

    return prepare_fast_copy(data_dir or os.environ.get("DLCOURSE_DATA_DIR"))
