"""Grade one submitted notebook end to end; the score is decided outside the student's kernel.

The steps, run by :func:`grader.submission.pipeline.grade`::

    read (bytes read once) -> set up (rubric, solution) -> restore protected cells
      -> inject parameters (FAST, SEED) -> prepare (scratch folder, kernel home, data copy)
      -> execute in a fresh limited kernel, sandboxed (grader.kernel.sandbox), then the
         export cell in the same kernel -> export (copy the regular files it wrote)
      -> score (vet, load in Keras safe mode, score in a limited child process) -> flag

:func:`grade_submission` never raises for anything a student did: a broken file, a crash,
a time-out or a dead kernel is a :class:`~grader.checks.results.GradeRow` with ``error`` or with
failed checks and ``notes``. Exceptions mean a grader bug.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from grader.checks.results import GradeRow
from grader.checks.rubric import Rubric
from grader.submission.options import GradingOptions
from grader.submission.pipeline import (
    EXECUTED_NAME,
    SUBMISSION_NAME,
    Request,
    grade,
    rerun_choice_key,
)

__all__ = ["EXECUTED_NAME", "SUBMISSION_NAME", "GradingOptions", "grade_submission",
           "rerun_choice_key"]


def grade_submission(source: Path | str | Any, options: GradingOptions,
                     rubric: Rubric | None = None, *, scratch_root: Path | None = None,
                     scorer: Any = None, on_kernel_done: Callable[[], None] | None = None
                     ) -> GradeRow:
    """Grade one submitted notebook.

    Parameters
    ----------
    source : Path, str or a batch task
        The submitted ``.ipynb`` (the student id comes from the path, see
        :mod:`grader.submission.validate`), or an object with its ``path`` and the ``data``
        already read (a :class:`grader.classroom.resume.Task`): the file is then never opened
        again, and its ``parsed`` submission, when set, is not parsed again.
    options : GradingOptions
        How to grade, resolved once by the caller (mode, seed, limits, sandbox, data folder,
        threads, a custom rubric and solution, the hold-out plan, the log file). Nothing is
        resolved again here.
    rubric : Rubric, optional
        The submission's module's rubric, already loaded by the caller (a batch loads it once
        per task); by default it is loaded here. ``options.rubric`` (a custom module) wins.
    scratch_root : Path, optional
        Where the per-submission scratch folder is made. When given, the folder
        (``scratch/submission.ipynb``, ``executed.ipynb``, exported artifacts) is kept for
        inspection; by default a temporary folder is used and removed.
    scorer : ScorerHandle, optional
        A warm scoring process (:mod:`grader.scoring.scoring_server`) to score in; by default a
        fresh child process scores this submission.
    on_kernel_done : callable, optional
        Called once the kernel and every process it started are gone, before scoring.

    Returns
    -------
    GradeRow
        ``timings`` holds ``kernel_start``, ``execute``, ``slowest_cell`` (the longest code
        cell), ``export`` and ``score`` seconds.
    """
    given = {"path": Path(source)} if isinstance(source, (str, Path)) else {
        "path": Path(source.path), "data": source.data, "parsed": getattr(source, "parsed", None)}
    return grade(Request(**given, options=options, rubric=rubric, scratch_root=scratch_root,
                         scorer=scorer, on_kernel_done=on_kernel_done))
