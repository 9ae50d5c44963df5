"""Grade a whole class: find the submissions, grade them in parallel, resume after a crash.

The pipeline, top to bottom (:func:`grade_class`):

1. **Find** every ``*.ipynb`` under the given files and folders (``.ipynb_checkpoints``
   excluded) and identify student and module the way :mod:`grader.submission.validate` does.
2. **Skip** what is already graded: each result lives in ``OUT/results/<key>.json``
   (key = student + module) stamped with a fingerprint of the submission bytes, the
   rubric and solution bytes, the mode and the seed. An unchanged fingerprint is not
   graded again (``force`` regrades everything).
3. **Grade** the rest with :func:`grader.submission.grading.grade_submission`, either locally
   (``jobs`` at once, each in its own worker process that starts its own kernel, so a
   crash, a loop or a memory hog in one never touches another) or on a Dask cluster
   (``scheduler``). Kernel thread pools get ``max(1, cores // jobs)`` threads.
4. **Persist** every result the moment it arrives (temporary file + ``os.replace``) and
   rebuild ``grades.json`` / ``grades.csv`` from ``OUT/results`` (atomically too), so a
   batch killed at any point loses nothing already graded and never duplicates a row.
5. **Report**: per-student feedback pages, similarity flags and the class report.

Resume bookkeeping lives in :mod:`grader.classroom.resume`, the executors (worker processes, Dask)
in :mod:`grader.classroom.workers`, the outputs in :mod:`grader.classroom.outputs`; this module
wires them together.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from grader.base.errors import GraderError
from grader.checks.results import GradeRow
from grader.classroom.manual import attach_questions
from grader.classroom.outputs import record_batch, write_outputs
from grader.classroom.resume import ResultStore, Task, fingerprint, result_key
from grader.classroom.workers import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    connect_dask,
    dask_threads,
    error_row,
    kernel_threads,
)
from grader.data.provide import provide_datasets, start_fast_copy
from grader.pages.gradebook import write_gradebook
from grader.pages.report import warm_up_report
from grader.submission.options import GradingOptions
from grader.submission.validate import display_path


@dataclass
class BatchSummary:
    """What :func:`grade_class` did."""

    out: Path
    graded: int = 0
    skipped: int = 0
    errors: int = 0
    rows: list[GradeRow] = field(default_factory=list)
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    """Students whose submissions could not be told apart or whose name could not be told
    (``student: reason``), listed in the console summary; each is also an error row."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds of the batch's phases: ``plan`` (find, read, plan), ``data_copy`` (the kernels'
    data), ``grading``, ``outputs`` (pages, similarity, report); kept in ``batch.json``."""


@dataclass(frozen=True)
class Found:
    """One submission file and where it lies below the SUBMISSION argument it was found under."""

    path: Path
    rel: tuple[str, ...]
    """Path parts below that argument (``("ada", "01_x.ipynb")``); files named on the command
    line are taken below their deepest common folder."""


def _common_folder(files: Sequence[Path]) -> Path | None:
    if not files:
        return None
    parents = [f.parent.absolute() for f in files]
    try:
        return Path(os.path.commonpath([str(p) for p in parents]))
    except ValueError:  # different drives (Windows)
        return None


def find_submission_files(paths: Iterable[str | os.PathLike]) -> list[Found]:
    """Every ``.ipynb`` named or found below ``paths`` (sorted by resolved path, de-duplicated),
    with its parts below the argument that found it (what :func:`submission_name` reads).

    Raises
    ------
    GraderError
        When a path does not exist or nothing was found (a usage error).
    """
    paths = [Path(raw) for raw in paths]
    found: dict[Path, tuple[str, ...]] = {}
    for path in paths:
        if not path.exists():
            raise GraderError(f"submission path {str(path)!r} does not exist; expected a .ipynb"
                              " file or a folder of them. Fix: check the path.")
    given = [p for p in paths if p.is_file()]
    common = _common_folder(given)
    for path in given:
        rel = path.absolute().relative_to(common).parts if common else (path.name,)
        found.setdefault(path.resolve(), rel)
    for path in paths:
        if path.is_file():
            continue
        for nb in sorted(path.rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in nb.parts and nb.is_file():
                found.setdefault(nb.resolve(), nb.relative_to(path).parts)
    if not found:
        shown = ", ".join(str(p) for p in paths) or "(none given)"
        raise GraderError(f"no .ipynb files found in {shown}; expected notebooks or folders"
                          " holding them. Fix: point the command at the submissions folder.")
    return [Found(path, found[path]) for path in sorted(found)]


def find_submissions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files of :func:`find_submission_files` (sorted, de-duplicated)."""
    return [f.path for f in find_submission_files(paths)]


@dataclass
class _Ident:
    found: Found
    data: bytes
    name: str | None
    module: str | None
    readable: bool
    problem: str | None
    identity_error: bool = False
    parsed: object = None


def _identify(found: Found, *, rubric, ids: str, stems: dict[str, str]) -> _Ident:
    from grader.submission.validate import (
        module_from_name,
        read_bytes,
        read_submission,
        submission_name,
    )

    path = found.path
    data, problem = read_bytes(path)
    sub = read_submission(path, module=rubric.module if rubric is not None else None,
                          release_name=rubric.notebook if rubric is not None else None,
                          data=data if data is not None else b"")
    name, id_problem = submission_name(path, found.rel, ids, stems)
    readable = sub.error is None and problem is None and id_problem is None
    return _Ident(found, data or b"", name, sub.module or module_from_name(path, stems),
                  readable, id_problem or problem, id_problem is not None, parsed=sub)


def _collision(idents: Sequence[_Ident]) -> str:
    module = idents[0].module or "unknown"
    files = ", ".join(display_path(Path(*i.found.rel)) for i in idents)
    count = {2: "two", 3: "three"}.get(len(idents), str(len(idents)))
    return (f"{count} submissions for module {module}: {files}; keep one (move the others out"
            " of the submissions folder) and grade again. None of them was graded")


def plan_tasks(paths: Sequence[Path | Found], *, fast: bool, seed: int | None, rubric=None,
               solution=None, sandbox: str = "", ids: str = "auto") -> list[Task]:
    """Read each submission once, identify it, and give every student and module one task.

    The student comes from the one source ``ids`` names (:func:`submission_name`); a bare
    ``Path`` counts as a file named on the command line. Two or more submissions of one
    student and module are a collision: one task whose row is an error naming every file
    (none is graded, no one else's row moves). A file whose student cannot be told is an
    error row under an id made from its path. ``rubric`` and ``solution`` override the
    course's (tests grade a tiny fixture module).
    """
    from grader.base.ids import safe_id
    from grader.submission.validate import course_release_stems

    stems = course_release_stems()
    if rubric is not None:
        stems[Path(rubric.notebook).stem] = rubric.module
    found = [f for f in paths if isinstance(f, Found)]
    loose = [Path(f) for f in paths if not isinstance(f, Found)]
    found += find_submission_files(loose) if loose else []
    groups: dict[tuple[str, str | None], list[tuple[str, _Ident]]] = {}
    for item in found:
        ident = _identify(item, rubric=rubric, ids=ids, stems=stems)
        raw = ident.name if ident.name is not None else "unidentified " + "/".join(item.rel)
        groups.setdefault((safe_id(raw), ident.module), []).append((raw, ident))
    fingerprint_of = partial(fingerprint, fast=fast, seed=seed, rubric=rubric, solution=solution,
                             sandbox=sandbox)
    rubrics = module_rubrics({module for _, module in groups}, rubric)
    return [_task(student, module, entries, fingerprint_of, rubrics.get(module))
            for (student, module), entries in sorted(groups.items(),
                                                     key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def module_rubrics(modules: Iterable[str | None], rubric=None) -> dict[str | None, object]:
    """Module -> the rubric its tasks are graded against, each loaded once: the custom
    ``rubric`` for every module when given, else the module's own (``None`` when the grader
    has none: such rows get their own error)."""
    from grader.checks.rubric import load_rubric

    found: dict[str | None, object] = {}
    for module in modules:
        if rubric is not None or module is None:
            found[module] = rubric
            continue
        try:
            found[module] = load_rubric(module)
        except GraderError:
            found[module] = None
    return found


def _task(student: str, module: str | None, entries: list[tuple[str, _Ident]],
          fingerprint_of, rubric=None) -> Task:
    """The task of one student and module: its submission, or the collision of several."""
    import hashlib

    from grader.submission.validate import shown_name

    first = entries[0][1]
    common = dict(path=first.found.path, student=student, module=module,
                  key=result_key(student, module), name=shown_name(entries[0][0]), rubric=rubric)
    if len(entries) == 1:
        return Task(**common, fingerprint=fingerprint_of(first.found.path, module, data=first.data),
                    readable=first.readable, data=first.data, read_error=first.problem,
                    identity_error=first.identity_error, parsed=first.parsed)
    digests = b"".join(hashlib.sha256(ident.data).digest() for _, ident in entries)
    return Task(**common, fingerprint=fingerprint_of(first.found.path, module, data=digests),
                readable=False, read_error=_collision([ident for _, ident in entries]),
                identity_error=True)


def _finish(task: Task, row: GradeRow, warning: str | None = None) -> GradeRow:
    """The batch's identity wins (it de-duplicates names); batch notes come first."""
    from grader.submission.validate import display_path

    row.student, row.module = task.student, task.module if task.module else row.module
    row.name = task.name or row.name
    if row.error is not None and not row.checks:  # e.g. a broken file named 01_...: zero per check
        filled = error_row(task, row.error)
        row.checks, row.max_score = filled.checks, filled.max_score
    # the worker's own copy of the warning (uid mode: without the batch's exposure list)
    own = [n for n in row.instructor_notes if not (warning and warning.startswith(n))]
    row.instructor_notes = [*([warning] if warning else []), *own]
    # results stored before instructor notes were a field held the warning among the notes
    row.notes = [*task.notes, *(n for n in row.notes if not (warning and warning.startswith(n)))]
    row.submission = display_path(task.path)
    return row


def grade_class(*, submissions: Sequence[str | os.PathLike], out: str | os.PathLike,
                jobs: int = 1, fast: bool = False, seed: int | None = None, force: bool = False,
                scheduler: str | None = None, limits=None, data_dir: str | None = None,
                similarity_threshold: float | None = None, progress: bool = True,
                rubric=None, solution=None, imports: Sequence[str] = (),
                sandbox: str = "auto", ids: str = "auto") -> BatchSummary:
    """Grade every submission into ``out`` (see the module docstring for the steps).

    Parameters
    ----------
    submissions : sequence of path
        Notebooks or folders searched recursively.
    out : path
        Output folder: ``grades.csv``, ``grades.json``, ``feedback/``, ``report.html``,
        ``results/`` (one file per graded submission, used to resume).
    jobs : int
        Submissions graded at once on this machine (ignored with ``scheduler``).
    fast, seed, limits, data_dir, sandbox, rubric, solution, imports
        Resolved once into the batch's :class:`grader.submission.options.GradingOptions`
        (see there); ``limits`` default to the mode's, ``data_dir`` to
        ``$DLCOURSE_DATA_DIR``. ``sandbox="auto"`` without bubblewrap grades unsandboxed with
        a warning on the console, in every row's notes in grades.json and at the top of the
        report (never on the students' feedback pages). Dask workers use the same setting.
    force : bool
        Regrade even submissions whose result is up to date.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to grade on instead.
    similarity_threshold : float, optional
        Pairs at or above it are flagged in the report (default
        :data:`grader.classroom.similarity.DEFAULT_THRESHOLD`).
    progress : bool
        Show a progress bar on stderr.
    ids : {"auto", "folder", "file"}
        Where student names come from (:func:`grader.submission.validate.submission_name`):
        the student's folder, the file name, or (auto) the folder for files in folders and
        the file name for loose files.

    Raises
    ------
    GraderError
        For usage and configuration errors (nothing to grade, bad ``jobs``, bad ``out``,
        unreachable scheduler). Student failures never raise.
    """
    _check_usage(jobs, out, ids)
    out = Path(out)
    started = time.perf_counter()
    early = start_fast_copy(data_dir, fast=fast, local=scheduler is None)
    paths = find_submission_files(submissions)
    options = _batch_options(out, submissions, fast=fast, seed=seed, limits=limits,
                             sandbox=sandbox, data_dir=data_dir, rubric=rubric,
                             solution=solution, imports=tuple(imports))
    client = connect_dask(scheduler) if scheduler else None
    tasks = plan_tasks(paths, fast=fast, seed=seed, rubric=rubric, solution=solution,
                       sandbox=options.sandbox, ids=ids)
    store = ResultStore(out)
    pending = [t for t in tasks if force or store.fingerprint(t.key) != t.fingerprint]
    if scheduler is None and pending:  # the grader provides the datasets (and carves the hold-out)
        options = replace(options, data_dir=provide_datasets(
            options.data_dir, for_sandbox=options.sandbox_mode.own_user))
    summary = BatchSummary(out=out, skipped=len(tasks) - len(pending))
    summary.problems = [f"{t.name or t.student}: {t.read_error}" for t in tasks
                        if t.identity_error]
    current = store.load()  # kept in step with results/ so each rebuild reads no files
    _keep_names(store, current, [t for t in tasks if t not in pending])
    _record_rubrics(out, tasks)
    _warn_untrusted(store)
    write_gradebook(list(current.values()), out)
    bar = _progress(len(pending), summary.skipped, enabled=progress)
    on_result = _collector(store, current, summary, bar, options)
    summary.timings["plan"] = time.perf_counter() - started
    try:
        if pending:
            executor = LocalExecutor(jobs) if client is None else DaskExecutor(client)
            summary.timings.update(_grade_pending(executor, pending, options, on_result,
                                                  store.key, out, early=early))
    finally:
        bar.close()
        if client is not None:
            client.close()
    summary.rows = list(current.values())
    _write_class_outputs(summary, tasks, options, similarity_threshold, store.key)
    summary.wall_s = time.perf_counter() - started
    return summary


def _write_class_outputs(summary: BatchSummary, tasks: Sequence[Task], options: GradingOptions,
                         threshold: float | None, key: bytes) -> None:
    """The batch record, then every class output (timed: the record keeps the phases)."""
    start = time.perf_counter()
    sources = {display_path(t.path): t.data for t in tasks}
    record_batch(summary.out, warning=options.sandbox_warning, threshold=threshold)
    write_outputs(summary.rows, summary.out, sources=sources, cache_key=key)
    summary.timings["outputs"] = time.perf_counter() - start
    record_batch(summary.out, warning=options.sandbox_warning, threshold=threshold,
                 timings=summary.timings)


def _warn_untrusted(store: ResultStore) -> None:
    if store.untrusted:
        print(f"WARNING: {len(store.untrusted)} stored result(s) in {store.dir} were not written"
              " by this grader (their signature does not verify) and are ignored; their"
              f" submissions are graded again: {', '.join(store.untrusted[:5])}", file=sys.stderr)


def _batch_options(out: Path, submissions, **given) -> GradingOptions:
    """The batch's options, resolved here once (the data folder is provided later, only when
    something is graded locally); the sandbox's warning is printed."""
    options = GradingOptions.resolve(**given, provide_data=False)
    inputs = [Path(s) for s in submissions]
    folder = options.data_dir or os.environ.get("DLCOURSE_DATA_DIR")
    inputs += [Path(folder)] if folder else []
    inputs += [Path(options.rubric.path)] if options.rubric is not None else []
    extra = options.sandbox_mode.batch_warning(out=out, inputs=inputs)
    if extra:
        options = replace(options, sandbox_warning=f"{options.sandbox_warning}. {extra}")
    missing = _missing_groups(options)
    if missing:
        options = replace(options, sandbox_warning="; ".join(
            w for w in (options.sandbox_warning, missing) if w))
    if options.sandbox_warning:
        print(f"WARNING: {options.sandbox_warning}", file=sys.stderr)
    return options


def _check_usage(jobs, out, ids: str) -> None:
    """Refuse a bad ``jobs``, an ``out`` that is a file, an unknown ``ids`` (usage errors)."""
    from grader.submission.validate import ID_MODES

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise GraderError(f"expected --jobs to be a whole number >= 1, got {jobs!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GraderError(f"--out {str(out)!r} is a file; expected a folder (it is created if"
                          " missing). Fix: choose another --out.")
    if ids not in ID_MODES:
        raise GraderError(f"expected --ids to be one of {', '.join(ID_MODES)}, got {ids!r}")


def _collector(store: ResultStore, current: dict[str, GradeRow], summary: BatchSummary, bar,
               options: GradingOptions):
    """The ``on_result`` of the executors: finish the row, save it, rebuild the gradebook."""
    lock = threading.Lock()
    out = summary.out

    def on_result(task: Task, row: GradeRow) -> None:
        row = _finish(task, row, options.sandbox_warning)
        # written answers (grader.classroom.manual)
        row = attach_questions(row, task.data, task.rubric, out)
        with lock:
            store.save(task, row)
            current[task.key] = row
            write_gradebook(list(current.values()), out)
            summary.graded += 1
            summary.errors += row.error is not None
            bar.set_postfix_str(f"last: {task.student} {task.module or '?'}"
                                f" {row.score:g}/{row.max_score:g}", refresh=False)
            bar.update(1)

    return on_result


def _grade_pending(executor: Executor, pending: Sequence[Task], options: GradingOptions,
                   on_result, key: bytes, out: Path,
                   early: threading.Thread | None = None) -> dict[str, float]:
    """Complete the options for ``executor`` (hold-out plan and its kernel copy, threads, the
    log file) and grade ``pending`` with it. Returns the seconds of ``data_copy`` (waiting
    for ``early``, the copy started with the batch, included) and ``grading``."""
    start = time.perf_counter()
    # worker processes (one per notebook that runs) start while the data copy is written
    executor.start(sum(t.read_error is None and t.readable for t in pending))
    try:
        if early is not None:
            early.join()
        holdout, kernel_copy = _kernel_data(options.data_dir, fast=options.fast, key=key,
                                            needed=_datasets_needed(pending))
    except BaseException:
        executor.close()
        raise
    copied = time.perf_counter()
    threading.Thread(target=warm_up_report, name="warm-report", daemon=True).start()
    try:
        if isinstance(executor, DaskExecutor):  # workers keep their own logs
            options = replace(options, holdout=holdout, threads=dask_threads(executor.client))
        else:  # kernels' and scoring processes' own output: not the console
            options = replace(options, holdout=holdout, threads=kernel_threads(executor.jobs),
                              log_path=str(Path(out) / "grading.log"))
        executor.run(pending, options, on_result)
    finally:
        if kernel_copy is not None:
            kernel_copy.remove()
    return {"data_copy": copied - start, "grading": time.perf_counter() - copied}


GROUP_GAPS = {
    "memory": "shared memory (memfd files, System V and POSIX shared memory, tmpfs files) is"
              " not counted against --memory-mb",
    "cpu": "a kernel running many busy processes weighs more than one against its neighbour",
    "pids": "the kernels' task limit is their uid's process limit only",
}
"""What a kernel escapes where the grader cannot give it a control group of each kind."""


def _missing_groups(options: GradingOptions) -> str | None:
    """The batch's note when kernels get no control group of some kind here (sandboxed
    kernels only: without a sandbox nothing is contained anyway)."""
    if not options.sandbox_mode.own_user:
        return None
    from grader.kernel.cgroups import controllers_in_use

    used = controllers_in_use()
    gaps = [f"no {name} control group could be made for the kernels here: {gap}"
            for name, gap in GROUP_GAPS.items() if name not in used]
    return "; ".join(gaps) or None


def _keep_names(store: ResultStore, current: dict[str, GradeRow], tasks: Sequence[Task]) -> None:
    """Give up-to-date rows graded before names were kept (or under another spelling) the
    name of this run, in memory and in their signed result."""
    for task in tasks:
        row = current.get(task.key)
        if row is not None and task.name and row.name != task.name:
            row.name = task.name
            try:
                store.update_row(task.key, row)
            except GraderError:
                continue


def _record_rubrics(out: Path, tasks: Sequence[Task]) -> None:
    """Record the rubric of every module in this run (:mod:`grader.classroom.rubric_record`):
    the tasks' own, loaded when they were planned (a custom rubric once)."""
    from grader.classroom.rubric_record import record_rubrics

    used: list = []
    for module in sorted({t.module for t in tasks if t.module}):
        rubric = next(t.rubric for t in tasks if t.module == module)
        if rubric is not None and all(rubric is not u for u in used):
            used.append(rubric)
    record_rubrics(out, used)


def _datasets_needed(tasks: Sequence[Task]) -> dict[str, set[str]]:
    """Dataset name -> modules of ``tasks`` whose rubric scores on it."""
    needed: dict[str, set[str]] = {}
    for module in sorted({t.module for t in tasks if t.module}):
        own = next(t.rubric for t in tasks if t.module == module)
        if own is None:
            continue  # such rows get their own error
        for name in own.scoring_datasets:
            needed.setdefault(name, set()).add(module)
    return needed


def _kernel_data(data_dir: str | None, *, fast: bool, key: bytes,
                 needed: dict[str, set[str]]):
    """The run's hold-out plan and its kernel copy, written once for every submission.

    Without a local data folder (a Dask cluster without ``DLCOURSE_DATA_DIR``) each worker
    resolves its own and writes a copy per submission; the seed (from ``key``) is the same.
    """
    from dataclasses import replace

    from grader.data.holdout import plan_holdout, require_datasets
    from grader.data.kernel_cache import kernel_copy

    plan = plan_holdout(data_dir, fast=fast, key=key)
    if data_dir is None:
        return plan, None
    require_datasets(data_dir, needed)
    copy = kernel_copy(plan)
    return replace(plan, kernel_dir=str(copy.path)), copy


def _progress(total: int, skipped: int, *, enabled: bool):
    from tqdm import tqdm

    desc = f"grading ({skipped} up to date)" if skipped else "grading"
    return tqdm(total=total, desc=desc, unit="nb", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)
