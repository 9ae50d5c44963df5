"""The steps of grading one submission, in order; :data:`STEPS` is the pipeline.

Each step is a small function of one :class:`Job` with one job of its own::

    read -> set up -> restore -> inject -> prepare -> execute -> export -> score -> flag

A step that decides the row is final (a broken file, a module the grader does not know, a
kernel that died before the export) sets ``job.done``; the later steps are skipped.
Resources a step makes (the scratch folder, the kernel's home, a hold-out copy) are added to
``job.cleanup`` and removed by :func:`run_steps` whatever happens.
"""

from __future__ import annotations

import os
import secrets
import tempfile
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
from grader.kernel.sweep import remove_folder
from grader.submission.options import GradingOptions
from grader.submission.validate import Submission

SUBMISSION_NAME = "submission.ipynb"
EXECUTED_NAME = "executed.ipynb"


@dataclass
class Job:
    """One submission on its way through :data:`STEPS` (the steps fill it in order)."""

    path: Path
    options: GradingOptions
    data: bytes | None = None
    parsed: Submission | None = None
    """The submission as the batch already read it (then the file is not parsed again)."""
    rubric: Rubric | None = None
    """The module's rubric when the caller loaded it (a batch: once per task)."""
    scratch_root: Path | None = None
    scorer: Any = None
    on_kernel_done: Callable[[], None] | None = None
    """Called once the kernel and its processes are gone (a batch then starts the next
    submission's kernel while this one is scored)."""
    started: float = field(default_factory=time.perf_counter)
    row: GradeRow | None = None
    sub: Submission | None = None
    solution: Any = None
    nb: Any = None
    home: Any = None
    holdout: Any = None
    execution: Any = None
    names: dict[str, str] = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    export_dir: Path | None = None
    artifacts: Path | None = None
    refused: list = field(default_factory=list)
    score_started: float = 0.0
    ahead: Any = None
    """The thread asking the warm scorer to run re-runs ahead (:func:`score` waits for it)."""
    done: bool = False
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def finish(self) -> None:
        """End the pipeline here: the row is final."""
        self.row.duration_s = time.perf_counter() - self.started
        self.done = True


def zero_checks(rubric: Rubric, message: str) -> list[CheckResult]:
    """Every check of ``rubric`` at zero points with ``message``."""
    return [CheckResult(c.id, 0.0, c.points, False, message) for c in rubric.checks]


def read(job: Job) -> None:
    """Read and validate the file (unless the batch did), identify student and module."""
    from grader.submission.validate import display_path, read_submission

    custom = job.options.rubric
    job.sub = job.parsed if job.parsed is not None else read_submission(
        job.path, module=custom.module if custom is not None else None,
        release_name=custom.notebook if custom is not None else None, data=job.data)
    sub = job.sub
    job.row = GradeRow(student=sub.student, module=sub.module, score=0.0, max_score=0.0,
                       error=None, submission=display_path(job.path), notes=list(sub.notes))


def set_up(job: Job) -> None:
    """Find the rubric and solution of the submission's module; stop on an unusable file."""
    sub, rubric = job.sub, job.options.rubric
    if sub.error is None:
        try:
            if rubric is None:
                given = job.rubric if job.rubric is not None and job.rubric.module == sub.module \
                    else None
                rubric = given if given is not None else load_rubric(sub.module)
            job.solution = job.options.solution
            if job.solution is None:
                from grader.authoring.release import load_solution

                job.solution = load_solution(rubric)
        except GraderError as exc:
            sub.error = f"the grader is not set up for module {sub.module}: {exc}"
    job.rubric = rubric
    if rubric is not None:
        job.row.max_score = rubric.max_score
    if sub.error is not None:
        job.row.error = sub.error
        if rubric is not None and sub.nb is None:
            job.row.checks = zero_checks(rubric, "not graded: " + sub.error)
        job.finish()


def restore_cells(job: Job) -> None:
    """Rebuild the notebook on the solution's skeleton (protected cells restored)."""
    from grader.submission.restore import restore

    restored = restore(job.sub.nb, job.solution)
    if job.options.sandbox_warning:
        job.row.instructor_notes.insert(0, job.options.sandbox_warning)
    job.row.notes.extend(restored.notes)
    job.nb = restored.nb


def inject(job: Job) -> None:
    """Inject ``FAST`` (and ``SEED`` when one is set) after the parameters cell."""
    from grader.submission.parameters import inject_parameters

    params: dict[str, Any] = {"FAST": bool(job.options.fast)}
    if job.options.seed is not None:
        params["SEED"] = int(job.options.seed)
    inject_parameters(job.nb, **params)


def prepare(job: Job) -> None:
    """The scratch folder, the kernel's home and the kernel's copy of the data."""
    from grader.data.holdout import plan_holdout
    from grader.data.kernel_cache import with_kernel_data
    from grader.kernel.sandbox import KernelHome

    options = job.options
    own_scratch = job.scratch_root is None
    root = Path(tempfile.mkdtemp(prefix="dlcourse-grade-")) if own_scratch else Path(job.scratch_root)
    if own_scratch:
        job.cleanup.append(partial(remove_folder, root))
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / f"{job.sub.student[:40]}-{job.rubric.module}-{secrets.token_hex(4)}"
    workdir.mkdir(mode=0o700)
    job.home = KernelHome.create(workdir, memory_mb=options.limits.memory_mb)
    job.cleanup.append(job.home.remove)
    plan = options.holdout if options.holdout is not None else plan_holdout(options.data_dir,
                                                                           fast=options.fast)
    if plan.mode != options.mode:
        raise ValueError(f"expected a {options.mode} hold-out plan, got {plan.mode}")
    job.holdout, own_copy = with_kernel_data(replace(plan, source_dir=options.data_dir))
    if own_copy is not None:
        job.cleanup.append(own_copy.remove)


def write_new(path: Path, text: str) -> None:
    """Write a file the grader creates; never follow a link or reuse a file someone planted."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def execute(job: Job) -> None:
    """Run the notebook and then the export cell in one fresh limited (sandboxed) kernel."""
    from grader.authoring.cells import cell_names
    from grader.kernel.execute import execute_notebook
    from grader.scoring.export import export_source, write_function_inputs
    from grader.submission.run_notes import died_error, execution_notes

    home, rubric, options = job.home, job.rubric, job.options
    token = secrets.token_hex(6)
    write_new(home.scratch / SUBMISSION_NAME, nbformat.writes(job.nb))
    job.export_dir = home.scratch / f"export-{token}"
    job.artifacts = home.root / f"artifacts-{token}"

    def export_cell() -> str:
        # Made only now, after the student's code ran: fresh function inputs, no answers.
        job.inputs.update(write_function_inputs(rubric, home.inbox))
        return export_source(rubric, job.export_dir, home.inbox)

    env, km = _kernel(job)
    log = Path(options.log_path) if options.log_path else None
    _run_ahead(job)  # the warm scorer re-runs what it can while the kernel runs
    try:
        execution = execute_notebook(job.nb, workdir=home.scratch, limits=options.limits,
                                     env=env, epilogue=export_cell, km=km, log=log,
                                     midway=_early_exports(job))
    finally:
        # daemons and files the kernel left: gone before its files are read
        job.row.instructor_notes += options.sandbox_mode.after_kernel(home)
    job.execution = execution
    # The kernel and every process it started are gone now; what follows reads its files.
    if job.on_kernel_done is not None:
        job.on_kernel_done()
    write_new(home.root / EXECUTED_NAME, nbformat.writes(job.nb))
    job.row.timings = {key: round(execution.durations.get(key, 0.0), 3)
                       for key in ("kernel_start", "execute", "slowest_cell", "export")}
    # cells named as students read them (positions as in their notebook: without the injection)
    job.names = cell_names({"cells": [c for c in job.nb.cells
                                      if c.get("id") != "injected-parameters"]})
    job.row.notes.extend(execution_notes(execution, job.nb, job.names))
    if execution.kernel_died and not execution.died_during_export:
        job.row.error = died_error(execution, job.names)
        job.row.checks = zero_checks(rubric, "not graded: the kernel died before the export")
        job.finish()


def _kernel(job: Job):
    """The kernel's environment and its manager, in the batch's sandbox mode."""
    options = job.options
    return options.sandbox_mode.start(job.home, fast=options.fast, threads=options.threads,
                                      data_dir=job.holdout.kernel_dir)  # without the hold-out


def export(job: Job) -> None:
    """Copy the regular files the export cell wrote into the grader's own folder."""
    from grader.scoring.export import collect_artifacts

    job.score_started = time.perf_counter()
    job.refused = collect_artifacts(job.rubric, job.export_dir, job.artifacts)


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


def score_context(job: Job):
    """The checks' context: mode, data, the hold-out and the private re-run key."""
    from grader.checks.kinds import Context

    options, rubric = job.options, job.rubric
    return Context(mode=options.mode, dataset=rubric.dataset, data_dir=options.data_dir,
                   verify=True, choice_key=rerun_choice_key(job.row.student, rubric.module),
                   holdout=job.holdout)


def _score_limits(options: GradingOptions):
    from grader.scoring.score_process import ScoreLimits

    return ScoreLimits(timeout_s=options.limits.score_timeout_s,
                       memory_mb=options.limits.score_memory_mb)


RERUN_AHEAD_ENV = "DLCOURSE_RERUN_AHEAD"
"""Set to ``0`` to run every re-run after the kernel (``bench/rerun_ahead.py`` compares)."""


def _ahead(job: Job) -> bool:
    """Whether re-runs may run ahead: a warm scorer, and not switched off."""
    return job.scorer is not None and os.environ.get(RERUN_AHEAD_ENV) != "0"


def _run_ahead(job: Job) -> None:
    """With a warm scorer: have it run the re-runs the lesson fixes (not the student) now
    (:mod:`grader.checks.speculation`)."""
    names = [c.reference for c in job.rubric.checks if c.kind == "experiment" and c.reference]
    if _ahead(job) and names:
        _ask_ahead(job, names, None)


def _ask_ahead(job: Job, references: list[str], objects: dict | None) -> None:
    """Send the warm scorer one request to run re-runs ahead, in a thread that waits for the
    request before it (the scorer answers one at a time) and that :func:`score` waits for."""
    import threading

    from grader.scoring.scoring_server import run_ahead_warm

    before = job.ahead
    ask = partial(run_ahead_warm, job.scorer, score_context(job), references,
                  limits=_score_limits(job.options), threads=job.options.threads, objects=objects)

    def work() -> None:
        if before is not None:
            before.join()
        ask()

    job.ahead = threading.Thread(target=work, name="rerun-ahead", daemon=True)
    job.ahead.start()
    job.cleanup.append(job.ahead.join)  # a row that ends early still waits: one request at a time


def _early_exports(job: Job) -> dict:
    """The early exports (:class:`grader.kernel.execute.Midway`): right after the cell a
    check's ``ahead_after`` names, the kernel exports the check's objects once more and the
    warm scorer runs that check's re-runs of what the student chose while the rest of the
    notebook runs. Only a speculation: the check reads the final export."""
    from grader.kernel.execute import Midway
    from grader.scoring.export import names_export_source, read_early_values

    if not _ahead(job):
        return {}
    cells: dict[str, tuple[list[str], list[str]]] = {}
    for spec in job.rubric.checks:
        if spec.kind == "experiment" and spec.ahead_after and spec.reference:
            names, references = cells.setdefault(spec.ahead_after, ([], []))
            names.extend(n for n in spec.objects if n not in names)
            references.append(spec.reference)
    found = {}
    for cell, (names, references) in sorted(cells.items()):
        # its own random name: the kernel sees it, and must learn nothing of the final
        # export's folder from it
        folder = job.home.scratch / f"early-{secrets.token_hex(6)}"

        def done(folder=folder, names=names, references=references) -> None:
            values = read_early_values(folder, names)
            if values:
                _ask_ahead(job, references, values)

        found[cell] = Midway(source=partial(names_export_source, names, folder), done=done)
    return found


def score(job: Job) -> None:
    """Vet, load (Keras safe mode) and score the artifacts in a limited child process."""
    from grader.scoring.score import exercise_problems
    from grader.scoring.score_process import score_isolated
    from grader.scoring.scoring_server import score_warm

    options, rubric, row = job.options, job.rubric, job.row
    if job.ahead is not None:
        job.ahead.join()  # the warm scorer answers one request at a time
    scorer = score_isolated if job.scorer is None else partial(score_warm, job.scorer)
    results, notes = scorer(
        rubric, job.artifacts, job.inputs, score_context(job), problems=job.refused,
        unfinished=exercise_problems(rubric, job.nb, job.execution), threads=options.threads,
        log=Path(options.log_path) if options.log_path else None,
        limits=_score_limits(options))
    row.checks = results
    row.notes.extend(notes)


def flag(job: Job) -> None:
    """Flag hold-out leaks, add up the points and the timings."""
    from grader.checks.leakage import flag_leaks

    row = job.row
    flag_leaks(row)
    row.score = float(sum(c.points for c in row.checks))
    row.timings["score"] = round(time.perf_counter() - job.score_started, 3)
    row.duration_s = round(time.perf_counter() - job.started, 3)


STEPS: tuple[Callable[[Job], None], ...] = (
    read, set_up, restore_cells, inject, prepare, execute, export, score, flag)
"""The pipeline of one submission, in order."""


def run_steps(job: Job, steps=STEPS) -> GradeRow:
    """Run ``steps`` on ``job`` until one ends it; remove what they made. Returns the row."""
    try:
        for step in steps:
            step(job)
            if job.done:
                break
        return job.row
    finally:
        for remove in reversed(job.cleanup):  # a failed clean-up never costs the row
            try:
                problem = remove()
            except Exception as exc:  # noqa: BLE001 - contained to an instructor note
                problem = f"{type(exc).__name__}: {exc}"
            if isinstance(problem, str):
                job.row.instructor_notes.append(f"clean-up after grading: {problem}")
