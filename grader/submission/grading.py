"""Grade one submitted notebook end to end; the score is decided outside the student's kernel.

The pipeline, top to bottom::

    validate (bytes read once) -> restore protected cells -> inject parameters (FAST, SEED)
      -> execute in a fresh limited kernel, sandboxed (grader.submission.sandbox)
      -> export artifacts (same kernel) -> copy the regular files into the grader's folder
      -> vet, load (Keras safe mode) and score in a limited child process -> GradeRow

:func:`grade_submission` never raises for anything a student did: a broken file, a crash,
a time-out or a dead kernel is a :class:`~grader.checks.results.GradeRow` with ``error`` or with
failed checks and ``notes``. Exceptions mean a grader bug.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import nbformat

from grader.authoring.cells import cell_name, cell_names
from grader.base.errors import GraderError
from grader.checks.holdout import HoldoutPlan, plan_holdout, with_kernel_data
from grader.checks.kinds import Context
from grader.checks.leakage import flag_leaks
from grader.checks.results import CheckResult, GradeRow
from grader.checks.rubric import Rubric, load_rubric
from grader.submission.execute import ExecutionResult, Limits, execute_notebook, mode_limits
from grader.submission.export import collect_artifacts, export_source, write_function_inputs
from grader.submission.parameters import inject_parameters
from grader.submission.restore import restore
from grader.submission.sandbox import (
    KernelHome,
    end_kernel_uid,
    kernel_environment,
    make_kernel_manager,
    sandboxed_kernel_manager,
    uid_kernel_manager,
)
from grader.submission.score import exercise_problems
from grader.submission.score_process import ScoreLimits, score_isolated
from grader.submission.scoring_server import ScorerHandle, score_warm
from grader.submission.validate import display_path, read_submission

SUBMISSION_NAME = "submission.ipynb"
EXECUTED_NAME = "executed.ipynb"
MAX_ERROR_NOTES = 8


def _zero_checks(rubric: Rubric, message: str) -> list[CheckResult]:
    return [CheckResult(c.id, 0.0, c.points, False, message) for c in rubric.checks]


def _tail(text: str, lines: int = 4) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _output_note(execution: ExecutionResult) -> str:
    """What the row and the feedback say about output the grader did not keep."""
    from grader.submission.sandbox import MAX_MESSAGE_BYTES

    note = "some output was cut: the grader keeps only the first part of long outputs"
    dropped = execution.output_dropped_bytes
    if dropped >= 1_000_000:
        note += f" ({dropped / 1e6:,.0f} MB more output was dropped)"
    elif dropped > 0:
        note += f" ({dropped:,} bytes more output were dropped)"
    if execution.output_reconnects:
        note += (f"; messages larger than {MAX_MESSAGE_BYTES // 2**20} MB were dropped unseen"
                 " (print less, or save large results to a file)")
    return note


def _execution_notes(execution: ExecutionResult, nb, names: dict[str, str] | None = None) -> list[str]:
    """Notes on errors, time-outs and cells not run; cells are named as students read them
    (``names`` from :func:`grader.authoring.cells.cell_names`), never by internal id."""
    names = names if names is not None else cell_names(nb)
    notes: list[str] = []
    errors = list(execution.cell_errors.items())
    for cid, text in errors[:MAX_ERROR_NOTES]:
        first = text.splitlines()[0]
        notes.append(f"{cell_name(names, cid)} raised {first}\n{_tail(text)}")
    if len(errors) > MAX_ERROR_NOTES:
        notes.append(f"... and {len(errors) - MAX_ERROR_NOTES} more cells raised errors")
    if execution.timed_out:
        notes.append("interrupted at the time limit: "
                     f"{', '.join(cell_name(names, c) for c in execution.timed_out)}")
    if execution.notebook_timed_out:
        notes.append("the notebook reached its total time limit")
    if execution.not_run:
        notes.append(f"{len(execution.not_run)} cell(s) were not run: "
                     f"{', '.join(cell_name(names, c) for c in execution.not_run[:10])}"
                     f"{' ...' if len(execution.not_run) > 10 else ''}")
    if execution.output_truncated:
        notes.append(_output_note(execution))
    if execution.epilogue_error:
        notes.append(f"exporting your objects failed: {_tail(execution.epilogue_error)}")
    return notes


def grade_submission(
    path: Path | str,
    *,
    fast: bool,
    seed: int | None = None,
    scratch_root: Path | None = None,
    limits: Limits | None = None,
    data_dir: str | None = None,
    threads: int | None = None,
    rubric: Rubric | None = None,
    solution: nbformat.NotebookNode | None = None,
    sandbox: str = "auto",
    data: bytes | None = None,
    log_path: str | None = None,
    holdout: HoldoutPlan | None = None,
    scorer: ScorerHandle | None = None,
) -> GradeRow:
    """Grade one submitted notebook.

    Parameters
    ----------
    path : Path or str
        The submitted ``.ipynb``. The student id comes from the path
        (see :mod:`grader.submission.validate`).
    fast : bool
        Fast mode (small data, few epochs; the rubric's ``fast`` thresholds).
    seed : int, optional
        Injected as ``SEED`` after the parameters cell. ``None`` (default) keeps the
        lesson's own ``SEED``, the one its accuracy thresholds were calibrated with.
    scratch_root : Path, optional
        Where the per-submission scratch folder is made. When given, the folder
        (``scratch/submission.ipynb``, ``executed.ipynb``, exported artifacts) is kept for
        inspection; by default a temporary folder is used and removed.
    limits : Limits, optional
        Time, memory and output limits for the kernel and for scoring; by default those of
        the mode (:func:`grader.submission.execute.mode_limits`).
    data_dir : str, optional
        The instructor's folder of the course datasets, used for scoring; defaults to
        ``$DLCOURSE_DATA_DIR`` (else a cache the grader fills, see
        :func:`grader.submission.sandbox.kernel_data_dir`). The kernel never gets it: it gets a copy
        without the private hold-out (:mod:`grader.checks.holdout`), read-only at ``/data``.
    threads : int, optional
        Thread pool size for the kernel (``OMP_NUM_THREADS``, ``TF_NUM_*_THREADS``);
        batch grading sets ``cores // jobs``.
    rubric, solution : optional
        Override the module's rubric and solution notebook (tests use a tiny fixture
        module). With ``rubric`` the module is the rubric's, whatever the notebook says.
    sandbox : {"auto", "bwrap", "uid", "none"}
        Where the kernel runs (:mod:`grader.submission.sandbox`); ``auto`` uses bubblewrap when it
        works, else uid mode when the grader is root.
    data : bytes, optional
        The submission's bytes, already read by the caller: the file is then never opened
        again (the batch reads each submission once).
    log_path : str, optional
        File that the kernel's and the scoring process's own output (TensorFlow's log lines)
        is appended to, instead of this process's console (batch grading: ``DIR/grading.log``).
    holdout : HoldoutPlan, optional
        The grading run's hold-out (batch grading passes one, with the kernel copy it wrote
        once for every submission). By default one is made from the results key and its
        kernel copy is written for this submission and removed afterwards.
    scorer : ScorerHandle, optional
        A warm scoring process (:mod:`grader.submission.scoring_server`) to score in; by default a
        fresh child process scores this submission.

    Returns
    -------
    GradeRow
        ``timings`` holds ``kernel_start``, ``execute``, ``slowest_cell`` (the longest code
        cell), ``export`` and ``score`` seconds.
    """
    from grader.submission.sandbox import kernel_data_dir, resolve_sandbox

    started = time.perf_counter()
    path = Path(path)
    limits = mode_limits(fast=fast) if limits is None else limits
    setting = resolve_sandbox(sandbox)
    data_dir = data_dir if data_dir is not None else os.environ.get("DLCOURSE_DATA_DIR")
    if holdout is not None and holdout.source_dir is not None and data_dir is None:
        data_dir = holdout.source_dir
    # the grader provides the datasets: the private hold-out is carved from local files
    data_dir = kernel_data_dir(data_dir)
    sub = read_submission(path, module=rubric.module if rubric is not None else None,
                          release_name=rubric.notebook if rubric is not None else None,
                          data=data)
    row = GradeRow(student=sub.student, module=sub.module, score=0.0, max_score=0.0,
                   error=None, submission=display_path(path), notes=list(sub.notes))
    if sub.error is None:
        try:
            rubric = rubric if rubric is not None else load_rubric(sub.module)
            if solution is None:
                from grader.authoring.release import load_solution

                solution = load_solution(rubric)
        except GraderError as exc:
            sub.error = f"the grader is not set up for module {sub.module}: {exc}"
    if rubric is not None:
        row.max_score = rubric.max_score
    if sub.error is not None:
        row.error = sub.error
        if rubric is not None and sub.nb is None:
            row.checks = _zero_checks(rubric, "not graded: " + sub.error)
        row.duration_s = time.perf_counter() - started
        return row

    restored = restore(sub.nb, solution)
    if setting.warning:
        row.notes.insert(0, setting.warning)
    row.notes.extend(restored.notes)
    nb = restored.nb
    params = {"FAST": bool(fast)}
    if seed is not None:
        params["SEED"] = int(seed)
    inject_parameters(nb, **params)

    own_scratch = scratch_root is None
    root = Path(tempfile.mkdtemp(prefix="dlcourse-grade-")) if own_scratch else Path(scratch_root)
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / f"{sub.student[:40]}-{rubric.module}-{secrets.token_hex(4)}"
    workdir.mkdir(mode=0o700)
    home = KernelHome.create(workdir)
    plan = holdout if holdout is not None else plan_holdout(data_dir, fast=fast)
    if plan.mode != ("fast" if fast else "full"):
        raise ValueError(f"expected a {'fast' if fast else 'full'} hold-out plan, got {plan.mode}")
    plan = replace(plan, source_dir=data_dir)
    own_copy = None
    try:
        plan, own_copy = with_kernel_data(plan)
        return _run_and_score(row, nb, rubric, home, fast=fast, limits=limits,
                              data_dir=data_dir, threads=threads, started=started,
                              sandbox=setting.mode, holdout=plan,
                              log=Path(log_path) if log_path else None, scorer=scorer)
    finally:
        home.remove()
        if own_copy is not None:
            own_copy.remove()
        if own_scratch:
            shutil.rmtree(root, ignore_errors=True)


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


def _write_new(path: Path, text: str) -> None:
    """Write a file the grader creates; never follow a link or reuse a file someone planted."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _run_and_score(row: GradeRow, nb, rubric: Rubric, home: KernelHome, *, fast: bool,
                   limits: Limits, data_dir: str | None, threads: int | None,
                   started: float, sandbox: str, holdout: HoldoutPlan,
                   log: Path | None = None, scorer: ScorerHandle | None = None) -> GradeRow:
    token = secrets.token_hex(6)
    _write_new(home.scratch / SUBMISSION_NAME, nbformat.writes(nb))
    export_dir = home.scratch / f"export-{token}"
    inputs: dict = {}

    def export_cell() -> str:
        # Made only now, after the student's code ran: fresh function inputs, no answers.
        inputs.update(write_function_inputs(rubric, home.inbox))
        return export_source(rubric, export_dir, home.inbox)

    kernel_data = holdout.kernel_dir  # the copy without the private hold-out
    if sandbox == "bwrap":
        env = kernel_environment(fast=fast, data_dir=kernel_data, threads=threads, sandboxed=True)
        km = sandboxed_kernel_manager(home, data_dir=kernel_data, env=env)
    else:
        env = kernel_environment(fast=fast, data_dir=kernel_data, threads=threads,
                                 sandboxed=False, home=home.home)
        if sandbox == "uid":  # its own home (owned by its uid) for temporary files too
            env["TMPDIR"] = str(home.home)
        km = (uid_kernel_manager(home, data_dir=kernel_data) if sandbox == "uid"
              else make_kernel_manager(home.sockets))
    try:
        execution = execute_notebook(nb, workdir=home.scratch, limits=limits, env=env,
                                     epilogue=export_cell, km=km, log=log)
    finally:
        if sandbox == "uid":  # daemons and /tmp files it left: before its files are read
            end_kernel_uid(home)
    # The kernel and every process it started are gone now; what follows reads its files.
    _write_new(home.root / EXECUTED_NAME, nbformat.writes(nb))
    row.timings = {key: round(execution.durations.get(key, 0.0), 3)
                   for key in ("kernel_start", "execute", "slowest_cell", "export")}
    # cells named as students read them (positions as in their notebook: without the injection)
    names = cell_names({"cells": [c for c in nb.cells if c.get("id") != "injected-parameters"]})
    row.notes.extend(_execution_notes(execution, nb, names))
    if execution.kernel_died and not execution.died_during_export:
        where = next((cid for cid, text in execution.cell_errors.items()
                      if text.startswith("KernelDied")), None)
        row.error = (f"{execution.death_reason}"
                     f"{f' while running {cell_name(names, where)}' if where else ''}; nothing could be"
                     " exported, so no check was scored. Fix: run the notebook top to bottom"
                     " in a fresh kernel and make sure it finishes (watch memory use and"
                     " infinite loops).")
        row.checks = _zero_checks(rubric, "not graded: the kernel died before the export")
        row.duration_s = time.perf_counter() - started
        return row

    t0 = time.perf_counter()
    artifacts = home.root / f"artifacts-{token}"
    refused = collect_artifacts(rubric, export_dir, artifacts)
    ctx = Context(mode="fast" if fast else "full", dataset=rubric.dataset, data_dir=data_dir,
                  verify=True, choice_key=rerun_choice_key(row.student, rubric.module),
                  holdout=holdout)
    score = score_isolated if scorer is None else partial(score_warm, scorer)
    results, notes = score(
        rubric, artifacts, inputs, ctx, problems=refused,
        unfinished=exercise_problems(rubric, nb, execution), threads=threads, log=log,
        limits=ScoreLimits(timeout_s=limits.score_timeout_s, memory_mb=limits.score_memory_mb))
    row.checks = results
    row.notes.extend(notes)
    flag_leaks(row)
    row.score = float(sum(c.points for c in results))
    row.timings["score"] = round(time.perf_counter() - t0, 3)
    row.duration_s = round(time.perf_counter() - started, 3)
    return row
