"""References for lesson 02 (values and function cases the grader computes itself)."""

from __future__ import annotations

import numpy as np

from grader.references import reference


@reference("lesson02_first_label_one_hot")
def first_label_one_hot(ctx) -> list[float]:
    """The one-hot row of the first MNIST training label in this mode's training split.

    In full mode the first label is 5, so the row is ``[0, 0, 0, 0, 0, 1, 0, 0, 0, 0]``;
    fast mode keeps a stratified subset whose first image may be another digit, so the
    grader recomputes the row from the same data the notebook loaded (in grading, the
    kernel copy without the private hold-out, see :mod:`grader.holdout`).
    """
    from helpers.data import load_dataset

    (_, y_train), _ = load_dataset(ctx.dataset or "mnist", fast=ctx.mode == "fast",
                                   data_dir=ctx.kernel_data_dir())
    row = np.zeros(10, dtype=float)
    row[int(np.asarray(y_train).reshape(-1)[0])] = 1.0
    return row.tolist()
