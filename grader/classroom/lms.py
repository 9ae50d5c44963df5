"""LMS export: a CSV that Canvas's gradebook import accepts.

``python -m grader export --canvas ROSTER.csv DIR`` reads the roster (the CSV Canvas's
*Grades > Export* gives: ``Student, ID, SIS User ID, SIS Login ID, [Integration ID,]
Section`` and one column per assignment, possibly a ``Points Possible`` row) and the signed
results in DIR, and writes ``DIR/canvas.csv``: the roster's student columns, then one column
per module (``dlcourse module 02``) holding the module's score, written answers included
(an ungraded one counts 0 until it is imported). A ``Points Possible`` row gives each
module's maximum, so Canvas can create the assignments.

Students are matched by the id the grader uses (the submission's folder or file name)
against one roster column, ``SIS Login ID`` by default (case-insensitive, spaces trimmed).
Roster students without a submission get an empty cell (Canvas leaves it alone) and are
listed; submissions without a roster row are listed and left out.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from grader.base.errors import GraderError
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


def _key(text: str) -> str:
    return text.strip().casefold()


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


def export_canvas(roster: Path, out: Path, *, match: str = DEFAULT_MATCH,
                  dest: Path | None = None) -> CanvasExport:
    """Write ``DIR/canvas.csv`` (or ``dest``) from the roster and the graded results."""
    from grader.checks.results import ManualResult
    from grader.checks.rubric import load_rubric
    from grader.classroom.manual import _trusted_rows

    out = Path(out)
    rows = list(_trusted_rows(out).values())
    columns, students = read_roster(Path(roster), match)
    modules = sorted({r.module for r in rows if r.module})
    scores: dict[str, dict[str, float]] = {}
    maxima: dict[str, float] = {}
    for row in rows:
        if row.module:
            scores.setdefault(_key(row.student), {})[row.module] = row.score
            maxima[row.module] = max(maxima.get(row.module, 0.0), row.max_score)
    for module in modules:
        try:
            maxima[module] = load_rubric(module).total_points
        except GraderError:
            pass
    summary = CanvasExport(path=Path(dest) if dest else out / CANVAS_NAME)
    summary.ungraded = sum(1 for r in rows for c in r.checks
                           if isinstance(c, ManualResult) and not c.graded)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*columns, *(assignment_column(m) for m in modules)])
    writer.writerow([POINTS_POSSIBLE if c == "Student" else "" for c in columns]
                    + [f"{maxima.get(m, 0):g}" for m in modules])
    seen: set[str] = set()
    for entry in students:
        key = _key(entry[match])
        own = scores.get(key)
        if own is None or not key:
            summary.missing.append(f"{entry['Student'].strip()} ({match} {entry[match].strip()!r})")
        else:
            seen.add(key)
            summary.matched += 1
        writer.writerow([entry[c] for c in columns]
                        + [f"{own[m]:g}" if own and m in own else "" for m in modules])
    summary.unknown = sorted(r.student for r in rows if _key(r.student) not in seen)
    summary.unknown = sorted(set(summary.unknown))
    atomic_write_text(summary.path, buffer.getvalue())
    return summary
