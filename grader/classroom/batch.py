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
in :mod:`grader.classroom.workers`; this module wires them together and writes the outputs.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from grader.base.errors import GraderError
from grader.checks.results import GradeRow
from grader.classroom.manual import attach_questions
from grader.classroom.resume import ResultStore, Task, fingerprint, result_key
from grader.classroom.workers import (
    connect_dask,
    dask_threads,
    error_row,
    kernel_threads,
    run_dask,
    run_local,
)
from grader.pages.gradebook import atomic_write_text, write_gradebook
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
                  readable, id_problem or problem, id_problem is not None)


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
    from grader.submission.validate import course_release_stems, safe_id

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
    return [_task(student, module, entries, fingerprint_of)
            for (student, module), entries in sorted(groups.items(),
                                                     key=lambda kv: (kv[0][0], kv[0][1] or ""))]


def _task(student: str, module: str | None, entries: list[tuple[str, _Ident]],
          fingerprint_of) -> Task:
    """The task of one student and module: its submission, or the collision of several."""
    import hashlib

    from grader.submission.validate import shown_name

    first = entries[0][1]
    common = dict(path=first.found.path, student=student, module=module,
                  key=result_key(student, module), name=shown_name(entries[0][0]))
    if len(entries) == 1:
        return Task(**common, fingerprint=fingerprint_of(first.found.path, module, data=first.data),
                    readable=first.readable, data=first.data, read_error=first.problem,
                    identity_error=first.identity_error)
    digests = b"".join(hashlib.sha256(ident.data).digest() for _, ident in entries)
    return Task(**common, fingerprint=fingerprint_of(first.found.path, module, data=digests),
                readable=False, read_error=_collision([ident for _, ident in entries]),
                identity_error=True)


def _finish(task: Task, row: GradeRow, rubric=None, warning: str | None = None) -> GradeRow:
    """The batch's identity wins (it de-duplicates names); batch notes come first."""
    from grader.submission.validate import display_path

    row.student, row.module = task.student, task.module if task.module else row.module
    row.name = task.name or row.name
    if row.error is not None and not row.checks:  # e.g. a broken file named 01_...: zero per check
        filled = error_row(task, row.error, rubric=rubric)
        row.checks, row.max_score = filled.checks, filled.max_score
    # the worker's own copy of the warning (uid mode: without the batch's exposure list)
    notes = [n for n in row.notes if not (warning and warning.startswith(n))]
    row.notes = [*([warning] if warning else []), *task.notes, *notes]
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
    fast : bool
        Grade in fast mode (small data, few epochs, fast-mode thresholds).
    seed : int, optional
        ``SEED`` injected into every notebook; ``None`` keeps each lesson's own.
    force : bool
        Regrade even submissions whose result is up to date.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``) to grade on instead.
    limits : grader.submission.execute.Limits, optional
        Time, memory and output limits per notebook; by default those of the mode
        (:func:`grader.submission.execute.mode_limits`).
    data_dir : str, optional
        Folder with the datasets; defaults to ``$DLCOURSE_DATA_DIR``.
    similarity_threshold : float, optional
        Pairs at or above it are flagged in the report (default
        :data:`grader.classroom.similarity.DEFAULT_THRESHOLD`).
    progress : bool
        Show a progress bar on stderr.
    rubric, solution : optional
        Grade every submission against this rubric and solution notebook instead of the
        course's (tests use a tiny fixture module).
    imports : sequence of str
        Modules each worker imports before grading (ones registering extra references).
    sandbox : {"auto", "bwrap", "uid", "none"}
        Where kernels run (:mod:`grader.submission.sandbox`). ``auto`` uses bubblewrap when it works
        here, else uid mode when the grader is root, and otherwise grades unsandboxed with a
        warning on the console, in every row's notes in grades.json and at the top of the
        report (never on the students' feedback pages: it is for the instructor).
        Dask workers use the same setting.
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
    from grader.submission.execute import mode_limits
    from grader.submission.sandbox import resolve_sandbox

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise GraderError(f"expected --jobs to be a whole number >= 1, got {jobs!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GraderError(f"--out {str(out)!r} is a file; expected a folder (it is created if"
                          " missing). Fix: choose another --out.")
    limits = limits or mode_limits(fast=fast)
    data_dir = data_dir if data_dir is not None else os.environ.get("DLCOURSE_DATA_DIR")
    started = time.perf_counter()
    from grader.submission.validate import ID_MODES

    if ids not in ID_MODES:
        raise GraderError(f"expected --ids to be one of {', '.join(ID_MODES)}, got {ids!r}")
    paths = find_submission_files(submissions)
    setting = resolve_sandbox(sandbox)
    if setting.mode == "uid":
        setting = _uid_setting(setting, out=out, submissions=submissions, data_dir=data_dir,
                               rubric=rubric)
    if setting.warning:
        print(f"WARNING: {setting.warning}", file=sys.stderr)
    client = connect_dask(scheduler) if scheduler else None
    tasks = plan_tasks(paths, fast=fast, seed=seed, rubric=rubric, solution=solution,
                       sandbox=setting.mode, ids=ids)
    store = ResultStore(out)
    pending = [t for t in tasks if force or store.fingerprint(t.key) != t.fingerprint]
    if scheduler is None and pending:  # the grader provides the datasets (and carves the hold-out)
        data_dir = _provide_data(data_dir, sandboxed=setting.mode != "none")
    summary = BatchSummary(out=out, skipped=len(tasks) - len(pending))
    summary.problems = [f"{t.name or t.student}: {t.read_error}" for t in tasks
                        if t.identity_error]
    current = store.load()  # kept in step with results/ so each rebuild reads no files
    _keep_names(store, current, [t for t in tasks if t not in pending])
    _record_rubrics(out, tasks, rubric)
    if store.untrusted:
        print(f"WARNING: {len(store.untrusted)} stored result(s) in {store.dir} were not written"
              " by this grader (their signature does not verify) and are ignored; their"
              f" submissions are graded again: {', '.join(store.untrusted[:5])}", file=sys.stderr)
    write_gradebook(list(current.values()), out)
    lock = threading.Lock()
    bar = _progress(len(pending), summary.skipped, enabled=progress)

    def on_result(task: Task, row: GradeRow) -> None:
        row = _finish(task, row, rubric, setting.warning)
        row = attach_questions(row, task.data, rubric, out)  # written answers (grader.classroom.manual)
        with lock:
            store.save(task, row)
            current[task.key] = row
            write_gradebook(list(current.values()), out)
            summary.graded += 1
            summary.errors += row.error is not None
            bar.set_postfix_str(f"last: {task.student} {task.module or '?'}"
                                f" {row.score:g}/{row.max_score:g}", refresh=False)
            bar.update(1)

    kwargs = {"fast": fast, "seed": seed, "limits": limits, "data_dir": data_dir,
              "sandbox": setting.mode}
    kernel_copy = None
    if rubric is not None or solution is not None:
        kwargs.update(rubric=rubric, solution=solution)
    try:
        if pending:
            kwargs["holdout"], kernel_copy = _kernel_data(
                data_dir, fast=fast, key=store.key, needed=_datasets_needed(pending, rubric))
            if client is not None:  # workers keep their own logs
                kwargs["threads"] = dask_threads(client)
                run_dask(pending, kwargs, client, on_result, imports)
            else:  # kernels' and scoring processes' own output: not the console
                kwargs["threads"] = kernel_threads(jobs)
                kwargs["log_path"] = str(Path(out) / "grading.log")
                run_local(pending, kwargs, jobs, on_result, imports)
    finally:
        bar.close()
        if client is not None:
            client.close()
        if kernel_copy is not None:
            kernel_copy.remove()
    summary.rows = list(current.values())
    sources = {display_path(t.path): t.data for t in tasks}
    record_batch(out, warning=setting.warning, threshold=similarity_threshold)
    write_outputs(summary.rows, out, sources=sources, cache_key=store.key)
    summary.wall_s = time.perf_counter() - started
    return summary


def _uid_setting(setting, *, out, submissions, data_dir: str | None, rubric):
    """uid mode: make the output folder private (0700) and name, in the batch's warning,
    every input a kernel's uid could still read (checked by reading them as such a uid)."""
    from dataclasses import replace

    from grader.base.keys import result_key_file
    from grader.base.paths import RUBRIC_DIR, SOLUTIONS_DIR
    from grader.submission.sandbox import uid_exposures

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    paths = [*(Path(s) for s in submissions), out, RUBRIC_DIR, SOLUTIONS_DIR, result_key_file()]
    folder = data_dir or os.environ.get("DLCOURSE_DATA_DIR")
    paths += [Path(folder)] if folder else []
    paths += [Path(rubric.path)] if rubric is not None else []
    exposed = uid_exposures([p for p in paths if p.exists()])
    if not exposed:
        return setting
    return replace(setting, warning=f"{setting.warning}. Readable by the kernels here: "
                   f"{', '.join(exposed)} (fix: chmod -R go-rwx on them, or grade with bwrap)")


def _provide_data(data_dir: str | None, *, sandboxed: bool) -> str:
    """The data folder for this run's kernels and scoring (only needed when something is graded)."""
    from grader.submission.sandbox import kernel_data_dir

    try:
        return kernel_data_dir(data_dir)
    except GraderError as exc:
        if sandboxed:
            raise
        cause = exc.__cause__ or exc
        raise GraderError(f"the grader provides the datasets to every kernel and scores on them,"
                          f" and it could not get them: {cause}") from exc


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


def _record_rubrics(out: Path, tasks: Sequence[Task], rubric=None) -> None:
    """Record the rubric of every module in this run (:mod:`grader.classroom.rubric_record`)."""
    from grader.checks.rubric import load_rubric
    from grader.classroom.rubric_record import record_rubrics

    used = []
    for module in sorted({t.module for t in tasks if t.module}):
        if rubric is not None:
            used.append(rubric)
            break
        try:
            used.append(load_rubric(module))
        except GraderError:
            continue
    record_rubrics(out, used)


def _datasets_needed(tasks: Sequence[Task], rubric=None) -> dict[str, set[str]]:
    """Dataset name -> modules of ``tasks`` whose rubric scores on it."""
    from grader.checks.rubric import load_rubric

    needed: dict[str, set[str]] = {}
    for module in sorted({t.module for t in tasks if t.module}):
        try:
            own = rubric if rubric is not None else load_rubric(module)
        except GraderError:
            continue  # such rows get their own error
        for name in {own.dataset, *(c.dataset for c in own.checks if c.kind == "accuracy")}:
            if name:
                needed.setdefault(name, set()).add(module)
    return needed


def _kernel_data(data_dir: str | None, *, fast: bool, key: bytes,
                 needed: dict[str, set[str]]):
    """The run's hold-out plan and its kernel copy, written once for every submission.

    Without a local data folder (a Dask cluster without ``DLCOURSE_DATA_DIR``) each worker
    resolves its own and writes a copy per submission; the seed (from ``key``) is the same.
    """
    from dataclasses import replace

    from grader.checks.holdout import KernelData, plan_holdout, require_datasets

    plan = plan_holdout(data_dir, fast=fast, key=key)
    if data_dir is None:
        return plan, None
    require_datasets(data_dir, needed)
    copy = KernelData.create(plan)
    return replace(plan, kernel_dir=str(copy.path)), copy


def _progress(total: int, skipped: int, *, enabled: bool):
    from tqdm import tqdm

    desc = f"grading ({skipped} up to date)" if skipped else "grading"
    return tqdm(total=total, desc=desc, unit="nb", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


def write_outputs(rows: Sequence[GradeRow], out: Path, *, sources: dict[str, bytes] | None = None,
                  cache_key: bytes | None = None, similar: Sequence | None = None,
                  announce: bool = False) -> list[str]:
    """Gradebook, feedback pages, similarity flags and the class report from ``rows``: the one
    writer of the class outputs (``grade``, its resume and ``manual import`` all call it).

    Everything else it needs is read from ``out``: the no-sandbox warning and the similarity
    threshold of the last ``grade`` (:func:`load_batch_record`) and the rubric warnings of
    :mod:`grader.classroom.rubric_record` (printed when ``announce``), all at the top of the
    report. ``sources`` maps a row's ``submission`` to the bytes read when the batch was planned
    (the similarity step never reopens a submission); ``cache_key`` signs the similarity cache
    (without it nothing is cached). ``similar`` = pairs already found (``manual import`` keeps
    the last grade's ``similarity.json``; it is not recomputed or rewritten). A failure of the
    feedback pages, the similarity pass or the report is a note (on the console and in the
    report), never a crash: the gradebook is written first. Returns the notes.
    """
    from grader.classroom.rubric_record import graded_rubrics

    out = Path(out)
    notes: list[str] = []
    sandbox_warning, threshold = load_batch_record(out, rows)
    _, rubric_warnings = graded_rubrics(out, warn=announce)
    warning = "; ".join(w for w in (sandbox_warning, *rubric_warnings) if w) or None
    write_gradebook(rows, out)
    links: dict[str, str] = {}
    try:
        links = write_feedback(rows, out)
    except Exception as exc:  # noqa: BLE001 - feedback pages must not cost the report
        notes.append(_failure_note("the feedback pages", exc))
    pairs: list = list(similar) if similar is not None else []
    if similar is None:
        try:
            pairs = class_similarity(rows, threshold=threshold, sources=sources or {},
                                     cache=(out / SIMILARITY_CACHE, cache_key) if cache_key else None,
                                     notes=notes)
        except Exception as exc:  # noqa: BLE001 - a prompt to look, never a reason to stop
            notes.append(_failure_note("the similarity check", exc))
        atomic_write_text(out / "similarity.json",
                          json.dumps([p.to_dict() for p in pairs], indent=1) + "\n")
    _write_report_or_note(rows, out, links, pairs, threshold, warning, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return notes


BATCH_RECORD = "batch.json"
"""``DIR/batch.json``: the no-sandbox warning and similarity threshold of the last ``grade``,
so outputs rewritten later (``manual import``) say what ``grade`` said. Plain JSON: it holds
no points, and whoever can edit it can edit ``report.html`` too."""


def record_batch(out: Path, *, warning: str | None, threshold: float | None) -> None:
    """Write :data:`BATCH_RECORD` for this run (``threshold`` None: the default)."""
    from grader.classroom.similarity import DEFAULT_THRESHOLD

    record = {"schema": 1, "sandbox_warning": warning,
              "similarity_threshold": threshold or DEFAULT_THRESHOLD}
    atomic_write_text(Path(out) / BATCH_RECORD, json.dumps(record, indent=1) + "\n")


def load_batch_record(out: Path, rows: Sequence[GradeRow] = ()) -> tuple[str | None, float]:
    """(no-sandbox warning, similarity threshold) of the last ``grade`` into ``out``.

    A folder graded before the record existed (or whose record is unreadable) gets the
    default threshold and the warning ``grade`` put first in its rows' notes, if any.
    """
    from grader.classroom.similarity import DEFAULT_THRESHOLD
    from grader.submission.sandbox import UNSANDBOXED_WARNING

    try:
        record = json.loads((Path(out) / BATCH_RECORD).read_text(encoding="utf-8"))
        warning, threshold = record["sandbox_warning"], float(record["similarity_threshold"])
        if warning is None or isinstance(warning, str):
            return warning, threshold
    except (OSError, ValueError, KeyError, TypeError):
        pass
    noted = (n for r in rows for n in r.notes[:1] if n.startswith(UNSANDBOXED_WARNING))
    return next(noted, None), DEFAULT_THRESHOLD


SIMILARITY_CACHE = "similarity-cache.json"


def _failure_note(what: str, exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return (f"{what} could not be completed ({type(exc).__name__}{': ' + text if text else ''});"
            " the grades are complete and unaffected. Please report this as a grader bug.")


def _write_report_or_note(rows, out: Path, links, pairs, threshold: float, warning, notes) -> None:
    from grader.pages.report import minimal_report, write_report

    try:
        write_report(rows, out, feedback_links=links, similar=pairs, threshold=threshold,
                     warning=warning, notes=notes)
    except Exception as exc:  # noqa: BLE001 - the gradebook is written; say what went wrong
        notes.append(_failure_note("the class report", exc))
        atomic_write_text(out / "report.html", minimal_report(notes, warning=warning))


def write_feedback(rows: Sequence[GradeRow], out: Path) -> dict[str, str]:
    """``feedback/<student>.html`` and ``.md`` per student (pages by :mod:`grader.pages.feedback`).

    A student graded in several modules gets one page holding every module, in order.
    Returns student -> link relative to ``out``.
    """
    from grader.pages.feedback import render_html, render_markdown
    from grader.pages.feedback import write_feedback as write_page
    from grader.pages.gradebook import sort_rows
    from grader.submission.validate import safe_id

    folder = Path(out) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[GradeRow]] = {}
    for row in sort_rows(rows):
        by_student.setdefault(row.student, []).append(row)
    links = {}
    for student, own in by_student.items():
        if len(own) == 1:
            page, _ = write_page(own[0], folder, rubric=_rubric_or_none(own[0].module))
        else:
            page = folder / f"{safe_id(student)}.html"
            pages = [render_html(r, _rubric_or_none(r.module)) for r in own]
            atomic_write_text(page, _combine_html(pages))
            atomic_write_text(page.with_suffix(".md"), "\n\n".join(
                render_markdown(r, _rubric_or_none(r.module)) for r in own))
        links[student] = f"feedback/{page.name}"
    return links


def _combine_html(pages: Sequence[str]) -> str:
    """One HTML document holding the bodies of several feedback pages, separated by rules."""
    head = pages[0].split("<body>", 1)[0]
    bodies = [p.split("<body>", 1)[-1].rsplit("</body>", 1)[0] for p in pages]
    return head + "<body>\n" + "\n<hr>\n".join(bodies) + "\n</body></html>\n"


def _rubric_or_none(module: str | None):
    try:
        from grader.checks.rubric import load_rubric

        return load_rubric(module) if module else None
    except GraderError:
        return None


def class_similarity(rows: Sequence[GradeRow], *, threshold: float,
                     sources: dict[str, bytes] | None = None,
                     cache: tuple[Path, bytes] | None = None, notes: list[str] | None = None):
    """Similar pairs among the submissions of this batch (from the bytes read when planning).

    ``cache`` = (file, key): fingerprints of unchanged submissions are read from the signed
    file instead of being computed again, and the file is rewritten with this batch's.
    A submission whose code cannot be read is left out with a note in ``notes``.
    """
    from grader.classroom.similarity import load_cache, pairs_from_fingerprints, save_cache, source_digest

    templates: dict[str | None, tuple[dict | None, str]] = {}
    old = load_cache(*cache) if cache else {}
    new: dict[str, list[int]] = {}
    entries = []
    sources = sources or {}
    for row in rows:
        data = sources.get(row.submission)
        if not data:
            continue
        if row.module not in templates:
            templates[row.module] = _template_prints(row.module)
        template, template_id = templates[row.module]
        digest = source_digest(data, template_id)
        prints = old.get(digest)
        if prints is None:
            try:
                prints = _submission_prints(data, template)
            except Exception as exc:  # noqa: BLE001 - one odd file is left out, never the class
                if notes is not None:
                    notes.append(f"similarity: {row.student} ({row.module or '?'}) left out:"
                                 f" {type(exc).__name__}")
                continue
        new[digest] = sorted(prints)
        entries.append((row.student, row.module, set(prints)))
    if cache:
        try:
            save_cache(*cache, new)
        except OSError as exc:  # the next run recomputes; this one still has its pairs
            if notes is not None:
                notes.append(f"the similarity cache {cache[0].name} could not be written"
                             f" ({exc.strerror or type(exc).__name__}); the next run computes"
                             " every submission's fingerprints again")
    return pairs_from_fingerprints(entries, threshold=threshold)


def _submission_prints(data: bytes, template: dict | None) -> set[int]:
    from grader.classroom.similarity import exercise_code, fingerprints, read_notebook_json

    nb = read_notebook_json(data)
    return set() if nb is None else fingerprints(exercise_code(nb, template))


def _template_prints(module: str | None) -> tuple[dict | None, str]:
    """The module's template and an id of it for the cache."""
    import hashlib

    template = _template(module)
    text = json.dumps(template, sort_keys=True, default=str) if template else ""
    return template, hashlib.sha256(text.encode("utf-8")).hexdigest()


def _template(module: str | None) -> dict | None:
    """The released student notebook of ``module`` as JSON (its exercise stubs), if any."""
    if module is None:
        return None
    try:
        from grader.authoring.release import load_solution, student_notebook
        from grader.checks.rubric import load_rubric

        return dict(student_notebook(load_solution(load_rubric(module))))
    except Exception:  # noqa: BLE001 - no template only means stubs are not subtracted
        return None
