"""Resume support: which submission a result belongs to, and whether it is still current.

Each graded submission is stored as ``OUT/results/<key>.json`` (key = student + module),
written atomically (temporary file + :func:`os.replace`) and stamped with a fingerprint of
everything that decides its grade: the submission's bytes, the rubric and solution files,
the mode, the seed and the sandbox. A rerun skips results whose fingerprint is unchanged.

Every record carries an HMAC-SHA256 made with a key that lives outside the output folder
(:func:`result_key_file`: ``$DLCOURSE_KEY_FILE``, else ``~/.config/dlcourse/results.key``,
created on first use with mode 0600) and outside anything a sandboxed kernel can read. A
record whose HMAC does not verify (written or edited by anyone but this grader) is not
trusted: it is ignored and the submission is graded again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.base.errors import GraderError
from grader.base.keys import load_result_key
from grader.checks.results import GradeRow
from grader.pages.gradebook import atomic_write_text

RESULT_SCHEMA = 2


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
    data: bytes = field(default=b"", repr=False, compare=False)
    """The submission's bytes, read once when the batch is planned; never read again."""
    read_error: str | None = None
    """Why the file could not be read at all (a FIFO, a device, permissions), or why it was
    not graded (two submissions of one student and module): its row's error."""
    name: str = ""
    """The student's name as the instructor gave it (folder or file-name key, NFC): rosters
    match on it; ``student`` is its file-safe id."""
    identity_error: bool = False
    """True when ``read_error`` says whose the submission is cannot be told (a collision of
    two files, a file outside a student folder): listed in the console summary."""
    rubric: Any = field(default=None, repr=False, compare=False)
    """The rubric the task is graded against, loaded once when the batch is planned (the
    custom one, else its module's; ``None`` when there is none)."""
    parsed: Any = field(default=None, repr=False, compare=False)
    """The submission as read when the batch was planned
    (:class:`grader.submission.validate.Submission`): graded without parsing the file again."""


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
                solution=None, data: bytes | None = None, sandbox: str = "") -> str:
    """Hash of what decides a grade: submission (``data``, else the file at ``path``), rubric
    and solution bytes, mode, seed and sandbox."""
    digest = hashlib.sha256()
    from grader.data.holdout import HOLDOUT_VERSION

    digest.update(f"schema={RESULT_SCHEMA};fast={bool(fast)};seed={seed};sandbox={sandbox};"
                  f"holdout={HOLDOUT_VERSION};".encode())
    digest.update(hashlib.sha256(data).digest() if data is not None else _file_digest(path))
    if rubric is not None:
        digest.update(_file_digest(rubric.path))
    if solution is not None:
        digest.update(json.dumps(solution, sort_keys=True).encode())
    if module is not None and (rubric is None or solution is None):
        try:
            from grader.authoring.release import solution_path
            from grader.checks.rubric import load_rubric

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
    from grader.base.ids import safe_id

    return f"{safe_id(student)}__{module or 'unknown'}"


def _signature(key: bytes, record: dict) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "hmac"}, sort_keys=True)
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


class ResultStore:
    """``OUT/results/<key>.json``: one graded result each, written atomically and signed."""

    def __init__(self, out: Path, key: bytes | None = None) -> None:
        self.dir = Path(out) / "results"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = load_result_key() if key is None else key
        self.untrusted: list[str] = []
        """Names of result files whose signature did not verify (ignored, graded again)."""

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def fingerprint(self, key: str) -> str | None:
        record = self._read(self.path(key))
        return record.get("fingerprint") if record else None

    def save(self, task: Task, row: GradeRow) -> None:
        record = {"schema": RESULT_SCHEMA, "key": task.key, "fingerprint": task.fingerprint,
                  "submission": row.submission, "row": row.to_dict()}
        record["hmac"] = _signature(self.key, record)
        atomic_write_text(self.path(task.key), json.dumps(record, indent=1) + "\n")

    def update_row(self, key: str, row: GradeRow) -> None:
        """Replace the row of a trusted stored result, keeping its fingerprint (manual marks).

        Raises :class:`GraderError` when the result is missing or its signature does not verify.
        """
        record = self._read(self.path(key))
        if record is None:
            raise GraderError(f"no trusted result {self.path(key)} to update; expected a result"
                              " written by this grader. Fix: grade the submission again")
        record["row"] = row.to_dict()
        record["hmac"] = _signature(self.key, record)
        atomic_write_text(self.path(key), json.dumps(record, indent=1) + "\n")

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

    def _read(self, path: Path) -> dict | None:
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 50_000_000:
                return None
            record = json.loads(path.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - unreadable, bad JSON, absurd nesting: not trusted
            return None
        if not isinstance(record, dict) or record.get("schema") != RESULT_SCHEMA:
            return None
        signature = record.get("hmac")
        if not isinstance(signature, str) or not hmac.compare_digest(
                signature, _signature(self.key, record)):
            if path.name not in self.untrusted:
                self.untrusted.append(path.name)
            return None
        return record
