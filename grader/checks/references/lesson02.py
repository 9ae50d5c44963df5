"""References for lesson 02 (values and function cases the grader computes itself).

Exercise 2.1 asks for the one-hot row of a label stated in the exercise, so its answer is the
same in every data mode and the rubric stores its digest (``answer_sha256``); the references
here check the experiments of Exercise 2.6.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.checks.context import CheckFailed
from grader.checks.experiments import (
    confirm_accuracy,
    fraction,
    keyed,
    train_and_validate,
)
from grader.checks.references.registry import reference
from grader.checks.speculation import ahead, plan

# ----------------------------------------------------------------------------------------
# Experiments of Exercise 2.6: shape, consistency, and a check against the model itself
# ----------------------------------------------------------------------------------------

#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
BATCH_SIZE = 128
FASHION_EPOCHS = {"full": 15, "fast": 3}
ARCH_EPOCHS = {"full": 5, "fast": 1}
CONFIDENCE_KEYS = ("mean_top_probability", "share_at_least_0.9", "accuracy_at_least_0.9",
                   "accuracy_below_0.9")
#: How far the confidence statistics and the last-epoch accuracy (measured by the student on
#: the validation split) may be from the same figures the grader measures on the test split
#: with the exported model, and how far an architecture's re-run may land
#: (bench/results/rerun_tolerance.md).
STATISTIC_TOLERANCE = {"full": 0.05, "fast": 0.07}
ARCH_TOLERANCE = {"full": 0.04, "fast": 0.08}
#: How many of the reported architectures the grader re-runs, chosen among all of them.
ARCH_RERUNS = {"full": 1, "fast": 2}
#: Architectures the grader is willing to re-run (hidden layers, units per layer).
MAX_ARCH_LAYERS = 6
MAX_ARCH_UNITS = 2048


def _fashion_test(ctx, model):
    from grader.checks.context import predict_scores, prepare_inputs, require_model

    x_raw, y = ctx.raw_test_split("fashion_mnist")
    model = require_model(model, "fashion_model")
    probs = predict_scores(model, prepare_inputs(x_raw, model, "flat"))
    if probs.shape != (len(y), 10) or not np.all(np.isfinite(probs)):
        raise CheckFailed("`fashion_model` should output 10 finite probabilities per image")
    return probs, y


def confidence_statistics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The four numbers of Exercise 2.6, question 1, for predictions ``probs``."""
    top = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    sure = top >= 0.9
    return {"mean_top_probability": float(top.mean()), "share_at_least_0.9": float(sure.mean()),
            "accuracy_at_least_0.9": float(right[sure].mean()) if sure.any() else float("nan"),
            "accuracy_below_0.9": float(right[~sure].mean()) if (~sure).any() else float("nan")}


@reference("lesson02_fashion_confidence")
def fashion_confidence(ctx, fashion_confidence, fashion_model) -> str:
    """Question 1: the model's confidence on the validation images, and whether it is earned."""
    found = keyed(fashion_confidence, "fashion_confidence", CONFIDENCE_KEYS)
    values = {}
    for key in CONFIDENCE_KEYS:
        value = found[key]
        if key.startswith("accuracy") and isinstance(value, float) and math.isnan(value):
            values[key] = value  # no image on that side of 0.9: nan is the honest answer
            continue
        values[key] = fraction(value, f"fashion_confidence[{key!r}]")
    share = values["share_at_least_0.9"]
    lowest = 0.9 * share + 0.1 * (1 - share)
    if values["mean_top_probability"] < lowest - 1e-6:
        raise CheckFailed(
            f"a mean top probability of {values['mean_top_probability']:.3f} is impossible when"
            f" {share:.1%} of the images have a top probability of at least 0.9 (and every top"
            " probability of 10 classes is at least 0.1): compute both from the same predictions"
        )
    message = "four confidence statistics"
    if not ctx.verify:
        return message
    probs, labels = _fashion_test(ctx, fashion_model)
    mine = confidence_statistics(probs, labels)
    tolerance = STATISTIC_TOLERANCE[ctx.mode]
    for key in CONFIDENCE_KEYS:
        if math.isnan(values[key]) or math.isnan(mine[key]):
            continue
        if abs(values[key] - mine[key]) > tolerance:
            raise CheckFailed(
                f"your fashion_model gives {key} = {mine[key]:.3f} on the test images, but"
                f" fashion_confidence says {values[key]:.3f} for the validation images: more"
                f" than the {tolerance:g} the two samples explain. Compute the statistics from"
                " fashion_model.predict(fx_val)"
            )
    return message + ", consistent with the grader's measurement of your model on test images"


@reference("lesson02_fashion_epochs")
def fashion_epochs(ctx, fashion_epochs_result, fashion_model) -> str:
    """Question 2: validation accuracy after the first, middle and last epochs, best epoch."""
    if not isinstance(fashion_epochs_result, dict):
        raise CheckFailed("`fashion_epochs_result` should be a dict, found"
                          f" {type(fashion_epochs_result).__name__}")
    epochs = FASHION_EPOCHS[ctx.mode]
    last = f"epoch_{epochs}"
    for key in ("epoch_1", last, "best_epoch"):
        if key not in fashion_epochs_result:
            raise CheckFailed(f"`fashion_epochs_result` has no {key!r} entry (the model trained"
                              f" {epochs} epochs: epoch_1, the middle epoch, {last}, best_epoch)")
    accuracies = {}
    for key, value in fashion_epochs_result.items():
        if key == "best_epoch":
            continue
        k = key.removeprefix("epoch_") if isinstance(key, str) else ""
        if not (k.isdigit() and 1 <= int(k) <= epochs):
            raise CheckFailed(f"unexpected key {key!r} in `fashion_epochs_result`: use epoch_<n>"
                              f" with n from 1 to {epochs}, and best_epoch")
        accuracies[int(k)] = fraction(value, f"fashion_epochs_result[{key!r}]")
    best = fashion_epochs_result["best_epoch"]
    if isinstance(best, bool) or not isinstance(best, int) or not 1 <= best <= epochs:
        raise CheckFailed(f"best_epoch should be a whole epoch number from 1 to {epochs},"
                          f" found {best!r}")
    if best in accuracies and max(accuracies.values()) > accuracies[best] + 1e-9:
        raise CheckFailed(f"best_epoch = {best}, but another reported epoch has a higher"
                          " validation accuracy")
    message = f"epochs 1 to {epochs} and the best epoch ({best})"
    if not ctx.verify:
        return message
    probs, labels = _fashion_test(ctx, fashion_model)
    test_accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    tolerance = STATISTIC_TOLERANCE[ctx.mode]
    if abs(test_accuracy - accuracies[epochs]) > tolerance:
        raise CheckFailed(
            f"your fashion_model, as trained, reaches {test_accuracy:.3f} on the test images;"
            f" fashion_epochs_result[{last!r}] = {accuracies[epochs]:.3f} is further from it"
            f" than the {tolerance:g} the two samples explain. Read the values from"
            " fashion_history.history['val_accuracy']"
        )
    return message + f"; the last epoch matches your model's test accuracy ({test_accuracy:.3f})"


def parse_architecture(key: Any) -> list[int]:
    """``"256-128-64"`` -> ``[256, 128, 64]`` (hidden sizes joined by "-")."""
    parts = str(key).strip().split("-")
    if not all(p.strip().isdigit() for p in parts):
        raise CheckFailed(f"the key {key!r} of `fashion_architectures` should be the hidden sizes"
                          ' joined by "-", e.g. "64" or "256-128-64-32"')
    sizes = [int(p) for p in parts]
    if not 1 <= len(sizes) <= MAX_ARCH_LAYERS or not all(1 <= s <= MAX_ARCH_UNITS for s in sizes):
        raise CheckFailed(f"the architecture {key!r} is outside what the grader re-runs: 1 to"
                          f" {MAX_ARCH_LAYERS} hidden layers of 1 to {MAX_ARCH_UNITS} units")
    return sizes


@reference("lesson02_fashion_architectures")
def fashion_architectures(ctx, fashion_architectures) -> str:
    """Question 3: best validation accuracy of at least three other architectures."""
    choice = _arch_choice(ctx, fashion_architectures)
    message = f"{len(fashion_architectures)} architectures"
    return confirm_accuracy(
        ctx, message, **choice, describe=lambda key: f"architecture {key}",
        reported={key: float(value) for key, value in fashion_architectures.items()},
        tolerance=ARCH_TOLERANCE[ctx.mode],
        run=lambda key, seed: rerun_architecture_key(ctx, key, seed),
        advice="Store the best validation accuracy of your own run of each architecture")


def _arch_choice(ctx, fashion_architectures) -> dict:
    """Question 3's shape checks, then among which keys, how many and under which salt its
    re-runs are chosen (the check and the plan run on the early export share it)."""
    if not isinstance(fashion_architectures, dict):
        raise CheckFailed("`fashion_architectures` should be a dict, found"
                          f" {type(fashion_architectures).__name__}")
    sizes = {key: tuple(parse_architecture(key)) for key in fashion_architectures}
    others = {s for s in sizes.values() if s != (256, 128)}
    if len(others) < 3:
        raise CheckFailed(f"train at least three architectures other than 256-128, found"
                          f" {len(others)}")
    for key, value in fashion_architectures.items():
        fraction(value, f"fashion_architectures[{key!r}]")
    return {"options": sorted(fashion_architectures, key=str), "count": ARCH_RERUNS[ctx.mode],
            "salt": "fashion_architectures"}


@ahead
def rerun_architecture_key(ctx, key: str, seed: int) -> float:
    """:func:`rerun_architecture` of the architecture a key of the table names."""
    return rerun_architecture(ctx, parse_architecture(key), seed)


plan("lesson02_fashion_architectures", rerun_architecture_key, _arch_choice,
     needs=("fashion_architectures",))


def rerun_architecture(ctx, hidden: list[int], seed: int) -> float:
    """The grader's run of one architecture: best validation accuracy after ARCH_EPOCHS."""
    import keras

    from helpers.data import flatten, scale, train_val_split

    images, labels = ctx.raw_train_split("fashion_mnist")
    x_fit, x_val, y_fit, y_val = train_val_split(scale(flatten(images)), labels,
                                                 val_fraction=0.2, seed=seed % 2**31)

    def build():
        layers = [keras.Input(shape=(784,))]
        layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
        layers.append(keras.layers.Dense(10, activation="softmax"))
        return keras.Sequential(layers)

    run, _ = train_and_validate(build, x_fit, y_fit, x_val, y_val, epochs=ARCH_EPOCHS[ctx.mode],
                                batch_size=BATCH_SIZE, seed=seed)
    return max(run["val_accuracy"])


def RERUN_CASES():  # noqa: N802 - read by bench/rerun_tolerance.py
    """Re-runs to calibrate: the solution's three architectures."""
    return [(f"lesson02 architecture {'-'.join(map(str, h))}",
             lambda c, s, h=h: rerun_architecture(c, h, s), "fashion_mnist",
             lambda m: ARCH_TOLERANCE[m]) for h in ([64], [512], [256, 128, 64, 32])]
