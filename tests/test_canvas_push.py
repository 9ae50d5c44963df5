"""The whole Canvas loop through the real CLI: ``canvas pull``, ``grade --fast``, ``canvas push``.

A local stand-in for Canvas (:mod:`tests.canvas_server`; Submissions API "List assignment
submissions" with ``include[]=user`` and "Grade or comment on a submission", the ``PUT``
with ``submission[posted_grade]``, ``comment[text_comment]`` and ``comment[file_ids][]``;
Submission Comments API "Upload a file" and the "File Uploads" page's three steps for the
feedback page attached to the comment) holds two students of
module 02 (``examples/submissions``: ada, and ben whose login ``Ben.Baker@uni.edu`` is not a
safe file name). They are pulled, graded once in fast mode (module-scoped), then pushed: the
tests run in file order and share the server's state, so they stay in one xdist group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from canvas_server import EXAMPLES, TOKEN, USERS, FakeCanvas, course_file, run

from grader.base.paths import REPO_ROOT
from grader.classroom.rubric_record import graded_rubrics

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.xdist_group("canvas-push")]

BEN = {**USERS["ben"], "login_id": "Ben.Baker@uni.edu"}


@pytest.fixture(scope="module")
def loop(tmp_path_factory, data_dir):
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("canvas")
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 02 (Dense)", "2027-03-01T23:59:00Z", points=13)
        # ada on time; ben 1 day 10 hours after the deadline (Canvas's due_at; no [due])
        for user, student, at, late in ((USERS["ada"], "ada", "2027-03-01T20:00:00Z", 0),
                                        (BEN, "ben", "2027-03-03T10:00:00Z", 122_460)):
            data = (EXAMPLES / student / "02_dense_mnist_fashion.ipynb").read_bytes()
            canvas.add_submission(4321, user, files=[("02_dense_mnist_fashion.ipynb", data)],
                                  submitted_at=at, seconds_late=late)
        canvas.add_submission(4321, USERS["eve"])  # enrolled, never submitted
        course = course_file(root, canvas.url, '{ "02" = 4321 }')
        with course.open("a", encoding="utf-8") as handle:
            handle.write("[late]\npenalty_per_day = 0.10\nmax_penalty = 0.5\ngrace_minutes = 15\n")
        outputs: list[str] = []
        proc = run("pull", str(root / "subs"), "--course", str(course))
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        graded = subprocess.run([sys.executable, "-m", "grader", "grade", str(root / "subs"),
                                 "--out", str(root / "out"), "--fast", "--course", str(course)],
                                cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=1500)
        assert graded.returncode == 0, graded.stderr[-2000:]
        rows = {r["name"]: r for r in json.loads((root / "out" / "grades.json").read_text())}
        yield {"canvas": canvas, "out": root / "out", "course": course, "rows": rows,
               "outputs": outputs, "root": root}


def push(loop, *flags: str):
    canvas = loop["canvas"]
    before = len(canvas.requests)
    proc = run("push", str(loop["out"]), "--course", str(loop["course"]), *flags)
    loop["outputs"].append(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr
    return proc, canvas.requests[before:]


def sent(requests: list[dict]) -> dict[int, list[dict]]:
    """User id -> the PUT forms the server carried out."""
    found: dict[int, list[dict]] = {}
    for r in requests:
        if r["method"] == "PUT" and r["injected"] is None:
            found.setdefault(int(r["path"].rsplit("/", 1)[1]), []).append(r["form"])
    return found


def uploads(requests: list[dict]) -> list[dict]:
    """The File Uploads requests (step 1 and 2 ``POST``, step 3 ``GET`` of ``/api/v1/files``)."""
    return [r for r in requests if r["method"] == "POST" or r["path"].startswith("/api/v1/files/")]


def page_of(out: Path, row: dict) -> bytes:
    return (out / "feedback" / f"{row['student']}.html").read_bytes()


def test_pull_then_grade_names_rows_by_the_canvas_keys(loop):
    rows = loop["rows"]
    assert set(rows) == {"ada", next(n for n in rows if n.startswith("Ben.Baker_uni.edu-"))}
    assert all(r["module"] == "02" and r["error"] is None for r in rows.values())


def test_the_pulled_submission_time_and_due_at_give_the_late_penalty(loop):
    """pull -> grade: Canvas's due_at and submitted_at reach the late policy (2 started days
    after the 15-minute grace at 10 % per day: -20 %); the on-time row has no late line."""
    rows = loop["rows"]
    ada = rows["ada"]
    ben = next(r for n, r in rows.items() if n != "ada")
    assert ada["late"] is None and ada["score"] == ada["raw_score"]
    assert ben["late"]["due_at"] == "2027-03-01T23:59:00Z"
    assert ben["late"]["days_late"] == 2 and ben["late"]["penalty"] == pytest.approx(0.2)
    assert ben["raw_score"] > 0
    assert ben["score"] == pytest.approx(ben["raw_score"] * 0.8, abs=1e-3)


def test_push_without_apply_prints_the_change_and_sends_nothing(loop):
    proc, requests = push(loop)
    ada = loop["rows"]["ada"]
    lines = proc.stdout.splitlines()
    (ada_line,) = [line for line in lines if line.startswith("ada\t")]
    assert f"Canvas now -\tnew {ada['score']:g}" in ada_line, ada_line
    assert any(line.startswith("Ben.Baker@uni.edu\t") for line in lines), proc.stdout
    assert "dry run: nothing sent; 2 grade(s) would be sent, 2 with the feedback page attached" \
        in proc.stdout
    assert ada_line.endswith("\tsend\tattach feedback/ada.html"), ada_line
    assert [r for r in requests if r["method"] != "GET"] == [] and uploads(requests) == []
    assert not (loop["out"] / "canvas-push.json").exists()
    assert all(s["score"] is None for s in loop["canvas"].submissions[4321].values())
    assert "scaled" not in proc.stdout


def test_push_scales_to_the_points_the_canvas_assignment_is_worth(loop):
    canvas = loop["canvas"]
    canvas.assignments[4321]["points_possible"] = ada_max = 2 * loop["rows"]["ada"]["max_score"]
    try:
        proc, requests = push(loop)
    finally:
        canvas.assignments[4321]["points_possible"] = loop["rows"]["ada"]["max_score"]
    (ada_line,) = [line for line in proc.stdout.splitlines() if line.startswith("ada\t")]
    assert f"new {2 * loop['rows']['ada']['score']:g}\t" in ada_line, ada_line
    assert f"is worth {ada_max:g} points" in proc.stdout and "scaled" in proc.stdout
    assert [r for r in requests if r["method"] != "GET"] == []


def test_push_apply_sends_each_grade_once_with_a_comment_through_a_429(loop):
    canvas = loop["canvas"]
    canvas.fail("/submissions/101", 429, headers={"Retry-After": "1"}, method="PUT")
    proc, requests = push(loop, "--apply")
    forms = sent(requests)
    assert sorted(forms) == [101, 102] and all(len(f) == 1 for f in forms.values()), forms
    assert any(r["injected"] == 429 for r in requests)  # the 429 was answered, then retried
    rows = {101: loop["rows"]["ada"], 102: next(r for n, r in loop["rows"].items() if n != "ada")}
    for uid, row in rows.items():
        (form,) = forms[uid]
        assert float(form["submission[posted_grade]"][0]) == pytest.approx(row["score"])
        (comment,) = form["comment[text_comment]"]
        assert comment.startswith(f"dlcourse module 02: {row['score']:g} / {row['max_score']:g} points")
        titles = graded_rubrics(loop["out"], warn=False)[0]["02"].descriptions
        assert titles and all(f"- {' '.join(titles[c['id']].split())[:120]}: " in comment
                              for c in row["checks"])
        assert canvas.submissions[4321][uid]["score"] == pytest.approx(row["score"])
        assert canvas.comments[(4321, uid)] == [comment]
    log = json.loads((loop["out"] / "canvas-push.json").read_text())["sent"]
    assert sorted(e["user_id"] for e in log) == [101, 102]
    assert "sent 2 grade(s) with a comment each (2 with the feedback page attached)" in proc.stdout


def test_push_apply_attaches_each_feedback_page_to_its_comment(loop):
    """The pages of the push above: uploaded in three steps (the storage host got no token),
    their bytes the pages ``grade`` wrote, each comment carrying its own file's id."""
    canvas, out = loop["canvas"], loop["out"]
    requests = canvas.requests
    rows = {101: loop["rows"]["ada"], 102: next(r for n, r in loop["rows"].items() if n != "ada")}
    log = {e["user_id"]: e for e in json.loads((out / "canvas-push.json").read_text())["sent"]}
    assert len(canvas.uploads) == 2
    for uid, row in rows.items():
        (files,) = canvas.comment_files[(4321, uid)]
        (fid,) = files
        upload = canvas.uploads[fid]
        assert (upload["assignment_id"], upload["user_id"], upload["state"]) == (4321, uid, "available")
        assert upload["data"] == page_of(out, row) and upload["data"].lstrip().startswith(b"<!")
        assert upload["content_type"] == "text/html" and upload["name"] == f"feedback-{row['student']}.html"
        assert log[uid]["file_id"] == fid and log[uid]["feedback_page"] == f"feedback/{row['student']}.html"
        put = next(r for r in requests if r["method"] == "PUT" and r["injected"] is None
                   and r["path"].endswith(f"/{uid}"))
        assert put["form"]["comment[file_ids][]"] == [str(fid)]
        step1 = [r for r in requests if r["path"].endswith(f"/submissions/{uid}/comments/files")]
        step2 = [r for r in requests if r["path"] == f"/upload/{fid}"]
        step3 = [r for r in requests if r["path"] == f"/api/v1/files/{fid}/create_success"]
        assert [len(step1), len(step2), len(step3)] == [1, 1, 1]
        assert step1[0]["authorized"] and step3[0]["authorized"]
        assert step2[0]["host"].startswith("localhost:") and not step2[0]["auth_sent"]
        assert step2[0]["form"]["file"] == [f"<{len(upload['data'])} bytes>"]
        assert requests.index(step3[0]) < requests.index(put)  # confirmed before the PUT names it


def test_a_second_push_sends_nothing_new(loop):
    proc, requests = push(loop, "--apply")
    assert sent(requests) == {} and uploads(requests) == [] and len(loop["canvas"].uploads) == 2
    assert "sent 0 grade(s)" in proc.stdout and proc.stdout.count("already in Canvas") == 2
    assert len(json.loads((loop["out"] / "canvas-push.json").read_text())["sent"]) == 2


def test_a_grade_changed_in_canvas_is_kept_unless_force(loop):
    canvas = loop["canvas"]
    canvas.set_score(4321, 102, 1.5)  # a teacher regrades ben by hand in Canvas
    proc, requests = push(loop, "--apply")
    assert sent(requests) == {}, "a grade changed in Canvas was overwritten"
    assert canvas.submissions[4321][102]["score"] == 1.5
    (ben_line,) = [line for line in proc.stdout.splitlines() if line.startswith("Ben.Baker@uni.edu")]
    assert "Canvas now 1.5" in ben_line and "changed in Canvas since the last push: kept" in ben_line
    assert "1 changed in Canvas kept (--force overwrites)" in proc.stdout
    proc, requests = push(loop, "--apply", "--force")
    ben = next(r for n, r in loop["rows"].items() if n != "ada")
    assert list(sent(requests)) == [102]
    assert canvas.submissions[4321][102]["score"] == pytest.approx(ben["score"])
    log = json.loads((loop["out"] / "canvas-push.json").read_text())["sent"]
    assert len(log) == 3 and log[-1]["forced"] is True and log[-1]["previous_score"] == 1.5


def test_a_500_on_one_put_is_listed_not_logged_and_sent_by_the_next_push(loop, tmp_path):
    """A copy of the graded folder without its push log: Canvas already holds its grades, so
    both are sent (to post the comment); ada's PUT fails once with 500 (not retried: the
    comment may have been posted), ben's goes through; the next push sends ada's only."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(loop["out"], out, ignore=shutil.ignore_patterns("canvas-push.json*",
                                                                   ".canvas-push.json*"))
    canvas = loop["canvas"]
    canvas.fail("/submissions/101", 500, method="PUT")
    copy = {**loop, "out": out}
    proc, requests = push(copy, "--apply")
    assert list(sent(requests)) == [102]
    assert [r["injected"] for r in requests if r["method"] == "PUT"].count(500) == 1
    assert "failed: ada (module 02): Canvas answered 500" in proc.stdout, proc.stdout
    assert [e["user_id"] for e in json.loads((out / "canvas-push.json").read_text())["sent"]] == [102]
    proc, requests = push(copy, "--apply")
    assert list(sent(requests)) == [101]


def _copy_without_log(loop, folder: Path) -> dict:
    import shutil

    shutil.copytree(loop["out"], folder, ignore=shutil.ignore_patterns("canvas-push.json*",
                                                                      ".canvas-push.json*"))
    return {**loop, "out": folder}


def test_a_failed_upload_or_a_missing_page_still_sends_grade_and_comment(loop, tmp_path):
    """A copy of the graded folder without its push log (so both are sent again): ben's page
    is deleted, and ada's upload is confirmed at a Location on another host (which gets no
    token, so it answers 401): both grades and text comments go, without a file, each listed."""
    canvas = loop["canvas"]
    copy = _copy_without_log(loop, tmp_path / "out")
    ben = next(r for n, r in loop["rows"].items() if n != "ada")
    (copy["out"] / "feedback" / f"{ben['student']}.html").unlink()
    proc, requests = push(copy)
    assert f"  no feedback page: Ben.Baker@uni.edu (module 02): feedback/{ben['student']}.html is" \
           " missing" in proc.stdout, proc.stdout
    assert "2 grade(s) would be sent, 1 with the feedback page attached" in proc.stdout
    assert uploads(requests) == []
    before = len(canvas.uploads)
    canvas.confirm_url = canvas.upload_url
    try:
        proc, requests = push(copy, "--apply")
    finally:
        canvas.confirm_url = canvas.url
    forms = sent(requests)
    assert sorted(forms) == [101, 102] and all("comment[file_ids][]" not in f[0] for f in forms.values())
    assert canvas.comment_files[(4321, 101)][-1] == [] and canvas.comment_files[(4321, 102)][-1] == []
    assert canvas.comments[(4321, 101)][-1].startswith("dlcourse module 02: ")
    (confirm,) = [r for r in requests if r["path"].endswith("/create_success")]
    assert confirm["host"].startswith("localhost:") and not confirm["auth_sent"]
    assert len(canvas.uploads) == before + 1  # ada's only: ben had no page
    assert "  no feedback page attached: ada (module 02): the upload failed: " in proc.stdout
    assert f"  no feedback page attached: Ben.Baker@uni.edu (module 02): feedback/{ben['student']}.html" \
           in proc.stdout
    assert "sent 2 grade(s) with a comment each (0 with the feedback page attached)" in proc.stdout
    log = json.loads((copy["out"] / "canvas-push.json").read_text())["sent"]
    assert [e["file_id"] for e in log] == [None, None]


def test_an_upload_answered_201_with_the_file_is_attached(loop, tmp_path):
    """The File Uploads page's other answer to step 2: 201 Created with the File object."""
    canvas = loop["canvas"]
    copy = _copy_without_log(loop, tmp_path / "out")
    canvas.upload_mode = "created"
    try:
        proc, requests = push(copy, "--apply")
    finally:
        canvas.upload_mode = "redirect"
    assert [r for r in requests if r["path"].endswith("/create_success")] == []
    log = {e["user_id"]: e for e in json.loads((copy["out"] / "canvas-push.json").read_text())["sent"]}
    ada = loop["rows"]["ada"]
    assert canvas.comment_files[(4321, 101)][-1] == [log[101]["file_id"]]
    assert canvas.uploads[log[101]["file_id"]]["data"] == page_of(copy["out"], ada)
    assert "(2 with the feedback page attached)" in proc.stdout


def test_the_token_is_in_no_output_and_no_file(loop):
    assert len(loop["outputs"]) >= 6
    assert not any(TOKEN in text for text in loop["outputs"])
    for path in Path(loop["root"]).rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    canvas = loop["canvas"]
    base_host = canvas.url.split("://", 1)[1]
    assert all(r["authorized"] for r in canvas.requests if r["path"].startswith("/api/")
               and r["host"] == base_host)
    elsewhere = [r for r in canvas.requests if r["host"] != base_host]
    assert elsewhere and not any(r["auth_sent"] for r in elsewhere)  # uploads, a foreign Location
