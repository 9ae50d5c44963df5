"""Optional transfer learning for lesson 04: a frozen MobileNetV2 with a small new head.

The ImageNet weights of MobileNetV2 are a download of about 9 MB. This module never fetches
them unless asked: :func:`find_weights` looks in the Keras cache (``$KERAS_HOME/models`` or
``~/.keras/models``, where ``keras.applications`` keeps them) and downloads only with
``download=True``. Without weights the lesson cell prints one line and skips the
experiment, so CI, offline machines and the grader never touch the network.

CIFAR-10 images are 32 x 32; MobileNetV2 was trained on much larger photos, and Keras ships
its weights for inputs of 96 to 224 pixels. The model therefore enlarges each image inside
the network (``Resizing``) and maps pixels from [0, 1] to the [-1, 1] range MobileNetV2
expects (``Rescaling``), so it takes the same inputs as the lesson's own CNNs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where keras.applications downloads MobileNetV2's weights from.
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
#: Input sizes Keras has MobileNetV2 weights for.
SIZES = (96, 128, 160, 192, 224)


def weights_filename(input_size: int = 96, alpha: float = 1.0) -> str:
    """The file name keras.applications uses for the no-top ImageNet weights."""
    if input_size not in SIZES:
        raise ValueError(f"expected an input size in {SIZES}, got {input_size!r}")
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{input_size}_no_top.h5"


def cache_dirs() -> list[Path]:
    """Folders where Keras keeps downloaded weights, in the order Keras would use them."""
    home = os.environ.get("KERAS_HOME")
    base = Path(home) if home else Path.home() / ".keras"
    return [base / "models", Path("/tmp/.keras/models")]


@dataclass(frozen=True)
class WeightsStatus:
    """Whether the ImageNet weights can be used, and a one-line message saying why."""

    path: Path | None
    message: str

    @property
    def ready(self) -> bool:
        return self.path is not None


def find_weights(*, download: bool = False, input_size: int = 96) -> WeightsStatus:
    """Find MobileNetV2's ImageNet weights in the Keras cache; download them only if asked.

    Parameters
    ----------
    download
        ``False`` (the default) never uses the network: without a cached file the status is
        not ready. ``True`` lets ``keras.utils.get_file`` download the file into the cache.
    input_size
        The image size the weights were trained for (one of :data:`SIZES`).
    """
    name = weights_filename(input_size)
    for folder in cache_dirs():
        if (folder / name).is_file():
            return WeightsStatus(folder / name, f"using the cached ImageNet weights {folder / name}")
    if not download:
        return WeightsStatus(None, "transfer learning skipped: MobileNetV2's ImageNet weights are"
                                   " not in the Keras cache; set TRANSFER_DOWNLOAD = True to"
                                   " download them (about 9 MB)")
    import keras

    try:
        path = keras.utils.get_file(name, WEIGHTS_URL + name, cache_subdir="models")
    except Exception as exc:  # no network, proxy, disk full: the lesson goes on without it
        return WeightsStatus(None, f"transfer learning skipped: downloading {name} failed"
                                   f" ({type(exc).__name__}: {exc})")
    return WeightsStatus(Path(path), f"downloaded the ImageNet weights to {path}")


def build_model(*, weights_path: Path | str | None, input_size: int = 96,
                num_classes: int = 10, dropout: float = 0.2):
    """A frozen MobileNetV2 base under a new softmax head, for 32 x 32 x 3 inputs in [0, 1].

    ``weights_path=None`` leaves the base randomly initialised (for tests and for comparing
    with the pretrained base); otherwise the no-top weights are loaded from that file. Only
    the head (one Dense layer) is trainable. The model is compiled with Adam, categorical
    cross-entropy and accuracy.
    """
    import keras

    weights_filename(input_size)  # validates input_size
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"expected a dropout rate in [0, 1), got {dropout!r}")
    base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3),
                                          include_top=False, weights=None)
    if weights_path is not None:
        base.load_weights(str(weights_path))
    base.trainable = False
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Resizing(input_size, input_size)(inputs)
    x = keras.layers.Rescaling(2.0, offset=-1.0)(x)        # [0, 1] -> [-1, 1]
    x = base(x, training=False)                             # BatchNorm stays in inference mode
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="mobilenetv2_transfer")
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def train_head(model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
               epochs: int = 1, batch_size: int = 64, verbose: int = 2) -> dict[str, list[float]]:
    """Train the head of :func:`build_model`'s model; return the history dict.

    ``x`` and ``x_val`` are 32 x 32 x 3 images scaled to [0, 1], ``y`` and ``y_val`` one-hot
    rows, as ``prepare_dataset`` makes them in lesson 04.
    """
    for name, images in (("x", x), ("x_val", x_val)):
        if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise ValueError(f"expected {name} of shape (n, 32, 32, 3), got {images.shape}")
    if epochs < 1:
        raise ValueError(f"expected at least 1 epoch, got {epochs!r}")
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size,
                        validation_data=(x_val, y_val), verbose=verbose)
    return {key: [float(v) for v in values] for key, values in history.history.items()}
