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
submission's ``submitted_at``, ``cached_due_date`` (the student's own deadline: Canvas applies
overrides and extensions to it), ``late``, ``seconds_late``, ``excused``, ``attempt``,
``user_id``, the file (relative to DIR) and ``key``, the student key as Canvas has it; and the
course's Late Policy (``GET /api/v1/courses/:id/late_policy``; ``null`` when the course has
none). A notebook whose own module (its metadata, else its name) is not the assignment's is
not saved and is listed: it would be graded as the other module, outside this assignment's
deadline. ``--module`` pulls the named modules only and keeps the others' entries; an
attachment an earlier pull saved (same id and submission time) is not downloaded again. A
student whose download fails, who has no ``.ipynb`` or no key is listed and skipped; the
others are pulled. A file pulled earlier for the same student and module is removed when
Canvas now has another one, so ``grade`` never sees two.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.base.course import Course
from grader.base.errors import GraderError
from grader.lms.canvas_api import CanvasClient, CanvasError
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
    unchanged: int = 0
    """Notebooks an earlier pull saved that Canvas still has (not downloaded again)."""
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


def _previous_record(dest: Path) -> dict:
    try:
        data = json.loads((dest / PULL_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {"modules": data.get("modules") if isinstance(data.get("modules"), dict) else {},
            "submissions": data.get("submissions") if isinstance(data.get("submissions"), dict)
            else {}}


def _remove_stale(dest: Path, previous: dict, folder: str, module: str, kept: str) -> None:
    """Remove the file an earlier pull saved for this student and module, if it is another."""
    old = previous.get(folder, {}).get(module, {}).get("file") if isinstance(
        previous.get(folder), dict) else None
    if isinstance(old, str) and old != kept:
        path = (dest / old).resolve()
        if path.parent == (dest / folder).resolve() and path.suffix == ".ipynb":
            path.unlink(missing_ok=True)


def _entry(sub: dict, folder: str, name: str, key: str, attachment: dict) -> dict:
    entry = {"submitted_at": sub.get("submitted_at"), "late": bool(sub.get("late")),
             "seconds_late": sub.get("seconds_late") or 0, "user_id": sub.get("user_id"),
             "file": f"{folder}/{name}", "key": key}
    for field_name in ("cached_due_date", "excused", "attempt"):
        if field_name in sub:
            entry[field_name] = sub[field_name]
    entry["attachment_id"] = attachment.get("id")
    return entry


def _unchanged(dest: Path, before: object, entry: dict) -> bool:
    """Whether the file an earlier pull saved is this very attachment (not fetched again)."""
    return isinstance(before, dict) and entry["attachment_id"] is not None \
        and all(before.get(k) == entry[k] for k in ("attachment_id", "submitted_at", "file")) \
        and (dest / entry["file"]).is_file()


def _pull_one(client: CanvasClient, dest: Path, module: str, sub: dict, setting: str,
              owners: dict[str, object], summary: PullSummary,
              previous: dict) -> dict | None:
    """Save one submission's notebook; its ``canvas-pull.json`` entry, or None (listed).
    The attachment an earlier pull saved (same id, same submission time) is not fetched
    again."""
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
    entry = _entry(sub, folder, name, key, attachment)
    before = previous.get(folder, {}).get(module) if isinstance(previous.get(folder), dict) else None
    if _unchanged(dest, before, entry):
        summary.unchanged += 1
        return entry
    try:
        data = client.download(str(attachment.get("url") or ""), f"{key}'s module {module} file",
                               MAX_SUBMISSION_BYTES)
    except CanvasError as exc:
        if exc.status == 401:
            raise
        summary.skipped.append(f"{key} ({who}): {exc}")
        return None
    other = notebook_module(name, data)
    if other is not None and other != module:
        summary.skipped.append(
            f"{key} ({who}): uploaded a module {other} notebook to module {module}'s assignment;"
            f" not pulled (it would be graded as module {other}, outside module {module}'s"
            f" deadline). Fix: ask the student to submit it to module {other}'s assignment")
        return None
    _write_bytes(dest / folder / name, data)
    summary.saved += 1
    return entry


def notebook_module(name: str, data: bytes) -> str | None:
    """The module ``grade`` would grade this file as (its metadata, else its name), or None."""
    from grader.submission.validate import read_submission

    return read_submission(Path(name), data=data).module


def late_policy(client: CanvasClient, course_id: int) -> dict | None:
    """The course's Late Policy object, or None when the course has none (Canvas answers 404:
    late_policy_controller.rb ``raise ActiveRecord::RecordNotFound if
    course.late_policy.blank?``)."""
    try:
        answer = client.get(f"/api/v1/courses/{course_id}/late_policy",
                            f"the late policy of course {course_id}")
    except CanvasError as exc:
        if exc.status == 404:
            return None
        raise
    policy = answer.get("late_policy") if isinstance(answer, dict) else None
    if not isinstance(policy, dict):
        raise CanvasError(f"Canvas's late policy of course {course_id} is not a LatePolicy object")
    return policy


def selected(course: Course, modules: list[str] | None) -> dict[str, int]:
    """``[canvas] assignments`` limited to ``modules`` (all when None); a :class:`GraderError`
    naming the modules the course file has when one is not there."""
    assignments = dict(course.canvas.assignments)
    if not modules:
        return assignments
    unknown = [m for m in modules if m not in assignments]
    if unknown:
        raise GraderError(f"--module {unknown[0]}: not in [canvas] assignments of"
                          f" {course.path}; expected one of {', '.join(sorted(assignments))}")
    return {m: assignments[m] for m in modules}


def pull(course: Course, dest: Path, client: CanvasClient,
         modules_wanted: list[str] | None = None) -> PullSummary:
    """Pull every module of ``[canvas] assignments`` (or ``modules_wanted``) into ``dest``;
    see the module docstring."""
    require_canvas(course)
    canvas = course.canvas
    assignments = selected(course, modules_wanted)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    summary = PullSummary(path=dest / PULL_NAME)
    before = _previous_record(dest)
    previous = before.get("submissions", {})
    modules: dict[str, dict] = {m: v for m, v in before.get("modules", {}).items()
                                if m not in assignments and m in canvas.assignments}
    students: dict[str, dict] = {}
    for folder, own in previous.items():  # the modules not pulled now keep their entries
        kept = {m: e for m, e in own.items() if m in modules} if isinstance(own, dict) else {}
        if kept:
            students[folder] = kept
    base = f"/api/v1/courses/{canvas.course_id}/assignments"
    whats = {m: f"assignment {aid} (module {m}) of course {canvas.course_id}"
             for m, aid in assignments.items()}
    policy = late_policy(client, canvas.course_id)
    anonymous: set[str] = set()
    for module, aid in sorted(assignments.items()):  # all first: a bad id stops early
        assignment = client.get(f"{base}/{aid}", whats[module])
        modules[module] = {"assignment_id": aid, "due_at": assignment.get("due_at"),
                           "name": assignment.get("name")}
        if isinstance(assignment, dict) and assignment.get("anonymous_grading"):
            anonymous.add(module)
            summary.skipped.append(
                f"module {module}: assignment {aid} uses anonymous grading; Canvas lists its"
                " submissions without their students, so none can be filed under a student."
                " Fix: turn anonymous grading off for it (Assignment > Edit) and pull again")
    for module, aid in sorted(assignments.items()):
        if module in anonymous:
            continue
        subs = client.get_all(f"{base}/{aid}/submissions", f"the submissions of {whats[module]}",
                              {"include[]": "user"})
        owners: dict[str, object] = {}
        for sub in subs:
            if not isinstance(sub, dict) or sub.get("workflow_state") == "unsubmitted" \
                    or not sub.get("submitted_at"):
                summary.no_submission += 1
                continue
            entry = _pull_one(client, dest, module, sub, canvas.student_key, owners, summary,
                              previous)
            if entry is not None:
                folder = entry["file"].split("/")[0]
                _remove_stale(dest, previous, folder, module, entry["file"])
                students.setdefault(folder, {})[module] = entry
    atomic_write_text(summary.path, json.dumps(
        {"course_id": canvas.course_id, "late_policy": policy, "modules": modules,
         "submissions": students}, indent=2, ensure_ascii=False) + "\n")
    return summary
