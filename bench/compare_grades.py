"""Compare two gradings' grades.json (before and after a change that must not change grades).

    python bench/compare_grades.py BEFORE/grades.json AFTER/grades.json

Rows are matched by (student, module). Ignored: each row's ``timings`` and ``duration_s``
and, inside a check's ``details``, keys ending in ``_seconds`` (wall-clock seconds measured
while grading, e.g. a timing re-run's epoch times). Everything else is compared and every
difference is listed, in two groups: *grade* differences (score, max score, error, a check's
points, maximum or pass) and *text* differences (notes, check messages and details).
Exit status 0 when there are no grade differences, 1 when there are, 2 for unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IGNORED = ("timings", "duration_s")
GRADE_FIELDS = ("score", "max_score", "error")
CHECK_GRADE_FIELDS = ("points", "max_points", "passed")


def load_rows(path: Path) -> dict[tuple[str, str], dict]:
    """(student, module) -> row of a grades.json."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    return {(r["student"], str(r.get("module"))): r for r in rows}


def _without_seconds(value):
    """``value`` with every dict key ending in ``_seconds`` left out (recursively)."""
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _check_diffs(key, before: dict, after: dict) -> tuple[list[str], list[str]]:
    grade, text = [], []
    old = {c["id"]: c for c in before.get("checks", [])}
    new = {c["id"]: c for c in after.get("checks", [])}
    for cid in sorted(set(old) | set(new)):
        if cid not in old or cid not in new:
            grade.append(f"{key} check {cid}: only {'after' if cid in new else 'before'}")
            continue
        for name in CHECK_GRADE_FIELDS:
            if old[cid].get(name) != new[cid].get(name):
                grade.append(f"{key} {cid}.{name}: {old[cid].get(name)!r} -> {new[cid].get(name)!r}")
        for name in sorted((set(old[cid]) | set(new[cid])) - set(CHECK_GRADE_FIELDS) - {"id"}):
            if _without_seconds(old[cid].get(name)) != _without_seconds(new[cid].get(name)):
                text.append(f"{key} {cid}.{name}: {old[cid].get(name)!r} -> {new[cid].get(name)!r}")
    return grade, text


def compare(before: dict, after: dict) -> tuple[list[str], list[str]]:
    """(grade differences, text differences) between two sets of rows."""
    grade, text = [], []
    for key in sorted(set(before) | set(after)):
        if key not in before or key not in after:
            grade.append(f"{key}: row only {'after' if key in after else 'before'}")
            continue
        old, new = before[key], after[key]
        for name in GRADE_FIELDS:
            if old.get(name) != new.get(name):
                grade.append(f"{key} {name}: {old.get(name)!r} -> {new.get(name)!r}")
        more_grade, more_text = _check_diffs(key, old, new)
        grade += more_grade
        text += more_text
        rest = (set(old) | set(new)) - set(IGNORED) - set(GRADE_FIELDS) - {"checks"}
        for name in sorted(rest):
            if old.get(name) != new.get(name):
                text.append(f"{key} {name}: {old.get(name)!r} -> {new.get(name)!r}")
    return grade, text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    try:
        before, after = load_rows(args.before), load_rows(args.after)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}; expected two grades.json files written by `grade`", file=sys.stderr)
        return 2
    grade, text = compare(before, after)
    print(f"{len(before)} rows before, {len(after)} after; ignored: {', '.join(IGNORED)}"
          " and details' *_seconds")
    print(f"grade differences: {len(grade)}")
    for line in grade:
        print(f"  {line}")
    print(f"text differences: {len(text)}")
    for line in text:
        print(f"  {line}")
    return 1 if grade else 0


if __name__ == "__main__":
    sys.exit(main())
