"""The steps of grading one submission, in order; :func:`grade` runs them.

Each step is a small function with typed inputs and one typed output::

    read -> set up -> restore -> inject -> prepare -> execute -> export -> score -> flag
    Request -> Submission -> Lesson -> notebook -> Workspace -> Executed -> Exported -> row

What the caller gives is a frozen :class:`Request`. The only state the steps share is the
:class:`Ledger`: the row being written and what to clean up. A step that decides the row is
final (a broken file, a module the grader does not know, a kernel that died before the
export) returns ``None`` and :func:`grade` stops there. Resources a step makes (the scratch
folder, the kernel's home, a hold-out copy, the re-run-ahead thread) are added to
``ledger.cleanup`` and removed by :func:`grade` whatever happens.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import nbformat

from grader.base.errors import GraderError
from grader.checks.results import CheckResult, GradeRow
from grader.checks.rubric import Rubric, load_rubric
from grader.data.holdout import HoldoutPlan
from grader.kernel.execute import ExecutionResult
from grader.kernel.sandbox import KernelHome
from grader.kernel.sweep import remove_folder
from grader.submission.options import GradingOptions
from grader.submission.validate import Submission

SUBMISSION_NAME = "submission.ipynb"
EXECUTED_NAME = "executed.ipynb"


@dataclass(frozen=True)
class Request:
    """One submission to grade, as the caller gives it."""

    path: Path
    options: GradingOptions
    data: bytes | None = None
    """The file's bytes when the caller already read them (then it is not opened again)."""
    parsed: Submission | None = None
    """The submission as the batch already read it (then the file is not parsed again)."""
    rubric: Rubric | None = None
    """The module's rubric when the caller loaded it (a batch: once per task)."""
    scratch_root: Path | None = None
    """Where the scratch folder is made and kept; by default a temporary one, removed."""
    scorer: Any = None
    """A warm scoring process (:mod:`grader.scoring.scoring_server`), or None."""
    on_kernel_done: Callable[[], None] | None = None
    """Called once the kernel and its processes are gone (a batch then starts the next
    submission's kernel while this one is scored)."""


@dataclass
class Ledger:
    """What the steps share: the row being written, and what :func:`grade` removes at the end."""

    row: GradeRow
    started: float = field(default_factory=time.perf_counter)
    cleanup: list[Callable[[], object]] = field(default_factory=list)


@dataclass(frozen=True)
class Lesson:
    """The module's rubric and solution notebook (:func:`set_up`)."""

    rubric: Rubric
    solution: Any


@dataclass(frozen=True)
class Workspace:
    """The kernel's folders and the data it reads (:func:`prepare`)."""

    home: KernelHome
    holdout: HoldoutPlan


@dataclass(frozen=True)
class Executed:
    """What the kernel left (:func:`execute`): how it ran, the executed notebook, the cells'
    names as the student reads them, the export folder and the function inputs it was given."""

    execution: ExecutionResult
    nb: nbformat.NotebookNode
    names: dict[str, str]
    export_dir: Path
    artifacts: Path
    inputs: dict


@dataclass(frozen=True)
class Exported:
    """The artifacts copied into the grader's own folder (:func:`export`)."""

    artifacts: Path
    refused: list
    started: float
    """When scoring began (the row's ``score`` timing counts from here)."""


def zero_checks(rubric: Rubric, message: str) -> list[CheckResult]:
    """Every check of ``rubric`` at zero points with ``message``."""
    return [CheckResult(c.id, 0.0, c.points, False, message) for c in rubric.checks]


def read(request: Request) -> tuple[Submission, Ledger]:
    """Read and validate the file (unless the batch did), identify student and module."""
    from grader.submission.validate import display_path, read_submission

    custom = request.options.rubric
    sub = request.parsed if request.parsed is not None else read_submission(
        request.path, module=custom.module if custom is not None else None,
        release_name=custom.notebook if custom is not None else None, data=request.data)
    row = GradeRow(student=sub.student, module=sub.module, score=0.0, max_score=0.0,
                   error=None, submission=display_path(request.path), notes=list(sub.notes))
    return sub, Ledger(row=row)


def set_up(request: Request, sub: Submission, ledger: Ledger) -> Lesson | None:
    """Find the rubric and solution of the submission's module; ``None`` for an unusable
    file (the row is then final)."""
    rubric, solution, error = request.options.rubric, request.options.solution, sub.error
    if error is None:
        try:
            if rubric is None:
                given = request.rubric
                rubric = given if given is not None and given.module == sub.module \
                    else load_rubric(sub.module)
            if solution is None:
                from grader.authoring.release import load_solution

                solution = load_solution(rubric)
        except GraderError as exc:
            error = f"the grader is not set up for module {sub.module}: {exc}"
    row = ledger.row
    if rubric is not None:
        row.max_score = rubric.max_score
    if error is None:
        return Lesson(rubric=rubric, solution=solution)
    row.error = error
    if rubric is not None and sub.nb is None:
        row.checks = zero_checks(rubric, "not graded: " + error)
    return None


def restore_cells(sub: Submission, lesson: Lesson, options: GradingOptions,
                  row: GradeRow) -> nbformat.NotebookNode:
    """Rebuild the notebook on the solution's skeleton (protected cells restored)."""
    from grader.submission.restore import restore

    restored = restore(sub.nb, lesson.solution)
    if options.sandbox_warning:
        row.instructor_notes.insert(0, options.sandbox_warning)
    row.notes.extend(restored.notes)
    return restored.nb


def inject(nb: nbformat.NotebookNode, options: GradingOptions) -> nbformat.NotebookNode:
    """Inject ``FAST`` (and ``SEED`` when one is set) after the parameters cell."""
    from grader.submission.parameters import inject_parameters

    params: dict[str, Any] = {"FAST": bool(options.fast)}
    if options.seed is not None:
        params["SEED"] = int(options.seed)
    inject_parameters(nb, **params)
    return nb


def prepare(request: Request, sub: Submission, rubric: Rubric, ledger: Ledger) -> Workspace:
    """The scratch folder, the kernel's home and the kernel's copy of the data."""
    from grader.data.holdout import plan_holdout
    from grader.data.kernel_cache import with_kernel_data

    options = request.options
    own_scratch = request.scratch_root is None
    root = Path(tempfile.mkdtemp(prefix="dlcourse-grade-")) if own_scratch \
        else Path(request.scratch_root)
    if own_scratch:
        ledger.cleanup.append(partial(remove_folder, root))
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / f"{sub.student[:40]}-{rubric.module}-{secrets.token_hex(4)}"
    workdir.mkdir(mode=0o700)
    home = KernelHome.create(workdir, memory_mb=options.limits.memory_mb)
    ledger.cleanup.append(home.remove)
    plan = options.holdout if options.holdout is not None else plan_holdout(options.data_dir,
                                                                           fast=options.fast)
    if plan.mode != options.mode:
        raise ValueError(f"expected a {options.mode} hold-out plan, got {plan.mode}")
    holdout, own_copy = with_kernel_data(replace(plan, source_dir=options.data_dir))
    if own_copy is not None:
        ledger.cleanup.append(own_copy.remove)
    return Workspace(home=home, holdout=holdout)


def write_new(path: Path, text: str) -> None:
    """Write a file the grader creates; never follow a link or reuse a file someone planted."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def execute(request: Request, rubric: Rubric, nb: nbformat.NotebookNode, space: Workspace,
            ahead: Ahead, ledger: Ledger) -> Executed | None:
    """Run the notebook and then the export cell in one fresh limited (sandboxed) kernel;
    ``None`` when the kernel died before the export (the row is then final)."""
    from grader.authoring.cells import cell_names
    from grader.kernel.execute import execute_notebook
    from grader.scoring.export import export_source, write_function_inputs
    from grader.submission.run_notes import died_error, execution_notes

    home, options, row = space.home, request.options, ledger.row
    token = secrets.token_hex(6)
    write_new(home.scratch / SUBMISSION_NAME, nbformat.writes(nb))
    export_dir, inputs = home.scratch / f"export-{token}", {}

    def export_cell() -> str:
        # Made only now, after the student's code ran: fresh function inputs, no answers.
        inputs.update(write_function_inputs(rubric, home.inbox))
        return export_source(rubric, export_dir, home.inbox)

    env, km = options.sandbox_mode.start(home, fast=options.fast, threads=options.threads,
                                         data_dir=space.holdout.kernel_dir)  # no hold-out
    log = Path(options.log_path) if options.log_path else None
    ahead.lesson_reruns()  # the warm scorer re-runs what it can while the kernel runs
    try:
        execution = execute_notebook(nb, workdir=home.scratch, limits=options.limits,
                                     env=env, epilogue=export_cell, km=km, log=log,
                                     midway=ahead.early_exports(home))
    finally:  # daemons and files the kernel left: gone before its files are read
        row.instructor_notes += options.sandbox_mode.after_kernel(home)
    # The kernel and every process it started are gone now; what follows reads its files.
    if request.on_kernel_done is not None:
        request.on_kernel_done()
    write_new(home.root / EXECUTED_NAME, nbformat.writes(nb))
    row.timings = {key: round(execution.durations.get(key, 0.0), 3)
                   for key in ("kernel_start", "execute", "slowest_cell", "export")}
    # cells named as students read them (positions as in their notebook: without the injection)
    names = cell_names({"cells": [c for c in nb.cells if c.get("id") != "injected-parameters"]})
    row.notes.extend(execution_notes(execution, nb, names))
    if execution.kernel_died and not execution.died_during_export:
        row.error = died_error(execution, names)
        row.checks = zero_checks(rubric, "not graded: the kernel died before the export")
        return None
    return Executed(execution=execution, nb=nb, names=names, export_dir=export_dir,
                    artifacts=home.root / f"artifacts-{token}", inputs=inputs)


def export(rubric: Rubric, executed: Executed) -> Exported:
    """Copy the regular files the export cell wrote into the grader's own folder."""
    from grader.scoring.export import collect_artifacts

    started = time.perf_counter()
    refused = collect_artifacts(rubric, executed.export_dir, executed.artifacts)
    return Exported(artifacts=executed.artifacts, refused=refused, started=started)


def rerun_choice_key(student: str, module: str) -> str:
    """Private, stable key choosing which experiment configuration the grader re-runs.

    Derived from the grader's results key (outside the kernel's reach), the student and the
    module: a student cannot know the choice, and grading the same submission again makes
    the same one.
    """
    import hashlib
    import hmac

    from grader.base.keys import load_result_key

    message = f"rerun|{student}|{module}".encode()
    return hmac.new(load_result_key(), message, hashlib.sha256).hexdigest()


def score_context(options: GradingOptions, rubric: Rubric, student: str, holdout: HoldoutPlan):
    """The checks' context: mode, data, the hold-out and the private re-run key."""
    from grader.checks.kinds import Context

    return Context(mode=options.mode, dataset=rubric.dataset, data_dir=options.data_dir,
                   verify=True, choice_key=rerun_choice_key(student, rubric.module),
                   holdout=holdout)


def _score_limits(options: GradingOptions):
    from grader.scoring.score_process import ScoreLimits

    return ScoreLimits(timeout_s=options.limits.score_timeout_s,
                       memory_mb=options.limits.score_memory_mb)


RERUN_AHEAD_ENV = "DLCOURSE_RERUN_AHEAD"
"""Set to ``0`` to run every re-run after the kernel (``bench/rerun_ahead.py`` compares)."""


class Ahead:
    """Re-runs a warm scorer runs while the kernel still runs (:mod:`grader.checks.speculation`).

    Requests go out one at a time, each from a thread that first waits for the one before it
    (the scorer answers one at a time); :func:`score` waits for the last. Without a warm
    scorer, or with ``DLCOURSE_RERUN_AHEAD=0``, nothing runs ahead.
    """

    def __init__(self, request: Request, rubric: Rubric, student: str, holdout: HoldoutPlan,
                 ledger: Ledger) -> None:
        self.scorer, self.rubric, self.options = request.scorer, rubric, request.options
        self.context = score_context(request.options, rubric, student, holdout)
        self.enabled = self.scorer is not None and os.environ.get(RERUN_AHEAD_ENV) != "0"
        self.ledger = ledger
        self.thread: threading.Thread | None = None

    def lesson_reruns(self) -> None:
        """Ask for the re-runs the lesson fixes (not the student) now."""
        names = [c.reference for c in self.rubric.checks if c.kind == "experiment" and c.reference]
        if self.enabled and names:
            self.ask(names, None)

    def ask(self, references: list[str], objects: dict | None) -> None:
        """Send the warm scorer one request to run ``references`` ahead."""
        from grader.scoring.scoring_server import run_ahead_warm

        before = self.thread
        request = partial(run_ahead_warm, self.scorer, self.context, references,
                          limits=_score_limits(self.options), threads=self.options.threads,
                          objects=objects)

        def work() -> None:
            if before is not None:
                before.join()
            request()

        self.thread = threading.Thread(target=work, name="rerun-ahead", daemon=True)
        self.thread.start()
        # a row that ends early still waits: one request at a time
        self.ledger.cleanup.append(self.thread.join)

    def wait(self) -> None:
        """Wait for the last request sent (the scorer answers one request at a time)."""
        if self.thread is not None:
            self.thread.join()

    def early_exports(self, home: KernelHome) -> dict:
        """The early exports (:class:`grader.kernel.execute.Midway`): right after the cell a
        check's ``ahead_after`` names, the kernel exports the check's objects once more and
        the warm scorer runs that check's re-runs of what the student chose while the rest of
        the notebook runs. Only a speculation: the check reads the final export."""
        from grader.kernel.execute import Midway
        from grader.scoring.export import names_export_source, read_early_values

        if not self.enabled:
            return {}
        cells: dict[str, tuple[list[str], list[str]]] = {}
        for spec in self.rubric.checks:
            if spec.kind == "experiment" and spec.ahead_after and spec.reference:
                names, references = cells.setdefault(spec.ahead_after, ([], []))
                names.extend(n for n in spec.objects if n not in names)
                references.append(spec.reference)
        found = {}
        for cell, (names, references) in sorted(cells.items()):
            # its own random name: the kernel sees it, and must learn nothing of the final
            # export's folder from it
            folder = home.scratch / f"early-{secrets.token_hex(6)}"

            def done(folder=folder, names=names, references=references) -> None:
                values = read_early_values(folder, names)
                if values:
                    self.ask(references, values)

            found[cell] = Midway(source=partial(names_export_source, names, folder), done=done)
        return found


def score(request: Request, rubric: Rubric, executed: Executed, exported: Exported,
          ahead: Ahead, row: GradeRow) -> None:
    """Vet, load (Keras safe mode) and score the artifacts in a limited child process."""
    from grader.scoring.score import exercise_problems
    from grader.scoring.score_process import score_isolated
    from grader.scoring.scoring_server import score_warm

    options = request.options
    ahead.wait()  # the warm scorer answers one request at a time
    scorer = score_isolated if request.scorer is None else partial(score_warm, request.scorer)
    results, notes = scorer(
        rubric, exported.artifacts, executed.inputs, ahead.context, problems=exported.refused,
        unfinished=exercise_problems(rubric, executed.nb, executed.execution),
        threads=options.threads, log=Path(options.log_path) if options.log_path else None,
        limits=_score_limits(options))
    row.checks = results
    row.notes.extend(notes)


def flag(row: GradeRow, exported: Exported) -> None:
    """Flag hold-out leaks and add up the points."""
    from grader.checks.leakage import flag_leaks

    flag_leaks(row)
    row.score = float(sum(c.points for c in row.checks))
    row.timings["score"] = round(time.perf_counter() - exported.started, 3)


STEPS = (read, set_up, restore_cells, inject, prepare, execute, export, score, flag)
"""The steps of one submission, in the order :func:`grade` runs them."""


def grade(request: Request) -> GradeRow:
    """Run the steps on one submission until one ends its row; remove what they made."""
    started = time.perf_counter()
    sub, ledger = read(request)
    ledger.started, row = started, ledger.row
    try:
        lesson = set_up(request, sub, ledger)
        if lesson is None:
            return row
        rubric = lesson.rubric
        nb = inject(restore_cells(sub, lesson, request.options, row), request.options)
        space = prepare(request, sub, rubric, ledger)
        ahead = Ahead(request, rubric, row.student, space.holdout, ledger)
        executed = execute(request, rubric, nb, space, ahead, ledger)
        if executed is None:
            return row
        exported = export(rubric, executed)
        score(request, rubric, executed, exported, ahead, row)
        flag(row, exported)
        return row
    finally:
        row.duration_s = round(time.perf_counter() - ledger.started, 3)
        _clean_up(ledger)


def _clean_up(ledger: Ledger) -> None:
    """Remove what the steps made, newest first; a failed clean-up never costs the row."""
    for remove in reversed(ledger.cleanup):
        try:
            problem = remove()
        except Exception as exc:  # noqa: BLE001 - contained to an instructor note
            problem = f"{type(exc).__name__}: {exc}"
        if isinstance(problem, str):
            ledger.row.instructor_notes.append(f"clean-up after grading: {problem}")
