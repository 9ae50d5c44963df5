"""Stratified sampling that draws exactly what scikit-learn's ``train_test_split`` draws.

``train_test_split(np.arange(n), train_size=size, stratify=labels, random_state=seed)``
chooses the fast subsets every student loads and the grader's private hold-out. Importing
scikit-learn costs about a second, which a grading run paid on every machine's first batch
(``bench/results/data_copy.md``) and a student pays on every fast load. This module makes
the same draws with NumPy alone: the same ``RandomState`` calls in the same order as
``StratifiedShuffleSplit`` (as read in scikit-learn 1.9), so the same rows come out and
every calibrated fast-mode threshold still holds. ``tests/test_sampling.py`` compares the
two, with whichever scikit-learn is installed, on the real labels and on awkward ones.
"""

from __future__ import annotations

import numpy as np


def stratified_train_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Positions of the ``size`` rows a stratified split with ``seed`` keeps for training.

    Parameters
    ----------
    labels : ndarray of shape (n,)
        One class label per row.
    size : int
        Rows to keep, ``0 < size < n``; every class keeps its share (ties between classes
        broken at random, as scikit-learn does).
    seed : int
        The ``random_state``.

    Returns
    -------
    ndarray of int
        Sorted positions into ``labels``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"expected one label per row (a 1-D array), got shape {labels.shape}")
    if not 0 < size < len(labels):
        raise ValueError(f"expected 0 < size < {len(labels)}, got {size}")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    rest = len(labels) - size
    if counts.min() < 2:
        raise ValueError(f"expected at least 2 rows of every class, got 1 of class(es)"
                         f" {classes[counts < 2].tolist()}; drop them or sample without"
                         f" stratifying")
    if min(size, rest) < len(classes):
        raise ValueError(f"expected room for every one of the {len(classes)} classes on both"
                         f" sides, got {size} rows kept and {rest} left; keep more or fewer")
    by_class = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    kept = _approximate_mode(counts, size, rng)
    _approximate_mode(counts - kept, rest, rng)  # scikit-learn draws the test shares next
    chosen = [rows.take(rng.permutation(count), mode="clip")[:n]
              for rows, count, n in zip(by_class, counts, kept, strict=True)]
    return np.sort(np.concatenate(chosen))


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows per class for ``draws`` rows: each class's share rounded down, the rows left over
    going to the largest remainders (ties drawn with ``rng``), as ``_approximate_mode`` in
    ``sklearn.utils.extmath``."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    missing = int(draws - floored.sum())
    if missing > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            now = min(len(tied), missing)
            floored[rng.choice(tied, size=now, replace=False)] += 1
            missing -= now
            if missing == 0:
                break
    return floored.astype(int)
