"""Late work: deadlines, extensions and the penalty, applied after scoring as its own line.

Pure functions first (:func:`deadline_for`, :func:`late_line`, :func:`apply_late`), then the
record that carries the inputs from ``grade`` to every later rewrite of the outputs
(``manual import``, ``export --canvas``): ``OUT/late.json``, signed with the results key.

The rule (``[late]`` in ``course.toml``): a submission is late when it arrives more than
``grace_minutes`` after its deadline (the student's ``[extensions]`` entry, else ``[due]``,
else the ``due_at`` Canvas reported when the folder was pulled). Each *started* day after
the grace costs ``penalty_per_day`` of the score, at most ``max_penalty``. The penalty is
recomputed from ``raw_score`` every time, so applying it twice changes nothing. A Canvas
``_LATE`` marker without a submission time (the "Download Submissions" zip) is flagged, not
penalised.

A submission ``canvas pull`` fetched carries Canvas's own deadline for that student
(``cached_due_date``: the assignment's date after overrides and extensions made in Canvas);
it is used instead of ``[due]`` and the assignment's ``due_at`` (an ``[extensions]`` entry,
looked up by the Canvas key, still comes first). An excused submission is never late. When
the course's Canvas Late Policy deducts (recorded by the pull), Canvas deducts on every
grade save: the line follows Canvas's rule (:func:`canvas_line`, a share of the points
possible per started interval, down to the policy's minimum) and says ``"applied_by":
"canvas"``, so ``canvas push`` sends the score before the deduction; ``[late]`` penalties
beside it would deduct twice and are refused (:class:`GraderError`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from grader.base.course import Course, LatePolicy
from grader.checks.results import GradeRow, match_key

DAY = 86400
LATE_RECORD = "late.json"
PULL_RECORD = "canvas-pull.json"
"""Written by ``canvas pull DIR`` (and by the zip intake) at the top of a submissions folder."""
MARKER_WITHOUT_TIME = "late_marker_without_time"


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time with a zone (``2027-03-01T23:59:00Z``), or ``None`` if absent/bad."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def deadline_for(module: str, key: str, *, due: Mapping[str, datetime],
                 extensions: Mapping[str, Mapping[str, datetime]],
                 pulled_due: Mapping[str, datetime] | None = None) -> datetime | None:
    """The deadline of ``key``'s ``module``: extension, else ``[due]``, else the pull's ``due_at``."""
    own = extensions.get(key, {})
    if module in own:
        return own[module]
    if module in due:
        return due[module]
    return (pulled_due or {}).get(module)


def days_and_penalty(seconds_late: float, policy: LatePolicy) -> tuple[int, float]:
    """(started days late after the grace, penalty fraction) for ``seconds_late``."""
    over = seconds_late - policy.grace_minutes * 60
    if over <= 0:
        return 0, 0.0
    days = math.ceil(over / DAY)
    return days, round(min(days * policy.penalty_per_day, policy.max_penalty), 6)


def late_line(*, submitted_at: datetime | None, due_at: datetime | None, marker: bool,
              policy: LatePolicy, source: str, seconds_late: float | None = None) -> dict | None:
    """The ``late`` entry of one submission, without the points (:func:`apply_late` adds them).

    ``None`` when it is on time or nothing says it is late. With both times known, the
    lateness is computed here (an extension counts); with only Canvas's ``seconds_late``
    (no deadline known here) that is used; a ``marker`` alone is flagged, not penalised.
    """
    if submitted_at is not None and due_at is not None:
        seconds_late = (submitted_at - due_at).total_seconds()
    if seconds_late is None:
        if not marker:
            return None
        return {"submitted_at": iso(submitted_at), "due_at": iso(due_at), "seconds_late": None,
                "days_late": None, "penalty": 0.0, "flag": MARKER_WITHOUT_TIME, "source": source}
    if seconds_late <= 0:
        return None
    days, penalty = days_and_penalty(seconds_late, policy)
    return {"submitted_at": iso(submitted_at), "due_at": iso(due_at),
            "seconds_late": int(seconds_late), "days_late": days, "penalty": penalty,
            "flag": None, "source": source}


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


def apply_late(row: GradeRow, line: dict | None) -> GradeRow:
    """A copy of ``row`` with ``raw_score``, ``late`` and the final ``score`` (raw - deducted).

    Idempotent: the raw score is ``row.raw_score`` when already set, else ``row.score``.
    A line of Canvas's policy (``applied_by: canvas``) deducts a share of ``max_score``, at
    most down to its ``minimum_percent`` of it, as Canvas will.
    """
    raw = row.raw_score if row.raw_score is not None else row.score
    if line is None:
        return replace(row, raw_score=raw, score=raw, late=None)
    if line.get("applied_by") == "canvas" and row.max_score > 0:
        most = max(raw * 100.0 / row.max_score - float(line.get("minimum_percent") or 0.0), 0.0)
        share = min(float(line.get("penalty") or 0.0) * 100.0, most)
        deducted = round(row.max_score * share / 100.0, 4)
        return replace(row, raw_score=raw, score=round(raw - deducted, 4),
                       late={**line, "deducted": deducted})
    deducted = round(raw * float(line.get("penalty") or 0.0), 4)
    late = {**line, "deducted": deducted}
    return replace(row, raw_score=raw, score=round(raw - deducted, 4), late=late)


# ----------------------------------------------------------------------------------------
# The record: what grade knew about deadlines and submission times, for later rewrites.
# ----------------------------------------------------------------------------------------


@dataclass
class LateRecord:
    """Per student key and module: the ``late`` line; plus what the intake could not place."""

    lines: dict[str, dict[str, dict | None]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """``match_key`` of a pulled folder -> the student's key as Canvas has it (``cal@uni.edu``
    for the folder ``cal_uni.edu-1a2b``): the name an export matches the roster on."""
    pulled: dict[str, dict[str, dict]] = field(default_factory=dict)
    """``match_key`` of a pulled folder -> module -> the graded submission's ``attempt``,
    ``submitted_at`` and ``user_id`` (``canvas push`` refuses a grade for an older attempt)."""
    intake: dict = field(default_factory=dict)
    """``unknown`` (files of users not on the roster), ``missing`` (roster students without
    a submission), ``older`` (resubmissions superseded by a later file), as lists of text."""

    def pulled_entry(self, key: str, module: str | None) -> dict | None:
        """What the pull recorded of ``key``'s graded submission of ``module``, or None."""
        return self.pulled.get(match_key(key), {}).get(module or "")

    def line(self, key: str, module: str | None) -> dict | None:
        own = self.lines.get(match_key(key), {})
        return own.get(module or "", own.get("*"))


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


def _signature(key: bytes, body: dict) -> str:
    text = json.dumps(body, sort_keys=True, ensure_ascii=True)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def save_record(out: Path, record: LateRecord) -> None:
    """Write ``OUT/late.json``, signed with the results key (export trusts only signed data)."""
    from grader.base.keys import load_result_key
    from grader.pages.gradebook import atomic_write_text

    body = {"schema": 1, "lines": record.lines, "names": record.names, "pulled": record.pulled,
            "intake": record.intake}
    body["hmac"] = _signature(load_result_key(), body)
    atomic_write_text(Path(out) / LATE_RECORD, json.dumps(body, indent=1) + "\n")


def load_record(out: Path) -> LateRecord:
    """``OUT/late.json``; an empty record when absent, or (with a warning) when unsigned."""
    from grader.base.keys import load_result_key

    path = Path(out) / LATE_RECORD
    if not path.is_file():
        return LateRecord()
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        mac = body.pop("hmac")
        trusted = hmac.compare_digest(mac, _signature(load_result_key(), body))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        trusted = False
    if not trusted:
        print(f"WARNING: {path} is not signed by this grader (edited or damaged); late"
              " penalties are NOT applied. Fix: run the same `grade` command again",
              file=sys.stderr)
        return LateRecord()
    return LateRecord(lines=body.get("lines", {}), names=body.get("names", {}),
                      pulled=body.get("pulled", {}), intake=body.get("intake", {}))


def apply_record(rows: Sequence[GradeRow], record: LateRecord) -> list[GradeRow]:
    """Every row with its late line (rows the record does not name: raw = final)."""
    from grader.checks.results import roster_name

    return [apply_late(row, record.line(roster_name(row), row.module)) for row in rows]


def canvas_names(rows: Sequence[GradeRow], record: LateRecord) -> list[GradeRow]:
    """Every row named by its Canvas key when it was pulled (``cal@uni.edu``, not the folder
    ``cal_uni.edu-1a2b``): what a roster's ``SIS Login ID`` holds."""
    from grader.checks.results import roster_name

    return [replace(row, name=record.names.get(match_key(roster_name(row)), row.name))
            for row in rows]
