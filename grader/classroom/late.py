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
grade save: the line follows Canvas's rule (:func:`grader.lms.canvas_late.canvas_line`, a share of the points
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

from grader.base.course import LatePolicy
from grader.checks.results import GradeRow, match_key

DAY = 86400
LATE_RECORD = "late.json"
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


