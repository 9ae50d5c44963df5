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
submission (:func:`forget`).

Re-runs of what the student chose (architectures, the activation re-runs of the dropout rate
the student found best) need the student's values. A check whose rubric entry names a cell
(``ahead_after``) has the objects it needs exported once more right after that cell ran (the
*early export*, :func:`grader.submission.pipeline.execute`), and the warm scorer runs that
plan (``needs``) on those values while the rest of the notebook runs. The check still reads
the final export: a value changed after the early export only means the result kept ahead
is not asked for (keys hold the re-run's own arguments, never the student's claim).

A timing can run ahead too (lesson 01's batch sizes, lesson 03's table rows), but a
timing measured while a kernel runs beside it is slower than one measured after, and the
student's kernel can make its wall seconds as slow as it likes (busy processes). Such a
result is marked (:meth:`grader.checks.experiments.Timing.taken_beside`) and agrees only
within bounds the kernel cannot widen (its CPU seconds,
:func:`grader.checks.experiments.rerun_timing`); when it disagrees the check times again
after the kernel, as if nothing had run ahead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.checks.context import Context

RerunFn = Callable[[Context, Any, int], Any]


@dataclass(frozen=True)
class Plan:
    """The re-runs a check will ask for: ``func(ctx, arg(option), seed)`` for the options
    :func:`planned` chooses. ``choice(ctx, *values)`` returns ``options``, ``count``,
    ``salt`` and optionally ``arg`` (option -> the function's argument, default the option
    itself); ``values`` are the student's objects named in ``needs`` (none: a plan the
    lesson fixes, run when the kernel starts)."""

    func: RerunFn
    choice: Callable[..., dict]
    needs: tuple[str, ...] = ()

    def reruns(self, ctx: Context, objects: Mapping[str, Any] | None = None
               ) -> list[tuple[RerunFn, Any, int]]:
        values = [(objects or {})[name] for name in self.needs]
        return planned(ctx, self.func, **self.choice(ctx, *values))


_DONE: dict[tuple, Any] = {}
PLANS: dict[str, Plan] = {}
"""Reference name -> the re-runs its check will ask for."""


def _key(func: Callable, ctx: Context, arg: Any, seed: int) -> tuple:
    return (func.__module__, func.__qualname__, ctx.choice_key, ctx.mode, ctx.data_dir,
            ctx.kernel_data_dir(), repr(arg), int(seed))


def ahead(func: RerunFn) -> RerunFn:
    """Mark ``func(ctx, arg, seed)`` (an accuracy, a :class:`~grader.checks.experiments.Timing`
    or a tuple of them) as a re-run that may be done ahead: a call returns the result
    :func:`run_ahead` computed for the same arguments, if any."""
    @functools.wraps(func)
    def wrapper(ctx: Context, arg: Any, seed: int) -> Any:
        key = _key(func, ctx, arg, seed)
        if key in _DONE:
            return _DONE.pop(key)
        return wrapper.compute(ctx, arg, seed)  # type: ignore[attr-defined]

    wrapper.compute = func  # type: ignore[attr-defined]
    return wrapper


def plan(reference: str, func: RerunFn, choice: Callable[..., dict],
         needs: Sequence[str] = ()) -> None:
    """Register the plan of the check ``reference`` (see :class:`Plan`): ``choice`` is the
    same function of the context (and of the student's ``needs``) the check uses to pick its
    re-runs."""
    PLANS[reference] = Plan(func, choice, tuple(needs))


def planned(ctx: Context, func: RerunFn, *, options: Sequence[Any], count: int,
            salt: str, arg: Callable[[Any], Any] | None = None, first: Sequence[Any] = (),
            salt_by_position: bool = False) -> list[tuple[RerunFn, Any, int]]:
    """The re-runs :func:`grader.checks.experiments.confirm` makes first for these ``first``,
    ``options``, ``count``, ``salt`` and ``salt_by_position`` (a disagreement's second seed
    is not planned): ``(func, arg(option), seed)``."""
    from grader.checks.experiments import choose_many, salt_label, seed_for

    chosen = [*first, *choose_many(ctx, list(options), salt, count)]
    return [(func, option if arg is None else arg(option),
             seed_for(ctx, f"{salt}|{index if salt_by_position else salt_label(option)}"))
            for index, option in enumerate(chosen)]


def run_ahead(ctx: Context, references: Sequence[str],
              objects: Mapping[str, Any] | None = None) -> int:
    """Run the planned re-runs of ``references`` now and keep their results; returns how many.

    Without ``objects``: the plans the lesson fixes. With ``objects`` (the early export's
    values): the plans that need them, when all they need is there. A plan the values do not
    fit (the check would fail them) is skipped. Only where the grader scores
    (``ctx.verify``): a student's self-check never re-runs. The lessons' plans register when
    :mod:`grader.checks.references` is imported."""
    done = 0
    if not ctx.verify:
        return done
    for name in references:
        found = PLANS.get(name)
        if found is None or bool(found.needs) != (objects is not None):
            continue
        if not all(need in objects for need in found.needs or ()):  # type: ignore[operator]
            continue
        try:
            reruns = found.reruns(ctx, objects)
        except Exception:  # noqa: BLE001 - values the check refuses: nothing to run ahead
            continue
        for func, arg, seed in reruns:
            key = _key(func, ctx, arg, seed)
            if key not in _DONE:
                _DONE[key] = _beside(func.compute(ctx, arg, seed))  # type: ignore[attr-defined]
                done += 1
    return done


def _beside(result: Any) -> Any:
    """A result computed while the kernel runs, with every timing in it marked so."""
    from grader.checks.experiments import Timing

    if isinstance(result, Timing):
        return result.taken_beside()
    if isinstance(result, tuple):
        return tuple(_beside(part) for part in result)
    return float(result)


def forget() -> None:
    """Drop every result done ahead (after each submission)."""
    _DONE.clear()


def waiting() -> int:
    """How many results done ahead no check has asked for yet."""
    return len(_DONE)
