"""The reference registry (:data:`REFERENCES`, :func:`reference`, :class:`FunctionCase`) and
the generic references. Apart from the package ``__init__`` (which imports the lessons) so a
lesson module can register without importing the package that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

REFERENCES: dict[str, Any] = {}


def reference(name: str) -> Callable:
    """Register a value reference or a :class:`FunctionCase` under ``name``."""

    def register(obj):
        if name in REFERENCES:
            raise ValueError(f"reference {name!r} is registered twice")
        REFERENCES[name] = obj
        return obj

    return register


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


@reference("model_accuracy")
def _model_accuracy(ctx, model) -> float:
    """Accuracy of the exported ``model`` on this mode's test split."""
    from grader.checks.context import model_accuracy, require_model

    return model_accuracy(require_model(model, "model"), ctx)
