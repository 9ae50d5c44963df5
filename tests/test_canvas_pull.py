"""``python -m grader canvas pull`` through the real CLI against a local Canvas stand-in.

The stand-in (:mod:`tests.canvas_server`) answers with the shapes of Canvas's REST
documentation: Assignments API "Get a single assignment", Submissions API "List assignment
submissions" with ``include[]=user`` (paginated by ``Link``), the Files API attachment
``url``. No real Canvas is reachable from the test machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from canvas_server import TOKEN, USERS, FakeCanvas, course_file, notebook, run


def class_of_five(canvas: FakeCanvas) -> None:
    """Module 02: ada, ben (late, a hostile file name), cal, dee (a .py only), eve (nothing);
    module 01: ada. Five submissions at two per page: three pages."""
    canvas.add_assignment(4320, "Module 01 (MLP)", "2027-02-15T23:59:00Z")
    canvas.add_assignment(4321, "Module 02 (Dense)", "2027-03-01T23:59:00Z")
    canvas.add_submission(4320, USERS["ada"], files=[("01_mlp_cifar10_gray.ipynb", notebook("ada", "01"))],
                          submitted_at="2027-02-15T20:00:00Z")
    canvas.add_submission(4321, USERS["ada"], files=[("02_dense_mnist_fashion.ipynb", notebook("ada", "02"))],
                          submitted_at="2027-03-01T20:00:00Z")
    canvas.add_submission(4321, USERS["ben"], files=[("notes.txt", b"not a notebook"),
                                                     ("../../../evil.ipynb", notebook("ben", "02"))],
                          submitted_at="2027-03-03T11:59:00Z", seconds_late=129600)
    canvas.add_submission(4321, USERS["cal"],
                          files=[("02_dense_mnist_fashion-1.ipynb", notebook("cal", "02"))],
                          submitted_at="2027-03-01T23:00:00Z")
    canvas.add_submission(4321, USERS["dee"], files=[("answer.py", b"print(1)")],
                          submitted_at="2027-03-01T22:00:00Z")
    canvas.add_submission(4321, USERS["eve"])


def test_pull_follows_link_pages_retries_429_and_5xx_and_keeps_submission_times(tmp_path):
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        canvas.fail("/assignments/4321/submissions", 429, headers={"Retry-After": "1"})
        canvas.fail("/assignments/4320", 503)
        dest = tmp_path / "pulled"
        proc = run("pull", str(dest), "--course", str(course_file(tmp_path, canvas.url)))
        requests = list(canvas.requests)
        ben_file = canvas.submissions[4321][102]["attachments"][1]["id"]  # the .ipynb one
    assert proc.returncode == 0, proc.stderr
    assert "pulled 4 notebook(s)" in proc.stdout, proc.stdout
    assert "dee" in proc.stdout and "no .ipynb" in proc.stdout  # listed, not fatal
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    cal = files[3].split("/")[0]
    assert cal.startswith("cal_uni.edu-")  # "@" is not file-safe: replaced, a hash keeps it distinct
    assert files == ["ada/01_mlp_cifar10_gray.ipynb", "ada/02_dense_mnist_fashion.ipynb",
                     "ben.baker/02_evil.ipynb", f"{cal}/02_dense_mnist_fashion-1.ipynb",
                     "canvas-pull.json"]
    assert (dest / "ben.baker" / "02_evil.ipynb").read_bytes() == notebook("ben", "02")
    assert (dest / "ada" / "01_mlp_cifar10_gray.ipynb").read_bytes() == notebook("ada", "01")
    assert not (tmp_path / "evil.ipynb").exists() and not list(tmp_path.parent.glob("evil*"))
    record = json.loads((dest / "canvas-pull.json").read_text())
    assert record["modules"]["02"]["assignment_id"] == 4321
    assert record["modules"]["02"]["due_at"] == "2027-03-01T23:59:00Z"
    assert record["modules"]["01"]["due_at"] == "2027-02-15T23:59:00Z"
    ben = record["submissions"]["ben.baker"]["02"]
    assert ben == {"submitted_at": "2027-03-03T11:59:00Z", "late": True, "seconds_late": 129600,
                   "user_id": 102, "file": "ben.baker/02_evil.ipynb", "key": "ben.baker",
                   "cached_due_date": "2027-03-01T23:59:00Z", "excused": False, "attempt": 1,
                   "attachment_id": ben_file}
    assert record["late_policy"] is None and record["course_id"] == 7  # the course has none: 404
    assert set(record["submissions"]["ada"]) == {"01", "02"}
    assert record["submissions"]["ada"]["02"]["late"] is False
    assert set(record["submissions"]) == {"ada", "ben.baker", cal}
    listing = [r for r in requests if r["path"].endswith("/assignments/4321/submissions")]
    pages = [r["query"].get("page", ["1"])[0] for r in listing]
    assert pages == ["1", "1", "2", "3"], pages  # 429, the retry, then the Link pages
    assert all(r["query"]["include[]"] == ["user"] for r in listing)
    assert [r["path"] for r in requests].count("/api/v1/courses/7/assignments/4320") == 2  # 503, retry
    assert all(r["authorized"] for r in requests if r["path"].startswith("/api/"))


def test_pull_again_downloads_only_what_changed(tmp_path):
    """Item 12: a second pull fetches no attachment it already saved; a resubmission's new
    attachment is fetched."""
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        dest, course = tmp_path / "pulled", course_file(tmp_path, canvas.url)
        assert run("pull", str(dest), "--course", str(course)).returncode == 0
        canvas.add_submission(4321, USERS["ada"], files=[("02_new.ipynb", notebook("ben", "02"))],
                              submitted_at="2027-03-01T21:00:00Z")
        before = len(canvas.requests)
        proc = run("pull", str(dest), "--course", str(course))
        downloads = [r["path"] for r in canvas.requests[before:] if r["path"].startswith("/files/")]
    assert proc.returncode == 0, proc.stderr
    assert "pulled 1 notebook(s)" in proc.stdout and "3 unchanged since the last pull" in proc.stdout
    assert len(downloads) == 1
    assert (dest / "ada" / "02_new.ipynb").read_bytes() == notebook("ben", "02")
    assert not (dest / "ada" / "02_dense_mnist_fashion.ipynb").exists()


def test_pull_again_replaces_a_resubmission_and_keeps_one_file(tmp_path):
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 02", "2027-03-01T23:59:00Z")
        canvas.add_submission(4321, USERS["ada"], files=[("first.ipynb", notebook("ada", "02"))],
                              submitted_at="2027-03-01T20:00:00Z")
        dest, course = tmp_path / "pulled", course_file(tmp_path, canvas.url, '{ "02" = 4321 }')
        assert run("pull", str(dest), "--course", str(course)).returncode == 0
        canvas.add_submission(4321, USERS["ada"], files=[("second.ipynb", notebook("ben", "02"))],
                              submitted_at="2027-03-02T08:00:00Z", seconds_late=29000)
        proc = run("pull", str(dest), "--course", str(course))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (dest / "ada").iterdir()) == ["02_second.ipynb"]
    assert (dest / "ada" / "02_second.ipynb").read_bytes() == notebook("ben", "02")
    entry = json.loads((dest / "canvas-pull.json").read_text())["submissions"]["ada"]["02"]
    assert entry["submitted_at"] == "2027-03-02T08:00:00Z" and entry["late"] is True


def _all_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(("status", "names"), [
    (401, ["401", "CANVAS_TOKEN"]),
    (403, ["403", "teacher", "canvas.course_id"]),
    (404, ["404", "assignment 4321", "canvas.assignments"]),
])
def test_pull_refused_by_canvas_exits_2_with_the_fix_and_never_the_token(tmp_path, status, names):
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        if status == 404:
            del canvas.assignments[4321]
        else:
            canvas.fail("/assignments/", status, times=10)
        dest = tmp_path / "pulled"
        proc = run("pull", str(dest), "--course", str(course_file(tmp_path, canvas.url)))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for name in names:
        assert name in proc.stderr, proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
    assert TOKEN[5:20] not in proc.stdout + proc.stderr
    assert TOKEN not in _all_text(tmp_path)
    assert not (dest / "canvas-pull.json").exists()


def test_a_wrong_token_gets_401_from_the_server_and_is_not_shown(tmp_path):
    wrong = "7~WrongTokenShouldNeverBePrinted42"
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        proc = run("pull", str(tmp_path / "pulled"), "--course", str(course_file(tmp_path, canvas.url)),
                   token=wrong)
        assert canvas.requests and not any(r["authorized"] for r in canvas.requests)
    assert proc.returncode == 2 and "401" in proc.stderr and "CANVAS_TOKEN" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr + _all_text(tmp_path)


def test_pull_without_a_token_or_canvas_keys_exits_2_and_sends_nothing(tmp_path):
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        course = course_file(tmp_path, canvas.url)
        proc = run("pull", str(tmp_path / "pulled"), "--course", str(course), token=None)
        assert canvas.requests == []
    assert proc.returncode == 2 and "CANVAS_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "empty.toml").write_text("[course]\nname = 'x'\n")
    proc = run("pull", str(tmp_path / "pulled"), "--course", str(tmp_path / "empty.toml"))
    assert proc.returncode == 2 and "[canvas] needs base_url, course_id, assignments" in proc.stderr


def test_a_link_to_another_host_gets_no_token(tmp_path):
    """A ``Link`` or attachment address on another host (here: another port) is fetched
    without the ``Authorization`` header."""
    with FakeCanvas(TOKEN) as canvas, FakeCanvas("other") as elsewhere:
        canvas.add_assignment(4321, "Module 02", "2027-03-01T23:59:00Z")
        elsewhere.files[1] = notebook("ada", "02")
        canvas.add_submission(4321, USERS["ada"], files=[("02_x.ipynb", b"")],
                              submitted_at="2027-03-01T20:00:00Z")
        canvas.submissions[4321][101]["attachments"][0]["url"] = \
            f"{elsewhere.url}/files/1/download?verifier=v1"
        dest = tmp_path / "pulled"
        proc = run("pull", str(dest), "--course", str(course_file(tmp_path, canvas.url, '{ "02" = 4321 }')))
        foreign = list(elsewhere.requests)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "ada" / "02_x.ipynb").read_bytes() == notebook("ada", "02")
    assert foreign and not any(r["auth_sent"] for r in foreign)


def test_hostile_keys_and_file_names_stay_inside_dir(tmp_path):
    """Keys and file names come from Canvas users: traversal, absolute paths, a non-notebook
    with a notebook's name in the middle, and an oversize file never leave DIR or get saved."""
    victim = tmp_path / "victim.ipynb"
    victim.write_bytes(b"untouched")
    hostile = [({"id": 201, "login_id": "../victim"}, "/etc/../victim.ipynb"),
               ({"id": 202, "login_id": "/tmp"}, "..\\..\\victim.ipynb"),
               ({"id": 203, "login_id": "mal"}, "x.ipynb.exe"),
               ({"id": 204, "login_id": "big"}, "02_big.ipynb")]
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 02", "2027-03-01T23:59:00Z")
        for user, name in hostile:
            canvas.add_submission(4321, user, files=[(name, notebook("ada", "02"))],
                                  submitted_at="2027-03-01T20:00:00Z")
        canvas.submissions[4321][204]["attachments"][0]["size"] = 60 * 1024 * 1024
        dest = tmp_path / "pulled"
        proc = run("pull", str(dest), "--course", str(course_file(tmp_path, canvas.url, '{ "02" = 4321 }')))
        downloads = [r["path"] for r in canvas.requests if r["path"].startswith("/files/")]
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == b"untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course.toml", "pulled", "victim.ipynb"]
    saved = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.ipynb"))
    assert len(saved) == 2 and all(s.count("/") == 1 and s.endswith("/02_victim.ipynb") for s in saved)
    assert not any(s.startswith(("..", "/", "victim/", "tmp/")) for s in saved), saved
    assert "mal" in proc.stdout and "big" in proc.stdout and "over the" in proc.stdout, proc.stdout
    assert len(downloads) == 2  # the oversize file was never requested


def test_student_key_sis_names_the_folders_by_sis_user_id(tmp_path):
    with FakeCanvas(TOKEN) as canvas:
        class_of_five(canvas)
        dest = tmp_path / "pulled"
        proc = run("pull", str(dest), "--course", str(course_file(tmp_path, canvas.url, key="sis")))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["S101", "S102", "S103"]
    record = json.loads((dest / "canvas-pull.json").read_text())["submissions"]
    assert record["S102"]["02"]["key"] == "S102" and record["S102"]["02"]["user_id"] == 102
