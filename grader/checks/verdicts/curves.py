"""Verdicts of ``figure`` checks shared by the lessons: learning curves drawn by the student.

A learning-curve plot passes when one axes holds two lines whose y values equal a training
series of the history and its validation twin (``accuracy`` and ``val_accuracy``, or
``loss`` and ``val_loss``) within :data:`CURVE_TOLERANCE`, whose x values are the epochs
(1, 2, ... or 0, 1, ...), and a legend with an entry for each. The history comes from the
lesson's own training cell, exported by the grader; messages never print its values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.checks.context import CheckFailed
from grader.checks.figures import FigureData, LineData
from grader.checks.verdicts.registry import verdict

CURVE_TOLERANCE = 1e-6
CURVE_PAIRS = (("accuracy", "val_accuracy"), ("loss", "val_loss"))


def history_series(history: Any, name: str) -> dict[str, np.ndarray]:
    """A Keras ``History`` or its ``.history`` dict as float arrays (one value per epoch)."""
    raw = getattr(history, "history", history)
    if not isinstance(raw, dict) or not raw:
        raise CheckFailed(f"`{name}` should be the training history (a Keras History or its"
                          " .history dict): run the training cell again")
    series = {}
    for key, values in raw.items():
        try:
            array = np.asarray(values, dtype=float).ravel()
        except (TypeError, ValueError):
            continue
        if isinstance(key, str) and array.size and np.all(np.isfinite(array)):
            series[key] = array
    return series


def _epochs_match(x: np.ndarray, n: int) -> bool:
    return len(x) == n and (np.array_equal(x, np.arange(1, n + 1))
                            or np.array_equal(x, np.arange(n)))


def _matches(line: LineData, values: np.ndarray) -> bool:
    return (len(line.y) == len(values) and bool(np.all(np.isfinite(line.y)))
            and bool(np.allclose(line.y, values, atol=CURVE_TOLERANCE, rtol=0)))


@verdict("history_curves")
def history_curves(ctx, figure: FigureData, history: Any, name: str = "history") -> str:
    """The figure shows a training curve and its validation twin from ``history``."""
    series = history_series(history, name)
    pairs = [(k, v) for k, v in CURVE_PAIRS if k in series and v in series]
    if not pairs:
        raise CheckFailed(f"`{name}` holds no training and validation accuracy or loss: run the"
                          " lesson's training cell again")
    n_epochs = len(series[pairs[0][0]])
    lines = figure.lines
    found: dict[str, tuple[int, LineData]] = {}
    for key in {k for pair in pairs for k in pair}:
        for axes, line in lines:
            if _matches(line, series[key]):
                found.setdefault(key, (axes, line))
    wanted = " or ".join(f"`{k}` and `{v}`" for k, v in pairs)
    if not found:
        lengths = sorted({len(line.y) for _, line in lines})
        sizes = (f"; your lines have {', '.join(map(str, lengths[:5]))} points"
                 if lengths and n_epochs not in lengths else "")
        raise CheckFailed(
            f"none of the {len(lines)} lines shows a series of `{name}` (expected the values of"
            f" {wanted}, one per epoch, {n_epochs} epochs, within {CURVE_TOLERANCE:g})"
            f"{sizes}: plot the numbers the history holds, not other ones")
    complete = [(k, v) for k, v in pairs if k in found and v in found]
    if not complete:
        have = sorted(found)
        missing = [v if k in found else k for k, v in pairs if k in found or v in found]
        raise CheckFailed(f"found the curve of {', '.join(f'`{h}`' for h in have)} but none with"
                          f" the values of {', '.join(f'`{m}`' for m in missing)}: draw the"
                          " training curve and its validation curve together")
    for train, val in complete:
        (axes_t, line_t), (axes_v, line_v) = found[train], found[val]
        if axes_t != axes_v:
            continue
        for key, line in ((train, line_t), (val, line_v)):
            if not _epochs_match(line.x, n_epochs):
                raise CheckFailed(f"the `{key}` curve has the right values but its x positions"
                                  f" are not the epoch numbers (expected 1 to {n_epochs}, or 0"
                                  f" to {n_epochs - 1}, one per epoch)")
        legend = figure.axes[axes_t].legend
        labelled = [t for t in legend if t.strip()]
        if len(labelled) < 2:
            raise CheckFailed(f"the axes with the `{train}` and `{val}` curves has"
                              f" {len(labelled)} legend entr{'y' if len(labelled) == 1 else 'ies'};"
                              " expected a legend naming both curves (label= on each line,"
                              " then ax.legend())")
        return (f"the `{train}` and `{val}` curves of `{name}` over {n_epochs} epochs, with"
                " axis labels and a legend")
    train, val = complete[0]
    raise CheckFailed(f"the `{train}` and `{val}` curves are on different axes: draw them on"
                      " the same axes so they can be compared")


def _named(name: str):
    """A ``history_curves`` registered for a lesson, naming its history in messages."""

    def curves(ctx, figure: FigureData, history: Any) -> str:
        return history_curves(ctx, figure, history, name=name)

    return curves


verdict("lesson01_first_curves")(_named("history_first"))
verdict("lesson02_mnist_curves")(_named("history"))
verdict("lesson03_sgd_curves")(_named("sgd_history"))
