"""The class outputs of an output folder, written by one writer for every command.

``grade`` (and its resume), ``manual import`` call :func:`write_outputs`: ``grades.json`` /
``grades.csv`` (:mod:`grader.pages.gradebook`), ``feedback/<student>.html`` and ``.md``,
``similarity.json`` and ``report.html``. What the report says besides the rows (the no-sandbox
warning and similarity threshold of the last ``grade``, :data:`BATCH_RECORD`; the rubric
warnings of :mod:`grader.classroom.rubric_record`) is read from the folder, so a rewrite says
what ``grade`` said.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grader.base.errors import GraderError
from grader.checks.results import GradeRow
from grader.pages.gradebook import atomic_write_text, write_gradebook


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
    from grader.classroom.late import apply_record, load_record
    from grader.classroom.rubric_record import graded_rubrics

    out = Path(out)
    notes: list[str] = []
    late_record = load_record(out)  # the late penalty, its own line, recomputed from raw_score
    rows = apply_record(rows, late_record)
    sandbox_warning, threshold = load_batch_record(out, rows)
    records, rubric_warnings = graded_rubrics(out, warn=announce)
    # the descriptions of the rubric each module was graded with (--rubric's, when given)
    descriptions = {m: r.descriptions for m, r in records.items() if r.descriptions}
    warning = "; ".join(w for w in (sandbox_warning, *rubric_warnings) if w) or None
    write_gradebook(rows, out)
    links: dict[str, str] = {}
    try:
        links = write_feedback(rows, out, descriptions)
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
    _write_report_or_note(rows, out, links, pairs, threshold, warning, notes,
                          intake=late_record.intake, descriptions=descriptions)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return notes


BATCH_RECORD = "batch.json"
"""``DIR/batch.json``: the no-sandbox warning and similarity threshold of the last ``grade``,
so outputs rewritten later (``manual import``) say what ``grade`` said. Plain JSON: it holds
no points, and whoever can edit it can edit ``report.html`` too."""


def record_batch(out: Path, *, warning: str | None, threshold: float | None,
                 timings: dict[str, float] | None = None) -> None:
    """Write :data:`BATCH_RECORD` for this run (``threshold`` None: the default).

    ``timings``: seconds of the batch's own phases (``grade`` writes the record again once
    its outputs are written: ``plan``, ``data_copy``, ``grading``, ``outputs``), read by
    ``bench/grading_overhead.py``."""
    from grader.classroom.similarity import DEFAULT_THRESHOLD

    record = {"schema": 1, "sandbox_warning": warning,
              "similarity_threshold": threshold or DEFAULT_THRESHOLD}
    if timings:
        record["timings"] = {k: round(v, 3) for k, v in timings.items()}
    atomic_write_text(Path(out) / BATCH_RECORD, json.dumps(record, indent=1) + "\n")


def load_batch_record(out: Path, rows: Sequence[GradeRow] = ()) -> tuple[str | None, float]:
    """(no-sandbox warning, similarity threshold) of the last ``grade`` into ``out``.

    A folder graded before the record existed (or whose record is unreadable) gets the
    default threshold and the warning ``grade`` put first in its rows' notes, if any.
    """
    from grader.classroom.similarity import DEFAULT_THRESHOLD
    from grader.kernel.sandbox import UNSANDBOXED_WARNING

    try:
        record = json.loads((Path(out) / BATCH_RECORD).read_text(encoding="utf-8"))
        warning, threshold = record["sandbox_warning"], float(record["similarity_threshold"])
        if warning is None or isinstance(warning, str):
            return warning, threshold
    except (OSError, ValueError, KeyError, TypeError):
        pass
    noted = (n for r in rows for n in r.instructor_notes[:1] if n.startswith(UNSANDBOXED_WARNING))
    return next(noted, None), DEFAULT_THRESHOLD


SIMILARITY_CACHE = "similarity-cache.json"


def _failure_note(what: str, exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return (f"{what} could not be completed ({type(exc).__name__}{': ' + text if text else ''});"
            " the grades are complete and unaffected. Please report this as a grader bug.")


def _write_report_or_note(rows, out: Path, links, pairs, threshold: float, warning, notes,
                          intake: dict | None = None, descriptions: dict | None = None) -> None:
    from grader.pages.report import minimal_report, write_report

    try:
        write_report(rows, out, feedback_links=links, similar=pairs, threshold=threshold,
                     warning=warning, notes=notes, intake=intake, descriptions=descriptions)
    except Exception as exc:  # noqa: BLE001 - the gradebook is written; say what went wrong
        notes.append(_failure_note("the class report", exc))
        atomic_write_text(out / "report.html", minimal_report(notes, warning=warning))


def write_feedback(rows: Sequence[GradeRow], out: Path,
                   descriptions: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """``feedback/<student>.html`` and ``.md`` per student (pages by :mod:`grader.pages.feedback`).

    A student graded in several modules gets one page holding every module, in order.
    ``descriptions``: module -> check id -> description, as recorded for the rubric the batch
    graded with; a module without them gets the course rubric's. Returns student -> link
    relative to ``out``.
    """
    recorded = descriptions or {}

    def about(module: str | None):
        return recorded.get(module or "") or _rubric_or_none(module)

    from grader.base.ids import safe_id
    from grader.pages.feedback import render_html, render_markdown
    from grader.pages.feedback import write_feedback as write_page
    from grader.pages.gradebook import sort_rows

    folder = Path(out) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[GradeRow]] = {}
    for row in sort_rows(rows):
        by_student.setdefault(row.student, []).append(row)
    links = {}
    for student, own in by_student.items():
        if len(own) == 1:
            page, _ = write_page(own[0], folder, rubric=about(own[0].module))
        else:
            page = folder / f"{safe_id(student)}.html"
            pages = [render_html(r, about(r.module)) for r in own]
            atomic_write_text(page, _combine_html(pages))
            atomic_write_text(page.with_suffix(".md"), "\n\n".join(
                render_markdown(r, about(r.module)) for r in own))
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
