"""Gradescope's ``results.json``: one graded row of ``grades.json`` as the student sees it.

Every test carries ``status`` (``passed`` or ``failed``; Gradescope otherwise infers it from
the score, so a failed 0-point check would show as passed). Only student-facing fields of the
row are used: the checks' points and messages, the row's ``error`` and its ``notes``, which the
student's feedback page shows too; instructor-only notes (the sandbox warnings, clean-up
problems) are the row's ``instructor_notes`` and stay in the log.

Three documents are written over one run, each replacing the last atomically:

* the *pending* one (:func:`pending_document`), built into the zip and copied into place by
  ``run_autograder`` before anything else: 0 points and a sentence saying grading did not
  finish in the time limit, so a run the platform kills at any moment leaves a valid result;
* an *upload problem* (:func:`upload_document`): no notebook, several, not a notebook, a
  broken file or another lesson's notebook, shown to the student at once (a test with
  ``visibility: visible``) whatever the grade's visibility;
* the graded result (:func:`results_document`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

UPLOAD_TEST = "Your upload"
TIME_LIMIT_OUTPUT = (
    "Grading did not finish within this assignment's autograder time limit, so this upload has"
    " 0 automatic points for now; this is not a verdict on your work: your instructor can raise"
    " the autograder timeout (up to 40 minutes) or the container's CPUs and memory in"
    " Gradescope's autograder settings and regrade it."
)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _status(passed: bool) -> str:
    return "passed" if passed else "failed"


def _written_test(settings: dict, question_id: str, number: int, visibility: str) -> dict:
    points = settings["questions"][question_id]
    return {"name": settings["names"][question_id], "number": str(number), "score": 0,
            "max_score": 0, "status": "passed",
            "output": (f"Written answer, worth {points:g} point(s): graded by hand by your"
                       " instructor as a Gradescope manual question; not part of the"
                       " autograder score."),
            "tags": [question_id], "visibility": visibility}


def _check_test(settings: dict, check_id: str, number: int, check: dict | None,
                not_graded: str, visibility: str) -> dict:
    points = settings["points"][check_id]
    if check is None:
        passed, score, output = False, 0, f"Not graded: {not_graded}"
    else:
        passed, score, output = bool(check.get("passed")), check["points"], check["message"]
    if not points:
        output = ("Informational check (0 points: it does not change your score): "
                  f"{'passed' if passed else 'not passed'}. {output}")
    return {"name": settings["names"][check_id], "number": str(number),
            "score": _number(score), "max_score": _number(points), "status": _status(passed),
            "output": output, "tags": [check_id], "visibility": visibility}


def _tests(settings: dict, found: dict[str, dict], not_graded: str) -> list[dict]:
    visibility = settings["visibility"]
    tests = [_check_test(settings, check_id, number, found.get(check_id), not_graded, visibility)
             for number, check_id in enumerate(settings["points"], start=1)]
    tests += [_written_test(settings, question_id, number, visibility)
              for number, question_id in enumerate(settings["questions"], start=len(tests) + 1)]
    return tests


def _document(settings: dict, tests: list[dict], output: str, execution_time: float) -> dict:
    if settings["questions"]:
        output += ("\nWritten answers are graded by hand (Gradescope manual questions) and"
                   " added to this score by your instructor.")
    return {"score": _number(sum(t["score"] for t in tests)),
            "execution_time": int(round(execution_time)), "output": output,
            "visibility": settings["visibility"], "stdout_visibility": "hidden", "tests": tests}


def pending_document(settings: dict) -> dict[str, Any]:
    """The result a run killed before it finished leaves: 0 points, every test not graded,
    and :data:`TIME_LIMIT_OUTPUT` (what happened and what the instructor can raise)."""
    tests = _tests(settings, {}, "grading did not finish within the time limit (see above)")
    return _document(settings, tests, TIME_LIMIT_OUTPUT, 0)


def upload_document(settings: dict, problem: str, *, execution_time: float) -> dict[str, Any]:
    """0 points, and ``problem`` (one sentence) in a test every student sees at once."""
    upload = {"name": UPLOAD_TEST, "number": "0", "score": 0, "max_score": 0,
              "status": "failed", "output": problem, "tags": ["upload"],
              "visibility": "visible"}
    tests = _tests(settings, {}, f"your upload could not be graded ({UPLOAD_TEST}, above)")
    return _document(settings, [upload, *tests],
                     f"Your submission scored 0 automatic points: {problem}", execution_time)


def results_document(settings: dict, row: dict | None, *, error: str | None,
                     execution_time: float) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one graded row of ``grades.json`` (or none).

    Parameters
    ----------
    settings : dict
        ``settings.json`` of the zip: ``module``, ``mode``, ``names`` (check id -> test name),
        ``points`` (check id -> max points), ``questions`` (manual question id -> points),
        ``visibility``.
    row : dict or None
        The row of ``grades.json``; ``None`` when grading produced none.
    error : str or None
        Why the submission could not be graded (the grader failed); the row's own ``error``
        is used when this is ``None``.
    execution_time : float
        Seconds the autograder ran.
    """
    error = error or (row or {}).get("error") or (None if row else "the grader wrote no result")
    found = {} if error else {c["id"]: c for c in row.get("checks", []) if not c.get("manual")}
    tests = _tests(settings, found, error or "")
    if error:
        output = f"Your submission scored 0 automatic points: {error}"
    else:
        score = sum(t["score"] for t in tests)
        output = (f"Automatic checks: {score:g} of {sum(settings['points'].values()):g} points"
                  f" (lesson {settings['module']}, {settings['mode']} mode).")
        notes = list(row.get("notes") or [])  # instructor-only notes have a field of their own
        if notes:
            output += "\n" + "\n".join(f"- {n}" for n in notes)
    return _document(settings, tests, output, execution_time)


def write_document(document: dict, out: Path) -> None:
    """Write ``document`` to ``out`` atomically (a reader sees the old file or the new one)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(out)


def _read_row(grades: Path | None) -> tuple[dict | None, str | None]:
    if grades is None or not grades.is_file():
        return None, None
    try:
        rows = json.loads(grades.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"the grader's grades.json could not be read ({exc})"
    if not isinstance(rows, list) or len(rows) != 1:
        return None, f"expected one graded notebook in grades.json, found {len(rows)}"
    return rows[0], None


def load_settings(path: Path) -> dict:
    """``settings.json`` of the zip."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_results(*, settings: Path, grades: Path | None, out: Path, error: str | None = None,
                  execution_time: float = 0.0) -> dict[str, Any]:
    """Write ``out`` (results.json) from the zip's settings and ``grades.json``; returns it."""
    row, problem = _read_row(grades)
    document = results_document(load_settings(settings), row, error=error or problem,
                                execution_time=execution_time)
    write_document(document, out)
    return document
