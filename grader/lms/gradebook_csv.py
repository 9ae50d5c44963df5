"""LMS export: a CSV that Canvas's gradebook import takes into its EXISTING assignments.

``python -m grader export --canvas ROSTER.csv DIR`` reads the roster (the CSV Canvas's
*Grades > Export* gives: ``Student, ID, SIS User ID, SIS Login ID, [Integration ID,]
Section``, one column per assignment titled ``<name> (<assignment id>)``, possibly a ``Points
Possible`` row; ``,`` or ``;`` separated, decimal point or comma) and the signed results in
DIR, and writes ``DIR/canvas.csv`` in the roster's own dialect: the roster's identity
columns, then each graded module's score in the assignment column whose title ends in the
module's Canvas assignment id (``[canvas] assignments`` in ``course.toml``). The roster's
other columns are left out (Canvas leaves them alone) and a new column is never added (Canvas
would import it as a new assignment): a module without its column is an error listing the
columns found. The score is the final one (late penalty applied, :mod:`grader.classroom.late`),
written answers included (an ungraded one counts 0 until it is imported).

Students are matched by the name the instructor gave each submission (the student's folder or
the file-name key, :func:`grader.checks.results.roster_name`; never the file-safe id, so
``ana@uni.edu`` and ``ben smith`` match) against one roster column, chosen by ``[canvas]
student_key`` (``SIS Login ID`` by default), after one normalisation on both sides
(:func:`match_key`): Unicode NFC, white space at either end removed, ASCII letters ``A-Z``
lower-cased; every other character must be equal (``ſam`` with U+017F is not ``sam``). Roster
students without a submission, and rows that could not be graded, get an empty cell (Canvas
leaves it alone) and are listed; submissions without a roster row are listed and left out. Two
submissions of one module whose names match one roster row (``Tom`` and ``tom``), or two
roster rows with the same key, are a conflict: the cell stays empty and both are listed, the
export never picks one. The ``Points Possible`` row holds each module's maximum from the
rubric the batch was graded with (:mod:`grader.classroom.rubric_record`), or the assignment's
own points when the roster's ``Points Possible`` row says otherwise: then every cell is scaled
to them, as ``canvas push`` does (Canvas imports a cell on the assignment's scale). Every cell
is written through :func:`grader.base.csvcells.neutralise`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.base.csvcells import safe_row
from grader.base.errors import GraderError
from grader.checks.results import GradeRow, match_key, roster_name
from grader.pages.gradebook import atomic_write_text

STUDENT_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
POINTS_POSSIBLE = "Points Possible"
DEFAULT_MATCH = "SIS Login ID"
CANVAS_NAME = "canvas.csv"


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
    ungradable: list[str] = field(default_factory=list)
    """Rows that could not be graded: their cells are left empty (``canvas push`` sends
    nothing for them either)."""
    scaling: list[str] = field(default_factory=list)
    """Modules scaled to the assignment's points, or written as rubric points unchecked."""


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


def _scores_by_key(rows: list[GradeRow]) -> tuple[dict[str, dict[str, float | None]],
                                                     dict[tuple[str, str], list[str]]]:
    """match key -> module -> score (None for a row that could not be graded: its cell stays
    empty), and (key, module) -> names when several rows share it."""
    scores: dict[str, dict[str, float]] = {}
    names: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if not row.module:
            continue
        key = match_key(roster_name(row))
        names.setdefault((key, row.module), []).append(roster_name(row))
        scores.setdefault(key, {})[row.module] = None if row.error is not None else row.score
    clashes = {k: sorted(v) for k, v in names.items() if len(v) > 1}
    return scores, clashes


KEY_COLUMNS = {"login": "SIS Login ID", "sis": "SIS User ID", "id": "ID"}
"""``[canvas] student_key`` -> the roster column that names a student."""
_ASSIGNMENT_ID = re.compile(r"\((\d+)\)\s*$")


@dataclass
class Roster:
    """A Canvas gradebook export as read: its header, student rows and its CSV dialect."""

    header: list[str]
    students: list[dict[str, str]]
    delimiter: str = ","
    decimal_comma: bool = False
    points: dict[str, str] = field(default_factory=dict)
    """The ``Points Possible`` row (column -> cell), when the export has one."""

    def points_possible(self, column: str) -> float | None:
        """The points Canvas says ``column``'s assignment is worth, or None when not given."""
        text = self.points.get(column, "").strip().replace(",", ".") if self.decimal_comma \
            else self.points.get(column, "").strip()
        try:
            value = float(text)
        except ValueError:
            return None
        return value if value > 0 else None

    @property
    def columns(self) -> list[str]:
        """The identity columns (:data:`STUDENT_COLUMNS`) in the roster's order."""
        return [h for h in self.header if h in STUDENT_COLUMNS]

    def assignment_columns(self) -> dict[int, str]:
        """Canvas assignment id -> column, from titles such as ``Module 02 (4321)``."""
        found = {}
        for title in self.header:
            match = _ASSIGNMENT_ID.search(title)
            if match and title not in STUDENT_COLUMNS:
                found.setdefault(int(match.group(1)), title)
        return found

    def number(self, value: float) -> str:
        """``value`` as this roster writes numbers (``8,5`` with decimal commas)."""
        text = f"{value:g}"
        return text.replace(".", ",") if self.decimal_comma else text


def _delimiter(first_line: str) -> str:
    """``;`` when the header splits into more fields on it than on ``,`` (Excel in many
    European locales), else ``,``."""
    def fields(sep: str) -> int:
        return len(next(csv.reader([first_line], delimiter=sep), []))
    return ";" if fields(";") > fields(",") else ","


def read_roster_table(path: Path, match: str = DEFAULT_MATCH) -> Roster:
    """Read a roster exported from Canvas (``,`` or ``;`` separated, decimal point or comma).

    Raises :class:`GraderError` naming the problem when the file is not a Canvas roster.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraderError(f"cannot read the roster {str(path)!r}: {exc}; expected the CSV of"
                          " Canvas's Grades > Export") from exc
    delimiter = _delimiter(text.splitlines()[0] if text.strip() else "")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise GraderError(f"the roster {path} is not valid CSV: {exc}") from exc
    if not rows:
        raise GraderError(f"the roster {path} is empty; expected a header starting with"
                          " Student,ID,...")
    header = [h.strip() for h in rows[0]]
    if "Student" not in header or match not in header:
        raise GraderError(f"the roster {path} has the columns {', '.join(header)}; expected at"
                          f" least Student and {match} (Canvas: Grades > Export). Fix: export"
                          " the gradebook again, or set [canvas] student_key in course.toml"
                          " (or pass --match-column) to the column that names each student")
    students, points = [], {}
    for number, values in enumerate(rows[1:], start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) < len(header):
            raise GraderError(f"the roster {path}: line {number}: expected {len(header)} fields,"
                              f" found {len(values)}")
        entry = dict(zip(header, values, strict=False))
        if entry["Student"].strip() == POINTS_POSSIBLE:
            points = entry
            continue
        if entry["Student"].strip() == "Student, Test":
            continue  # Canvas's test student
        students.append(entry)
    decimal_comma = delimiter == ";" and any(
        re.fullmatch(r"-?\d+,\d+", v.strip()) for row in rows[1:] for v in row)
    return Roster(header, students, delimiter, decimal_comma, points)


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


def _module_columns(roster: Roster, modules: list[str], course, path: Path) -> dict[str, str]:
    """Module -> the roster's existing assignment column, by the Canvas assignment id in its
    title; a :class:`GraderError` listing the columns found when any module has none."""
    by_id = roster.assignment_columns()
    found = ", ".join(repr(h) for h in roster.header if h not in STUDENT_COLUMNS) or "none"
    assignments = course.canvas.assignments if course is not None else {}
    if course is None or course.path is None:
        raise GraderError(
            f"export --canvas writes each module into the roster's own assignment column, found"
            f" by the Canvas assignment id in its title (e.g. 'Module 02 (4321)'), and needs the"
            f" course file to know those ids; no course file was found. The roster {path} has"
            f" the columns: {found}. Fix: write course.toml with [canvas] assignments ="
            f" {{ \"02\" = 4321 }} (module -> the number in brackets; examples/course.toml),"
            " then pass --course FILE or run from its folder")
    columns, problems = {}, []
    for module in modules:
        aid = assignments.get(module)
        if aid is None:
            problems.append(f"module {module} has no Canvas assignment id in {course.path}"
                            f" ([canvas] assignments)")
        elif aid not in by_id:
            problems.append(f"module {module} is assignment {aid}, but no column of the roster"
                            f" ends in ({aid})")
        else:
            columns[module] = by_id[aid]
    if problems:
        raise GraderError(
            f"cannot place every graded module in {path}: {'; '.join(problems)}. The roster's"
            f" columns are: {found}. Fix: create the assignment in Canvas and export the"
            f" gradebook again, or correct [canvas] assignments in {course.path}; a new column"
            " is never added (Canvas would import it as a new assignment)")
    return columns


def _scales(table: Roster, targets: dict[str, str], maxima: dict[str, float],
            summary: CanvasExport) -> dict[str, float]:
    """Module -> Canvas points per rubric point: Canvas imports a cell on the assignment's
    own scale (its ``Points Possible``), so a rubric of 9 points in an assignment worth 100
    is scaled (7 of 9 -> 77.78), with a warning; 1 when they agree or the roster has no
    points row (then a warning says the cells are rubric points)."""
    scale = {}
    for module, column in targets.items():
        possible, rubric = table.points_possible(column), maxima.get(module, 0.0)
        scale[module] = 1.0
        if possible is None:
            summary.scaling.append(f"module {module}: the roster has no Points Possible for"
                                    f" {column!r}; the cells are rubric points (of"
                                    f" {rubric:g}); check the assignment is worth {rubric:g}")
        elif rubric > 0 and abs(possible - rubric) > 1e-6:
            scale[module] = possible / rubric
            summary.scaling.append(f"module {module}: {column!r} is worth {possible:g} points in"
                                    f" Canvas, the rubric {rubric:g}: the cells are scaled to"
                                    " Canvas's points")
    return scale


def export_canvas(roster: Path, out: Path, *, match: str | None = None, course=None,
                  dest: Path | None = None) -> CanvasExport:
    """Write ``DIR/canvas.csv`` (or ``dest``): the roster's identity columns and, in each
    graded module's own assignment column, its final score (late penalty applied)."""
    from grader.checks.results import ManualResult
    from grader.classroom.late import apply_record, load_record
    from grader.classroom.manual import trusted_rows
    from grader.lms.canvas_late import canvas_names

    out = Path(out)
    match = match or KEY_COLUMNS[course.canvas.student_key if course is not None else "login"]
    record = load_record(out)
    rows = canvas_names(apply_record(list(trusted_rows(out).values()), record), record)
    table = read_roster_table(Path(roster), match)
    modules = sorted({r.module for r in rows if r.module})
    targets = _module_columns(table, modules, course, Path(roster))
    columns, students = table.columns, table.students
    scores, clashes = _scores_by_key(rows)
    maxima, warnings = _module_maxima(rows, out)
    summary = CanvasExport(path=Path(dest) if dest else out / CANVAS_NAME, warnings=warnings)
    scale = _scales(table, targets, maxima, summary)
    summary.ungraded = sum(1 for r in rows for c in r.checks
                           if isinstance(c, ManualResult) and not c.graded)
    roster_keys: dict[str, int] = {}
    for entry in students:
        roster_keys[match_key(entry[match])] = roster_keys.get(match_key(entry[match]), 0) + 1
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", delimiter=table.delimiter)
    writer.writerow(safe_row([*columns, *(targets[m] for m in modules)]))
    writer.writerow(safe_row([POINTS_POSSIBLE if c == "Student" else "" for c in columns]
                             + [table.number(round(maxima.get(m, 0) * scale[m], 2))
                                for m in modules]))
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
                                 + [table.number(round(own[m] * scale[m], 2))
                                    if own and own.get(m) is not None else ""
                                    for m in modules]))
    summary.unknown = sorted({roster_name(r) for r in rows if match_key(roster_name(r)) not in seen})
    summary.ungradable = [f"{roster_name(r)} (module {r.module}): {r.error}" for r in rows
                          if r.error is not None and match_key(roster_name(r)) in seen]
    atomic_write_text(summary.path, buffer.getvalue())
    return summary
