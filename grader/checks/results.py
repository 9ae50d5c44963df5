"""The result types: one scored check (:class:`CheckResult`, :class:`ManualResult`) and the
result of grading one submission, one row of ``grades.json`` (:class:`GradeRow`). A types
module: it imports no check logic, so the pages read results without pulling in the checks.

The architecture fixes the keys ``student, module, score, max_score, error, checks``; the
extra keys (``name``, ``submission``, ``notes``, ``duration_s``, ``timings``, ``flags``) help instructors and
the class report, and JSON readers that do not know them can ignore them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field

AWAITING = "awaiting manual grading"


@dataclass
class CheckResult:
    """One scored check, in the shape ``grades.json`` stores."""

    id: str
    points: float
    max_points: float
    passed: bool
    message: str
    flag: str | None = None
    """Why the grader distrusts this result (``"saw_test_set"``); ``None`` when it does not."""
    details: dict | None = None
    """Measurements behind the result (accuracy checks: private and public accuracy)."""

    def to_dict(self) -> dict:
        """The ``grades.json`` shape; ``flag`` and ``details`` only when set."""
        data = asdict(self)
        for extra in ("flag", "details"):
            if data[extra] is None:
                del data[extra]
        return data


@dataclass
class ManualResult(CheckResult):
    """A written answer graded by hand (rubric ``kind = "manual"``).

    Until the instructor imports a score it is *ungraded*: 0 points, ``passed`` false and the
    message :data:`AWAITING`; pass rates leave it out. ``graded`` rows carry the instructor's
    points and ``comment``; ``passed`` then means full points.
    """

    manual: bool = True
    graded: bool = False
    comment: str = ""


@dataclass
class GradeRow:
    """One graded notebook.

    ``error`` is ``None`` when the notebook was executed and scored (even if cells raised:
    those show up as failed checks and in ``notes``), and a sentence when it could not be
    graded at all (not a notebook, kernel died before anything could be exported, ...).
    """

    student: str
    module: str | None
    score: float
    max_score: float
    error: str | None
    checks: list[CheckResult] = field(default_factory=list)
    submission: str = ""
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    """Why the grader distrusts some of this row (``"saw_test_set"``: an accuracy check's
    model appears to have been trained on the test split, see :mod:`grader.checks.leakage`)."""
    answers: dict[str, str] = field(default_factory=dict)
    """Question id -> the student's written answer (Markdown), kept for manual grading; kept
    in the signed result, left out of ``grades.json``."""
    name: str = ""
    """The student's name as the instructor gave it (the folder or file-name key, Unicode
    NFC); ``student`` is its file-safe id. Empty in results graded before names were kept:
    :func:`roster_name` then falls back to the id."""
    raw_score: float | None = None
    """The score before the late penalty (``grader.classroom.late``); set in the outputs,
    ``None`` in stored results (they always hold the raw score in ``score``)."""
    instructor_notes: list[str] = field(default_factory=list)
    """Notes for the instructor alone (the sandbox's warnings, what a kernel's clean-up could
    not remove, an internal error's traceback): in ``grades.json`` and the stored result,
    never on the student's feedback page nor in Gradescope's ``results.json``."""
    late: dict | None = None
    """The late-work line (``submitted_at, due_at, seconds_late, days_late, penalty,
    deducted, flag, source``) or ``None``: on time, or no time known."""

    def to_dict(self) -> dict:
        row = asdict(self)
        row["checks"] = [c.to_dict() if hasattr(c, "to_dict") else dict(c) for c in self.checks]
        return row

    @classmethod
    def from_dict(cls, row: dict) -> GradeRow:
        data = dict(row)
        data["checks"] = [ManualResult(**c) if c.get("manual") else CheckResult(**c)
                          for c in data.get("checks", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def roster_name(row: GradeRow) -> str:
    """The key every LMS export matches a row on: the name the instructor gave the
    submission (folder or file-name key), else (results graded before names were kept)
    the student id."""
    return row.name or row.student


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def match_key(text: str) -> str:
    """The one normalisation roster matching uses: NFC, outer white space removed, ``A-Z``
    lower-cased, nothing else (so no two different non-ASCII names ever merge). (Moved from
    :mod:`grader.lms.gradebook_csv`, which re-exports it, so the late record can use it.)"""
    return unicodedata.normalize("NFC", str(text)).strip().translate(_ASCII_LOWER)
