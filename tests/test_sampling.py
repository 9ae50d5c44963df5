"""helpers.sampling draws exactly the rows scikit-learn's stratified train_test_split draws.

The fast subsets every student loads and the grader's private hold-out were chosen with
scikit-learn; the thresholds were calibrated on those rows. These tests compare the NumPy
sampler with the installed scikit-learn on the real labels at the sizes the course uses and
on awkward labels (imbalanced classes, ties in the shares, strings), and check that writing
fast mode's kernel copy no longer imports scikit-learn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from helpers.data import DATASETS, FAST_SUBSET_SEED, FAST_TEST_SIZE, FAST_TRAIN_SIZE, read_npz
from helpers.sampling import stratified_train_rows

ROOT = Path(__file__).resolve().parents[1]


def _sklearn_rows(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    kept, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels,
                               random_state=seed)
    return np.sort(kept)


@pytest.fixture(scope="module")
def real_labels(data_dir) -> dict[str, np.ndarray]:
    found = {}
    for name in DATASETS:
        arrays = read_npz(name, Path(data_dir) / f"{name}.npz")
        for part in ("y_train", "y_test"):
            found[f"{name} {part}"] = np.asarray(arrays[part]).reshape(-1)
    return found


def test_the_course_subsets_are_scikit_learns(real_labels):
    """The fast training and test subsets (public seed) and hold-out draws of several secret
    seeds from the rows outside the fast subset, on every dataset."""
    from grader.data.holdout import HOLDOUT_SIZE

    for what, labels in real_labels.items():
        size = FAST_TRAIN_SIZE if what.endswith("y_train") else FAST_TEST_SIZE
        fast = stratified_train_rows(labels, size, FAST_SUBSET_SEED)
        assert np.array_equal(fast, _sklearn_rows(labels, size, FAST_SUBSET_SEED)), what
        if what.endswith("y_test"):
            continue
        pools = {"fast": np.setdiff1d(np.arange(len(labels)), fast),  # outside the subset
                 "full": np.arange(1, len(labels))}  # every row but the first
        for seed in (1, 2_000_000_011, 4_294_967_295):
            for mode, rows in pools.items():
                held = HOLDOUT_SIZE[mode]
                mine = rows[stratified_train_rows(labels[rows], held, seed)]
                theirs = rows[_sklearn_rows(labels[rows], held, seed)]
                assert np.array_equal(mine, theirs), (what, seed, mode)


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_awkward_labels_give_scikit_learns_rows(seed):
    """Classes of very different sizes, shares that tie (so the leftover rows are drawn at
    random), two classes, many classes, string labels, sizes near both ends."""
    rng = np.random.default_rng(seed)
    cases = [
        np.repeat(np.arange(3), [2, 50, 948]),
        np.repeat(np.arange(7), 5),
        np.repeat(np.array(["cat", "dog"]), [13, 29]),
        rng.integers(0, 40, size=3_001),
        np.repeat(np.arange(10), 30)[rng.permutation(300)],
    ]
    for labels in cases:
        classes = len(np.unique(labels))
        for size in sorted({classes, len(labels) // 3, len(labels) // 2 + 1,
                            len(labels) - classes}):
            mine = stratified_train_rows(labels, size, seed)
            assert np.array_equal(mine, _sklearn_rows(labels, size, seed)), (labels[:5], size)
            assert len(mine) == size and np.all(np.diff(mine) > 0)


@pytest.mark.parametrize("labels, size, expected", [
    (np.array([0, 0, 1]), 2, "at least 2 rows of every class, got 1 of class(es) [1]"),
    (np.repeat(np.arange(5), 4), 3, "room for every one of the 5 classes"),
    (np.repeat(np.arange(5), 4), 18, "got 18 rows kept and 2 left"),
    (np.arange(4), 4, "expected 0 < size < 4, got 4"),
    (np.zeros((4, 2)), 2, "a 1-D array), got shape (4, 2)"),
])
def test_impossible_draws_say_what_was_expected(labels, size, expected):
    with pytest.raises(ValueError) as err:
        stratified_train_rows(labels, size, 0)
    assert expected in str(err.value)


def test_writing_the_fast_kernel_copy_imports_no_scikit_learn(data_dir, tmp_path):
    """What the change is for: a machine's first fast batch writes the kernel copy without
    the second-long scikit-learn import (checked in a fresh process, as a first batch)."""
    code = (
        "import json, os, sys\nfrom pathlib import Path\n"
        "from grader.data.holdout import dataset_files, plan_holdout, write_kernel_files\n"
        "source = os.environ['DLCOURSE_DATA_DIR']\n"
        "plan = plan_holdout(source, fast=True, key=b'k' * 32)\n"
        f"write_kernel_files(plan, dataset_files(source), Path({str(tmp_path)!r}) / 'data')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DLCOURSE_DATA_DIR": data_dir}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    written = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert written == sorted(f"{name}.npz" for name in DATASETS)
