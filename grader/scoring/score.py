"""Score exported artifacts in the grader process with the rubric's checks.

Nothing here reads what the kernel printed or claimed: the objects come from
:func:`grader.scoring.export.load_artifacts`, the checks are :func:`grader.checks.kinds.run_check`, and
``experiment`` checks also need their exercise cells to have run without error and to no
longer hold the stub.
"""

from __future__ import annotations

from typing import Any

from grader.authoring.cells import CODE_STUB, cell_names, checks_called, is_stub_line, role
from grader.checks.kinds import Context, run_check
from grader.checks.results import CheckResult
from grader.checks.rubric import Rubric
from grader.kernel.execute import ExecutionResult

_STUB_LINE = CODE_STUB.splitlines()[-1]


def exercise_cells_by_check(nb, rubric: Rubric) -> dict[str, list]:
    """Check id -> the exercise cells it grades (those since the previous self-check cell).

    A self-check cell right after another one grades the same exercise cells.
    """
    by_grade_id = {c.grade_id: c.id for c in rubric.checks}
    mapping: dict[str, list] = {}
    pending: list = []
    last: list = []
    for cell in nb.cells:
        kind = role(cell)
        if kind == "exercise":
            pending.append(cell)
        elif kind == "check":
            ids = list(checks_called(cell.source)) if cell.cell_type == "code" else []
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid in by_grade_id and by_grade_id[gid] not in ids:
                ids.append(by_grade_id[gid])
            group = pending or last
            for check_id in ids:
                mapping.setdefault(check_id, []).extend(group)
            last, pending = group, []
    return mapping


def exercise_problems(rubric: Rubric, nb, execution: ExecutionResult) -> dict[str, str]:
    """Check id -> why its exercise cells do not count (stub left, error, time-out, not run).

    Only ``experiment`` checks use it; computed from the executed notebook before scoring.
    """
    cells = exercise_cells_by_check(nb, rubric)
    names = cell_names(nb)
    found = {}
    for spec in rubric.checks:
        if spec.kind == "experiment":
            problem = _exercise_problem(cells.get(spec.id, []), execution, names)
            if problem:
                found[spec.id] = problem
    return found


def _exercise_problem(cells: list, execution: ExecutionResult,
                      names: dict[str, str] | None = None) -> str | None:
    for cell in cells:
        cid = cell.get("id")
        label = (names or {}).get(cid, "the exercise cell")
        if cell.cell_type == "markdown":
            continue  # written answers are graded by hand (rubric kind "manual")
        if any(is_stub_line(line) for line in cell.source.splitlines()):
            return (f"{label} still holds the placeholder `{_STUB_LINE}`: replace it"
                    " with your code")
        if cid in execution.timed_out:
            return f"{label} ran past its time limit"
        if cid in execution.cell_errors:
            first = execution.cell_errors[cid].splitlines()[0]
            return f"{label} raised {first}: fix the error and run it again"
        if cid in execution.not_run:
            return f"{label} was not run (an earlier problem stopped the notebook)"
    return None


def score_checks(rubric: Rubric, objects: dict[str, Any], problems: dict[str, str],
                 ctx: Context, *,
                 unfinished: dict[str, str] | None = None) -> tuple[list[CheckResult], list[str]]:
    """Run every rubric check on the loaded objects.

    Parameters
    ----------
    rubric : Rubric
    objects : dict
        Kernel name -> object loaded by the grader.
    problems : dict
        Kernel name -> why it could not be exported or loaded (becomes the message).
    ctx : Context
        Mode, dataset and data folder.
    unfinished : dict, optional
        Check id -> why its exercise cells do not count (:func:`exercise_problems`):
        ``experiment`` checks then fail with that message.

    Returns
    -------
    results, notes
        One :class:`CheckResult` per rubric check (rubric order), and notes about checks
        the grader could not evaluate.
    """
    results: list[CheckResult] = []
    notes: list[str] = []
    for spec in rubric.checks:
        absent = [name for name in spec.objects if name in problems]
        if absent:
            message = "; ".join(problems[name] for name in absent)
            results.append(CheckResult(spec.id, 0.0, spec.points, False, message))
            continue
        if spec.kind == "experiment":
            problem = (unfinished or {}).get(spec.id)
            if problem:
                results.append(CheckResult(spec.id, 0.0, spec.points, False, problem))
                continue
        try:
            results.append(run_check(spec, objects, ctx))
        except Exception as exc:  # noqa: BLE001 - e.g. a loaded model that cannot predict
            text = f"{type(exc).__name__}: {str(exc)[:300]}"
            notes.append(f"{spec.id}: the grader could not evaluate the exported objects ({text})")
            results.append(CheckResult(spec.id, 0.0, spec.points, False,
                                       f"the grader could not evaluate your objects: {text}"))
    return results, notes
