"""Late work as Canvas reports it: the due dates and Late Policy a pull recorded.

``canvas pull DIR`` (and the zip intake) write ``DIR/canvas-pull.json``; at ``grade`` time
:func:`record_from_pulls` turns it into the late lines of :class:`grader.classroom.late.LateRecord`
(each submission's own ``cached_due_date``, Canvas's Late Policy when it deducts, else the
course's ``[late]`` rule), and :func:`canvas_names` gives rows back their Canvas keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from grader.base.course import Course
from grader.checks.results import GradeRow, match_key
from grader.classroom.late import DAY, LateRecord, deadline_for, iso, late_line, parse_time

PULL_RECORD = "canvas-pull.json"
"""Written by ``canvas pull DIR`` (and by the zip intake) at the top of a submissions folder."""


def canvas_line(*, submitted_at: datetime | None, due_at: datetime | None, seconds_late: float,
                policy: Mapping) -> dict | None:
    """The late line of a Canvas Late Policy (late_policy.rb ``points_deducted``):
    ``late_submission_deduction`` percent of the points possible per started
    ``late_submission_interval``, never below ``late_submission_minimum_percent`` when that
    is enabled (the cap is applied with the score: :func:`apply_late`)."""
    if seconds_late <= 0:
        return None
    interval = {"hour": 3600, "day": DAY}.get(str(policy.get("late_submission_interval")), DAY)
    intervals = math.ceil(seconds_late / interval)
    percent = float(policy.get("late_submission_deduction") or 0.0) * intervals
    minimum = float(policy.get("late_submission_minimum_percent") or 0.0) \
        if policy.get("late_submission_minimum_percent_enabled") else 0.0
    return {"submitted_at": iso(submitted_at), "due_at": iso(due_at),
            "seconds_late": int(seconds_late), "days_late": math.ceil(seconds_late / DAY),
            "penalty": round(percent / 100, 6), "minimum_percent": minimum, "flag": None,
            "source": "canvas-pull", "applied_by": "canvas"}


def canvas_deducts(policy: object) -> bool:
    """Whether a Canvas LatePolicy object deducts points from late submissions."""
    return isinstance(policy, Mapping) and bool(policy.get("late_submission_deduction_enabled")) \
        and float(policy.get("late_submission_deduction") or 0) > 0


def pulled_times(folder: Path) -> dict | None:
    """``folder/canvas-pull.json`` (modules' due_at, submissions' times), or ``None``.

    Raises :class:`GraderError` when the file exists but is not the expected shape.
    """
    from grader.base.errors import GraderError

    path = Path(folder) / PULL_RECORD
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data.get("modules", {}), dict) or not isinstance(data["submissions"], dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise GraderError(f"{path}: expected the JSON `canvas pull` writes ({{\"modules\": {{...}},"
                          f" \"submissions\": {{...}}}}), found something else ({type(exc).__name__})."
                          " Fix: pull again, or remove the file to grade without submission"
                          " times") from exc
    return data


def _extension(course: Course, keys: Sequence[str], module: str) -> datetime | None:
    """The ``[extensions]`` deadline of the first of ``keys`` (compared by ``match_key``)."""
    own = {match_key(k): v for k, v in course.extensions.items()}
    for key in keys:
        found = own.get(match_key(key), {})
        if module in found:
            return found[module]
    return None


def _pulled_line(course: Course, pull: dict, folder: str, module: str, sub: dict,
                 pulled_due: Mapping[str, datetime]) -> dict | None:
    """One pulled submission's late line (see the module docstring for the order of dates)."""
    if sub.get("excused"):
        return None  # submission.rb: an excused submission is not late
    key = str(sub.get("key") or folder)
    submitted = parse_time(sub.get("submitted_at"))
    seconds = sub.get("seconds_late")
    seconds = float(seconds) if isinstance(seconds, (int, float)) else None
    extension = _extension(course, [key, folder], module)
    if "cached_due_date" in sub and extension is None:
        due = parse_time(sub.get("cached_due_date"))
        if due is None:  # Canvas: no due date for this student, so never late
            return None
    else:
        due = extension or deadline_for(module, key, due=course.due, extensions={},
                                        pulled_due=pulled_due)
    policy = pull.get("late_policy")
    if canvas_deducts(policy):
        late_for = (submitted - due).total_seconds() if submitted and due else (seconds or 0)
        return canvas_line(submitted_at=submitted, due_at=due, seconds_late=late_for,
                           policy=policy)
    return late_line(submitted_at=submitted, due_at=due, marker=bool(sub.get("late")),
                     policy=course.late, source=str(sub.get("source", "canvas-pull")),
                     seconds_late=seconds)


def record_from_pulls(course: Course, pulls: Sequence[dict], intake: dict | None = None) -> LateRecord:
    """The late lines of every submission the pulls (``canvas-pull.json`` contents) name.

    Raises :class:`GraderError` when a pull recorded a Canvas Late Policy that deducts and
    ``[late]`` deducts too (every late grade would lose points twice).
    """
    from grader.base.errors import GraderError

    record = LateRecord(intake=dict(intake or {}))
    for pull in pulls:
        if canvas_deducts(pull.get("late_policy")) and course.late.penalty_per_day > 0:
            policy = pull["late_policy"]
            raise GraderError(
                f"Canvas's Late Policy of course {pull.get('course_id')} deducts"
                f" {policy.get('late_submission_deduction'):g} % per"
                f" {policy.get('late_submission_interval')} late on every grade Canvas saves, and"
                f" {course.path}'s [late] deducts {course.late.penalty_per_day * 100:g} % per day"
                " as well: every late grade would lose points twice. Fix: remove penalty_per_day"
                " from [late] (Canvas's policy is then shown in the feedback and applied by"
                " Canvas), or turn the Late Policy off in Canvas (Gradebook > Settings) and pull"
                " again")
        pulled_due = {m: t for m, info in pull.get("modules", {}).items()
                      if isinstance(info, dict) and (t := parse_time(info.get("due_at")))}
        for folder, modules in pull["submissions"].items():
            if not isinstance(modules, dict):
                continue
            for module, sub in modules.items():
                if not isinstance(sub, dict):
                    continue
                if isinstance(sub.get("key"), str):
                    record.names[match_key(folder)] = sub["key"]
                    record.pulled.setdefault(match_key(folder), {})[module] = {
                        k: sub.get(k) for k in ("attempt", "submitted_at", "user_id")}
                record.lines.setdefault(match_key(folder), {})[module] = _pulled_line(
                    course, pull, folder, module, sub, pulled_due)
    return record


def canvas_names(rows: Sequence[GradeRow], record: LateRecord) -> list[GradeRow]:
    """Every row named by its Canvas key when it was pulled (``cal@uni.edu``, not the folder
    ``cal_uni.edu-1a2b``): what a roster's ``SIS Login ID`` holds."""
    from grader.checks.results import roster_name

    return [replace(row, name=record.names.get(match_key(roster_name(row)), row.name))
            for row in rows]
