"""The optional transfer-learning code of lesson 04 (helpers.transfer) on real CIFAR-10 images.

MobileNetV2's ImageNet weights cannot be downloaded here (no network except package
registries), so these tests run the lesson's code path with a randomly initialised base
(``weights_path=None``) and, for the cache path, with a weights file of the right name and
shapes that holds random weights. What they show: the cache lookup, the no-network default,
the model's plumbing (32 x 32 inputs enlarged inside the network, frozen base, trainable
head) and a real training step. They cannot show how well ImageNet features transfer.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from helpers import data, transfer


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache for this test (find_weights reads KERAS_HOME at each call)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    if (Path("/tmp/.keras/models") / transfer.weights_filename()).exists():
        pytest.skip("/tmp/.keras/models already holds MobileNetV2 weights")
    return tmp_path


@pytest.fixture(scope="module")
def cifar_small(data_dir):
    (x, y), _ = data.load_dataset("cifar10", fast=True, data_dir=data_dir)
    x = x[:192].astype("float32") / 255.0
    y = np.eye(10, dtype="float32")[y[:192].ravel()]
    return x[:128], y[:128], x[128:], y[128:]


def test_without_cached_weights_the_default_skips_in_one_line_and_uses_no_network(
        keras_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("find_weights(download=False) opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    status = transfer.find_weights()
    assert not status.ready and status.path is None
    assert "\n" not in status.message
    assert "TRANSFER_DOWNLOAD = True" in status.message


def test_a_failed_download_is_a_skip_with_the_reason_not_a_crash(keras_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    status = transfer.find_weights(download=True)
    assert not status.ready
    assert status.message.startswith("transfer learning skipped: downloading")
    assert transfer.weights_filename() in status.message


@pytest.fixture(scope="module")
def stand_in_cache(tmp_path_factory):
    """A Keras home whose cache holds a MobileNetV2 weights file with random weights.

    The downloaded files use Keras's legacy HDF5 weights layout (the one ``load_weights``
    reads for a plain ``.h5`` name); the stand-in is written in that layout.
    """
    import h5py
    import keras
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    home = tmp_path_factory.mktemp("keras_home")
    keras.utils.set_random_seed(1)
    stand_in = keras.applications.MobileNetV2(input_shape=(96, 96, 3), include_top=False,
                                              weights=None)
    cached = home / "models" / transfer.weights_filename(96)
    cached.parent.mkdir()
    with h5py.File(cached, "w") as f:
        save_weights_to_hdf5_group(f, stand_in)
    return home, stand_in.get_weights()


def test_a_weights_file_in_the_keras_cache_is_found_and_loaded(stand_in_cache, monkeypatch):
    import keras

    home, saved_weights = stand_in_cache
    monkeypatch.setenv("KERAS_HOME", str(home))
    cached = home / "models" / transfer.weights_filename(96)
    status = transfer.find_weights()
    assert status.ready and status.path == cached and str(cached) in status.message
    keras.utils.set_random_seed(2)         # a fresh base would start from other weights
    model = transfer.build_model(weights_path=status.path)
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert not base.trainable
    for loaded, saved in zip(base.get_weights(), saved_weights, strict=True):
        np.testing.assert_array_equal(loaded, saved)


def _lesson04_cells(*cell_ids: str) -> str:
    from grader.base.paths import REPO_ROOT

    cells = {c["id"]: "".join(c["source"]) for c in json.loads(
        (REPO_ROOT / "solutions" / "04_cnn_cifar10.ipynb").read_text())["cells"]}
    return "\n".join(cells[cid] for cid in cell_ids)


def _lesson_namespace(cifar_small):
    import keras

    x, y, x_val, y_val = cifar_small
    own = keras.Sequential([keras.Input(shape=(32, 32, 3)), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")], name="own_model")
    own.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return {"transfer": transfer, "keras": keras, "np": np, "FAST": True, "SEED": 0,
            "BATCH_SIZE": 32, "x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val,
            "best_model": own}


def test_lesson04_transfer_cells_say_one_line_and_stop_without_weights(keras_home, cifar_small,
                                                                       capsys):
    namespace = _lesson_namespace(cifar_small)
    exec(_lesson04_cells("l04-transfer-setup", "l04-transfer-run"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("transfer learning skipped")
    assert "transfer_model" not in namespace


def test_lesson04_transfer_cells_train_and_compare_with_cached_weights(stand_in_cache,
                                                                      cifar_small, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("KERAS_HOME", str(stand_in_cache[0]))
    namespace = _lesson_namespace(cifar_small)
    exec(_lesson04_cells("l04-transfer-setup", "l04-transfer-run"), namespace)
    out = capsys.readouterr().out
    assert "using the cached ImageNet weights" in out
    assert "12,810 of them trainable (the head)" in out
    assert "on the same 64 images" in out
    assert "MobileNetV2 + new head:" in out and "own_model:" in out
    # FAST: the cells asked for 500 images; the namespace holds 128, all of them used.
    assert "(128 training images, 1 epoch(s))" in out
    assert len(namespace["transfer_history"]["val_accuracy"]) == 1


def test_the_head_trains_on_real_cifar10_images_while_the_base_stays_frozen(cifar_small):
    import keras

    x, y, x_val, y_val = cifar_small
    keras.utils.set_random_seed(0)
    model = transfer.build_model(weights_path=None)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    # Only the new head learns: 1,280 pooled features x 10 classes + 10 biases.
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 1280 * 10 + 10
    base = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    base_before = [w.copy() for w in base.get_weights()]
    head = model.layers[-1]
    head_before = head.get_weights()[0].copy()

    history = transfer.train_head(model, x, y, x_val, y_val, epochs=1, batch_size=32,
                                  verbose=0)

    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 1 and np.isfinite(values[0]) for values in history.values())
    for before, after in zip(base_before, base.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)   # frozen, BatchNorm statistics too
    assert not np.array_equal(head_before, head.get_weights()[0])
    probabilities = model.predict(x_val[:8], verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match=r"expected an input size in \(96, 128"):
        transfer.weights_filename(100)
    with pytest.raises(ValueError, match="expected a dropout rate"):
        transfer.build_model(weights_path=None, dropout=1.5)
    with pytest.raises(ValueError, match=r"expected x of shape \(n, 32, 32, 3\), got \(4, 28, 28\)"):
        transfer.train_head(None, np.zeros((4, 28, 28)), None, np.zeros((2, 32, 32, 3)), None)
