"""``python -m grader canvas push DIR [--apply] [--force]``: grades and comments back to Canvas.

DIR is a ``grade --out`` folder. Each ``grades.json`` row of a module in ``[canvas]
assignments`` is matched to a Canvas user by listing the assignment's submissions with
``include[]=user`` and comparing the user's key (``[canvas] student_key``) with the row's
name (:func:`grader.lms.gradebook_csv.match_key` on both sides) or its file-safe id with the
key's (:func:`grader.submission.validate.safe_id`, the folder ``canvas pull`` made). Rows
that could not be graded (``error``) are listed and never sent.

Per student the plan is one of: ``send`` (a new grade, or no push yet and Canvas has no
grade or this one), ``same`` (Canvas holds what the last push sent and the grade did not
change: nothing to send), ``changed`` (the grade in Canvas is not the one the last push left,
or nothing was pushed yet and Canvas has another grade: someone graded by hand; refused
unless ``--force``). Without ``--apply`` the plan is printed and nothing is sent. With it
each ``send`` is one ``PUT .../submissions/:user_id`` with ``submission[posted_grade]``
(points: the row's ``score``, scaled by ``points_possible / max_score`` with a note when
the Canvas assignment is worth other points than the rubric) and ``comment[text_comment]``
(score and one line per check), with the student's feedback page ``DIR/feedback/<student>.html``
attached: uploaded first as a submission-comment file (:mod:`grader.lms.canvas_upload`)
and named in ``comment[file_ids][]``. A missing page or a failed upload is listed and the
grade and text comment go without it. Each ``PUT`` is logged at once in
``DIR/canvas-push.json`` (a list of what was sent, with the attached file's id, appended
under a lock and rewritten atomically), so a push stopped halfway resumes without sending
anything twice.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from grader.base.course import Course
from grader.base.errors import GraderError
from grader.checks.results import GradeRow, ManualResult, roster_name
from grader.classroom.late import load_record
from grader.classroom.rubric_record import graded_rubrics
from grader.lms.canvas_api import CanvasClient, CanvasError
from grader.lms.canvas_pull import late_policy, require_canvas, selected, student_key
from grader.lms.canvas_states import assignment_refusal, posted_points, refusal, resubmitted
from grader.lms.canvas_upload import upload_comment_file
from grader.lms.gradebook_csv import match_key
from grader.pages.gradebook import atomic_write_text
from grader.submission.validate import safe_id

PUSH_LOG = "canvas-push.json"
TOLERANCE = 1e-6
MAX_COMMENT_LINES = 40
MAX_PAGE_BYTES = 20_000_000
"""A feedback page larger than this is not attached (listed; the grade and comment go)."""


@dataclass
class Planned:
    """One student's grade for one module and what push does with it."""

    key: str
    module: str
    assignment_id: int
    user_id: int
    now: float | None
    new: float
    action: str  # "send", "same", "changed"
    comment: str = ""
    page: Path | None = None
    """The feedback page to attach (``DIR/feedback/<student>.html``); None when there is none."""
    page_note: str = ""
    """Why there is no page to attach."""


@dataclass
class PushPlan:
    """Every matched row's plan, and the rows that cannot be pushed (one line each)."""

    items: list[Planned] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """One line per module whose Canvas assignment has other points than the rubric."""
    ungraded: int = 0
    """Written answers still awaiting manual grading (they count 0 in the grades sent)."""


@dataclass
class PushResult:
    """What ``--apply`` did: grades sent, pages attached, and one line per failure."""

    sent: int = 0
    attached: int = 0
    failures: list[str] = field(default_factory=list)
    """Grades not sent (``PUT`` failed)."""
    unattached: list[str] = field(default_factory=list)
    """Grades sent without their feedback page (no page, or its upload failed)."""


def number(value: float | None) -> str:
    """A grade as Canvas shows points: ``8.5``, ``10``; ``-`` when there is none."""
    if value is None:
        return "-"
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def comment_text(row: GradeRow, descriptions: dict[str, str] | None = None) -> str:
    """The text comment: the module's score, the late line if any, then one line per check
    (named by its exercise's description when the batch recorded it; points and message)."""
    lines = [f"dlcourse module {row.module}: {number(row.score)} / {number(row.max_score)} points"]
    if row.late and row.late.get("deducted"):
        raw = row.raw_score if row.raw_score is not None else row.score
        by = (" (Canvas's Late Policy deducts it when this grade is saved)"
              if row.late.get("applied_by") == "canvas" else "")
        lines.append(f"- late: {number(raw)} before the late deduction of"
                     f" {number(row.late['deducted'])}{by}")
    for check in row.checks[:MAX_COMMENT_LINES]:
        message = " ".join(str(check.message).split())
        message = message if len(message) <= 160 else message[:157] + "..."
        title = " ".join(str((descriptions or {}).get(check.id) or check.id).split())[:120]
        lines.append(f"- {title}: {number(check.points)} / {number(check.max_points)}"
                     + (f" ({message})" if message else ""))
    if len(row.checks) > MAX_COMMENT_LINES:
        lines.append(f"- ... {len(row.checks) - MAX_COMMENT_LINES} more on the feedback page")
    return "\n".join(lines)


def read_rows(out: Path) -> list[GradeRow]:
    """The rows of ``out/grades.json``, or a :class:`GraderError` naming the fix."""
    path = Path(out) / "grades.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [GradeRow.from_dict(r) for r in data]
    except FileNotFoundError:
        raise GraderError(f"{path}: no such file; expected DIR to be a folder written by"
                          " `python -m grader grade ... --out DIR`") from None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise GraderError(f"{path}: cannot read the gradebook ({type(exc).__name__}). Fix: grade"
                          " again into DIR") from None


@contextmanager
def _locked(out: Path):
    with open(Path(out) / f".{PUSH_LOG}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_log(out: Path) -> list[dict]:
    """Every entry ``canvas push`` logged in ``out``, oldest first."""
    try:
        data = json.loads((Path(out) / PUSH_LOG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise GraderError(f"{Path(out) / PUSH_LOG}: unreadable ({type(exc).__name__}); it is the"
                          " record of earlier pushes. Fix: restore it, or move it away and push"
                          " with --force") from None
    return [e for e in data.get("sent", []) if isinstance(e, dict)] if isinstance(data, dict) else []


def append_log(out: Path, entry: dict) -> None:
    """Add one sent grade to ``out/canvas-push.json`` (locked, rewritten atomically)."""
    with _locked(out):
        entries = read_log(out)
        entries.append(entry)
        atomic_write_text(Path(out) / PUSH_LOG, json.dumps({"sent": entries}, indent=2,
                                                           ensure_ascii=False) + "\n")


def feedback_page(out: Path, row: GradeRow) -> tuple[Path | None, str]:
    """The page ``grade`` wrote for ``row`` (``out/feedback/<student>.html``), or why not."""
    page = Path(out) / "feedback" / f"{safe_id(row.student)}.html"
    shown = f"feedback/{page.name}"
    if page.is_symlink() or page.exists() and not page.is_file():
        return None, f"{shown} is not a plain file; not attached"
    if not page.is_file():
        return None, f"{shown} is missing (grade again to write it); the comment goes without it"
    return page, ""


def _same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and abs(a - b) <= TOLERANCE


def _score(sub: dict) -> float | None:
    value = sub.get("score")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _action(now: float | None, new: float, last: dict | None) -> str:
    if last is None:
        return "send" if now is None or _same(now, new) else "changed"  # else graded by hand
    if not _same(now, last.get("canvas_score")):
        return "changed"
    return "same" if _same(new, last.get("posted_grade")) else "send"


def _users(client: CanvasClient, course: Course, module: str, aid: int) -> dict[str, dict]:
    """The submissions (with their users) of one assignment, indexed for :func:`_match`:
    ``("key", match_key(key))`` and ``("id", safe_id(key))`` -> list of submissions."""
    what = f"the submissions of assignment {aid} (module {module}) of course {course.canvas.course_id}"
    subs = client.get_all(f"/api/v1/courses/{course.canvas.course_id}/assignments/{aid}/submissions",
                          what, {"include[]": "user"})
    found: dict = {}
    for sub in subs:
        key = student_key(sub.get("user") or {}, course.canvas.student_key) if isinstance(sub, dict) \
            else None
        if key is not None:
            entry = {**sub, "_key": key}
            found.setdefault(("key", match_key(key)), []).append(entry)
            found.setdefault(("id", safe_id(key)), []).append(entry)
    return found


def _assignment(client: CanvasClient, course: Course, module: str, aid: int) -> dict:
    what = f"assignment {aid} (module {module}) of course {course.canvas.course_id}"
    found = client.get(f"/api/v1/courses/{course.canvas.course_id}/assignments/{aid}", what)
    return found if isinstance(found, dict) else {}


def _scale(assignment: dict, module: str, aid: int, max_score: float, plan: PushPlan) -> float:
    """Canvas points per grader point: 1, unless the assignment's ``points_possible`` differs
    from the rubric's ``max_score`` (then the grade is scaled, and a note says so)."""
    possible = assignment.get("points_possible")
    if not isinstance(possible, (int, float)) or possible <= 0 or max_score <= 0 \
            or _same(float(possible), max_score):
        return 1.0
    plan.notes.append(f"module {module}: Canvas assignment {aid} is worth {number(possible)} points,"
                      f" the rubric {number(max_score)}: grades are scaled to Canvas's points")
    return float(possible) / max_score


def _match(users: dict, row: GradeRow) -> tuple[dict | None, str]:
    """The one Canvas submission a row belongs to (by name, else by file-safe id), or why not."""
    found = users.get(("key", match_key(roster_name(row)))) or users.get(("id", row.student)) or []
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, "no Canvas user of the assignment has this key"
    return None, "several Canvas users have this key: " + ", ".join(str(s.get("user_id")) for s in found)


def plan_push(course: Course, out: Path, client: CanvasClient,
              modules: list[str] | None = None) -> PushPlan:
    """What a push would send for every row of ``out/grades.json`` (nothing is sent);
    ``modules`` limits it to those modules' rows."""
    require_canvas(course)
    wanted = selected(course, modules)
    last = {(e.get("assignment_id"), e.get("user_id")): e for e in read_log(out)}
    plan = PushPlan()
    users: dict[str, dict] = {}
    scale: dict[str, float] = {}
    closed: dict[str, str] = {}
    record = load_record(out)
    descriptions = {m: r.descriptions for m, r in graded_rubrics(out, warn=False)[0].items()}
    rows = [r for r in read_rows(out) if modules is None or r.module in wanted]
    plan.ungraded = sum(1 for r in rows for c in r.checks
                        if isinstance(c, ManualResult) and not c.graded)
    policy = late_policy(client, course.canvas.course_id) if rows else None
    for row in sorted(rows, key=lambda r: (r.module or "", roster_name(r))):
        aid = course.canvas.assignments.get(row.module or "")
        name = f"{roster_name(row)} (module {row.module})"
        if aid is None:
            plan.unmatched.append(f"{name}: the module has no Canvas assignment in"
                                  " canvas.assignments")
            continue
        if row.error is not None:
            plan.unmatched.append(f"{name}: could not be graded ({row.error})")
            continue
        if row.module not in users:
            assignment = _assignment(client, course, row.module, aid)
            closed[row.module] = assignment_refusal(assignment)
            users[row.module] = {} if closed[row.module] else _users(client, course, row.module, aid)
            scale[row.module] = _scale(assignment, row.module, aid, row.max_score, plan)
        if closed[row.module]:
            plan.unmatched.append(f"{name}: {closed[row.module]}")
            continue
        sub, why = _match(users[row.module], row)
        if sub is None:
            plan.unmatched.append(f"{name}: {why} ({course.canvas.student_key})")
            continue
        refused = refusal(row, sub, policy) or resubmitted(record.pulled_entry(roster_name(row),
                                                                              row.module), sub)
        if refused:
            plan.unmatched.append(f"{name}: {refused}")
            continue
        now, new = _score(sub), round(float(posted_points(row)) * scale[row.module], 2)
        page, page_note = feedback_page(out, row)
        plan.items.append(Planned(key=sub["_key"], module=row.module, assignment_id=aid,
                                  user_id=sub.get("user_id"), now=now, new=new,
                                  action=_action(now, new, last.get((aid, sub.get("user_id")))),
                                  comment=comment_text(row, descriptions.get(row.module)),
                                  page=page, page_note=page_note))
    return _drop_shared(plan)


def _drop_shared(plan: PushPlan) -> PushPlan:
    """Two rows of one module that match one Canvas user (folders ``Tom`` and ``tom``): neither
    is sent, both are listed (push never picks one)."""
    count: dict[tuple, int] = {}
    for item in plan.items:
        count[(item.assignment_id, item.user_id)] = count.get((item.assignment_id, item.user_id), 0) + 1
    kept = []
    for item in plan.items:
        if count[(item.assignment_id, item.user_id)] > 1:
            plan.unmatched.append(f"{item.key} (module {item.module}): several graded rows match"
                                  " this Canvas user; rename the folders so one does, grade again")
        else:
            kept.append(item)
    plan.items = kept
    return plan


def _attach(client: CanvasClient, course: Course, item: Planned) -> tuple[int | None, str]:
    """Upload the item's feedback page as a comment file: ``(file id, "")`` or ``(None, why)``."""
    if item.page is None:
        return None, item.page_note
    try:
        data = item.page.read_bytes()
    except OSError as exc:
        return None, f"feedback/{item.page.name}: cannot read it ({exc.strerror or type(exc).__name__})"
    if len(data) > MAX_PAGE_BYTES:
        return None, (f"feedback/{item.page.name} is larger than {MAX_PAGE_BYTES / 1e6:.0f} MB;"
                      " not attached")
    try:
        fid = upload_comment_file(client, course.canvas.course_id, item.assignment_id, item.user_id,
                                  f"feedback-{item.page.name}", data,
                                  what=f"the feedback page of {item.key} (module {item.module})")
    except CanvasError as exc:
        return None, f"the upload failed: {exc}"
    return fid, ""


def apply_push(course: Course, out: Path, client: CanvasClient, plan: PushPlan,
               force: bool = False) -> PushResult:
    """Send every ``send`` (and with ``force`` every ``changed``) item, each with its feedback
    page attached when it can be; a failed upload still sends the grade and text comment."""
    result = PushResult()
    for item in plan.items:
        if not (item.action == "send" or force and item.action == "changed"):
            continue
        name = f"{item.key} (module {item.module})"
        fid, why = _attach(client, course, item)
        fields = {"submission[posted_grade]": number(item.new), "comment[text_comment]": item.comment}
        if fid is not None:
            fields["comment[file_ids][]"] = str(fid)
        path = (f"/api/v1/courses/{course.canvas.course_id}/assignments/{item.assignment_id}"
                f"/submissions/{item.user_id}")
        try:
            answer = client.put_form(path, f"the grade of {name}", fields)
        except CanvasError as exc:
            if exc.status in (401, 403):
                raise
            result.failures.append(f"{name}: {exc}")
            continue
        if why:
            result.unattached.append(f"{name}: {why}")
        canvas_score = _score(answer) if isinstance(answer, dict) else None
        append_log(out, {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "key": item.key, "module": item.module,
                         "assignment_id": item.assignment_id, "user_id": item.user_id,
                         "previous_score": item.now, "posted_grade": item.new,
                         "canvas_score": canvas_score if canvas_score is not None else item.new,
                         "comment": item.comment, "file_id": fid,
                         "feedback_page": f"feedback/{item.page.name}" if fid is not None else None,
                         "forced": item.action == "changed"})
        result.sent += 1
        result.attached += fid is not None
    return result
