"""Seeding, fast mode and small Keras callbacks shared by the lessons.

Fast mode is the one visible mechanism that scales a lesson down: each notebook has a
papermill-style ``parameters`` cell (``FAST = None``, ``SEED = ...``) followed by a call
to :func:`configure`. ``FAST = None`` follows the ``DLCOURSE_FAST`` environment variable;
``True``/``False`` force it. The notebook then picks epochs with ``2 if FAST else 20``
and ``helpers.data.load_dataset`` returns the smaller, stratified subset.
"""

from __future__ import annotations

import os
import time

import numpy as np

from helpers.data import FAST_ENV, FAST_TEST_SIZE, FAST_TRAIN_SIZE, fast_mode_enabled


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend in one call.

    This makes weight initialisation, shuffling and dropout repeat from run to run on the
    same machine and library versions. It does not make multi-threaded CPU or GPU kernels
    bit-for-bit deterministic, so the last digits of a loss may still differ.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, got {seed!r}")
    import keras

    keras.utils.set_random_seed(int(seed))


def configure(fast: bool | None = None, seed: int = 0, *, verbose: bool = True) -> bool:
    """Resolve fast mode, seed everything and say what the notebook will do.

    Parameters
    ----------
    fast : bool or None
        ``None`` follows ``DLCOURSE_FAST``; ``True``/``False`` force the mode (and set the
        variable, so ``load_dataset`` and the self-checks agree with the notebook).
    seed : int
        Passed to :func:`set_seed`.

    Returns
    -------
    bool
        Whether fast mode is on.
    """
    if fast is not None and not isinstance(fast, (bool, np.bool_)):
        raise ValueError(f"expected FAST to be True, False or None, got {fast!r}")
    fast = fast_mode_enabled() if fast is None else bool(fast)
    os.environ[FAST_ENV] = "1" if fast else "0"
    set_seed(seed)
    if verbose:
        if fast:
            print(
                f"Fast mode ON: {FAST_TRAIN_SIZE:,} training / {FAST_TEST_SIZE:,} test images"
                f" and few epochs (seed {seed}). Set FAST = False for the full lesson."
            )
        else:
            print(f"Full mode: all the data and the lesson's epochs (seed {seed}).")
    return fast


def _callback_base():
    import keras

    return keras.callbacks.Callback


class EpochTimer(_callback_base()):
    """Record how many seconds each training epoch takes (``timer.epoch_seconds``)."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)

    @property
    def median_seconds(self) -> float:
        """Median seconds per epoch, leaving out the first epoch when there are others.

        The first epoch of a new model also builds (traces) its computation graph, which
        costs seconds whatever the batch size; with two epochs it would be half the median.
        """
        return steady_median(self.epoch_seconds)


def steady_median(epoch_seconds: list[float]) -> float:
    """Median of ``epoch_seconds`` without the first epoch (all of them when there is one)."""
    if not epoch_seconds:
        raise ValueError("expected at least one finished epoch, got none")
    return float(np.median(epoch_seconds[1:] or epoch_seconds))


class WeightStats(_callback_base()):
    """Print and keep the mean and standard deviation of every layer's kernel per epoch."""

    def __init__(self, verbose: bool = True) -> None:
        super().__init__()
        self.verbose = verbose
        self.records: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        for layer in self.model.layers:
            weights = layer.get_weights()
            if not weights:
                continue
            kernel = weights[0]
            row = {
                "epoch": epoch + 1,
                "layer": layer.name,
                "mean": float(kernel.mean()),
                "std": float(kernel.std()),
            }
            self.records.append(row)
            if self.verbose:
                print(
                    f"  epoch {row['epoch']:>2} {row['layer']:<12}"
                    f" kernel mean {row['mean']:+.4f}  std {row['std']:.4f}"
                )


def current_learning_rate(model) -> float | None:
    """The optimizer's learning rate as a float, or ``None`` when the model has none yet."""
    optimizer = getattr(model, "optimizer", None)
    rate = getattr(optimizer, "learning_rate", None)
    if rate is None:
        return None
    import keras

    try:
        return float(keras.ops.convert_to_numpy(rate))
    except (TypeError, ValueError):
        return None


class EpochLine(_callback_base()):
    """Print one short line per epoch: losses, accuracies, the learning rate and the time.

    A quiet alternative to Keras' progress bars (``fit(..., verbose=0, callbacks=[EpochLine()])``)
    that still shows that training moves and what the rate is in every epoch.

    Parameters
    ----------
    label : str
        Printed at the start of each line (e.g. the configuration's name).
    """

    def __init__(self, label: str = "") -> None:
        super().__init__()
        self.label = label
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        total = self.params.get("epochs", "?") if self.params else "?"
        parts = [f"{self.label}  " if self.label else "", f"epoch {epoch + 1:>2}/{total}"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in logs:
                parts.append(f"  {key} {float(logs[key]):.4f}")
        rate = logs.get("learning_rate", current_learning_rate(self.model))
        if rate is not None:
            parts.append(f"  lr {float(rate):.3g}")
        parts.append(f"  ({time.perf_counter() - self._start:.1f} s)")
        print("".join(parts), flush=True)


def _config_name(entry) -> str:
    """``"adam"``, ``{"config": {"name": "adam"}, ...}`` or a Keras object -> its name."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        inner = entry.get("config")
        if isinstance(inner, dict) and inner.get("name"):
            return str(inner["name"])
        if isinstance(inner, str):  # a function serialised by name
            return inner
        return str(entry.get("class_name", ""))
    return str(getattr(entry, "name", None) or getattr(entry, "__name__", type(entry).__name__))


def compile_summary(model) -> dict | None:
    """What ``model.compile`` set, in plain values; ``None`` for a model not compiled yet.

    Returns ``{"optimizer": class name, "learning_rate": float, "loss": name,
    "metrics": [names]}``, e.g. ``{"optimizer": "SGD", "learning_rate": 0.1,
    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}``.
    """
    if not getattr(model, "compiled", False):
        return None
    config = model.get_compile_config() or {}
    optimizer = getattr(model, "optimizer", None)
    metrics = config.get("metrics") or []
    if not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    return {
        "optimizer": type(optimizer).__name__ if optimizer is not None else "",
        "learning_rate": current_learning_rate(model),
        "loss": _config_name(config.get("loss")) if config.get("loss") is not None else "",
        "metrics": [_config_name(m) for m in metrics],
    }
