"""What a check works on besides the objects: the :class:`Context` (mode, dataset, data),
:class:`CheckFailed`, and the model helpers (input preparation, accuracy) that the check
kinds and the per-lesson references share. Moved out of :mod:`grader.checks.kinds` so the
references can use them without importing the kinds, which look the references up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Context:
    """What a check needs besides the objects: the mode, the dataset, where data lives.

    ``verify`` is set by the grader (never by the student's self-check): experiment checks
    then re-run one or more of the reported configurations, chosen with ``choice_key``
    (private to the grader).
    """

    mode: str = "full"
    dataset: str = ""
    data_dir: str | None = None
    verify: bool = False
    choice_key: str = ""
    holdout: Any = None
    """A :class:`grader.data.holdout.HoldoutPlan` when grading: accuracy is then scored on the
    private hold-out too. ``None`` in the student's own kernel (self-checks)."""

    def __post_init__(self) -> None:
        if self.mode not in ("full", "fast"):
            raise ValueError(f"expected mode 'full' or 'fast', got {self.mode!r}")

    def raw_test_split(self, dataset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The official test split for this mode: uint8 images and 1-D integer labels."""
        from helpers.data import load_dataset

        _, (x_test, y_test) = load_dataset(
            dataset or self.dataset, fast=self.mode == "fast", data_dir=self.data_dir
        )
        return x_test, np.asarray(y_test).reshape(len(y_test), -1)[:, 0].astype(np.int64)

    def raw_train_split(self, dataset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """This mode's training split as the kernel loaded it: uint8 images, integer labels."""
        from helpers.data import load_dataset

        (x_train, y_train), _ = load_dataset(
            dataset or self.dataset, fast=self.mode == "fast", data_dir=self.kernel_data_dir()
        )
        return x_train, np.asarray(y_train).reshape(len(y_train), -1)[:, 0].astype(np.int64)

    def kernel_data_dir(self) -> str | None:
        """The data folder the student's kernel saw (the kernel copy when grading)."""
        if self.holdout is not None and self.holdout.kernel_dir:
            return self.holdout.kernel_dir
        return self.data_dir

    def private_split(self, dataset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The private hold-out (grading only): uint8 images and 1-D integer labels."""
        from grader.data.holdout import load_holdout

        if self.holdout is None:
            raise ValueError("expected a Context with a hold-out plan (grading only)")
        return load_holdout(self.holdout, dataset or self.dataset)


class CheckFailed(Exception):
    """Raised inside a kind's implementation with the message the student sees."""

    def __init__(self, message: str, *, flag: str | None = None,
                 details: dict | None = None) -> None:
        super().__init__(message)
        self.flag = flag
        self.details = details


# ----------------------------------------------------------------------------------------
# Helpers about Keras models (duck-typed so this module imports without TensorFlow)
# ----------------------------------------------------------------------------------------


def require_model(obj: Any, name: str):
    if obj is None or obj is Ellipsis:
        raise CheckFailed(f"`{name}` is still a placeholder: build the model in the exercise cell")
    if not (hasattr(obj, "trainable_weights") and hasattr(obj, "layers")
            and hasattr(obj, "predict")):
        raise CheckFailed(f"expected `{name}` to be a Keras model, found {type(obj).__name__}")
    return obj


def _size(weights) -> int:
    return int(sum(int(np.prod(tuple(w.shape))) for w in weights))


def trainable_parameters(model) -> int:
    """Count trainable parameters from the weight shapes (not ``model.count_params()``)."""
    return _size(model.trainable_weights)


def all_parameters(model) -> int:
    """Count every weight, trainable or frozen, from the shapes: a design budget counts frozen
    layers too (a wide frozen random convolution is not a free feature extractor)."""
    return _size(model.weights)


def _layer_kind(layer) -> str:
    return type(layer).__name__


def layer_kinds(model) -> list[str]:
    """The class names of ``model``'s layers in order, the layers of nested models included
    (an augmentation ``keras.Sequential`` used as a layer counts its own layers)."""
    found = []
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if isinstance(inner, list) and inner:
            found.extend(layer_kinds(layer))
        else:
            found.append(_layer_kind(layer))
    return found


def dense_units(model) -> list[int]:
    return [int(layer.units) for layer in model.layers if _layer_kind(layer) == "Dense"]


def model_output_activation(model) -> str:
    for layer in reversed(model.layers):
        kind = _layer_kind(layer)
        if kind == "Dropout":
            continue
        if kind == "Softmax":
            return "softmax"
        act = getattr(layer, "activation", None)
        name = getattr(act, "__name__", "none") if act is not None else "none"
        return _ACTIVATION_ALIASES.get(name, name)
    return "none"


def _penalises(regularizer: Any) -> bool:
    """Whether a Keras regularizer adds a penalty (a factor above 0)."""
    if regularizer is None:
        return False
    try:
        factors = regularizer.get_config().values()
    except (AttributeError, NotImplementedError, TypeError):
        return True  # a custom regularizer: its effect cannot be read, only its presence
    return any(isinstance(v, (int, float)) and v > 0 for v in factors)


def regularisation(model) -> list[str]:
    """What regularises ``model``: its layers with dropout (rate above 0) or a weight penalty.

    Read from the layers and their configuration, so a model loaded from a ``.keras`` file
    (as the grader loads it) answers exactly like the live one.
    """
    found = []
    for layer in model.layers:
        if _layer_kind(layer).endswith("Dropout") and float(getattr(layer, "rate", 0) or 0) > 0:
            found.append(f"{layer.name}: dropout")
        for kind in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
            if _penalises(getattr(layer, kind, None)):
                found.append(f"{layer.name}: {kind}")
    return found


_ACTIVATION_ALIASES = {"softmax_v2": "softmax"}
"""Other spellings of the same activation (``tf.nn.softmax`` is named ``softmax_v2``)."""


def model_input_shape(model) -> tuple:
    shape = model.input_shape
    if isinstance(shape, list):
        raise CheckFailed(f"expected a model with one input, found {len(shape)} inputs")
    return tuple(shape[1:])


def model_output_units(model) -> int | None:
    shape = model.output_shape
    if isinstance(shape, list):
        raise CheckFailed(f"expected a model with one output, found {len(shape)} outputs")
    return shape[-1]


def prepare_inputs(images: np.ndarray, model, how: str = "auto") -> np.ndarray:
    """Turn uint8 test images into what ``model`` takes, the way the lessons do.

    ``gray_flat``: mean of RGB, flatten, /255. ``flat``: flatten, /255. ``image``: /255 and
    reshape to the model's input shape. ``auto`` picks from the model's input shape.
    """
    from helpers.data import flatten, scale, to_grayscale

    want = model_input_shape(model)
    per_image = int(np.prod(images.shape[1:]))
    if how == "auto":
        if len(want) == 1 and images.ndim == 4 and want[0] == per_image // images.shape[-1]:
            how = "gray_flat"
        elif len(want) == 1 and want[0] == per_image:
            how = "flat"
        else:
            how = "image"
    if how == "gray_flat":
        x = scale(flatten(to_grayscale(images)))
    elif how == "flat":
        x = scale(flatten(images))
    elif how == "image":
        x = scale(images)
    else:
        raise ValueError(f"expected inputs in auto, gray_flat, flat, image; got {how!r}")
    if None not in want and int(np.prod(want)) == int(np.prod(x.shape[1:])):
        return x.reshape((len(x), *want))
    raise CheckFailed(
        f"the model takes inputs of shape {want}, which cannot be built from test images of"
        f" shape {images.shape[1:]} ({how}); check the Input layer"
    )


def predict_scores(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """``model``'s outputs on ``x``, computed eagerly in batches, as a NumPy array.

    The same numbers as ``model.predict`` (inference mode), without tracing a predict
    function for every new model: a warm scoring process sees new models with every
    submission, and for the course's small models the tracing took longer than predicting.
    """
    import keras

    x = np.asarray(x)
    if x.dtype.kind == "f":
        x = x.astype("float32", copy=False)
    parts = [keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
             for start in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def model_accuracy(model, ctx: Context, *, inputs: str = "auto",
                   dataset: str | None = None, split: str = "public") -> float:
    """Accuracy of ``model``, computed here, on this mode's official test split
    (``split="public"``) or on the grader's private hold-out (``"private"``)."""
    if split not in ("public", "private"):
        raise ValueError(f"expected split 'public' or 'private', got {split!r}")
    x_raw, y = ctx.raw_test_split(dataset) if split == "public" else ctx.private_split(dataset)
    classes = model_output_units(model)
    if classes != 10:
        raise CheckFailed(f"expected 10 output units (one per class), found {classes}")
    x = prepare_inputs(x_raw, model, inputs)
    scores = predict_scores(model, x)
    if scores.shape != (len(y), 10):
        raise CheckFailed(f"expected predictions of shape {(len(y), 10)}, found {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise CheckFailed("the model predicts NaN or infinite values: training diverged")
    return float(np.mean(scores.argmax(axis=1) == y))
