"""Re-runs done ahead: a warm scoring process runs them while the student's kernel still runs.

Some experiment checks re-run configurations the lesson fixes (learning rates, dropout
rates, optimizers), not ones the student chose. Which of them a submission gets re-run
depends only on the grader's private per-submission key (:func:`grader.checks.experiments.choose_many`),
and so does each re-run's seed (:func:`grader.checks.experiments.seed_for`): nothing of the
student's is needed to run them. A warm scoring process is idle while the kernel runs, so
the batch asks it to run them then (:func:`run_ahead`), and the check, once the objects are
exported, finds each result it asks for already there.

What stays the same: the same configurations are chosen, with the same seeds, on the same
data, by the same function, so a result is the one the check would have computed itself.
A result is kept under the function, the option, the seed and the context's private key,
mode and data folders; a check asking for anything else computes it as before (a plan that
drifted from its check costs time, never a wrong result). Results are dropped after every
submission (:func:`forget`). Only accuracy re-runs run ahead: a timing measured while a
kernel runs beside it would be slower than one measured after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from grader.checks.context import Context

RerunFn = Callable[[Context, Any, int], float]

_DONE: dict[tuple, float] = {}
PLANS: dict[str, Callable[[Context], list[tuple[RerunFn, Any, int]]]] = {}
"""Reference name -> the re-runs its check will ask for (function, option, seed)."""


def _key(func: Callable, ctx: Context, option: Any, seed: int) -> tuple:
    return (func.__module__, func.__qualname__, ctx.choice_key, ctx.mode, ctx.data_dir,
            ctx.kernel_data_dir(), repr(option), int(seed))


def ahead(func: RerunFn) -> RerunFn:
    """Mark ``func(ctx, option, seed) -> accuracy`` as a re-run that may be done ahead: a call
    returns the result :func:`run_ahead` computed for the same arguments, if any."""
    @functools.wraps(func)
    def wrapper(ctx: Context, option: Any, seed: int) -> float:
        key = _key(func, ctx, option, seed)
        if key in _DONE:
            return _DONE.pop(key)
        return wrapper.compute(ctx, option, seed)  # type: ignore[attr-defined]

    wrapper.compute = func  # type: ignore[attr-defined]
    return wrapper


def plan(reference: str, func: RerunFn, choice: Callable[[Context], dict]) -> None:
    """Register the plan of the check ``reference``: the re-runs of ``func`` that
    :func:`planned` chooses with ``choice(ctx)`` (``options``, ``count``, ``salt``), the same
    function of the context the check passes to ``confirm_accuracy``."""
    PLANS[reference] = lambda ctx: planned(ctx, func, **choice(ctx))


def planned(ctx: Context, func: RerunFn, *, options: Sequence[Any], count: int,
            salt: str) -> list[tuple[RerunFn, Any, int]]:
    """The re-runs :func:`grader.checks.experiments.confirm_accuracy` makes first for these
    ``options``, ``count`` and ``salt`` (a disagreement's second seed is not planned)."""
    from grader.checks.experiments import choose_many, salt_label, seed_for

    return [(func, option, seed_for(ctx, f"{salt}|{salt_label(option)}"))
            for option in choose_many(ctx, list(options), salt, count)]


def run_ahead(ctx: Context, references: Sequence[str]) -> int:
    """Run the planned re-runs of ``references`` now and keep their results; returns how many.

    Only where the grader scores (``ctx.verify``): a student's self-check never re-runs.
    The lessons' plans register when :mod:`grader.checks.references` is imported."""
    done = 0
    if not ctx.verify:
        return done
    for name in references:
        make = PLANS.get(name)
        for func, option, seed in make(ctx) if make is not None else []:
            key = _key(func, ctx, option, seed)
            if key not in _DONE:
                _DONE[key] = float(func.compute(ctx, option, seed))  # type: ignore[attr-defined]
                done += 1
    return done


def forget() -> None:
    """Drop every result done ahead (after each submission)."""
    _DONE.clear()


def waiting() -> int:
    """How many results done ahead no check has asked for yet."""
    return len(_DONE)
