"""The private hold-out and the kernel's copy of the datasets (grader.data.holdout), on real data.

No kernel runs here: these tests build kernel copies and hold-outs from the real datasets and
compare them row by row (hashes of images).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from grader.base.errors import GraderError
from grader.checks.kinds import CheckFailed, Context
from grader.checks.leakage import SAW_TEST_SET, score_with_holdout
from grader.data.holdout import (
    FLAG_MARGIN,
    HOLDOUT_SIZE,
    KernelData,
    holdout_seed,
    load_holdout,
    plan_holdout,
    split_indices,
)
from helpers.data import DATASETS, FAST_TEST_SIZE, FAST_TRAIN_SIZE, load_dataset

KEY_A = b"a" * 64
KEY_B = b"b" * 64


def _hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.sha256(row.tobytes()).digest() for row in images}


def _row_hashes(images: np.ndarray) -> list[bytes]:
    return [hashlib.sha256(row.tobytes()).digest() for row in images]


@pytest.fixture(scope="module", params=["fast", "full"])
def copy(request, data_dir):
    plan = plan_holdout(data_dir, fast=request.param == "fast", key=KEY_A)
    made = KernelData.create(plan)
    yield replace(plan, kernel_dir=str(made.path)), made
    made.remove()
    assert not made.root.exists()


def test_the_seed_depends_on_the_key_and_only_on_it():
    assert holdout_seed(KEY_A) == holdout_seed(KEY_A)
    assert holdout_seed(KEY_A) != holdout_seed(KEY_B)
    y = np.repeat(np.arange(10), 6000)
    a = split_indices(y, name="mnist", mode="full", seed=holdout_seed(KEY_A))[1]
    again = split_indices(y, name="mnist", mode="full", seed=holdout_seed(KEY_A))[1]
    b = split_indices(y, name="mnist", mode="full", seed=holdout_seed(KEY_B))[1]
    assert np.array_equal(a, again)
    assert len(np.intersect1d(a, b)) < len(a) // 2  # another key, other images


def test_the_kernel_copy_never_holds_a_holdout_image(copy, data_dir):
    plan, made = copy
    for name in DATASETS:
        with np.load(made.path / f"{name}.npz") as kernel:
            kernel_train, kernel_test = kernel["x_train"], kernel["x_test"]
        seen = _hashes(kernel_train) | _hashes(kernel_test)
        x_held, y_held = load_holdout(plan, name)
        assert len(x_held) == HOLDOUT_SIZE[plan.mode]
        counts = np.bincount(y_held, minlength=10)  # stratified: every class has its share
        assert counts.min() >= 0.08 * len(y_held), counts
        (x_train, y_train), (x_test, _) = load_dataset(name, fast=False, data_dir=data_dir)
        # the datasets hold a few exact duplicate images; an image that occurs once is unique
        occurs = Counter(_row_hashes(x_train) + _row_hashes(x_test))
        unique_held = {h for h in _row_hashes(x_held) if occurs[h] == 1}
        assert len(unique_held) >= 0.99 * len(x_held)
        assert not unique_held & seen, name
        # by position: disjoint, and the copy keeps the original order minus removed rows
        kernel_idx, held_idx = split_indices(y_train, name=name, mode=plan.mode, seed=plan.seed)
        assert len(np.intersect1d(held_idx, kernel_idx)) == 0
        assert np.array_equal(kernel_train, x_train[kernel_idx])
        assert np.array_equal(x_held, x_train[held_idx])
        if plan.mode == "full":  # the first training image (lesson 02's exercise) stays
            assert kernel_idx[0] == 0


def test_the_copy_is_read_only_and_private(copy):
    _, made = copy
    assert stat.S_IMODE(os.stat(made.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(made.path).st_mode) == 0o755
    for name in DATASETS:
        assert stat.S_IMODE(os.stat(made.path / f"{name}.npz").st_mode) == 0o444
    assert sorted(p.name for p in made.root.iterdir()) == ["data", "owner.pid"]


def test_fast_load_on_the_copy_equals_the_original_fast_subset(copy, data_dir):
    plan, made = copy
    for name in DATASETS:
        (a, b), (c, d) = load_dataset(name, fast=True, data_dir=str(made.path))
        (a0, b0), (c0, d0) = load_dataset(name, fast=True, data_dir=data_dir)
        if plan.mode == "fast":
            assert len(a) == FAST_TRAIN_SIZE and len(c) == FAST_TEST_SIZE
            for got, want in ((a, a0), (b, b0), (c, c0), (d, d0)):
                assert np.array_equal(got, want)
            with np.load(made.path / f"{name}.npz") as raw:  # exactly the fast subsets
                assert np.array_equal(raw["x_train"], a0) and np.array_equal(raw["x_test"], c0)
        else:
            (x, _), (xt, yt) = load_dataset(name, fast=False, data_dir=str(made.path))
            (x0, _), (xt0, yt0) = load_dataset(name, fast=False, data_dir=data_dir)
            assert len(x) == len(x0) - HOLDOUT_SIZE["full"]
            assert np.array_equal(xt, xt0) and np.array_equal(yt, yt0)  # whole public test


def test_a_folder_without_datasets_is_a_clear_error(tmp_path):
    plan = plan_holdout(str(tmp_path), fast=True, key=KEY_A)
    with pytest.raises(GraderError, match="expected mnist.npz, fashion_mnist.npz, cifar10.npz"):
        KernelData.create(plan)


class _Memorised:
    """A 'model' that answers the public test labels and guesses elsewhere."""

    layers: list = []
    trainable_weights: list = []
    input_shape = (None, 784)
    output_shape = (None, 10)

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray) -> None:
        self.known = {hashlib.sha256(r.tobytes()).digest(): int(y)
                      for r, y in zip(x_test.reshape(len(x_test), -1), y_test, strict=True)}

    def __call__(self, x, training=False):  # how the grader predicts (grader.checks.context)
        return self.predict(x)

    def predict(self, x, **_):
        out = np.zeros((len(x), 10))
        for i, row in enumerate(np.asarray(x)):
            pixels = np.rint(row * 255).astype(np.uint8)
            out[i, self.known.get(hashlib.sha256(pixels.tobytes()).digest(), i % 10)] = 1
        return out


def test_a_model_that_memorised_the_test_split_is_flagged(data_dir):
    from grader.checks.rubric import CheckSpec

    plan = plan_holdout(data_dir, fast=True, key=KEY_A)
    ctx = Context(mode="fast", dataset="mnist", data_dir=data_dir, holdout=plan)
    x_test, y_test = ctx.raw_test_split()
    spec = CheckSpec(id="x.acc", kind="accuracy", objects=("m",), points=1.0,
                     threshold={"full": 0.5, "fast": 0.5}, inputs="flat")
    with pytest.raises(CheckFailed) as info:
        score_with_holdout(spec, _Memorised(x_test, y_test), ctx)
    assert info.value.flag == SAW_TEST_SET
    assert "appears to have seen the test set" in str(info.value)
    assert info.value.details["gap"] > FLAG_MARGIN["fast"]


def test_a_folder_missing_a_dataset_a_module_needs_is_a_clear_error(tmp_path, data_dir):
    from grader.data.holdout import require_datasets

    os.symlink(os.path.join(data_dir, "mnist.npz"), tmp_path / "mnist.npz")
    require_datasets(str(tmp_path), {"mnist": {"01"}})
    with pytest.raises(GraderError, match=r"lacks cifar10.npz \(module 01, 02\).*Fix"):
        require_datasets(str(tmp_path), {"mnist": {"01"}, "cifar10": {"01", "02"}})


def test_a_copy_left_by_a_killed_run_is_removed_by_the_next(tmp_path, data_dir):
    import subprocess
    import sys

    from grader.data.holdout import remove_stale

    plan = plan_holdout(data_dir, fast=True, key=KEY_A)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / "dlcourse-kdata-stale"
    (stale / "data").mkdir(parents=True)
    (stale / "owner.pid").write_text(dead)
    live = KernelData.create(plan, parent=str(tmp_path))  # removes the stale one first
    assert not stale.exists() and live.path.is_dir()
    assert remove_stale(str(tmp_path)) == []  # ours is alive: kept
    live.remove()
