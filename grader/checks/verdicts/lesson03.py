"""In-kernel verdicts of lesson 03: the SGD compile, the weight updates by their method, the
learning-rate histories, the hyperparameter table, and the schedule and its preview against
salted digests (:mod:`grader.checks.verdicts.digests`)."""

from __future__ import annotations

import math
from typing import Any

from grader.checks.context import CheckFailed
from grader.checks.verdicts import digests
from grader.checks.verdicts.registry import verdict
from grader.checks.verdicts.shapes import fraction, history, keyed, positive, read_compile

#: The learning rate Exercise 3.4 compiles the first SGD model with.
SGD_LR = 0.1
#: The lesson holds out this fraction of the training images for validation.
VAL_FRACTION = 0.2
#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
LEARNING_RATES = (0.5, 0.1, 1e-3, 1e-6)
LR_EPOCHS = {"full": 8, "fast": 2}
#: How much the training loss of the 1e-6 run may move (relative): such a small rate barely
#: changes the weights.
FLAT_LOSS_CHANGE = 0.02
#: What a row of the hyperparameter table must say so that the grader can re-run it.
OPTIMIZERS = ("sgd", "adam", "rmsprop")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "leaky_relu", "swish")
MAX_LAYERS = 6
MAX_UNITS = 2048
MIN_BATCH = 8
MIN_CONFIGS = 4


@verdict("lesson03_sgd_setup")
def sgd_setup(ctx, model) -> str:
    """Exercise 3.4: ``model`` compiled with SGD at ``SGD_LR``, sparse cross-entropy, accuracy.

    A model the grader loaded has no compile settings (``.keras`` files are loaded without
    them), so there the check only confirms that the model exists; the trained model's
    accuracy (``03.sgd_accuracy``) is what the grader scores.
    """
    settings = read_compile(
        ctx, model, "model",
        loaded="compile settings are checked in your notebook; the grader scores the trained"
               " model (03.sgd_accuracy)",
        missing="`model` is not compiled yet: call model.compile(optimizer=..., loss=...,"
                " metrics=[...]) in the exercise cell")
    if isinstance(settings, str):
        return settings
    if settings["optimizer"] != "SGD":
        raise CheckFailed(f"expected the optimizer keras.optimizers.SGD, found"
                          f" {settings['optimizer']}")
    rate = settings["learning_rate"]
    if rate is None or not math.isclose(rate, SGD_LR, rel_tol=1e-5):
        raise CheckFailed("the SGD learning rate is not SGD_LR: pass"
                          " learning_rate=SGD_LR (the keyword is learning_rate, not lr)")
    if "sparse_categorical_crossentropy" not in settings["loss"]:
        raise CheckFailed(f"expected the loss \"sparse_categorical_crossentropy\" (the labels are"
                          f" integers), found {settings['loss']!r}")
    if not any(m in ("accuracy", "acc", "sparse_categorical_accuracy")
               for m in settings["metrics"]):
        raise CheckFailed(f"expected the metric \"accuracy\", found {settings['metrics']!r}")
    return "model compiled with SGD at SGD_LR, sparse categorical cross-entropy and accuracy"


def fitted_samples(n_train: int, val_fraction: float = VAL_FRACTION) -> int:
    """Training images left after the validation split (scikit-learn rounds the test part up)."""
    if n_train < 2:
        raise ValueError(f"expected at least 2 training images, got {n_train}")
    return n_train - math.ceil(val_fraction * n_train)


def _positive_int(value: Any, name: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"`{name}` should be a whole number, found {value!r}") from None
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise CheckFailed(f"`{name}` should be a positive whole number, found {value!r}")
    return int(number)


@verdict("lesson03_weight_updates")
def weight_updates(ctx, batch_size, epochs, n_fit=None) -> int:
    """One update per minibatch: ``ceil(n_fit / batch_size) * epochs``.

    A small whole number, so it is checked by this method, not by a digest. ``n_fit`` is
    recomputed here from the size of the training split the kernel saw (60,000 full, 6,000
    fast; in grading the full split lacks the grader's private hold-out, see
    ``grader.data.holdout``) minus the 20 % validation part; the exported ``N_FIT`` is not
    trusted. ``batch_size`` and ``epochs`` are the lesson's locked constants ``BATCH_SIZE``
    and ``SGD_EPOCHS`` (the same values the training cell used).
    """
    from helpers.data import load_dataset

    batch = _positive_int(batch_size, "BATCH_SIZE")
    n_epochs = _positive_int(epochs, "SGD_EPOCHS")
    (x_train, _), _ = load_dataset(ctx.dataset or "fashion_mnist", fast=ctx.mode == "fast",
                                   data_dir=ctx.kernel_data_dir())
    return math.ceil(fitted_samples(len(x_train)) / batch) * n_epochs


def lr_histories_values(ctx, lr_histories) -> dict[float, dict[str, list[float]]]:
    """Exercise 3.5's histories by rate, once the 1e-6 run's loss stayed flat."""
    found = keyed(lr_histories, "lr_histories", LEARNING_RATES)
    epochs = LR_EPOCHS[ctx.mode]
    curves = {lr: history(found[lr], f"lr_histories[{lr:g}]", epochs=epochs,
                          metrics=("loss", "val_accuracy")) for lr in LEARNING_RATES}
    tiny = curves[1e-6]["loss"]
    change = abs(tiny[-1] - tiny[0]) / max(abs(tiny[0]), 1e-12)
    if not math.isfinite(change) or change > FLAT_LOSS_CHANGE:
        raise CheckFailed(
            f"with learning rate 1e-06 the training loss moved by {change:.1%} over {epochs}"
            " epochs; steps that small barely change the weights, so the loss stays almost"
            " flat. Train a fresh make_mlp() for every rate and store what fit_model returns"
        )
    return curves


@verdict("lesson03_lr_histories")
def lr_histories(ctx, lr_histories) -> str:
    """Exercise 3.5 in the kernel: a history per rate, the 1e-6 loss flat."""
    lr_histories_values(ctx, lr_histories)
    return f"{len(LEARNING_RATES)} histories of {LR_EPOCHS[ctx.mode]} epochs"


def _sweep_row(row: Any, index: int) -> dict[str, Any]:
    where = f"sweep_results[{index}]"
    if not isinstance(row, dict):
        raise CheckFailed(f"{where} should be a dict, found {type(row).__name__}")
    needed = ("name", "hidden", "activation", "batch_size", "optimizer", "learning_rate",
              "val_accuracy", "seconds_per_epoch")
    missing = [key for key in needed if key not in row]
    if missing:
        raise CheckFailed(f"{where} has no {', '.join(map(repr, missing))}: each row records the"
                          f" configuration ({', '.join(needed[:6])}) and its results")
    hidden = row["hidden"]
    if (not isinstance(hidden, (list, tuple)) or not 1 <= len(hidden) <= MAX_LAYERS
            or not all(isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= MAX_UNITS
                       for u in hidden)):
        raise CheckFailed(f"{where}['hidden'] should be a list of 1 to {MAX_LAYERS} layer sizes"
                          f" (whole numbers up to {MAX_UNITS}), found {hidden!r}")
    if row["activation"] not in ACTIVATIONS:
        raise CheckFailed(f"{where}['activation'] should be one of {', '.join(ACTIVATIONS)},"
                          f" found {row['activation']!r}")
    if row["optimizer"] not in OPTIMIZERS:
        raise CheckFailed(f"{where}['optimizer'] should be one of {', '.join(OPTIMIZERS)},"
                          f" found {row['optimizer']!r}")
    batch = row["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or not MIN_BATCH <= batch <= 4096:
        raise CheckFailed(f"{where}['batch_size'] should be a whole number from {MIN_BATCH}"
                          f" to 4096, found {batch!r}")
    return {"name": str(row["name"]), "hidden": [int(u) for u in hidden],
            "activation": row["activation"], "batch_size": batch, "optimizer": row["optimizer"],
            "learning_rate": positive(row["learning_rate"], f"{where}['learning_rate']",
                                      upper=10.0),
            "val_accuracy": fraction(row["val_accuracy"], f"{where}['val_accuracy']"),
            "seconds_per_epoch": positive(row["seconds_per_epoch"],
                                          f"{where}['seconds_per_epoch']", upper=3600)}


def sweep_rows(sweep_results) -> list[dict[str, Any]]:
    """Exercise 3.8's table, each row checked, with at least :data:`MIN_CONFIGS` configurations."""
    if not isinstance(sweep_results, list):
        raise CheckFailed(f"`sweep_results` should be a list of dicts, found"
                          f" {type(sweep_results).__name__}")
    rows = [_sweep_row(row, i) for i, row in enumerate(sweep_results)]
    configs = {(tuple(r["hidden"]), r["activation"], r["batch_size"], r["optimizer"],
                r["learning_rate"]) for r in rows}
    if len(configs) < MIN_CONFIGS:
        raise CheckFailed(f"the table should hold at least {MIN_CONFIGS} different"
                          f" configurations, found {len(configs)}")
    return rows


@verdict("lesson03_sweep_results")
def sweep_results(ctx, sweep_results) -> str:
    """Exercise 3.8 in the kernel: every row complete and in range, enough configurations."""
    return f"{len(sweep_rows(sweep_results))} configurations"


@verdict("lesson03_schedule")
def schedule(ctx, function) -> str:
    """Exercise 3.8's ``schedule`` on the inputs of ``digests.json``, against their digests."""
    if not callable(function):
        raise CheckFailed(f"expected `schedule` to be a function, found {type(function).__name__}")
    cases = digests.stored("03.schedule")["inputs"]
    for index, inputs in enumerate(cases):
        call = f"schedule(epoch={inputs['epoch']}, lr={inputs['lr']:g})"
        try:
            value = function(**inputs)
        except Exception as exc:  # noqa: BLE001 - the student's function raised: that is the finding
            raise CheckFailed(f"{call} raised {type(exc).__name__}: {exc}") from None
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError("a text is not a learning rate")
            digests.binned(value)
        except (TypeError, ValueError, digests.answers.NotAnAnswer):
            raise CheckFailed(f"{call} should return a single number (the new learning rate),"
                              f" got {type(value).__name__}") from None
        if not digests.agrees("03.schedule", index, value):
            raise CheckFailed(f"{call} returned {float(value)!r}, which is not right; hint: keep"
                              " `lr` while `epoch` < LR_SWITCH_EPOCH, and return `lr * LR_DECAY`"
                              " from that epoch on (the epoch count starts at 0)")
    return f"`schedule` gives the right learning rate on {len(cases)} (epoch, lr) inputs"


@verdict("lesson03_lr_preview")
def lr_preview(ctx) -> digests.Digested:
    """The preview's rates, known only by their digests."""
    return digests.Digested("03.lr_preview")
