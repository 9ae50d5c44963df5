"""The in-kernel verdicts' registry (:data:`VERDICTS`, :func:`verdict`) and :class:`FunctionCase`.

A verdict decides a check from what the student's kernel holds: the student's own objects,
their model's predictions on the lesson's data, and the digests in ``digests.json``. It
holds no reference implementation and no answer, so the student edition ships it; the
grader's references (``grader.checks.references``, never shipped) build on the same
functions and add what only the grader may do (re-runs, its own re-implementations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def registrar(table: dict[str, Any], what: str) -> Callable[[str], Callable]:
    """A decorator factory that registers objects in ``table`` by name, each name once."""

    def register_as(name: str) -> Callable:
        def register(obj):
            if name in table:
                raise ValueError(f"{what} {name!r} is registered twice")
            table[name] = obj
            return obj

        return register

    return register_as


VERDICTS: dict[str, Any] = {}
verdict = registrar(VERDICTS, "verdict")
"""Register an in-kernel verdict (or a :class:`FunctionCase`) under the reference's name."""


@dataclass(frozen=True)
class FunctionCase:
    """How to test a student function.

    ``make_inputs(rng)`` returns keyword arguments (NumPy arrays and plain values only, so
    they can travel to the kernel as an ``.npz``); ``reference(**inputs)`` computes the
    expected output; ``compare(found, expected, inputs)`` returns ``None`` when they agree
    or a sentence saying what differs; ``describe(inputs)`` names the inputs for messages.
    """

    make_inputs: Callable[[np.random.Generator], dict[str, Any]]
    reference: Callable[..., Any]
    compare: Callable[[Any, Any, dict[str, Any]], str | None]
    describe: Callable[[dict[str, Any]], str] = lambda inputs: "the grader's inputs"


@verdict("model_accuracy")
def model_accuracy(ctx, model) -> float:
    """Accuracy of ``model`` on this mode's test split."""
    from grader.checks.context import model_accuracy as accuracy
    from grader.checks.context import require_model

    return accuracy(require_model(model, "model"), ctx)
