"""``python -m grader canvas pull DIR``: every module's submissions from Canvas into DIR.

For each module in ``[canvas] assignments``: the assignment (its ``due_at``), its
submissions with ``include[]=user`` (all pages), and each submission's latest ``.ipynb``
attachment, saved as ``DIR/<student key>/<module>_<file name>``. The student key is the
user's ``login_id``, ``sis_user_id`` or ``id`` (``[canvas] student_key``) made file-safe with
:func:`grader.submission.validate.safe_id`; the file name is the student's own, reduced to
its last component, made file-safe, ``.ipynb`` only, prefixed with the module unless it
starts with it (two modules of one student never collide, and ``grade`` reads the module
from the prefix). A file over :data:`~grader.submission.validate.MAX_SUBMISSION_BYTES` is
not downloaded.

``DIR/canvas-pull.json`` (read by ``grade DIR`` for the late policy) records, per module,
the assignment id and ``due_at``, and per student key (the folder name) and module the
submission's ``submitted_at``, ``late``, ``seconds_late``, ``user_id``, the file (relative to
DIR) and ``key``, the student key as Canvas has it. A student whose download fails, who has
no ``.ipynb`` or no key is listed and skipped; the others are pulled. A file pulled earlier
for the same student and module is removed when Canvas now has another one, so ``grade``
never sees two.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.base.course import Course
from grader.base.errors import GraderError
from grader.classroom.canvas_api import CanvasClient, CanvasError
from grader.pages.gradebook import atomic_write_text
from grader.submission.validate import MAX_SUBMISSION_BYTES, safe_id

PULL_NAME = "canvas-pull.json"
USER_FIELDS = {"login": "login_id", "sis": "sis_user_id", "id": "id"}
"""``[canvas] student_key`` -> the Canvas User object's field."""


@dataclass
class PullSummary:
    """What :func:`pull` saved and whom it skipped (one line each)."""

    path: Path
    saved: int = 0
    skipped: list[str] = field(default_factory=list)
    no_submission: int = 0


def require_canvas(course: Course) -> None:
    """A :class:`GraderError` naming the missing ``[canvas]`` keys, if any."""
    canvas = course.canvas
    missing = [k for k, v in (("base_url", canvas.base_url), ("course_id", canvas.course_id),
                              ("assignments", dict(canvas.assignments))) if not v]
    if missing:
        where = course.path or "./course.toml (absent)"
        raise GraderError(f"{where}: [canvas] needs {', '.join(missing)}; found none. Fix: add"
                          " them to the course file (examples/course.toml shows them) or pass"
                          " --course FILE")


def student_key(user: dict, setting: str) -> str | None:
    """The user's gradebook key (``login``, ``sis`` or ``id``) as text, or None when absent."""
    value = user.get(USER_FIELDS[setting]) if isinstance(user, dict) else None
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        return None
    return str(value)


def file_name(module: str, name: str) -> str | None:
    """A safe ``<module>_<name>.ipynb`` for a student's file name, or None if not a notebook."""
    last = PurePosixPath(str(name).replace("\\", "/")).name
    stem, dot, suffix = last.rpartition(".")
    if not dot or suffix.lower() != "ipynb" or not stem.strip(". "):
        return None
    stem = safe_id(stem)
    return f"{stem if stem.startswith(f'{module}_') else f'{module}_{stem}'}.ipynb"


def latest_notebook(submission: dict) -> dict | None:
    """The submission's newest ``.ipynb`` attachment (Canvas keeps the latest attempt's)."""
    found = [a for a in submission.get("attachments") or [] if isinstance(a, dict)
             and str(a.get("display_name") or a.get("filename") or "").lower().endswith(".ipynb")]
    found.sort(key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""),
                              a.get("id") or 0))
    return found[-1] if found else None


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _previous(dest: Path) -> dict:
    try:
        data = json.loads((dest / PULL_NAME).read_text(encoding="utf-8"))
        return data.get("submissions", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _remove_stale(dest: Path, previous: dict, folder: str, module: str, kept: str) -> None:
    """Remove the file an earlier pull saved for this student and module, if it is another."""
    old = previous.get(folder, {}).get(module, {}).get("file") if isinstance(
        previous.get(folder), dict) else None
    if isinstance(old, str) and old != kept:
        path = (dest / old).resolve()
        if path.parent == (dest / folder).resolve() and path.suffix == ".ipynb":
            path.unlink(missing_ok=True)


def _pull_one(client: CanvasClient, dest: Path, module: str, sub: dict, setting: str,
              owners: dict[str, object], summary: PullSummary) -> dict | None:
    """Save one submission's notebook; its ``canvas-pull.json`` entry, or None (listed)."""
    user = sub.get("user") or {}
    who = f"module {module}, Canvas user {sub.get('user_id')}"
    key = student_key(user, setting)
    if key is None:
        summary.skipped.append(f"{who}: the user has no {USER_FIELDS[setting]} (is the token's"
                               " user allowed to see it? or set canvas.student_key = \"id\")")
        return None
    folder = safe_id(key)
    if owners.setdefault(folder, sub.get("user_id")) != sub.get("user_id"):
        summary.skipped.append(f"{who}: key {key!r} is also another user's; both need distinct keys")
        return None
    attachment = latest_notebook(sub)
    if attachment is None:
        summary.skipped.append(f"{key} ({who}): submitted no .ipynb file")
        return None
    name = file_name(module, attachment.get("display_name") or attachment.get("filename") or "")
    size = attachment.get("size")
    if name is None:
        summary.skipped.append(f"{key} ({who}): the attachment name is not usable")
        return None
    if isinstance(size, int) and size > MAX_SUBMISSION_BYTES:
        summary.skipped.append(f"{key} ({who}): {size / 1e6:.0f} MB is over the"
                               f" {MAX_SUBMISSION_BYTES / 1e6:.0f} MB limit; not downloaded")
        return None
    try:
        data = client.download(str(attachment.get("url") or ""), f"{key}'s module {module} file",
                               MAX_SUBMISSION_BYTES)
    except CanvasError as exc:
        if exc.status == 401:
            raise
        summary.skipped.append(f"{key} ({who}): {exc}")
        return None
    _write_bytes(dest / folder / name, data)
    summary.saved += 1
    return {"submitted_at": sub.get("submitted_at"), "late": bool(sub.get("late")),
            "seconds_late": sub.get("seconds_late") or 0, "user_id": sub.get("user_id"),
            "file": f"{folder}/{name}", "key": key}


def pull(course: Course, dest: Path, client: CanvasClient) -> PullSummary:
    """Pull every module of ``[canvas] assignments`` into ``dest``; see the module docstring."""
    require_canvas(course)
    canvas = course.canvas
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    summary = PullSummary(path=dest / PULL_NAME)
    previous = _previous(dest)
    modules: dict[str, dict] = {}
    students: dict[str, dict] = {}
    base = f"/api/v1/courses/{canvas.course_id}/assignments"
    whats = {m: f"assignment {aid} (module {m}) of course {canvas.course_id}"
             for m, aid in canvas.assignments.items()}
    for module, aid in sorted(canvas.assignments.items()):  # all first: a bad id stops early
        assignment = client.get(f"{base}/{aid}", whats[module])
        modules[module] = {"assignment_id": aid, "due_at": assignment.get("due_at"),
                           "name": assignment.get("name")}
    for module, aid in sorted(canvas.assignments.items()):
        subs = client.get_all(f"{base}/{aid}/submissions", f"the submissions of {whats[module]}",
                              {"include[]": "user"})
        owners: dict[str, object] = {}
        for sub in subs:
            if not isinstance(sub, dict) or sub.get("workflow_state") == "unsubmitted" \
                    or not sub.get("submitted_at"):
                summary.no_submission += 1
                continue
            entry = _pull_one(client, dest, module, sub, canvas.student_key, owners, summary)
            if entry is not None:
                folder = entry["file"].split("/")[0]
                _remove_stale(dest, previous, folder, module, entry["file"])
                students.setdefault(folder, {})[module] = entry
    atomic_write_text(summary.path, json.dumps({"modules": modules, "submissions": students},
                                               indent=2, ensure_ascii=False) + "\n")
    return summary
