"""The course file, ``course.toml``: read in this one place, validated against one schema.

Every stage may import it (it sits in :mod:`grader.base`). The keys (see
``examples/course.toml`` and the architecture's "The course loop")::

    [course]      name, student_repo
    [due]         module -> deadline (a TOML date-time with a time zone)
    [late]        penalty_per_day, max_penalty, grace_minutes
    [extensions]  student key -> module -> deadline
    [canvas]      base_url, course_id, assignments (module -> assignment id), student_key
    [gradescope]  visibility

Every table and key is optional. An unknown table or key, a value of the wrong type or a bad
date raises :class:`CourseFileError`, one message naming the file, the key, what was found
and what was expected; the command line turns it into exit status 2.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from grader.base.errors import GraderError
from grader.base.paths import MODULES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DEFAULT_COURSE_FILE = Path("course.toml")
STUDENT_KEYS = ("login", "sis", "id")
"""Canvas gradebook keys: SIS Login ID, SIS User ID, Canvas user id."""
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
"""Gradescope's ``visibility`` values for results."""


class CourseFileError(GraderError):
    """``course.toml`` breaks the schema: the message names the file, the key and the fix."""


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True)
class LatePolicy:
    """``[late]``: the share of the score taken per started day late, its cap, the grace."""

    penalty_per_day: float = 0.0
    max_penalty: float = 1.0
    grace_minutes: int = 0


@dataclass(frozen=True)
class CanvasSettings:
    """``[canvas]``: where the course lives on Canvas and how its gradebook names students."""

    base_url: str | None = None
    course_id: int | None = None
    assignments: Mapping[str, int] = field(default_factory=_empty)
    student_key: str = "login"


@dataclass(frozen=True)
class Course:
    """A parsed ``course.toml`` (every field has a default: an absent file is an empty course)."""

    path: Path | None = None
    name: str = ""
    student_repo: str | None = None
    due: Mapping[str, datetime] = field(default_factory=_empty)
    late: LatePolicy = LatePolicy()
    extensions: Mapping[str, Mapping[str, datetime]] = field(default_factory=_empty)
    canvas: CanvasSettings = CanvasSettings()
    gradescope_visibility: str = "after_published"


# ----------------------------------------------------------------------------------------
# Value readers: each returns the value or raises with the key and what was expected.
# ----------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, expected: str, found: Any) -> CourseFileError:
        shown = repr(found) if not isinstance(found, dict) else "a table"
        return CourseFileError(f"{self.path}: {key}: expected {expected}, found {shown}."
                               f" Fix: edit {key} in {self.path} (examples/course.toml shows"
                               " every key)")

    def table(self, key: str, value: Any, allowed: tuple[str, ...] | None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise CourseFileError(
                    f"{self.path}: {key}: unknown key {unknown[0]!r}; expected one of"
                    f" {', '.join(allowed)}. Fix: remove it or correct its spelling")
        return value

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value

    def url(self, key: str, value: Any) -> str:
        text = self.text(key, value)
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
            raise self.fail(key, "a web address starting with https://", value)
        return text

    def number(self, key: str, value: Any, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise self.fail(key, f"a number from {low:g} to {high:g}", value)
        return float(value)

    def whole(self, key: str, value: Any, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(key, f"a whole number >= {low}", value)
        return value

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(f'"{c}"' for c in choices), value)
        return value

    def module(self, key: str, value: Any) -> str:
        if value not in MODULES:
            raise CourseFileError(
                f"{self.path}: {key}: expected a module key, one of"
                f" {', '.join(repr(m) for m in MODULES)} (quoted), found {value!r}."
                f" Fix: write the module as \"02\"")
        return value

    def deadline(self, key: str, value: Any) -> datetime:
        expected = "a date and time with a time zone, e.g. 2027-03-01T23:59:00Z (unquoted)"
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise self.fail(key, expected, value) from None
        if isinstance(value, date) and not isinstance(value, datetime):
            raise CourseFileError(f"{self.path}: {key}: expected {expected}, found the date"
                                  f" {value} without a time. Fix: write {value}T23:59:00Z")
        if not isinstance(value, datetime):
            raise self.fail(key, expected, value)
        if value.tzinfo is None:
            raise CourseFileError(
                f"{self.path}: {key}: expected {expected}, found {value.isoformat()} without a"
                " time zone. Fix: add Z (UTC) or an offset such as +01:00")
        return value

    def mapping(self, key: str, value: Any, read_key: Callable, read_value: Callable) -> Mapping:
        table = self.table(key, value, None)
        return MappingProxyType({read_key(f"{key}.{k}", k): read_value(f"{key}.{k}", v)
                                 for k, v in table.items()})


_TABLES = {
    "course": ("name", "student_repo"),
    "due": None,
    "late": ("penalty_per_day", "max_penalty", "grace_minutes"),
    "extensions": None,
    "canvas": ("base_url", "course_id", "assignments", "student_key"),
    "gradescope": ("visibility",),
}


def _late(r: _Reader, raw: dict) -> LatePolicy:
    late = r.table("[late]", raw, _TABLES["late"])
    return LatePolicy(
        penalty_per_day=r.number("late.penalty_per_day", late.get("penalty_per_day", 0.0), 0, 1),
        max_penalty=r.number("late.max_penalty", late.get("max_penalty", 1.0), 0, 1),
        grace_minutes=r.whole("late.grace_minutes", late.get("grace_minutes", 0), 0),
    )


def _canvas(r: _Reader, raw: dict) -> CanvasSettings:
    canvas = r.table("[canvas]", raw, _TABLES["canvas"])
    return CanvasSettings(
        base_url=r.url("canvas.base_url", canvas["base_url"]) if "base_url" in canvas else None,
        course_id=r.whole("canvas.course_id", canvas["course_id"], 1) if "course_id" in canvas else None,
        assignments=r.mapping("canvas.assignments", canvas.get("assignments", {}), r.module,
                              lambda k, v: r.whole(k, v, 1)),
        student_key=r.choice("canvas.student_key", canvas.get("student_key", "login"), STUDENT_KEYS),
    )


def parse_course(text: str, path: Path) -> Course:
    """Validate the TOML ``text`` of the course file ``path`` (named in every error)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CourseFileError(f"{path}: not valid TOML ({exc}). Fix: compare with"
                              " examples/course.toml") from exc
    r = _Reader(path)
    unknown = sorted(set(raw) - set(_TABLES))
    if unknown:
        raise CourseFileError(f"{path}: unknown table or key {unknown[0]!r} at the top level; expected"
                              f" the tables {', '.join(f'[{t}]' for t in _TABLES)}. Fix: remove it or"
                              " correct its spelling")
    course = r.table("[course]", raw.get("course", {}), _TABLES["course"])
    gradescope = r.table("[gradescope]", raw.get("gradescope", {}), _TABLES["gradescope"])
    return Course(
        path=path,
        name=r.text("course.name", course["name"]) if "name" in course else "",
        student_repo=(r.url("course.student_repo", course["student_repo"])
                      if "student_repo" in course else None),
        due=r.mapping("due", raw.get("due", {}), r.module, r.deadline),
        late=_late(r, raw.get("late", {})),
        extensions=r.mapping("extensions", raw.get("extensions", {}), r.text,
                             lambda k, v: r.mapping(k, v, r.module, r.deadline)),
        canvas=_canvas(r, raw.get("canvas", {})),
        gradescope_visibility=r.choice("gradescope.visibility",
                                       gradescope.get("visibility", "after_published"), VISIBILITIES),
    )


def load_course(path: Path | None = None) -> Course:
    """The course file ``path``; with ``None``, ``./course.toml`` or an empty course if absent.

    A file named explicitly (``--course FILE``) must exist.
    """
    if path is None:
        if not DEFAULT_COURSE_FILE.is_file():
            return Course()
        path = DEFAULT_COURSE_FILE
    path = Path(path)
    if not path.is_file():
        raise CourseFileError(f"{path}: no such course file. Fix: pass --course with the path of"
                              " your course.toml (examples/course.toml is a commented start)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseFileError(f"{path}: cannot read the course file ({exc})") from exc
    return parse_course(text, path)
