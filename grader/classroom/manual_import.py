"""``python -m grader manual import``: validate the scores, store the marks, rewrite the
outputs with :func:`grader.classroom.outputs.write_outputs`, the writer ``grade`` uses (kept
apart from :mod:`grader.classroom.manual`, which the batch imports for the written questions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grader.base.errors import GraderError
from grader.checks.results import GradeRow, ManualResult
from grader.classroom.manual import (
    MAX_COMMENT,
    Mark,
    MarkStore,
    answer_digest,
    apply_marks,
    points_text,
    read_scores,
    trusted_rows,
)

# ----------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    """What :func:`import_scores` changed."""

    imported: int
    ungraded: int


_Accepted = tuple[str, GradeRow, ManualResult, float, str]


def _validate(path: Path, entries, rows: dict[str, GradeRow]) -> list[_Accepted]:
    by_student = {(r.student, r.module or ""): (key, r) for key, r in rows.items()}
    students = {r.student for r in rows.values()}
    problems: list[str] = []
    accepted = []
    for line, entry in entries:
        student, module = entry["student"].strip(), entry["module"].strip()
        question, raw = entry["question"].strip(), entry["points"].strip()
        where = f"{path.name}: line {line} ({student or '?'}, {question or '?'})"
        if not raw:
            continue  # not graded yet
        if student not in students:
            problems.append(f"{where}: unknown student {student!r}; expected a student of"
                            " grades.json")
            continue
        found = by_student.get((student, module))
        if found is None:
            problems.append(f"{where}: {student!r} has no graded submission for module"
                            f" {module!r}")
            continue
        key, row = found
        check = next((c for c in row.checks if isinstance(c, ManualResult) and c.id == question),
                     None)
        if check is None:
            known = ", ".join(c.id for c in row.checks if isinstance(c, ManualResult)) or "none"
            problems.append(f"{where}: unknown question {question!r} for module {module!r};"
                            f" expected one of: {known}")
            continue
        try:
            points = float(raw)
        except ValueError:
            problems.append(f"{where}: points {raw!r} is not a number; expected 0 to"
                            f" {points_text(check.max_points)}")
            continue
        if not 0 <= points <= check.max_points:
            problems.append(f"{where}: points {raw} outside 0 to {points_text(check.max_points)}")
            continue
        if question not in row.answers and check.graded and points == check.points:
            continue  # exported as is (e.g. 0 for a file that was no notebook): nothing to import
        if question not in row.answers:
            problems.append(f"{where}: the grader kept no answer to grade (the notebook could"
                            " not be read); leave points empty")
            continue
        comment = " ".join(entry["comment"].split())[:MAX_COMMENT]
        accepted.append((key, row, check, points, comment))
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise GraderError(f"{len(problems)} row(s) of {path} cannot be imported; nothing was"
                          f" changed:\n  {shown}{more}\nFix these rows and import again.")
    return accepted


def import_scores(out: Path, scores: Path) -> ImportSummary:
    """Validate ``scores`` and merge its points into DIR (see the module docstring).

    Raises
    ------
    GraderError
        When any row is wrong (unknown student or question, points outside 0..max, not a
        number, a malformed file): every problem is named with its line; nothing is written.
    """
    from grader.classroom.outputs import write_outputs
    from grader.classroom.resume import ResultStore

    out, scores = Path(out), Path(scores)
    rows = trusted_rows(out)
    accepted = _validate(scores, read_scores(scores), rows)
    store = MarkStore(out)
    marks = store.load(strict=True)
    touched: dict[str, GradeRow] = {}
    for key, row, check, points, comment in accepted:
        marks[row.student, row.module or "", check.id] = Mark(
            row.student, row.module or "", check.id, points, comment,
            answer_digest(row.answers[check.id]))
        touched[key] = row
    store.save(marks)
    results = ResultStore(out)
    for key, row in touched.items():
        apply_marks(row, marks)
        results.update_row(key, row)
    write_outputs(list(rows.values()), out, similar=_kept_pairs(out), announce=True)
    ungraded = sum(1 for r in rows.values() for c in r.checks
                   if isinstance(c, ManualResult) and not c.graded)
    return ImportSummary(imported=len(accepted), ungraded=ungraded)


def _kept_pairs(out: Path) -> list:
    """The similar pairs of the last ``grade`` (``similarity.json``); none when unreadable."""
    from grader.classroom.similarity import SimilarPair

    try:
        return [SimilarPair.from_dict(p) for p in
                json.loads((Path(out) / "similarity.json").read_text(encoding="utf-8"))]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
