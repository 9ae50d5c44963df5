"""References for lesson 03 (values and function cases the grader computes itself)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.references import FunctionCase, reference

#: The lesson's scheduler constants (the notebook defines the same names in a locked cell).
LR_SWITCH_EPOCH = 10
LR_DECAY = 0.95
#: The learning-rate preview the notebook builds with the student's ``schedule``.
PREVIEW_START_LR = 0.1
PREVIEW_EPOCHS = 30
#: The lesson holds out this fraction of the training images for validation.
VAL_FRACTION = 0.2


def reference_schedule(epoch: int, lr: float) -> float:
    """Keep ``lr`` for epochs ``0 .. LR_SWITCH_EPOCH - 1``, then multiply it by 0.95 per epoch."""
    return float(lr) if int(epoch) < LR_SWITCH_EPOCH else float(lr) * LR_DECAY


def _schedule_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """One epoch after the switch (where the decay must happen) and a random rate."""
    epoch = int(rng.integers(LR_SWITCH_EPOCH, LR_SWITCH_EPOCH + 40))
    lr = float(10 ** rng.uniform(-4, -0.5))
    return {"epoch": epoch, "lr": lr}


def _compare_schedule(found: Any, expected: Any, inputs: dict[str, Any]) -> str | None:
    try:
        value = float(np.asarray(found, dtype=float).reshape(()))
    except (TypeError, ValueError):
        return f"expected a single number (the new learning rate), got {type(found).__name__}"
    if not math.isfinite(value) or not math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-12):
        return (f"schedule(epoch={inputs['epoch']}, lr={inputs['lr']:.4g}) should return"
                f" {expected:.6g} (epoch >= {LR_SWITCH_EPOCH}: lr * {LR_DECAY}), got {value:.6g}")
    return None


SCHEDULE_CASE = reference("lesson03_schedule")(FunctionCase(
    make_inputs=_schedule_inputs,
    reference=reference_schedule,
    compare=_compare_schedule,
    describe=lambda inputs: f"epoch {inputs['epoch']}, lr {inputs['lr']:.4g}",
))


@reference("lesson03_lr_preview")
def lr_preview(ctx) -> list[float]:
    """The learning rate of epochs 0 .. 29 when ``schedule`` is chained from 0.1.

    Epochs before the switch keep 0.1; from epoch 10 on each epoch is 0.95 times the last.
    """
    rates, lr = [], PREVIEW_START_LR
    for epoch in range(PREVIEW_EPOCHS):
        lr = reference_schedule(epoch, lr)
        rates.append(lr)
    return rates


def fitted_samples(n_train: int, val_fraction: float = VAL_FRACTION) -> int:
    """Training images left after the validation split (scikit-learn rounds the test part up)."""
    if n_train < 2:
        raise ValueError(f"expected at least 2 training images, got {n_train}")
    return n_train - math.ceil(val_fraction * n_train)


def _positive_int(value: Any, name: str) -> int:
    from grader.checks import CheckFailed

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"`{name}` should be a whole number, found {value!r}") from None
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise CheckFailed(f"`{name}` should be a positive whole number, found {value!r}")
    return int(number)


@reference("lesson03_weight_updates")
def weight_updates(ctx, batch_size, epochs, n_fit=None) -> int:
    """One update per minibatch: ``ceil(n_fit / batch_size) * epochs``.

    ``n_fit`` is recomputed here from the size of the training split the kernel saw (60,000
    full, 6,000 fast; in grading the full split lacks the grader's private hold-out, see
    :mod:`grader.holdout`) minus the 20 % validation part; the exported ``N_FIT`` is not
    trusted.
    ``batch_size`` and ``epochs`` are the lesson's locked constants ``BATCH_SIZE`` and
    ``SGD_EPOCHS`` (the same values the training cell used).
    """
    from helpers.data import load_dataset

    batch = _positive_int(batch_size, "BATCH_SIZE")
    n_epochs = _positive_int(epochs, "SGD_EPOCHS")
    (x_train, _), _ = load_dataset(ctx.dataset or "fashion_mnist", fast=ctx.mode == "fast",
                                   data_dir=ctx.kernel_data_dir())
    return math.ceil(fitted_samples(len(x_train)) / batch) * n_epochs
