"""Resume support: which submission a result belongs to, and whether it is still current.

Each graded submission is stored as ``OUT/results/<key>.json`` (key = student + module),
written atomically (temporary file + :func:`os.replace`) and stamped with a fingerprint of
everything that decides its grade: the submission's bytes, the rubric and solution files,
the mode and the seed. A rerun skips results whose fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from grader.errors import GraderError
from grader.gradebook import atomic_write_text
from grader.results import GradeRow

RESULT_SCHEMA = 1


@dataclass(frozen=True)
class Task:
    """One submission to grade, identified before grading so results can be keyed."""

    path: Path
    student: str
    module: str | None
    key: str
    fingerprint: str
    notes: tuple[str, ...] = ()
    readable: bool = True
    """False when the file is not a notebook: graded in the batch process, no kernel needed."""


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        digest.update(f"unreadable:{exc}".encode())
    return digest.digest()


def fingerprint(path: Path, module: str | None, *, fast: bool, seed: int | None, rubric=None,
                solution=None) -> str:
    """Hash of what decides a grade: submission, rubric and solution bytes, mode and seed."""
    digest = hashlib.sha256()
    digest.update(f"schema={RESULT_SCHEMA};fast={bool(fast)};seed={seed};".encode())
    digest.update(_file_digest(path))
    if rubric is not None:
        digest.update(_file_digest(rubric.path))
    if solution is not None:
        digest.update(json.dumps(solution, sort_keys=True).encode())
    if module is not None and (rubric is None or solution is None):
        try:
            from grader.release import solution_path
            from grader.rubric import load_rubric

            course_rubric = load_rubric(module)
            if rubric is None:
                digest.update(_file_digest(course_rubric.path))
            if solution is None:
                digest.update(_file_digest(solution_path(course_rubric)))
        except GraderError:
            digest.update(b"no-rubric")
    return digest.hexdigest()


def result_key(student: str, module: str | None) -> str:
    """File-name-safe key of one (student, module) result."""
    from grader.validate import safe_id

    return f"{safe_id(student)}__{module or 'unknown'}"


class ResultStore:
    """``OUT/results/<key>.json``: one graded result each, written atomically."""

    def __init__(self, out: Path) -> None:
        self.dir = Path(out) / "results"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def fingerprint(self, key: str) -> str | None:
        record = self._read(self.path(key))
        return record.get("fingerprint") if record else None

    def save(self, task: Task, row: GradeRow) -> None:
        record = {"schema": RESULT_SCHEMA, "key": task.key, "fingerprint": task.fingerprint,
                  "submission": str(task.path), "row": row.to_dict()}
        atomic_write_text(self.path(task.key), json.dumps(record, indent=1) + "\n")

    def load(self) -> dict[str, GradeRow]:
        """Every stored row by key (unreadable leftovers are ignored: they are re-graded)."""
        rows = {}
        for path in sorted(self.dir.glob("*.json")):
            record = self._read(path)
            if record and isinstance(record.get("row"), dict):
                try:
                    rows[path.stem] = GradeRow.from_dict(record["row"])
                except TypeError:
                    continue
        return rows

    def rows(self) -> list[GradeRow]:
        """Every stored row."""
        return list(self.load().values())

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("schema") == RESULT_SCHEMA else None
