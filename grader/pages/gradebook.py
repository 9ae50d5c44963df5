"""Gradebook exports: ``grades.json`` (one object per graded notebook) and ``grades.csv``.

``grades.json`` is the list of :meth:`GradeRow.to_dict` the architecture fixes (``student,
module, score, max_score, error, checks``, plus extra keys readers may ignore).

``grades.csv`` has one row per student, which is what LMS gradebook imports expect::

    student,01 total,01.model_params,01.test_accuracy,02 total,...,total
    ada,5,1,4,3,...,8

A written question not graded by hand yet is ``ungraded``. A module the student did not
hand in is an empty cell (not a zero), so an LMS import
leaves it alone. The ``student`` column holds the submission's student name (the folder
or file name), so name the submissions by the LMS login for a clean import. Both files are
written atomically (temporary file + :func:`os.replace`): a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from grader.checks.results import GradeRow

UNKNOWN_MODULE = "unknown"
UNGRADED = "ungraded"
"""A written answer not graded by hand yet (``python -m grader manual``), in ``grades.csv``."""


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
    for module in sorted(checks_by_module, key=lambda m: (m == UNKNOWN_MODULE, m)):
        columns.append((f"{module} total", module, None))
        columns.extend((check_id, module, check_id) for check_id in checks_by_module[module])
    return columns


def grades_csv(rows: Sequence[GradeRow]) -> str:
    """The ``grades.csv`` text: one line per student, a column per module total and check."""
    rows = sort_rows(rows)
    columns = csv_columns(rows)
    by_student: dict[str, dict[str, GradeRow]] = {}
    for row in rows:
        by_student.setdefault(row.student, {})[module_label(row)] = row
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *(header for header, _, _ in columns), "total"])
    for student, modules in by_student.items():
        line = [student]
        for _, module, check_id in columns:
            row = modules.get(module)
            if row is None:
                line.append("")
            elif check_id is None:
                line.append(_number(row.score))
            else:
                found = {c.id: c for c in row.checks}
                check = found.get(check_id)
                if check is not None and getattr(check, "manual", False) and not check.graded:
                    line.append(UNGRADED)
                else:
                    line.append(_number(check.points) if check is not None else "")
        line.append(_number(sum(r.score for r in modules.values())))
        writer.writerow(line)
    return out.getvalue()


def write_gradebook(rows: Sequence[GradeRow], out_dir: Path) -> tuple[Path, Path]:
    """Write ``grades.json`` and ``grades.csv`` into ``out_dir`` atomically; return their paths."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "grades.json", out_dir / "grades.csv"
    atomic_write_text(json_path, grades_json(rows))
    atomic_write_text(csv_path, grades_csv(rows))
    return json_path, csv_path
