"""LMS export: a CSV that Canvas's gradebook import accepts.

``python -m grader export --canvas ROSTER.csv DIR`` reads the roster (the CSV Canvas's
*Grades > Export* gives: ``Student, ID, SIS User ID, SIS Login ID, [Integration ID,]
Section`` and one column per assignment, possibly a ``Points Possible`` row) and the signed
results in DIR, and writes ``DIR/canvas.csv``: the roster's student columns, then one column
per module (``dlcourse module 02``) holding the module's score, written answers included
(an ungraded one counts 0 until it is imported). A ``Points Possible`` row gives each
module's maximum, so Canvas can create the assignments.

Students are matched by the name the instructor gave each submission (the student's folder
or the file-name key, :func:`grader.checks.results.roster_name`; never the file-safe id, so
``ana@uni.edu`` and ``ben smith`` match) against one roster column, ``SIS Login ID`` by
default, after one normalisation on both sides (:func:`match_key`): Unicode NFC, white space
at either end removed, ASCII letters ``A-Z`` lower-cased; every other character must be
equal (``ſam`` with U+017F is not ``sam``). Roster students without a submission get an
empty cell (Canvas leaves it alone) and are listed; submissions without a roster row are
listed and left out. Two submissions of one module whose names match one roster row (``Tom``
and ``tom``), or two roster rows with the same key, are a conflict: the cell stays empty and
both are listed, the export never picks one. The maximum of each module comes from the
rubric the batch was graded with (:mod:`grader.classroom.rubric_record`). Every cell is
written through :func:`grader.base.csvcells.neutralise`.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.base.csvcells import safe_row
from grader.base.errors import GraderError
from grader.checks.results import GradeRow, roster_name
from grader.pages.gradebook import atomic_write_text

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
POINTS_POSSIBLE = "Points Possible"
DEFAULT_MATCH = "SIS Login ID"
CANVAS_NAME = "canvas.csv"


def assignment_column(module: str) -> str:
    """The Canvas column (assignment name) of a module."""
    return f"dlcourse module {module}"


@dataclass
class CanvasExport:
    """What :func:`export_canvas` wrote and who could not be matched."""

    path: Path
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    """Roster students (their ``Student`` name and match value) without any submission."""
    unknown: list[str] = field(default_factory=list)
    """Grader student ids with no roster row."""
    ungraded: int = 0
    """Written answers still awaiting manual grading (counted as 0)."""
    conflicts: list[str] = field(default_factory=list)
    """Cells left empty because two submissions (or two roster rows) share one key."""
    warnings: list[str] = field(default_factory=list)
    """The rubric on disk differs from the one graded (points come from the graded one)."""


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def match_key(text: str) -> str:
    """The one normalisation roster matching uses: NFC, outer white space removed, ``A-Z``
    lower-cased, nothing else (so no two different non-ASCII names ever merge)."""
    return unicodedata.normalize("NFC", str(text)).strip().translate(_ASCII_LOWER)


def _module_maxima(rows: list[GradeRow], out: Path) -> tuple[dict[str, float], list[str]]:
    """Module -> maximum points from the recorded graded rubric (else the rows), and warnings."""
    from grader.classroom.rubric_record import graded_rubrics

    records, warnings = graded_rubrics(out)
    maxima: dict[str, float] = {}
    for row in rows:
        if row.module:
            maxima[row.module] = max(maxima.get(row.module, 0.0), row.max_score)
    for module in maxima:
        if module in records:
            maxima[module] = records[module].total_points
    return maxima, warnings


def _scores_by_key(rows: list[GradeRow]) -> tuple[dict[str, dict[str, float]],
                                                     dict[tuple[str, str], list[str]]]:
    """match key -> module -> score, and (key, module) -> names when several rows share it."""
    scores: dict[str, dict[str, float]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if not row.module:
            continue
        key = match_key(roster_name(row))
        names.setdefault((key, row.module), []).append(roster_name(row))
        scores.setdefault(key, {})[row.module] = row.score
    clashes = {k: sorted(v) for k, v in names.items() if len(v) > 1}
    return scores, clashes


def read_roster(path: Path, match: str = DEFAULT_MATCH) -> tuple[list[str], list[dict[str, str]]]:
    """The roster's student columns (in its order) and its student rows.

    Raises :class:`GraderError` naming the problem when the file is not a Canvas roster.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"cannot read the roster {str(path)!r}: {exc}; expected the CSV of"
                          " Canvas's Grades > Export") from exc
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise GraderError(f"the roster {path} is not valid CSV: {exc}") from exc
    if not rows:
        raise GraderError(f"the roster {path} is empty; expected a header starting with"
                          " Student,ID,...")
    header = [h.strip() for h in rows[0]]
    columns = [h for h in header if h in STUDENT_COLUMNS]
    if "Student" not in header or match not in header:
        raise GraderError(f"the roster {path} has the columns {', '.join(header)}; expected at"
                          f" least Student and {match} (Canvas: Grades > Export). Fix: export"
                          " the gradebook again or pass --match-column with the column that"
                          " holds the grader's student ids")
    students = []
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            raise GraderError(f"the roster {path}: line {number}: expected {len(header)} fields,"
                              f" found {len(values)}")
        entry = dict(zip(header, values, strict=False))
        if entry["Student"].strip() in (POINTS_POSSIBLE, "Student, Test"):
            continue  # Canvas's points row and its test student
        students.append(entry)
    return columns, students


def _without_conflicts(own: dict[str, float], key: str, who: str, roster_rows: int,
                       clashes: dict[tuple[str, str], list[str]], summary: CanvasExport,
                       match: str) -> dict[str, float]:
    """``own`` less the modules that cannot be given to one roster row (each listed)."""
    if roster_rows > 1:
        summary.conflicts.append(f"{who}: {roster_rows} roster rows have this {match}; their"
                                 " cells are left empty")
        return {}
    for module in sorted(own):
        if (key, module) in clashes:
            summary.conflicts.append(
                f"{who}: {len(clashes[key, module])} submissions of module {module} match"
                f" ({', '.join(clashes[key, module])}); cell left empty. Fix: keep one and"
                " grade again, or rename the folder to the right login")
            del own[module]
    return own


def export_canvas(roster: Path, out: Path, *, match: str = DEFAULT_MATCH,
                  dest: Path | None = None) -> CanvasExport:
    """Write ``DIR/canvas.csv`` (or ``dest``) from the roster and the graded results."""
    from grader.checks.results import ManualResult
    from grader.classroom.manual import trusted_rows

    out = Path(out)
    rows = list(trusted_rows(out).values())
    columns, students = read_roster(Path(roster), match)
    modules = sorted({r.module for r in rows if r.module})
    scores, clashes = _scores_by_key(rows)
    maxima, warnings = _module_maxima(rows, out)
    summary = CanvasExport(path=Path(dest) if dest else out / CANVAS_NAME, warnings=warnings)
    summary.ungraded = sum(1 for r in rows for c in r.checks
                           if isinstance(c, ManualResult) and not c.graded)
    roster_keys: dict[str, int] = {}
    for entry in students:
        roster_keys[match_key(entry[match])] = roster_keys.get(match_key(entry[match]), 0) + 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(safe_row([*columns, *(assignment_column(m) for m in modules)]))
    writer.writerow(safe_row([POINTS_POSSIBLE if c == "Student" else "" for c in columns]
                             + [f"{maxima.get(m, 0):g}" for m in modules]))
    seen: set[str] = set()
    for entry in students:
        key = match_key(entry[match])
        who = f"{entry['Student'].strip()} ({match} {entry[match].strip()!r})"
        own = dict(scores[key]) if key and key in scores else None
        if own is None:
            summary.missing.append(who)
        else:
            seen.add(key)
            own = _without_conflicts(own, key, who, roster_keys[key], clashes, summary, match)
            summary.matched += bool(own)
        writer.writerow(safe_row([entry[c] for c in columns]
                                 + [f"{own[m]:g}" if own and m in own else "" for m in modules]))
    summary.unknown = sorted({roster_name(r) for r in rows if match_key(roster_name(r)) not in seen})
    atomic_write_text(summary.path, buffer.getvalue())
    return summary
