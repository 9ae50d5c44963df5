"""References the grader computes itself: expected values and function test cases.

A rubric ``value`` check with ``reference = "name"`` calls ``REFERENCES[name](ctx, *objects)``
(the objects after the subject, in rubric order) to get the expected value. A ``function`` check names a
:class:`FunctionCase`: the grader generates inputs, the student's function runs on them in
the kernel, and the output is compared here with the reference implementation's.

Generic references live in this file; lesson-specific ones in ``lesson0N.py`` beside it,
registered with :func:`reference`.
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
    from grader.checks import _require_model, model_accuracy

    return model_accuracy(_require_model(model, "model"), ctx)


# Lesson-specific references register themselves on import.
from grader.references import lesson01, lesson02, lesson03, lesson04  # noqa: E402,F401
