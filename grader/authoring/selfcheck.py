"""``check()``: the self-check students call from their notebook.

It runs the visible part of a rubric check on the live objects and prints one line the
student can act on. It gives feedback only: grades are decided by ``python -m grader
grade``, outside the student's kernel, from artifacts the grader loads itself.

In the student edition (``python -m grader release --student-edition``) the rubrics and
``grader.checks.references`` are absent: the checks come from the generated data file
``grader/selfcheck.json`` (:func:`self_check_data`: digests, hints, tolerances, thresholds;
no marking guides), and a check that names a reference is decided by its in-kernel verdict
(:mod:`grader.checks.verdicts`: values recomputed from the student's own model or data,
structural and consistency checks, digests of a reference's outputs on fixed inputs), so it
says "correct" or "not yet" as in the course. A reference without a verdict (none today)
would only be confirmed as complete ("looks complete"); the grader still checks the values
when it grades.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from grader.checks.context import CheckFailed
from grader.checks.kinds import (
    Context,
    figure_basics,
    references,
    require_filled,
    run_check,
    show_value,
)
from grader.checks.results import CheckResult
from grader.checks.rubric import CheckSpec, Rubric, find_check

SELF_CHECK_DATA = Path(__file__).resolve().parents[1] / "selfcheck.json"
"""The student edition's checks (absent in the course repository, which reads the rubrics)."""

_DATA_FIELDS = ("id", "kind", "objects", "points", "expected", "answer_sha256", "hint",
                "tolerance", "reference", "threshold", "inputs", "dataset", "units",
                "output_units", "output_activation", "input_shape", "regularised", "max_params",
                "min_layers")
"""What a self-check needs from a rubric entry; never ``guide`` or ``description``."""
_TUPLES = ("objects", "units", "input_shape")

_EXERCISE = re.compile(r"\bExercise (\d+\.\w+)")


def _mode() -> str:
    from helpers.data import fast_mode_enabled

    return "fast" if fast_mode_enabled() else "full"


def self_check_data(rubrics: Iterable[Rubric]) -> dict:
    """The student edition's ``selfcheck.json``: per module its dataset and automatic checks.

    Written answers (their marking guides) and descriptions are left out (a check keeps only
    its exercise label, "Exercise 2.1", as its description); every other field
    is the rubric's, so the edition's self-check compares exactly as the course's does.
    """
    defaults = CheckSpec(id="", kind="", objects=(), points=0.0)
    modules = {}
    for rubric in rubrics:
        checks = []
        for spec in rubric.checks:
            entry = {}
            for name in _DATA_FIELDS:
                value = getattr(spec, name)
                if name in ("id", "kind", "objects", "points") or value != getattr(defaults, name):
                    entry[name] = _plain(value)
            exercise = _EXERCISE.search(spec.description or "")
            if exercise:  # only the label, for "define `x` in Exercise 2.1 above"
                entry["description"] = exercise.group(0)
            checks.append(entry)
        modules[rubric.module] = {"dataset": rubric.dataset, "checks": checks}
    return {"format": 1, "modules": modules}


def _plain(value):
    """A rubric value as JSON holds it (tuples, also nested ones, as lists)."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _spec_from_data(entry: dict) -> CheckSpec:
    values = dict(entry)
    if values.get("min_layers") is not None:
        values["min_layers"] = tuple((str(name), int(n)) for name, n in values["min_layers"])
    for name in _TUPLES:
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if isinstance(values.get("answer_sha256"), list):
        values["answer_sha256"] = tuple(values["answer_sha256"])
    return CheckSpec(**values)


@cache
def _edition_checks() -> dict[str, tuple[str, CheckSpec]]:
    data = json.loads(SELF_CHECK_DATA.read_text(encoding="utf-8"))
    return {entry["id"]: (module["dataset"], _spec_from_data(entry))
            for module in data["modules"].values() for entry in module["checks"]}


def _lookup(check_id: str) -> tuple[str, CheckSpec]:
    """The dataset and spec of a check: from the edition's data file, else from the rubric."""
    if SELF_CHECK_DATA.is_file():
        checks = _edition_checks()
        if check_id not in checks:
            raise KeyError(f"no self-check {check_id!r}; known: {', '.join(sorted(checks))}")
        return checks[check_id]
    rubric, spec = find_check(check_id)
    return rubric.dataset, spec


def _has_verdict(spec: CheckSpec) -> bool:
    """Whether the check can be decided here: no reference needed, or one that is present
    (the course's references, or the edition's in-kernel verdicts)."""
    return spec.reference is None or spec.reference in references()


def _check_without_reference(spec: CheckSpec, found: dict[str, Any]) -> CheckResult:
    """What the edition can confirm of a check whose expected result only the grader computes."""
    missing = [name for name in spec.objects if name not in found]
    if missing:
        names = ", ".join(f"`{m}`" for m in missing)
        return CheckResult(spec.id, 0.0, spec.points, False,
                           f"{names} not found: run the exercise cell that defines it")
    subject = found[spec.subject]
    try:
        if spec.kind == "figure":
            figure_basics(spec, found)
            done = f"`{spec.subject}` has plotted data and labelled axes"
        elif spec.kind == "experiment":
            require_filled(spec, found)
            done = "your results are filled in"
        elif spec.kind == "function":
            if not callable(subject):
                raise CheckFailed(f"expected `{spec.subject}` to be a function, found"
                                  f" {type(subject).__name__}")
            done = f"`{spec.subject}` is a function"
        else:
            if subject is None or subject is Ellipsis:
                raise CheckFailed(f"`{spec.subject}` is still a placeholder: compute it in the"
                                  " exercise")
            done = f"`{spec.subject}` = {show_value(subject)}"
    except CheckFailed as exc:
        return CheckResult(spec.id, 0.0, spec.points, False, str(exc))
    return CheckResult(spec.id, spec.points, spec.points, True,
                       f"{done}; the grader compares it with its own measurement when it grades")


def not_defined_message(spec: CheckSpec, missing: list[str]) -> str:
    """What to do when the notebook has not defined the names a check reads yet."""
    names = " and ".join(f"`{name}`" for name in missing)
    found = _EXERCISE.search(spec.description or "")
    where = f"Exercise {found.group(1)}" if found else "the exercise"
    return f"define {names} in {where} above"


def check(check_id: str, /, **objects: Any) -> None:
    """Check an exercise and print the verdict.

    Parameters
    ----------
    check_id : str
        The rubric id, e.g. ``"02.model_params"``.
    **objects
        The objects the check needs, by the names the exercise asks for
        (``check("02.model_params", model=model)``). Names not passed are looked up among
        the notebook's variables, so a check cell can name only the check
        (``check("02.model_params")``) and still run before its exercise is done: a name
        the notebook has not defined yet gets "not yet: define `model` in Exercise 2.2
        above" instead of a ``NameError``.

    Raises
    ------
    AssertionError
        When the check fails; the message says what was found and what to fix. For a value
        the student works out (``value`` checks), it gives a hint, never the expected value.
        A missed accuracy bar is printed to stderr but does not raise: later cells never
        depend on it, and a model landing just below the bar must not stop "Run all"
        (nbgrader still scores such a cell zero: it counts stderr output as a failure).
    """
    if os.environ.get("DLCOURSE_GRADING") == "1":  # the grader scores outside the notebook
        print(f"[{check_id}] self-check skipped while grading: the grader checks this itself")
        return
    dataset, spec = _lookup(check_id)
    caller = inspect.currentframe().f_back
    namespace = caller.f_globals if caller is not None else {}
    found = dict(objects)
    for name in spec.objects:
        if name not in found and name in namespace:
            found[name] = namespace[name]
    ctx = Context(mode=_mode(), dataset=dataset, data_dir=os.environ.get("DLCOURSE_DATA_DIR"))
    partial = not _has_verdict(spec)
    result = _check_without_reference(spec, found) if partial else run_check(spec, found, ctx)
    missing = [name for name in spec.objects if name not in found]
    if missing:
        result = dataclasses.replace(result, message=not_defined_message(spec, missing))
    mark = ("looks complete" if partial else "correct") if result.passed else "not yet"
    if not result.passed and spec.kind == "accuracy":
        # stderr: shown in red by Jupyter and Colab, and scored zero by nbgrader's autograder
        print(f"[{spec.id}] {mark}: {result.message}\n[{spec.id}] the notebook goes on (a"
              " missed accuracy does not stop Run all); improve the model and run this cell"
              " again before you hand in", file=sys.stderr)
        return
    print(f"[{spec.id}] {mark}: {result.message}")
    if not result.passed:
        raise AssertionError(f"{spec.id}: {result.message}")
