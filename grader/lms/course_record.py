"""The course settings a batch was graded with: ``OUT/course-settings.json``, signed.

``grade`` writes the settings that decide a grade (``[due]``, ``[late]``, ``[extensions]``,
``[canvas]``) into its output folder, signed with the results key like the results
(:func:`grader.base.keys.load_result_key`). Every later command on that folder (``grade``
again, ``canvas push``, ``export --canvas``) calls :func:`settings_for`: without a course
file (none named, none in the working directory) it uses the recorded settings, so a penalty
does not depend on the folder the command runs from; with a course file whose deadlines, late
policy or extensions differ it refuses, naming the tables that differ and the file the batch
was graded with (``[canvas]`` may change: it says where grades go, not what they are).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from grader.base.course import CanvasSettings, Course, LatePolicy
from grader.base.errors import GraderError

RECORD = "course-settings.json"


def settings(course: Course) -> dict:
    """The grade-deciding settings of ``course`` as JSON-able data (times in ISO 8601)."""
    def times(mapping) -> dict:
        return {k: v.isoformat() for k, v in sorted(mapping.items())}

    canvas = course.canvas
    return {"due": times(course.due),
            "late": {"penalty_per_day": course.late.penalty_per_day,
                     "max_penalty": course.late.max_penalty,
                     "grace_minutes": course.late.grace_minutes},
            "extensions": {k: times(v) for k, v in sorted(course.extensions.items())},
            "canvas": {"base_url": canvas.base_url, "course_id": canvas.course_id,
                       "assignments": dict(sorted(canvas.assignments.items())),
                       "student_key": canvas.student_key}}


def course_from(body: dict) -> Course:
    """A :class:`Course` with the recorded settings; its ``path`` is the course file they
    were read from when the batch was graded (None when there was none)."""
    def times(mapping: dict) -> MappingProxyType:
        return MappingProxyType({k: datetime.fromisoformat(v) for k, v in mapping.items()})

    data = body["settings"]
    canvas = data["canvas"]
    path = Path(body["course_file"]) if body.get("course_file") else None
    return Course(path=path, due=times(data["due"]), late=LatePolicy(**data["late"]),
                  extensions=MappingProxyType({k: times(v) for k, v in data["extensions"].items()}),
                  canvas=CanvasSettings(base_url=canvas["base_url"], course_id=canvas["course_id"],
                                        assignments=MappingProxyType(dict(canvas["assignments"])),
                                        student_key=canvas["student_key"]))


def _signature(body: dict) -> str:
    from grader.base.keys import load_result_key

    text = json.dumps(body, sort_keys=True, ensure_ascii=True)
    return hmac.new(load_result_key(), text.encode("ascii"), hashlib.sha256).hexdigest()


def save(out: Path, course: Course) -> None:
    """Write ``OUT/course-settings.json`` for ``course`` (signed)."""
    from grader.pages.gradebook import atomic_write_text

    body = {"schema": 1, "course_file": str(course.path) if course.path else None,
            "settings": settings(course)}
    body["hmac"] = _signature(body)
    atomic_write_text(Path(out) / RECORD, json.dumps(body, indent=1) + "\n")


def load(out: Path) -> dict | None:
    """The signed record of ``out``, None when there is none; a :class:`GraderError` when it
    was edited or damaged (a changed deadline or penalty must not pass unseen)."""
    path = Path(out) / RECORD
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        mac = body.pop("hmac")
        if hmac.compare_digest(str(mac), _signature(body)):
            course_from(body)  # the shape is checked here, once
            return body
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise GraderError(f"{path}: not signed by this grader (edited or damaged); it records the"
                      " deadlines, late policy and Canvas settings this batch was graded with."
                      " Fix: grade again into a new --out folder with the course file")


DECISIVE = {"due": "[due]", "late": "[late]", "extensions": "[extensions]"}
"""The tables that change a grade; ``[canvas]`` only says where grades go and whom they name."""


def _differences(a: dict, b: dict) -> list[str]:
    return [name for key, name in DECISIVE.items() if a.get(key) != b.get(key)]


def settings_for(out: Path, course: Course, command: str) -> Course:
    """The course settings ``command`` must use on the batch in ``out``.

    No record: ``course``. No course file (``course.path`` is None): the recorded settings
    (a note on standard error). A course file whose deadlines, late policy and extensions
    agree: ``course`` (its ``[canvas]`` table says where grades go). One that differs there:
    a :class:`GraderError` naming the tables and the file the batch was graded with.
    """
    body = load(out)
    if body is None:
        return course
    recorded = course_from(body)
    where = body.get("course_file") or "no course file"
    if course.path is None:
        print(f"note: {command} uses the course settings {out} was graded with ({where};"
              f" recorded in {RECORD}): no course file here", file=sys.stderr)
        return recorded
    differ = _differences(settings(course), body["settings"])
    if differ:
        raise GraderError(
            f"{course.path} differs from the settings {out} was graded with ({where}) in"
            f" {', '.join(differ)}; {command} would mix two policies. Fix: pass --course with"
            f" the file the batch was graded with, or grade again into a new --out folder to"
            " use the changed settings")
    return course
