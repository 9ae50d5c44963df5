"""In-kernel verdicts of lesson 02 (Exercise 2.6): the confidence statistics and the epochs
table recomputed from the student's own ``fashion_model``, and the shape of the architecture
table."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.checks.context import CheckFailed
from grader.checks.verdicts.registry import verdict
from grader.checks.verdicts.shapes import fraction, keyed

#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
FASHION_EPOCHS = {"full": 15, "fast": 3}
CONFIDENCE_KEYS = ("mean_top_probability", "share_at_least_0.9", "accuracy_at_least_0.9",
                   "accuracy_below_0.9")
#: How far the confidence statistics and the last-epoch accuracy (measured by the student on
#: the validation split) may be from the same figures measured on the test split with the
#: student's model (bench/results/rerun_tolerance.md).
STATISTIC_TOLERANCE = {"full": 0.05, "fast": 0.07}
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
    highest = np.max(probs, axis=1)
    hit = np.argmax(probs, axis=1) == labels
    confident = highest >= 0.9

    def share(flags: np.ndarray) -> float:
        return float(np.mean(flags)) if flags.size else float("nan")

    return {"mean_top_probability": float(np.mean(highest)),
            "share_at_least_0.9": share(confident),
            "accuracy_at_least_0.9": share(hit[confident]),
            "accuracy_below_0.9": share(hit[~confident])}


@verdict("lesson02_fashion_confidence")
def fashion_confidence(ctx, fashion_confidence, fashion_model) -> str:
    """Question 1: the model's confidence on the validation images, and whether it is earned.

    The four statistics must be possible together, and each within
    :data:`STATISTIC_TOLERANCE` of the same statistic of ``fashion_model`` on the test images.
    """
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
    return ("four confidence statistics, consistent with your model's predictions of the test"
            " images")


@verdict("lesson02_fashion_epochs")
def fashion_epochs(ctx, fashion_epochs_result, fashion_model) -> str:
    """Question 2: validation accuracy after the first, middle and last epochs, best epoch;
    the last epoch within :data:`STATISTIC_TOLERANCE` of the model's test accuracy."""
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
    return (f"epochs 1 to {epochs} and the best epoch ({best}); the last epoch matches your"
            f" model's test accuracy ({test_accuracy:.3f})")


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


@verdict("lesson02_fashion_architectures")
def fashion_architectures(ctx, fashion_architectures) -> str:
    """Question 3 in the kernel: at least three other architectures, each an accuracy."""
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
    return f"{len(fashion_architectures)} architectures"
