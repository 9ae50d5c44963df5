"""Canvas's "Download Submissions" zip (or its unpacked folder) as a class to grade.

``python -m grader grade ZIP_OR_DIR --roster ROSTER.csv --out OUT``: Canvas names each file
``<sortable name>[_late]_<canvas user id>_<file id>_<original name>``, the first part made of
word characters and lower-cased (``lib/content_zipper.rb``); a file counts only when one
reading of its name gives a roster student's user id *and* that student's name part
(:func:`parse_for_roster`: a name may end in ``_<digits>`` itself). A resubmission's
original name gains ``-1``, ``-2`` (the highest counts; the older ones are noted). Each file
is mapped by the Canvas user id to the roster's ``ID`` column, and the student's gradebook key
(``[canvas] student_key``: SIS Login ID, SIS User ID or Canvas id) names the student.

The chosen files are copied to ``OUT/canvas-submissions/<key>/<original name>`` with a
``canvas-pull.json`` beside them in the shape ``canvas pull`` writes (the ``_LATE`` marker as
``late``, no submission time), and that folder is graded. The zip is read defensively: only
``.ipynb`` members, none whose name holds a folder (``../`` included), none above
:data:`MAX_FILE_BYTES` (checked while copying, whatever the zip declares), at most
:data:`MAX_FILES` members; each refusal is listed, never a crash and never a file written
outside the staging folder. Files of users not on the roster and roster students without a
file are listed in the console summary and the report.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from grader.base.course import Course
from grader.base.errors import GraderError
from grader.submission.validate import MAX_SUBMISSION_BYTES

MAX_FILE_BYTES = MAX_SUBMISSION_BYTES  # the grader's one limit on a submitted file
MAX_FILES = 20000
STAGED = "canvas-submissions"
CANVAS_NAME = re.compile(r"^(?P<sortable>.+?)(?P<late>_(?i:late))?_(?P<user>[0-9]+)_(?P<sub>[0-9]+)_"
                         r"(?P<original>.+)$")
SPLIT = re.compile(r"(?=(?P<late>_(?i:late))?_(?P<user>[0-9]+)_(?P<sub>[0-9]+)_(?P<original>.+)$)")
RESUBMISSION = re.compile(r"^(?P<base>.+?)-(?P<n>\d+)$")


@dataclass(frozen=True)
class CanvasFile:
    """One file of the download, by its Canvas name."""

    name: str
    user_id: int
    submission_id: int
    late: bool
    original: str
    """The original name without the resubmission's ``-N``."""
    attempt: int
    """0 for the first file, N for ``-N``."""


def _file(name: str, user: str, sub: str, late: bool, original: str) -> CanvasFile:
    stem, suffix = original.rsplit(".", 1) if "." in original else (original, "")
    again = RESUBMISSION.match(stem)
    base, attempt = (again["base"], int(again["n"])) if again else (stem, 0)
    return CanvasFile(name, int(user), int(sub), late, f"{base}.{suffix}" if suffix else base,
                      attempt)


def parse_name(name: str) -> CanvasFile | None:
    """The parts of a Canvas download name, or ``None`` when it is not one (the shortest
    name part; :func:`parse_for_roster` checks every reading against the roster)."""
    match = CANVAS_NAME.match(name)
    if not match:
        return None
    return _file(name, match["user"], match["sub"], bool(match["late"]), match["original"])


def canvas_user_name(sortable_name: str) -> str:
    """A sortable name as Canvas writes it into download names (``lib/content_zipper.rb``:
    ``sanitize_user_name`` joins ``_<digits>_``, ``sanitize_file_name`` keeps word characters
    only and lower-cases the whole file name: ``Alvarez, Ana`` -> ``alvarezana``)."""
    joined = re.sub(r"_([0-9]+)_", r"\1", sortable_name)
    return re.sub(r"[^\w]", "", joined).lower()


def parse_for_roster(name: str, names: dict[int, str]) -> CanvasFile | None:
    """The reading of ``name`` whose user id is on the roster *and* whose name part is that
    student's (``names``: user id -> :func:`canvas_user_name`), or None.

    A name part may itself end in ``_<digits>`` (a student whose sortable name is
    ``Mallory_4242``): the first ``_<digits>_<digits>_`` is then not the user id, and a
    reading that takes it for one would file her notebook as user 4242's. Only ASCII digits
    count (``int()`` would read other scripts' digits too).
    """
    found = []
    for match in SPLIT.finditer(name):
        head = name[:match.start()]
        user = int(match["user"])
        if head and names.get(user) is not None and head.lower() == names[user]:
            found.append(_file(name, match["user"], match["sub"], bool(match["late"]),
                               match["original"]))
    return found[0] if len(found) == 1 else None


@dataclass
class Intake:
    """What the intake staged and what it could not place (each a line for the summary)."""

    folder: Path
    staged: int = 0
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    older: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def lists(self) -> dict[str, list[str]]:
        return {"unknown": self.unknown, "missing": self.missing, "older": self.older,
                "refused": self.refused}


_Opener = Callable[[], BinaryIO]


def _zip_entries(path: Path, intake: Intake) -> Iterator[tuple[str, int, _Opener]]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise GraderError(f"{path} is not a readable zip ({exc}); expected Canvas's"
                          " Download Submissions zip or its unpacked folder") from exc
    members = archive.infolist()
    if len(members) > MAX_FILES:
        raise GraderError(f"{path} holds {len(members)} members; at most {MAX_FILES} are read."
                          " Fix: unpack it and grade the folder in parts")
    for info in members:
        if info.is_dir():
            continue
        name = info.filename
        if "/" in name or "\\" in name or name in (".", "..") or ":" in name:
            intake.refused.append(f"{name!r}: a zip member inside a folder (Canvas's zip is"
                                  " flat); not extracted")
            continue
        yield name, info.file_size, (lambda info=info: archive.open(info))


def _folder_entries(path: Path) -> Iterator[tuple[str, int, _Opener]]:
    for item in sorted(path.iterdir()):
        if item.is_file() and not item.is_symlink():
            yield item.name, item.stat().st_size, (lambda item=item: item.open("rb"))


def _copy_capped(opener: _Opener, dest: Path) -> bool:
    """Copy at most :data:`MAX_FILE_BYTES`; False (and nothing left behind) when larger."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with opener() as src, dest.open("wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > MAX_FILE_BYTES:
                break
            out.write(chunk)
    if written > MAX_FILE_BYTES:
        dest.unlink()
        return False
    return True


def _safe_key(key: str) -> bool:
    return bool(key) and key not in (".", "..") and not re.search(r"[/\\\x00]", key) \
        and not key.startswith(".")


def _roster_keys(roster_path: Path, key_column: str, intake: Intake) -> tuple[dict, dict, dict]:
    """(Canvas user id -> gradebook key, key -> shown name, user id -> the name part Canvas
    writes into download names) from the roster."""
    from grader.lms.gradebook_csv import read_roster_table

    roster = read_roster_table(roster_path, key_column)
    if "ID" not in roster.header:
        raise GraderError(f"the roster {roster_path} has no ID column (found: {', '.join(roster.header)});"
                          " expected Canvas's Grades > Export, whose ID column holds the Canvas"
                          " user id the zip's file names carry. Fix: export the gradebook again")
    by_user, names, sortable = {}, {}, {}
    for entry in roster.students:
        key, user = entry[key_column].strip(), entry["ID"].strip()
        who = f"{entry['Student'].strip()} (ID {user})"
        if not (user.isascii() and user.isdigit()) or not _safe_key(key):
            intake.refused.append(f"roster row {who}: expected a numeric ID and a {key_column}"
                                  f" usable as a folder name, found {key!r}; skipped")
            continue
        by_user[int(user)] = key
        names[key] = who
        sortable[int(user)] = canvas_user_name(entry["Student"].strip())
    return by_user, names, sortable


def _choose(entries, by_user: dict, intake: Intake,
            sortable: dict[int, str]) -> dict[tuple[str, str], tuple]:
    """(key, original name) -> (CanvasFile, size, opener) of the latest attempt."""
    chosen: dict[tuple[str, str], tuple] = {}
    for name, size, opener in entries:
        if not name.lower().endswith(".ipynb"):
            continue
        parsed, simple = parse_for_roster(name, sortable), parse_name(name)
        if parsed is None and simple is None:
            intake.unknown.append(f"{name}: not named <name>_<user id>_<submission id>_<file>"
                                  " as Canvas names downloads; not graded")
            continue
        if parsed is None and not any(int(m["user"]) in by_user for m in SPLIT.finditer(name)):
            intake.unknown.append(f"{name}: Canvas user {simple.user_id} is not on the roster;"
                                  " not graded")
            continue
        if parsed is None:
            intake.unknown.append(f"{name}: no reading of it names a roster student by both"
                                  " user id and name (Canvas writes <sortable name>[_late]_<user"
                                  " id>_<file id>_<file>); not graded")
            continue
        key = by_user.get(parsed.user_id)
        if key is None:
            intake.unknown.append(f"{name}: Canvas user {parsed.user_id} is not on the roster;"
                                  " not graded")
            continue
        slot = (key, parsed.original)
        order = (parsed.attempt, parsed.submission_id)
        if slot in chosen:
            old = chosen[slot][0]
            newer = order > (old.attempt, old.submission_id)
            kept, dropped = (parsed, old) if newer else (old, parsed)
            intake.older.append(f"{key}: {dropped.name} superseded by {kept.name}")
            if not newer:
                continue
        chosen[slot] = (parsed, size, opener)
    return chosen


def stage_download(source: Path, roster: Path, out: Path, *, course: Course,
                   module_of: Callable[[str], str | None]) -> Intake:
    """Stage the notebooks of a Canvas download for grading (see the module docstring).

    ``module_of`` names a file's module from its original name (``None`` when unknown).
    """
    from grader.lms.gradebook_csv import KEY_COLUMNS
    from grader.pages.gradebook import atomic_write_text

    source = Path(source)
    if not source.exists():
        raise GraderError(f"{source} does not exist; expected Canvas's Download Submissions zip"
                          " or its unpacked folder")
    folder = Path(out) / STAGED
    intake = Intake(folder=folder)
    by_user, names, sortable = _roster_keys(roster, KEY_COLUMNS[course.canvas.student_key], intake)
    entries = _folder_entries(source) if source.is_dir() else _zip_entries(source, intake)
    chosen = _choose(entries, by_user, intake, sortable)
    if folder.exists():
        shutil.rmtree(folder)
    submissions: dict[str, dict] = {}
    for (key, original), (parsed, size, opener) in sorted(chosen.items()):
        if size > MAX_FILE_BYTES or not _copy_capped(opener, folder / key / original):
            intake.refused.append(f"{parsed.name}: larger than {MAX_FILE_BYTES // 2**20} MB; not"
                                  " extracted or graded")
            continue
        intake.staged += 1
        submissions.setdefault(key, {})[module_of(original) or "*"] = {
            "submitted_at": None, "late": parsed.late, "user_id": parsed.user_id,
            "file": f"{key}/{original}", "source": "canvas-zip"}
    intake.missing = [f"{names[k]} {k}" for k in sorted(names) if k not in submissions]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "canvas-pull.json",
                      json.dumps({"modules": {}, "submissions": submissions}, indent=1) + "\n")
    if not intake.staged:
        raise GraderError(f"no notebook of a roster student found in {source}: "
                          + "; ".join([*intake.unknown, *intake.refused][:5])
                          + ". Fix: check that the roster is this course's Grades > Export")
    return intake
