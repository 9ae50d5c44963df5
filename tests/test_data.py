"""helpers.data on the real datasets: shapes, dtypes, fast subsets, errors, preprocessing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import data

EXPECTED = {
    "mnist": ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,)),
    "fashion_mnist": ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,)),
    "cifar10": ((50000, 32, 32, 3), (50000, 1), (10000, 32, 32, 3), (10000, 1)),
}


@pytest.mark.parametrize("name", data.DATASETS)
def test_full_dataset_has_keras_shapes_and_dtypes(name, data_dir):
    (x_train, y_train), (x_test, y_test) = data.load_dataset(name, fast=False)
    shapes = tuple(a.shape for a in (x_train, y_train, x_test, y_test))
    assert shapes == EXPECTED[name]
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))
    assert set(np.unique(y_train)) == set(range(10))


def test_mnist_is_in_original_order(data_dir):
    (_, y_train), _ = data.load_dataset("mnist", fast=False)
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]


@pytest.mark.parametrize("name", data.DATASETS)
def test_fast_subset_is_stratified_and_deterministic(name, data_dir):
    (x_full, y_full), (_, yt_full) = data.load_dataset(name, fast=False)
    (x1, y1), (xt1, yt1) = data.load_dataset(name, fast=True)
    (x2, y2), (xt2, yt2) = data.load_dataset(name, fast=True)
    assert len(x1) == data.FAST_TRAIN_SIZE and len(xt1) == data.FAST_TEST_SIZE
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and np.array_equal(xt1, xt2)
    assert x1.dtype == np.uint8 and y1.dtype == np.uint8
    assert x1.shape[1:] == EXPECTED[name][0][1:] and y1.shape[1:] == EXPECTED[name][1][1:]
    for labels, full in ((y1, y_full), (yt1, yt_full)):
        # Every class keeps its share of the full split, up to rounding.
        share = data.class_counts(full) * len(labels) / len(full)
        assert np.all(np.abs(data.class_counts(labels) - share) <= 1.0)


def test_fast_mode_follows_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("DLCOURSE_FAST", "1")
    (x, _), _ = data.load_dataset("mnist")
    assert len(x) == data.FAST_TRAIN_SIZE
    monkeypatch.setenv("DLCOURSE_FAST", "0")
    (x, _), _ = data.load_dataset("mnist")
    assert len(x) == 60000


def test_unknown_dataset_name_is_rejected():
    with pytest.raises(ValueError, match="expected a dataset name"):
        data.load_dataset("imagenet")


def test_offline_without_data_gives_a_clear_error_quickly(tmp_path):
    """Empty KERAS_HOME and DLCOURSE_DATA_DIR, no network: one clear error, fast."""
    empty_data, keras_home = tmp_path / "data", tmp_path / "keras"
    empty_data.mkdir()
    keras_home.mkdir()
    script = textwrap.dedent(
        """
        import time
        import keras  # imported before the clock starts: under load this alone takes 20 s
        from helpers.data import load_dataset, DatasetUnavailableError
        start = time.monotonic()
        try:
            load_dataset("mnist")
        except DatasetUnavailableError as exc:
            print("SECONDS:", time.monotonic() - start)
            print("MESSAGE:", exc)
        else:
            print("LOADED")
        """
    )
    env = dict(os.environ, DLCOURSE_DATA_DIR=str(empty_data), KERAS_HOME=str(keras_home),
               HOME=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
    # Make sure no network is reachable even on a connected machine: a dead proxy.
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "MESSAGE:" in proc.stdout, proc.stdout + proc.stderr
    elapsed = float(proc.stdout.split("SECONDS:", 1)[1].split()[0])
    message = proc.stdout.split("MESSAGE:", 1)[1]
    assert "DLCOURSE_DATA_DIR" in message and "mnist" in message
    assert "Traceback" not in proc.stdout
    assert elapsed < 30, f"the error took {elapsed:.1f} s"


def _save_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_npz_with_missing_keys_is_reported(tmp_path):
    _save_npz(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(data.MalformedDatasetError, match="missing .*y_train"):
        data.load_dataset("mnist", data_dir=tmp_path)


def test_npz_with_wrong_shapes_is_reported(tmp_path):
    good = np.zeros((4, 28, 28), np.uint8)
    _save_npz(tmp_path / "mnist.npz", x_train=np.zeros((4, 32, 32), np.uint8),
              y_train=np.zeros(4, np.uint8), x_test=good, y_test=np.zeros(4, np.uint8))
    with pytest.raises(data.MalformedDatasetError, match=r"expected x_train of shape \(n, 28, 28\)"):
        data.load_dataset("mnist", data_dir=tmp_path)


def test_file_that_is_not_an_npz_is_reported(tmp_path):
    (tmp_path / "cifar10.npz").write_text("this is not a zip archive")
    with pytest.raises(data.MalformedDatasetError, match="expected a NumPy .npz archive"):
        data.load_dataset("cifar10", data_dir=tmp_path)


# --- preprocessing ---------------------------------------------------------------------


def test_to_grayscale_averages_channels():
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[0, 0, 0] = [30, 60, 90]
    gray = data.to_grayscale(img)
    assert gray.shape == (1, 2, 2) and gray.dtype == np.float32
    assert gray[0, 0, 0] == pytest.approx(60.0)


@pytest.mark.parametrize("bad", [np.zeros((2, 32, 32)), np.zeros((2, 32, 32, 4)), "text"])
def test_to_grayscale_rejects_non_rgb(bad):
    with pytest.raises(ValueError, match="expected"):
        data.to_grayscale(bad)


def test_flatten_and_bad_input():
    assert data.flatten(np.zeros((5, 4, 3, 2))).shape == (5, 24)
    with pytest.raises(ValueError, match="at least 2 axes"):
        data.flatten(np.zeros(7))


def test_scale_maps_to_unit_interval_and_catches_double_scaling():
    x = np.array([[0, 255]], np.uint8)
    assert data.scale(x).tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match=r"expected pixel values in \[0, 255\]"):
        data.scale(np.array([[-1.0, 3.0]]))


def test_one_hot_matches_keras_and_rejects_bad_labels():
    import keras

    labels = np.array([[3], [0], [9]], np.uint8)
    assert np.array_equal(data.one_hot(labels), keras.utils.to_categorical(labels[:, 0], 10))
    with pytest.raises(ValueError, match=r"expected labels in \[0, 9\]"):
        data.one_hot(np.array([10]))
    with pytest.raises(ValueError, match="integer class labels"):
        data.one_hot(np.array([0.5]))


def test_train_val_split_is_seeded_and_stratified():
    x = np.arange(200).reshape(100, 2)
    y = np.repeat(np.arange(10), 10)
    a = data.train_val_split(x, y, val_fraction=0.2, seed=3)
    b = data.train_val_split(x, y, val_fraction=0.2, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    x_tr, x_val, y_tr, y_val = a
    assert len(x_val) == 20 and len(x_tr) == 80
    assert data.class_counts(y_val).tolist() == [2] * 10
    with pytest.raises(ValueError, match="0 < val_fraction < 1"):
        data.train_val_split(x, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="same length"):
        data.train_val_split(x, y[:5])


def test_class_names_have_ten_entries():
    assert all(len(names) == 10 for names in data.CLASS_NAMES.values())
    assert data.CLASS_NAMES["cifar10"][3] == "cat"
