"""The rubric a batch was graded with, recorded in its output folder.

``grade`` writes ``DIR/rubrics.json``: per module the rubric file's path and SHA-256, its
total points, every check's and written question's points and the questions' descriptions
and marking guides, signed with the results key (like ``results/``). Every output written
later from DIR (Canvas export, manual-grading pages and import, the report they rewrite)
takes points and checks from this record, never from the course's rubric of the same module
number, so a batch graded with ``--rubric my.toml`` exports its own maximum.

When the rubric file on disk differs from the recorded one (edited, moved or deleted since
grading), :func:`rubric_warnings` says so; the outputs still use the recorded rubric, which
is the one the points were given with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from grader.pages.gradebook import atomic_write_text

RECORD_NAME = "rubrics.json"


@dataclass(frozen=True)
class GradedRubric:
    """What the outputs need of the rubric one module was graded with."""

    module: str
    path: str
    sha256: str
    total_points: float
    points: dict[str, float] = field(default_factory=dict)
    """Check or question id -> its points (automatic checks first, rubric order)."""
    guides: dict[str, list[str]] = field(default_factory=dict)
    """Written question id -> [description, marking guide]."""
    descriptions: dict[str, str] = field(default_factory=dict)
    """Check or question id -> its description, for the pages (empty in records written
    before descriptions were kept: the pages then read the course's rubric)."""


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def describe(rubric) -> GradedRubric:
    """The record of one parsed :class:`~grader.checks.rubric.Rubric`."""
    return GradedRubric(
        module=rubric.module, path=str(Path(rubric.path).absolute()),
        sha256=_file_sha256(rubric.path) or "", total_points=float(rubric.total_points),
        points={c.id: float(c.points) for c in (*rubric.checks, *rubric.questions)},
        guides={q.id: [q.description, q.guide] for q in rubric.questions},
        descriptions={c.id: c.description for c in (*rubric.checks, *rubric.questions)})


def _sign(key: bytes, entries: dict) -> str:
    body = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hmac.new(key, b"rubrics|" + body, hashlib.sha256).hexdigest()


def _key(key: bytes | None) -> bytes:
    from grader.base.keys import load_result_key

    return load_result_key() if key is None else key


def load_record(out: Path, key: bytes | None = None) -> dict[str, GradedRubric]:
    """Module -> the rubric it was graded with; ``{}`` when DIR has no trusted record
    (graded before the grader kept one, or the file was edited: a warning then)."""
    path = Path(out) / RECORD_NAME
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        entries = record["modules"]
        ok = isinstance(entries, dict) and hmac.compare_digest(
            str(record.get("hmac", "")), _sign(_key(key), entries))
        loaded = {m: GradedRubric(**e) for m, e in entries.items()} if ok else {}
    except (OSError, ValueError, KeyError, TypeError):
        ok, loaded = False, {}
    if not ok:
        print(f"WARNING: {path} was not written by this grader (its signature does not verify);"
              " points come from the graded rows instead", file=sys.stderr)
    return loaded


def record_rubrics(out: Path, rubrics: Iterable, key: bytes | None = None) -> None:
    """Record the rubrics of this run in ``DIR/rubrics.json`` (modules graded earlier with no
    submission in this run keep their entry)."""
    entries = {m: asdict(r) for m, r in load_record(out, key).items()}
    for rubric in rubrics:
        entries[rubric.module] = asdict(describe(rubric))
    record = {"schema": 1, "modules": entries, "hmac": _sign(_key(key), entries)}
    atomic_write_text(Path(out) / RECORD_NAME, json.dumps(record, indent=1, ensure_ascii=False)
                      + "\n")


def rubric_warnings(records: dict[str, GradedRubric]) -> list[str]:
    """One sentence per module whose rubric file on disk is not the one it was graded with."""
    warnings = []
    for module, record in sorted(records.items()):
        now = _file_sha256(Path(record.path))
        if now == record.sha256:
            continue
        state = "is missing" if now is None else "has changed"
        warnings.append(f"the rubric of module {module} ({record.path}) {state} since this"
                        f" folder was graded; points and checks here come from the rubric that"
                        f" was graded ({record.total_points:g} points). Grade again to use the"
                        " rubric on disk")
    return warnings


def graded_rubrics(out: Path, *, warn: bool = True) -> tuple[dict[str, GradedRubric], list[str]]:
    """The record of DIR and its warnings (printed on the console unless ``warn`` is false)."""
    records = load_record(out)
    warnings = rubric_warnings(records)
    if warn:
        for text in warnings:
            print(f"WARNING: {text}", file=sys.stderr)
    return records, warnings
