"""``check()``: the self-check students call from their notebook.

It runs the visible part of a rubric check on the live objects and prints one line the
student can act on. It gives feedback only: grades are decided by ``python -m grader
grade``, outside the student's kernel, from artifacts the grader loads itself.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import sys
from typing import Any

from grader.checks.kinds import Context, run_check
from grader.checks.rubric import CheckSpec, find_check

_EXERCISE = re.compile(r"\bExercise (\d+\.\w+)")


def _mode() -> str:
    from helpers.data import fast_mode_enabled

    return "fast" if fast_mode_enabled() else "full"


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
    rubric, spec = find_check(check_id)
    caller = inspect.currentframe().f_back
    namespace = caller.f_globals if caller is not None else {}
    found = dict(objects)
    for name in spec.objects:
        if name not in found and name in namespace:
            found[name] = namespace[name]
    ctx = Context(mode=_mode(), dataset=rubric.dataset,
                  data_dir=os.environ.get("DLCOURSE_DATA_DIR"))
    result = run_check(spec, found, ctx)
    missing = [name for name in spec.objects if name not in found]
    if missing:
        result = dataclasses.replace(result, message=not_defined_message(spec, missing))
    mark = "correct" if result.passed else "not yet"
    if not result.passed and spec.kind == "accuracy":
        # stderr: shown in red by Jupyter and Colab, and scored zero by nbgrader's autograder
        print(f"[{spec.id}] {mark}: {result.message}\n[{spec.id}] the notebook goes on (a"
              " missed accuracy does not stop Run all); improve the model and run this cell"
              " again before you hand in", file=sys.stderr)
        return
    print(f"[{spec.id}] {mark}: {result.message}")
    if not result.passed:
        raise AssertionError(f"{spec.id}: {result.message}")
