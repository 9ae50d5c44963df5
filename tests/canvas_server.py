"""A local stand-in for Canvas: the REST endpoints the grader calls, with the documented shapes.

Canvas LMS REST API documentation, the pages these answers follow:

* Assignments API, "Get a single assignment"
  (``GET /api/v1/courses/:course_id/assignments/:id``): the Assignment object (``id``,
  ``name``, ``due_at``, ``points_possible``, ``course_id``, ...).
* Submissions API, "List assignment submissions"
  (``GET /api/v1/courses/:course_id/assignments/:assignment_id/submissions``, ``include[]=user``):
  Submission objects (``assignment_id``, ``user_id``, ``submitted_at``, ``score``, ``grade``,
  ``late``, ``seconds_late``, ``workflow_state``, ``attachments``, and with ``include[]=user``
  the User object: ``id``, ``name``, ``sortable_name``, ``login_id``, ``sis_user_id``).
* Pagination: the ``Link`` header (``<...>; rel="current"``, ``rel="next"``, ``rel="first"``,
  ``rel="last"``), ``per_page``.
* Submissions API, "Grade or comment on a submission"
  (``PUT /api/v1/courses/:course_id/assignments/:assignment_id/submissions/:user_id``,
  form fields ``submission[posted_grade]``, ``comment[text_comment]``): the Submission.
  With ``comment[file_ids][]``: files uploaded for that submission's comments (unknown or
  unconfirmed ids are refused here with 400, so a wrong id cannot pass unseen).
* Files API, the File (attachment) object: ``id``, ``display_name``, ``filename``,
  ``content-type``, ``size``, ``url`` (a download address carrying a ``verifier``).
* Submission Comments API, "Upload a file"
  (``POST .../submissions/:user_id/comments/files``, ``name``, ``size``, ``content_type``) and
  the "File Uploads" page ("Uploading via POST"): step 1 answers ``{"upload_url",
  "upload_params"}``; step 2 is a ``multipart/form-data`` ``POST`` to ``upload_url`` (here
  ``localhost`` instead of ``127.0.0.1``: another host than ``base_url``, as a storage bucket
  would be) of every ``upload_params`` field unchanged, ``file`` last, no token; it answers
  ``301`` with a ``Location`` to ``GET`` with the token (step 3, ``create_success``), or with
  ``upload_mode = "created"`` ``201`` with the File object and a ``Location``.

Behaviours taken from Canvas's source (``instructure/canvas-lms``), each quoted where it is
modelled below:

* ``app/models/submission.rb`` (module ``Tardiness``): a submission's lateness is measured
  from its own ``cached_due_date`` (the assignment's ``due_at`` after the student's override
  or extension), ``late?`` is ``submitted_at.present? && past_due?`` and ``seconds_late`` is
  ``(time_of_submission - cached_due_date).to_i``; :meth:`FakeCanvas.add_submission`.
* ``app/controllers/late_policy_controller.rb`` ("Get a late policy": ``{"late_policy":
  LatePolicy}``, ``raise ActiveRecord::RecordNotFound if course.late_policy.blank?``) and
  ``app/models/late_policy.rb`` (``points_deducted``): :attr:`FakeCanvas.late_policy`.
* ``app/models/submission.rb`` ``before_save :apply_late_policy`` -> ``score_late_or_none``
  (``raw_score = score_changed? ... ? score : entered_score``, ``new_score = raw_score -
  deducted``, ``self.points_deducted = late? ? deducted : nil``): every grade ``PUT`` to a
  late submission is deducted again by the course's policy; :func:`_apply_late_policy`.
* Assignment settings (the Assignment object's ``anonymous_grading``, ``moderated_grading``,
  ``grades_published``, ``group_category_id``, ``grade_group_students_individually``):
  anonymous grading lists submissions without their users, with an ``anonymous_id``
  (``lib/api/v1/submission.rb``: ``hash["anonymous_id"] = submission.anonymous_id``);
  moderated grading refuses a final grade until grades are published (``submission.rb``
  ``can_grade_symbolic_status``: ``return :moderation_in_progress unless
  assignment.grades_published? ...``), answered 401 without a token challenge (Canvas's
  unauthorized answer; an invalid token gets ``WWW-Authenticate``); a group assignment graded
  as a group gives one student's grade to every member of the group.
* A resubmission raises ``attempt`` and, on a graded submission, sets
  ``grade_matches_current_submission`` false (``lib/api/v1/submission.rb`` lists both).
* ``doc/api/throttling.md``: "you will receive a ``403 Forbidden (Rate Limit Exceeded)``
  response. Your application should be prepared for this error, and retry the request at a
  later time": :meth:`FakeCanvas.throttle`.

It runs ``http.server`` in a thread, records every request (method, path, query, form, the
``Host`` it went to, whether the ``Authorization`` header held the right token) and can be
told to answer some requests with an error first (``fail(path_part, status, times,
headers)``). Uploaded comment files are kept in ``uploads`` (id -> name, bytes, whose
submission, state) and each comment's file ids in ``comment_files``. At the end, the helpers
the Canvas tests share: the token, the users, the course file, the CLI call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from grader.base.paths import REPO_ROOT

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
"""What Canvas sends with a 401 for a missing or invalid token (not with a refused action)."""


class FakeCanvas:
    """State of one course; ``url`` is the ``base_url`` to give the grader."""

    def __init__(self, token: str, course_id: int = 7, per_page_cap: int = 2) -> None:
        self.token = token
        self.course_id = course_id
        self.per_page_cap = per_page_cap  # small, so a class of three needs two pages
        self.assignments: dict[int, dict] = {}
        self.submissions: dict[int, dict[int, dict]] = {}  # assignment -> user id -> submission
        self.files: dict[int, bytes] = {}
        self.comments: dict[tuple[int, int], list[str]] = {}
        self.comment_files: dict[tuple[int, int], list[list[int]]] = {}  # per comment, its file ids
        self.uploads: dict[int, dict] = {}  # file id -> name, data, assignment, user, state, params
        self.upload_mode = "redirect"  # step 2 answers 301 (or "created": 201 with the File)
        self.requests: list[dict] = []
        self.failures: list[dict] = []
        self.late_policy: dict | None = None  # GET .../late_policy answers 404 while None
        self.groups: dict[int, list[set[int]]] = {}  # assignment -> the user ids of each group
        self.lock = threading.Lock()
        self._next_file = 900
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.upload_url = f"http://localhost:{self.server.server_address[1]}"  # another host
        self.confirm_url = self.url  # where step 2's Location points (a test may say elsewhere)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCanvas:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- set-up ---------------------------------------------------------------------------
    def add_assignment(self, aid: int, name: str, due_at: str | None, points: float = 10,
                       **settings) -> None:
        """An assignment; ``settings`` override the Assignment object's fields
        (``anonymous_grading=True``, ``moderated_grading=True``, ``group_category_id=5``...)."""
        self.assignments[aid] = {"id": aid, "name": name, "due_at": due_at, "points_possible": points,
                                 "course_id": self.course_id, "submission_types": ["online_upload"],
                                 "allowed_extensions": ["ipynb"], "published": True,
                                 "anonymous_grading": False, "moderated_grading": False,
                                 "grades_published": True, "group_category_id": None,
                                 "grade_group_students_individually": False, "grading_type": "points",
                                 **settings}
        self.submissions.setdefault(aid, {})
        self.groups.setdefault(aid, [])

    def add_submission(self, aid: int, user: dict, *, files: list[tuple[str, bytes]] = (),
                       submitted_at: str | None = None, seconds_late: int | None = None,
                       score: float | None = None, due_at: str | None = "assignment") -> None:
        """A submission; ``due_at`` is the student's own date (Canvas's ``cached_due_date``:
        an override or extension; the assignment's ``due_at`` unless given). ``late`` and
        ``seconds_late`` follow submission.rb's ``Tardiness`` (``return 0 if
        cached_due_date.nil? || time_of_submission <= cached_due_date``), unless
        ``seconds_late`` is given."""
        cached = self.assignments[aid]["due_at"] if due_at == "assignment" else due_at
        if seconds_late is None:
            seconds_late = _seconds_between(cached, submitted_at)
        attachments = []
        for name, data in files:
            self._next_file += 1
            fid = self._next_file
            self.files[fid] = data
            attachments.append({"id": fid, "uuid": f"u{fid}", "folder_id": 1, "display_name": name,
                                "filename": name, "content-type": "application/x-ipynb+json",
                                "size": len(data), "created_at": f"2027-02-2{fid % 10}T10:00:00Z",
                                "updated_at": f"2027-02-2{fid % 10}T10:00:00Z", "locked": False,
                                "url": f"{self.url}/files/{fid}/download?download_frd=1&verifier=v{fid}"})
        before = self.submissions[aid].get(user["id"])
        attempt = ((before or {}).get("attempt") or 0) + 1 if files else None
        matches = not (before and before.get("score") is not None and files)
        self.submissions[aid][user["id"]] = {
            "id": 5000 + user["id"], "assignment_id": aid, "user_id": user["id"],
            "submission_type": "online_upload" if files else None, "attempt": attempt,
            "submitted_at": submitted_at, "score": score, "grade": None if score is None else str(score),
            "entered_score": score, "late": seconds_late > 0, "seconds_late": seconds_late,
            "cached_due_date": cached, "points_deducted": None, "entered_grade": None,
            "grade_matches_current_submission": matches,
            "missing": False, "excused": False, "late_policy_status": None,
            "workflow_state": ("graded" if score is not None else
                               "submitted" if submitted_at else "unsubmitted"),
            "anonymous_id": f"a{user['id'] * 37 % 1000:03d}",
            "attachments": attachments, "user": dict(user)}

    def fail(self, path_part: str, status: int, times: int = 1, headers: dict | None = None,
             method: str | None = None) -> None:
        """Answer the next ``times`` requests whose path holds ``path_part`` with ``status``."""
        self.failures.append({"part": path_part, "status": status, "times": times,
                              "headers": headers or {}, "method": method})

    def set_score(self, aid: int, user_id: int, score: float) -> None:
        """A teacher changes the grade in Canvas's gradebook (the course's late policy, if any,
        deducts from it as on every grade save: :func:`_apply_late_policy`)."""
        sub = self.submissions[aid][user_id]
        deducted = _apply_late_policy(self.late_policy, sub, score, self.assignments[aid])
        final = score - deducted
        sub.update(score=final, grade=str(final), entered_score=score, entered_grade=str(score),
                   points_deducted=deducted if sub["late"] else None, workflow_state="graded")

    def set_late_policy(self, deduction: float, interval: str = "day",
                        minimum_percent: float | None = None) -> None:
        """Turn on the course's Late Policy (Gradebook > Settings > Late Policies): the
        LatePolicy object of late_policy_controller.rb."""
        self.late_policy = {
            "id": 1, "course_id": self.course_id, "missing_submission_deduction_enabled": False,
            "missing_submission_deduction": 0.0, "late_submission_deduction_enabled": True,
            "late_submission_deduction": float(deduction), "late_submission_interval": interval,
            "late_submission_minimum_percent_enabled": minimum_percent is not None,
            "late_submission_minimum_percent": float(minimum_percent or 0.0),
            "created_at": "2027-01-10T10:00:00Z", "updated_at": "2027-01-10T10:00:00Z"}

    def throttle(self, path_part: str, times: int = 1) -> None:
        """Answer as throttling.md says a throttled request is answered: ``403 Forbidden (Rate
        Limit Exceeded)`` (Canvas's body text), with ``X-Rate-Limit-Remaining`` at 0."""
        self.failures.append({"part": path_part, "status": 403, "times": times, "method": None,
                              "headers": {"X-Rate-Limit-Remaining": "0.0", "X-Request-Cost": "1.0"},
                              "body": b"403 Forbidden (Rate Limit Exceeded)\n"})

    def file_json(self, fid: int) -> dict:
        """The Files API's File object of an uploaded comment file."""
        up = self.uploads[fid]
        return {"id": fid, "uuid": f"u{fid}", "folder_id": None, "display_name": up["name"],
                "filename": up["name"], "upload_status": "success", "content-type": up["content_type"],
                "url": f"{self.url}/files/{fid}/download?download_frd=1&verifier=v{fid}",
                "size": len(up["data"] or b""), "created_at": "2027-03-02T10:00:00Z",
                "updated_at": "2027-03-02T10:00:00Z", "locked": False, "hidden": False}

    def puts(self) -> list[dict]:
        """The ``PUT`` requests the server carried out (injected errors left out)."""
        return [r for r in self.requests if r["method"] == "PUT" and r["injected"] is None]


def _handler(canvas: FakeCanvas) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body, headers: dict | None = None) -> None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8"
                             if not isinstance(body, bytes) else "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _record(self, form: dict) -> tuple[str, dict]:
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            auth = self.headers.get("Authorization")
            with canvas.lock:
                canvas.requests.append({"method": self.command, "path": parts.path, "query": query,
                                        "form": form, "authorized": auth == f"Bearer {canvas.token}",
                                        "auth_sent": auth is not None, "injected": None,
                                        "host": self.headers.get("Host")})
            return parts.path, query

        def _injected(self, path: str) -> bool:
            with canvas.lock:
                for rule in canvas.failures:
                    if rule["times"] > 0 and rule["part"] in path and rule["method"] in (None, self.command):
                        rule["times"] -= 1
                        canvas.requests[-1]["injected"] = rule["status"]
                        headers = rule["headers"] or (CHALLENGE if rule["status"] == 401 else {})
                        self._send(rule["status"], rule.get("body") or {"errors": [{"message": "injected"}]},
                                   headers)
                        return True
            return False

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, query = self._record({})
            if self._injected(path):
                return
            parts = path.strip("/").split("/")
            if parts[:3] == ["api", "v1", "files"] and len(parts) >= 4:
                return self._confirm(parts, query)
            if parts[:1] == ["files"] and len(parts) == 3 and parts[2] == "download":
                fid = int(parts[1])
                ok = query.get("verifier") == [f"v{fid}"] and fid in canvas.files
                return self._send(200, canvas.files[fid]) if ok else self._send(404, {"errors": []})
            if self.headers.get("Authorization") != f"Bearer {canvas.token}":
                return self._send(401, {"errors": [{"message": "Invalid access token."}]}, CHALLENGE)
            if parts[:3] == ["api", "v1", "courses"] and parts[3:] == [str(canvas.course_id), "late_policy"]:
                if canvas.late_policy is None:  # late_policy_controller.rb: RecordNotFound
                    return self._send(404, {"errors": [{"message": "The specified resource does"
                                                                   " not exist."}]})
                return self._send(200, {"late_policy": canvas.late_policy})
            if parts[:3] != ["api", "v1", "courses"] or len(parts) < 6 or parts[3] != str(canvas.course_id):
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            aid = int(parts[5]) if parts[5].isdigit() else -1
            if aid not in canvas.assignments or parts[4] != "assignments":
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            if len(parts) == 6:
                return self._send(200, canvas.assignments[aid])
            if parts[6:] == ["submissions"]:
                return self._page(path, query, aid)
            return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})

        def _page(self, path: str, query: dict, aid: int) -> None:
            with_user = "user" in query.get("include[]", [])
            anonymous = canvas.assignments[aid]["anonymous_grading"]
            subs = [dict(s) for _, s in sorted(canvas.submissions[aid].items())]
            for sub in subs:
                if not with_user or anonymous:
                    sub.pop("user", None)
                if anonymous:
                    sub.pop("user_id", None)
                else:
                    sub.pop("anonymous_id", None)
            per_page = min(int(query.get("per_page", ["10"])[0]), canvas.per_page_cap)
            page = int(query.get("page", ["1"])[0])
            last = max(1, -(-len(subs) // per_page))

            def link(n: int, rel: str) -> str:
                q = {"include[]": query.get("include[]", []), "page": n, "per_page": per_page}
                return f'<{canvas.url}{path}?{urllib.parse.urlencode(q, doseq=True)}>; rel="{rel}"'

            links = [link(page, "current")] + ([link(page + 1, "next")] if page < last else [])
            links += [link(1, "first"), link(last, "last")]
            self._send(200, subs[(page - 1) * per_page: page * per_page], {"Link": ",".join(links)})

        def _confirm(self, parts: list[str], query: dict) -> None:
            """Step 3 (``GET /api/v1/files/:id/create_success?uuid=``) or ``GET /api/v1/files/:id``."""
            if self.headers.get("Authorization") != f"Bearer {canvas.token}":
                return self._send(401, {"errors": [{"message": "Invalid access token."}]}, CHALLENGE)
            fid = int(parts[3]) if parts[3].isdigit() else -1
            up = canvas.uploads.get(fid)
            if up is None or up["data"] is None:
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            if parts[4:] == ["create_success"]:
                if query.get("uuid") != [f"u{fid}"]:
                    return self._send(400, {"errors": [{"message": "invalid uuid"}]})
                up["state"] = "available"
            elif parts[4:] or up["state"] != "available":
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            return self._send(200, canvas.file_json(fid))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            fields = _multipart(ctype, raw) if ctype.startswith("multipart/form-data") else \
                [(k, v) for k, v in urllib.parse.parse_qsl(raw.decode())]
            form: dict = {}
            for key, value in fields:
                form.setdefault(key, []).append(value if isinstance(value, str) else f"<{len(value)} bytes>")
            path, _ = self._record(form)
            if self._injected(path):
                return
            parts = path.strip("/").split("/")
            if parts[:1] == ["upload"] and len(parts) == 2:
                return self._upload(int(parts[1]) if parts[1].isdigit() else -1, fields)
            if self.headers.get("Authorization") != f"Bearer {canvas.token}":
                return self._send(401, {"errors": [{"message": "Invalid access token."}]}, CHALLENGE)
            return self._ticket(parts, form)

        def _ticket(self, parts: list[str], form: dict) -> None:
            """Step 1: ``POST .../submissions/:user_id/comments/files`` -> upload_url, upload_params."""
            try:
                assert parts[:4] == ["api", "v1", "courses", str(canvas.course_id)] and parts[8:] == [
                    "comments", "files"] and parts[4] == "assignments" and parts[6] == "submissions"
                aid, uid = int(parts[5]), int(parts[7])
                assert uid in canvas.submissions[aid]
            except (AssertionError, IndexError, ValueError, KeyError):
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            if not form.get("name") or not form.get("size", [""])[0].isdigit():
                return self._send(400, {"errors": [{"message": "name and size are required"}]})
            with canvas.lock:
                canvas._next_file += 1
                fid = canvas._next_file
                params = {"filename": form["name"][0], "content_type": form.get("content_type", [""])[0],
                          "key": f"comments/{aid}/{uid}/{fid}", "x-signature": f"sig{fid * 7919}"}
                canvas.uploads[fid] = {"name": form["name"][0], "size": int(form["size"][0]),
                                       "content_type": params["content_type"], "assignment_id": aid,
                                       "user_id": uid, "params": params, "data": None, "state": "pending"}
            self._send(200, {"upload_url": f"{canvas.upload_url}/upload/{fid}", "upload_params": params})

        def _upload(self, fid: int, fields: list[tuple[str, object]]) -> None:
            """Step 2: the signed fields unchanged and in order, ``file`` last, no token."""
            up = canvas.uploads.get(fid)
            if up is None or up["data"] is not None:
                return self._send(404, {"errors": [{"message": "no such pending upload"}]})
            signed = [(k, v) for k, v in fields[:-1]]
            if signed != list(up["params"].items()) or not fields or fields[-1][0] != "file" \
                    or not isinstance(fields[-1][1], bytes) or len(fields[-1][1]) != up["size"]:
                return self._send(400, {"errors": [{"message": "the upload does not match its signature"}]})
            up["data"] = fields[-1][1]
            if canvas.upload_mode == "created":
                up["state"] = "available"
                return self._send(201, canvas.file_json(fid),
                                  {"Location": f"{canvas.url}/api/v1/files/{fid}"})
            self._send(301, b"", {"Location": f"{canvas.confirm_url}/api/v1/files/{fid}/create_success"
                                              f"?uuid=u{fid}"})

        def do_PUT(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            path, _ = self._record(form)
            if self._injected(path):
                return
            if self.headers.get("Authorization") != f"Bearer {canvas.token}":
                return self._send(401, {"errors": [{"message": "Invalid access token."}]}, CHALLENGE)
            parts = path.strip("/").split("/")
            try:
                aid, uid = int(parts[5]), int(parts[7])
                sub = canvas.submissions[aid][uid]
            except (IndexError, ValueError, KeyError):
                return self._send(404, {"errors": [{"message": "The specified resource does not exist."}]})
            files = [int(f) if f.isdigit() else -1 for f in form.get("comment[file_ids][]", [])]
            if any(canvas.uploads.get(f, {}).get("state") != "available"
                   or (canvas.uploads[f]["assignment_id"], canvas.uploads[f]["user_id"]) != (aid, uid)
                   for f in files):
                return self._send(400, {"errors": [{"message": "comment[file_ids]: not a confirmed"
                                                               " comment file of this submission"}]})
            assignment = canvas.assignments[aid]
            if "submission[posted_grade]" in form:
                if assignment["moderated_grading"] and not assignment["grades_published"]:
                    return self._send(401, {"status": "unauthorized", "errors": [
                        {"message": "user not authorized to perform that action"}]})
                together = [g for g in canvas.groups[aid] if uid in g] \
                    if assignment["group_category_id"] and \
                    not assignment["grade_group_students_individually"] else []
                for member in sorted(together[0] if together else {uid}):
                    canvas.set_score(aid, member, float(form["submission[posted_grade]"][0]))
            if "comment[text_comment]" in form:
                canvas.comments.setdefault((aid, uid), []).append(form["comment[text_comment]"][0])
                canvas.comment_files.setdefault((aid, uid), []).append(files)
            answer = {k: v for k, v in sub.items() if k != "user"}
            self._send(200, answer)

    return Handler


def _seconds_between(due_at: str | None, submitted_at: str | None) -> int:
    """submission.rb ``seconds_late``: ``0`` without a date or when on time, else whole seconds."""
    from datetime import datetime

    if not due_at or not submitted_at:
        return 0
    due = datetime.fromisoformat(due_at.replace("Z", "+00:00"))
    at = datetime.fromisoformat(submitted_at.replace("Z", "+00:00"))
    return max(0, int((at - due).total_seconds()))


def _apply_late_policy(policy: dict | None, sub: dict, raw: float, assignment: dict) -> float:
    """The points Canvas deducts when ``raw`` is saved (late_policy.rb ``points_deducted``):
    ``intervals_late = (late_for / interval_seconds).ceil``, ``maximum_deduct =
    [raw_score_percent - minimum_percent, 0.0].max``, ``possible * [late_percent_deduct,
    maximum_deduct].min / 100`` (a share of the points possible, not of the score)."""
    import math

    possible = float(assignment.get("points_possible") or 0)
    if not policy or not policy["late_submission_deduction_enabled"] or not sub["late"] \
            or possible <= 0 or not sub["seconds_late"]:
        return 0.0
    interval = {"hour": 3600.0, "day": 86400.0}[policy["late_submission_interval"]]
    intervals = math.ceil(sub["seconds_late"] / interval)
    minimum = policy["late_submission_minimum_percent"] if \
        policy["late_submission_minimum_percent_enabled"] else 0.0
    maximum = max(raw * 100.0 / possible - minimum, 0.0)
    return possible * min(policy["late_submission_deduction"] * intervals, maximum) / 100


def _multipart(content_type: str, body: bytes) -> list[tuple[str, object]]:
    """The fields of a ``multipart/form-data`` body in order: text as str, a file (a part with
    a ``filename``) as its exact bytes."""
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"').encode()
    fields: list[tuple[str, object]] = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = next((line for line in head.decode().split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        name = re.search(r';\s*name="((?:[^"\\]|\\.)*)"', disposition)
        is_file = re.search(r';\s*filename="', disposition) is not None
        fields.append((name.group(1) if name else "", data if is_file else data.decode("utf-8")))
    return fields


# -- shared by the Canvas CLI tests ------------------------------------------------------

TOKEN = "7~SeCrEtTokenValue0123456789abcdefXYZ"
EXAMPLES = REPO_ROOT / "examples" / "submissions"
USERS = {
    "ada": {"id": 101, "name": "Ada Alvarez", "sortable_name": "Alvarez, Ada", "short_name": "Ada",
            "login_id": "ada", "sis_user_id": "S101"},
    "ben": {"id": 102, "name": "Ben Baker", "sortable_name": "Baker, Ben", "short_name": "Ben",
            "login_id": "ben.baker", "sis_user_id": "S102"},
    "cal": {"id": 103, "name": "Cal Chen", "sortable_name": "Chen, Cal", "short_name": "Cal",
            "login_id": "cal@uni.edu", "sis_user_id": "S103"},
    "dee": {"id": 104, "name": "Dee Diaz", "sortable_name": "Diaz, Dee", "short_name": "Dee",
            "login_id": "dee", "sis_user_id": "S104"},
    "eve": {"id": 105, "name": "Eve Evans", "sortable_name": "Evans, Eve", "short_name": "Eve",
            "login_id": "eve", "sis_user_id": "S105"},
}


def notebook(student: str, module: str) -> bytes:
    stem = {"01": "01_mlp_cifar10_gray", "02": "02_dense_mnist_fashion"}[module]
    return (EXAMPLES / student / f"{stem}.ipynb").read_bytes()


def course_file(folder: Path, url: str, assignments: str = '{ "01" = 4320, "02" = 4321 }',
                key: str = "login") -> Path:
    path = folder / "course.toml"
    path.write_text(f'[canvas]\nbase_url = "{url}"\ncourse_id = 7\nassignments = {assignments}\n'
                    f'student_key = "{key}"\n', encoding="utf-8")
    return path


def run(*args: str, token: str | None = TOKEN, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CANVAS_TOKEN"}
    if token is not None:
        env["CANVAS_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "grader", "canvas", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
