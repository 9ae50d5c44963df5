"""Gradebook exports: ``grades.json`` (one object per graded notebook) and ``grades.csv``.

``grades.json`` is the list of :meth:`GradeRow.to_dict` the architecture fixes (``student,
module, score, max_score, error, checks``, plus extra keys readers may ignore).

``grades.csv`` has one row per student, which is what LMS gradebook imports expect::

    student,name,01 total,01.model_params,01.test_accuracy,02 total,...,total,pending
    Points Possible,,6,2,4,12,...,18,
    ada,Ada,5,1,4,3,...,8,1

The first data row (``Points Possible``, as in Canvas's own export) holds each column's
maximum, taken from the rows themselves, i.e. from the rubric the batch was graded with.
Every score column is a number or empty: a module the student did not hand in is an empty
cell (not a zero), so an LMS import leaves it alone; a written question not graded by hand
yet is an empty cell too (it counts 0 in the module total) and ``pending`` says how many
of the student's written answers await grading. ``student`` is the file-safe id (feedback
page and result names), ``name`` the name the instructor gave the submission (folder or
file name), which LMS rosters match on. Every cell goes through
:func:`grader.base.csvcells.neutralise`, so no cell starts a spreadsheet formula. Both
files are written atomically (temporary file + :func:`os.replace`): a reader never sees half
a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from grader.base.csvcells import safe_row
from grader.checks.results import GradeRow

UNKNOWN_MODULE = "unknown"
RAW, PENALTY = "\0raw", "\0penalty"
"""Pseudo check ids of the late columns (``02 raw``, ``02 late penalty``)."""
POINTS_POSSIBLE = "Points Possible"
"""The ``student`` cell of the maximum points row (Canvas's name for it)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sort_rows(rows: Iterable[GradeRow]) -> list[GradeRow]:
    """Rows ordered by student, then module (unknown modules last), then submission path."""
    return sorted(rows, key=lambda r: (r.student, r.module is None, r.module or "", r.submission))


def module_label(row: GradeRow) -> str:
    return row.module or UNKNOWN_MODULE


def _number(value: float) -> str:
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def grades_json(rows: Iterable[GradeRow]) -> str:
    """The ``grades.json`` text: a list of row objects, sorted, indented."""
    entries = [{k: v for k, v in r.to_dict().items() if k != "answers"} for r in sort_rows(rows)]
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


def csv_columns(rows: Sequence[GradeRow]) -> list[tuple[str, str, str | None]]:
    """The CSV's score columns as ``(header, module, check_id or None for the module total)``.

    Modules in order, each with its total first and then its checks in rubric order (the
    order the first row that has them lists them).
    """
    checks_by_module: dict[str, list[str]] = {}
    for row in sort_rows(rows):
        ids = checks_by_module.setdefault(module_label(row), [])
        for check in row.checks:
            if check.id not in ids:
                ids.append(check.id)
    columns: list[tuple[str, str, str | None]] = []
    late = _late_columns(rows)
    for module in sorted(checks_by_module, key=lambda m: (m == UNKNOWN_MODULE, m)):
        columns.append((f"{module} total", module, None))
        if module in late:  # the total is final; raw and penalty beside it
            columns += [(f"{module} raw", module, RAW), (f"{module} late penalty", module, PENALTY)]
        columns.extend((check_id, module, check_id) for check_id in checks_by_module[module])
    return columns


def _duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    parts = [(days, "day"), (hours, "hour")] if days or hours else [(max(1, rest // 60), "minute")]
    return " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)


def late_sentence(late: dict | None) -> str:
    """The late-work line of a feedback page and the report, or ``""``:
    ``submitted 1 day 23 hours late: -20 %``."""
    if not late:
        return ""
    if late.get("flag") == "late_marker_without_time":
        return ("Canvas marked this submission late, but its submission time is not known"
                " here: flagged, no late penalty applied")
    text = f"submitted {_duration(late.get('seconds_late') or 0)} late"
    penalty = float(late.get("penalty") or 0)
    if not penalty:
        return text + ": within the grace period, no penalty"
    return text + f": -{penalty * 100:g} % (-{_number(late.get('deducted') or 0)} points)"


def _late_columns(rows: Sequence[GradeRow]) -> set[str]:
    """Modules where some row carries a late line: they get raw and penalty columns."""
    return {module_label(r) for r in rows if r.late}


def _pending(check) -> bool:
    return bool(getattr(check, "manual", False)) and not getattr(check, "graded", True)


def _points_possible(rows: Sequence[GradeRow], columns) -> list[str]:
    """The maximum of every score column, from the rows (the rubric they were graded with)."""
    totals: dict[str, float] = {}
    checks: dict[tuple[str, str], float] = {}
    for row in rows:
        module = module_label(row)
        totals[module] = max(totals.get(module, 0.0), row.max_score)
        for check in row.checks:
            key = (module, check.id)
            checks[key] = max(checks.get(key, 0.0), check.max_points)
    line = [POINTS_POSSIBLE, ""]
    for _, module, check_id in columns:
        if check_id == PENALTY:
            line.append("")
            continue
        line.append(_number(totals[module] if check_id in (None, RAW)
                            else checks.get((module, check_id), 0)))
    line.append(_number(sum(totals.values())))
    line.append("")
    return line


def grades_csv(rows: Sequence[GradeRow]) -> str:
    """The ``grades.csv`` text: the points row, then one line per student (module doc)."""
    rows = sort_rows(rows)
    columns = csv_columns(rows)
    by_student: dict[str, dict[str, GradeRow]] = {}
    for row in rows:
        by_student.setdefault(row.student, {})[module_label(row)] = row
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(safe_row(["student", "name", *(header for header, _, _ in columns), "total",
                              "pending"]))
    if rows:
        writer.writerow(safe_row(_points_possible(rows, columns)))
    for student, modules in by_student.items():
        name = next((r.name for r in modules.values() if r.name), "")
        line = [student, name]
        for _, module, check_id in columns:
            row = modules.get(module)
            if row is None:
                line.append("")
            elif check_id is None:
                line.append(_number(row.score))
            elif check_id == RAW:
                line.append(_number(row.raw_score if row.raw_score is not None else row.score))
            elif check_id == PENALTY:
                line.append(_number(row.late.get("penalty") or 0) if row.late else "")
            else:
                check = next((c for c in row.checks if c.id == check_id), None)
                line.append(_number(check.points) if check is not None and not _pending(check)
                            else "")
        line.append(_number(sum(r.score for r in modules.values())))
        line.append(str(sum(_pending(c) for r in modules.values() for c in r.checks)))
        writer.writerow(safe_row(line))
    return out.getvalue()


def write_gradebook(rows: Sequence[GradeRow], out_dir: Path) -> tuple[Path, Path]:
    """Write ``grades.json`` and ``grades.csv`` into ``out_dir`` atomically; return their paths."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "grades.json", out_dir / "grades.csv"
    atomic_write_text(json_path, grades_json(rows))
    atomic_write_text(csv_path, grades_csv(rows))
    return json_path, csv_path
