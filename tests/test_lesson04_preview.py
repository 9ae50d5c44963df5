"""Lesson 04's augmentation preview runs before the graded tuned model trains: it must not
change the random numbers that training draws (its layers are seeded, the model's are not)."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest

from grader.base.paths import SOLUTIONS_DIR

PREVIEW_CELL = "l04-augview-code"


def _tuned_like():
    import keras

    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.RandomTranslation(height_factor=0.1, width_factor=0.1)(x)
    x = keras.layers.Conv2D(8, (3, 3), activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


@pytest.mark.slow
def test_the_augmentation_preview_leaves_the_tuned_training_unchanged(data_dir):
    import keras

    from helpers import data, plotting

    nb = nbformat.read(str(SOLUTIONS_DIR / "04_cnn_cifar10.ipynb"), as_version=4)
    ids = [cell.id for cell in nb.cells]
    preview = nb.cells[ids.index(PREVIEW_CELL)].source
    assert ids.index(PREVIEW_CELL) < ids.index("l04-79"), "the preview must come before training"
    (x_all, y_all), _ = data.load_dataset("cifar10", fast=True, data_dir=data_dir)
    x = (x_all[:1500] / 255.0).astype("float32")
    y = keras.utils.to_categorical(y_all[:1500], 10)

    def train(run_preview: bool) -> np.ndarray:
        keras.utils.set_random_seed(42)
        if run_preview:
            exec(preview, {"keras": keras, "np": np, "plotting": plotting, "SEED": 42,  # noqa: S102
                           "x_train": x, "y_train": y, "CLASS_NAMES": [str(i) for i in range(10)]})
        model = _tuned_like()
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        return np.concatenate([w.ravel() for w in model.get_weights()])

    np.testing.assert_array_equal(train(True), train(False))
