"""The check kinds: pure functions from objects to a scored, explained result.

The same code serves two callers. In the student's notebook, :func:`grader.check` passes
the live objects for immediate feedback. In the grader process, the scorer passes objects
it loaded itself from the exported artifacts (Keras models in safe mode, plain values,
function outputs on inputs the grader generated), so nothing the student's kernel claims
decides a grade.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.checks import answers
from grader.checks.context import (  # noqa: F401 (CheckFailed, Context, model_accuracy, prepare_inputs: re-exported)
    CheckFailed,
    Context,
    all_parameters,
    dense_units,
    layer_kinds,
    model_accuracy,
    model_input_shape,
    model_output_activation,
    model_output_units,
    prepare_inputs,
    regularisation,
    require_model,
    trainable_parameters,
)
from grader.checks.figures import FigureData
from grader.checks.results import CheckResult  # noqa: F401 - re-exported (it lives with the other result types)
from grader.checks.rubric import CheckSpec
from grader.checks.verdicts.digests import Digested
from grader.checks.verdicts.registry import FunctionCase


def references() -> dict[str, Any]:
    """The grader's references; in the student edition, which has none, the in-kernel verdicts.

    The course repository and the grader always have ``grader.checks.references`` (it holds
    every verdict too, :mod:`grader.checks.verdicts`); the student edition ships only the
    verdicts, which decide every check from the student's own objects without an answer.
    """
    try:
        from grader.checks.references import REFERENCES
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("grader.checks.references"):
            raise
        from grader.checks.verdicts import VERDICTS

        return VERDICTS
    return REFERENCES


@dataclass
class FunctionOutput:
    """What a student function returned on inputs the grader generated.

    Built by the grader from the exported files; ``error`` is set when the call raised.
    """

    inputs: dict[str, Any]
    output: Any = None
    error: str | None = None


# ----------------------------------------------------------------------------------------
# The kinds
# ----------------------------------------------------------------------------------------


def _require_outline(spec: CheckSpec, model: Any) -> None:
    """The input shape, output units, output activation and regularisation a check names."""
    if spec.input_shape is not None and model_input_shape(model) != spec.input_shape:
        raise CheckFailed(f"expected input shape {spec.input_shape}, found {model_input_shape(model)}")
    if spec.output_units is not None and model_output_units(model) != spec.output_units:
        raise CheckFailed(
            f"expected {spec.output_units} output units, found {model_output_units(model)}"
        )
    if spec.output_activation is not None:
        act = model_output_activation(model)
        if act != spec.output_activation:
            raise CheckFailed(f"expected a {spec.output_activation} output, found {act}")
    if spec.regularised and not regularisation(model):
        raise CheckFailed(_with_hint(
            f"`{spec.subject}` has no L2 penalty and no dropout, so nothing regularises it: add"
            " kernel_regularizer=keras.regularizers.l2(...) to its Dense layers or Dropout"
            " layers between them", spec))


def _check_param_count(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    model = require_model(objects[spec.subject], spec.subject)
    _require_outline(spec, model)
    if spec.units is not None and tuple(dense_units(model)) != spec.units:
        raise CheckFailed(
            f"expected Dense layers with {list(spec.units)} units, found {dense_units(model)}"
        )
    count = trainable_parameters(model)
    if spec.answer_sha256 is not None:  # the count is a by-hand answer: never print it
        if not answers.matches(spec.id, count, spec.answer_sha256):
            raise CheckFailed(_with_hint(
                f"`{spec.subject}` has {count:,} trainable parameters, which is not the count"
                " of the network the exercise describes", spec))
    elif count != spec.expected:
        raise CheckFailed(f"expected {spec.expected:,} trainable parameters, found {count:,}")
    return f"{count:,} trainable parameters"


def _check_design(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    """A model designed under constraints: its outline, its layers and its parameter budget
    (every weight counts, trainable or frozen).

    Any architecture within the constraints passes; what the design achieves is graded by a
    separate ``accuracy`` check on the grader's hold-out.
    """
    model = require_model(objects[spec.subject], spec.subject)
    _require_outline(spec, model)
    names = layer_kinds(model)
    found = {pattern: sum(fnmatch.fnmatchcase(n, pattern) for n in names)
             for pattern, _ in spec.min_layers}
    for pattern, least in spec.min_layers:
        if found[pattern] < least:
            raise CheckFailed(_with_hint(
                f"`{spec.subject}` needs at least {least} layer(s) of the kind {pattern}, found"
                f" {found[pattern]} (its layers: {', '.join(names) or 'none'})", spec))
    count = all_parameters(model)
    if count > spec.max_params:
        raise CheckFailed(_with_hint(
            f"`{spec.subject}` has {count:,} parameters (trainable or not), over the budget of"
            f" {spec.max_params:,}", spec))
    shown = ", ".join(f"{n} {pattern}" for pattern, n in found.items())
    return (f"{count:,} parameters (budget {spec.max_params:,})"
            + (f", {shown} layers" if shown else ""))


def _check_accuracy(spec: CheckSpec, objects: dict, ctx: Context) -> str | tuple[str, dict]:
    if ctx.holdout is not None:
        from grader.checks.leakage import score_with_holdout

        return score_with_holdout(spec, require_model(objects[spec.subject], spec.subject), ctx)
    model = require_model(objects[spec.subject], spec.subject)
    acc = model_accuracy(model, ctx, inputs=spec.inputs, dataset=spec.dataset)
    need = spec.threshold[ctx.mode]
    if acc < need:
        raise CheckFailed(
            f"test accuracy {acc:.3f} is below the {need:g} this exercise asks for in"
            f" {ctx.mode} mode; train longer or revisit the model. The grader feeds the model"
            " the test images prepared as the lessons do, pixels / 255 (values 0 to 1): a"
            " model trained on inputs prepared otherwise (e.g. standardised) scores lower here"
        )
    return f"test accuracy {acc:.3f} (needed {need:g} in {ctx.mode} mode)"


def _same(found: Any, expected: Any, tolerance: float) -> bool:
    if isinstance(expected, (bool, np.bool_)):
        return isinstance(found, (bool, np.bool_)) and bool(found) == bool(expected)
    if isinstance(expected, (int, float, np.number)):
        try:
            value = float(found)
        except (TypeError, ValueError):
            return False
        return math.isfinite(value) and abs(value - float(expected)) <= tolerance + 1e-12
    if isinstance(expected, (list, tuple, np.ndarray)):
        try:
            a, b = np.asarray(found, dtype=float), np.asarray(expected, dtype=float)
        except (TypeError, ValueError):
            return False
        return a.shape == b.shape and bool(np.allclose(a, b, atol=tolerance, rtol=0))
    if isinstance(expected, str):
        return isinstance(found, str) and found.strip().lower() == expected.strip().lower()
    return found == expected


def show_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _with_hint(problem: str, spec: CheckSpec) -> str:
    return f"{problem}; hint: {spec.hint}" if spec.hint else problem


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _is_number(value: Any) -> bool:
    """A real number, a 0-d array or a numeric string (students sometimes type "1234")."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, (int, float, np.number, str))


def _kind_of(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "a bool"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    if _is_sequence(value):
        return "a list"
    return f"a {type(value).__name__}"


def _show_found(value: Any) -> str:
    """A student's wrong value, in full: rounding could print a number equal to the answer."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return show_value(value)


def _entries(name: str, positions: list[int]) -> str:
    shown = ", ".join(f"`{name}[{i}]`" for i in positions[:5])
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return shown + more


def _value_problem(spec: CheckSpec, found: Any, expected: Any) -> str | None:
    """What is wrong with ``found``, in words that never contain ``expected``."""
    name = spec.subject
    if isinstance(expected, (bool, np.bool_)):
        if not isinstance(found, (bool, np.bool_)):
            return f"`{name}` should be True or False, found {_kind_of(found)}"
        return None if bool(found) == bool(expected) else (
            f"`{name}` = {bool(found)} does not agree with what the grader measures")
    if _is_sequence(expected):
        if not _is_sequence(found):
            return f"`{name}` should be a list of {len(expected)} numbers, found {_kind_of(found)}"
        if len(found) != len(expected):
            return f"`{name}` should hold {len(expected)} values, found {len(found)}"
        wrong = [i for i, (f, e) in enumerate(zip(list(found), list(expected), strict=True))
                 if not _same(f, e, spec.tolerance)]
        if not wrong:
            return None
        within = f" by more than {spec.tolerance:g}" if spec.tolerance else ""
        return f"{_entries(name, wrong)} differ{'s' if len(wrong) == 1 else ''}{within}"
    if isinstance(expected, (int, float, np.number)) and not _is_number(found):
        return f"`{name}` should be a number, found {_kind_of(found)}"
    if _same(found, expected, spec.tolerance):
        return None
    if spec.tolerance:
        return (f"`{name}` = {_show_found(found)} differs from the value the grader computes by"
                f" more than {spec.tolerance:g}")
    return f"`{name}` = {_show_found(found)} is not the right value"


def _digest_problem(spec: CheckSpec, found: Any) -> str | None:
    """Compare ``found`` with the rubric's digest(s); the message never holds the answer."""
    name = spec.subject
    if isinstance(spec.answer_sha256, str):
        if answers.matches(spec.id, found, spec.answer_sha256):
            return None
        if _is_sequence(found):
            return f"`{name}` (a list of {len(found)} values) is not the right answer"
        if isinstance(found, (bool, np.bool_)):
            return f"`{name}` ({_kind_of(found)}) is not the right answer"
        return f"`{name}` = {_show_found(found)} is not the right answer"
    want = len(spec.answer_sha256)
    if not _is_sequence(found):
        return f"`{name}` should be a list of {want} values, found {_kind_of(found)}"
    if len(found) != want:
        return f"`{name}` should hold {want} values, found {len(found)}"
    wrong = [i for i, (value, answer) in enumerate(zip(list(found), spec.answer_sha256, strict=True))
             if not answers.matches(f"{spec.id}[{i}]", value, answer)]
    if not wrong:
        return None
    return f"{_entries(name, wrong)} {'is' if len(wrong) == 1 else 'are'} not right"


def _check_value(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    found = objects[spec.subject]
    if found is None or found is Ellipsis:
        raise CheckFailed(f"`{spec.subject}` is still a placeholder: compute it in the exercise")
    if spec.answer_sha256 is not None:
        problem = _digest_problem(spec, found)
    else:
        if spec.reference is not None:
            others = [objects[name] for name in spec.objects[1:]]
            expected = references()[spec.reference](ctx, *others)
        else:
            expected = spec.expected
        if isinstance(expected, Digested):
            problem = expected.problem(spec.subject, found)
        else:
            problem = _value_problem(spec, found, expected)
    if problem:
        raise CheckFailed(_with_hint(problem, spec))
    return f"`{spec.subject}` = {show_value(found)}"


def _check_function(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    case = references()[spec.reference]
    found = objects[spec.subject]
    if not isinstance(case, FunctionCase):  # a verdict on digests of fixed inputs' outputs
        return case(ctx, found)
    if isinstance(found, FunctionOutput):
        call = found
    else:
        if not callable(found):
            raise CheckFailed(f"expected `{spec.subject}` to be a function, found {type(found).__name__}")
        inputs = case.make_inputs(np.random.default_rng(0))
        try:
            call = FunctionOutput(inputs=inputs, output=found(**inputs))
        except Exception as exc:  # the student's function raised: that is the finding
            call = FunctionOutput(inputs=inputs, error=f"{type(exc).__name__}: {exc}")
    if call.error is not None:
        raise CheckFailed(f"`{spec.subject}` raised {call.error} on the test inputs")
    problem = case.compare(call.output, case.reference(**call.inputs), call.inputs)
    if problem:
        raise CheckFailed(f"`{spec.subject}`: {problem}")
    return f"`{spec.subject}` gives the expected result on {case.describe(call.inputs)}"


def require_filled(spec: CheckSpec, objects: dict) -> None:
    """Raise :class:`CheckFailed` when an object of an experiment is a placeholder or empty."""
    for name in spec.objects:
        value = objects.get(name)
        if value is None or value is Ellipsis:
            raise CheckFailed(f"`{name}` is not filled in yet: complete the exercise cell")
        if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == 0:
            raise CheckFailed(f"`{name}` is empty: run the exercise so it holds your results")


def _check_experiment(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    require_filled(spec, objects)
    message = references()[spec.reference](ctx, *(objects[name] for name in spec.objects))
    if not ctx.verify and spec.points:  # 0-point checks are feedback in the kernel only
        message += ("; when grading, the grader confirms these results itself (it re-runs some"
                    " of your configurations or measures your exported model)")
    return message


def as_figure(value: Any, name: str) -> FigureData:
    """``value`` as :class:`FigureData`: exported data as is, a live Figure or Axes described."""
    if isinstance(value, FigureData):
        return value
    if value is None or value is Ellipsis:
        raise CheckFailed(f"`{name}` is still a placeholder: draw the plot and keep its Figure")
    try:
        return FigureData.of(value)
    except TypeError:
        raise CheckFailed(f"`{name}` should be a matplotlib Figure (e.g. `fig, ax ="
                          f" plt.subplots()`, then `{name} = fig`), found"
                          f" {_kind_of(value)}") from None
    except ValueError as exc:
        raise CheckFailed(f"`{name}` cannot be read as a figure: {exc}") from None


def figure_basics(spec: CheckSpec, objects: dict) -> FigureData:
    """The figure a ``figure`` check reads, once it has plotted data and labelled axes."""
    name = spec.subject
    figure = as_figure(objects[name], name)
    drawn = [(i, ax) for i, ax in enumerate(figure.axes) if ax.has_data]
    if not drawn:
        raise CheckFailed(_with_hint(f"`{name}` has no plotted data: expected lines, an image"
                                     f" or bars, found {len(figure.axes)} empty axes", spec))
    for i, ax in drawn:
        where = f"`{name}`" if len(drawn) == 1 else f"axes {i} of `{name}`"
        unlabelled = [axis for axis, label in (("x", ax.xlabel), ("y", ax.ylabel))
                      if not label.strip()]
        if unlabelled:
            which = " and ".join(f"{a}-axis" for a in unlabelled)
            raise CheckFailed(_with_hint(
                f"{where} has no {which} label: name what each axis shows (ax.set_xlabel,"
                " ax.set_ylabel)", spec))
    return figure


def _check_figure(spec: CheckSpec, objects: dict, ctx: Context) -> str:
    figure = figure_basics(spec, objects)
    others = [objects[n] for n in spec.objects[1:]]
    try:
        message = references()[spec.reference](ctx, figure, *others)
    except CheckFailed as exc:
        raise CheckFailed(_with_hint(str(exc), spec), flag=exc.flag, details=exc.details) from None
    return message


_KINDS = {
    "param_count": _check_param_count,
    "design": _check_design,
    "accuracy": _check_accuracy,
    "value": _check_value,
    "function": _check_function,
    "experiment": _check_experiment,
    "figure": _check_figure,
}


def run_check(spec: CheckSpec, objects: dict[str, Any], ctx: Context) -> CheckResult:
    """Score one check. Missing objects and student errors become a failed result."""
    missing = [name for name in spec.objects if name not in objects]
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        return CheckResult(spec.id, 0.0, spec.points, False,
                           f"{names} not found: run the exercise cell that defines it")
    try:
        outcome = _KINDS[spec.kind](spec, objects, ctx)
    except CheckFailed as exc:
        return CheckResult(spec.id, 0.0, spec.points, False, str(exc), flag=exc.flag,
                           details=exc.details)
    message, details = outcome if isinstance(outcome, tuple) else (outcome, None)
    return CheckResult(spec.id, spec.points, spec.points, True, message, details=details)
