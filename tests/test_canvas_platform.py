"""Canvas as Canvas behaves, through the real CLI against the extended stand-in.

Every behaviour the stand-in (:mod:`tests.canvas_server`) adds follows a Canvas source file it
quotes: each student's own ``cached_due_date`` (``app/models/submission.rb``, ``Tardiness``;
``lib/api/v1/submission.rb`` lists the field), the course's Late Policy
(``app/controllers/late_policy_controller.rb``, ``app/models/late_policy.rb``) deducted again
on every grade save (``submission.rb``: ``before_save :apply_late_policy``), excused
submissions, and throttling with ``403 Forbidden (Rate Limit Exceeded)``
(``doc/api/throttling.md``).

Batch A: the fixture module 01 (fast mode, real kernels) of five students pulled from one
course with ``[late]`` 10 % per day: ada on time; ben 1 day 10 hours late; cal late by the
assignment's date but on time by her Canvas override; dee late by Canvas but inside her
``[extensions]`` entry keyed by her login ``dee@uni.edu``; eve excused. Batch B: ben alone,
in a course whose Canvas Late Policy deducts 10 % per day, graded without ``[late]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest
from canvas_server import TOKEN, USERS, FakeCanvas

from grader.base.paths import REPO_ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.xdist_group("canvas-platform")]

AUTO = 7  # the fixture rubric's points
POINTS = 14  # the Canvas assignment is worth twice the rubric
DUE = "2027-03-01T23:59:00Z"
CAL = {"id": 103, "name": "Cal Chen", "sortable_name": "Chen, Cal", "login_id": "cal@uni.edu",
       "sis_user_id": "S103"}
DEE = {"id": 104, "name": "Dee Diaz", "sortable_name": "Diaz, Dee", "login_id": "dee@uni.edu",
       "sis_user_id": "S104"}
LATE = "[late]\npenalty_per_day = 0.10\nmax_penalty = 0.5\ngrace_minutes = 15\n"
EXTENSIONS = '[extensions]\n"dee@uni.edu" = { "01" = 2027-03-04T23:59:00Z }\n'


def canvas_table(url: str) -> str:
    return (f'[canvas]\nbase_url = "{url}"\ncourse_id = 7\nassignments = {{ "01" = 4321 }}\n'
            'student_key = "login"\n')


def cli(env: dict, *args: str, cwd: Path = REPO_ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rows_of(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads((out / "grades.json").read_text())}


def puts(canvas: FakeCanvas, since: int) -> dict[int, dict]:
    return {int(r["path"].rsplit("/", 1)[1]): r["form"] for r in canvas.requests[since:]
            if r["method"] == "PUT" and r["injected"] is None}


@pytest.fixture(scope="module")
def fixture_module(tmp_path_factory, data_dir) -> dict:
    from grader.authoring.cells import normalize

    root = tmp_path_factory.mktemp("platform")
    (root / "rubric").mkdir()
    rubric = fx.build_rubric(root / "rubric")  # writes rubric/01_fixture.toml
    toml = root / "rubric" / "01_fixture.toml"
    solution = fx.build_solution(rubric)
    normalize(solution, rubric)
    env = fx.cli_env(root)
    env["CANVAS_TOKEN"] = TOKEN
    return {"root": root, "env": env, "notebook": nbformat.writes(fx.submission(solution)).encode(),
            "common": ["--fast", "--jobs", "2", "--cell-timeout", "120", "--rubric", str(toml),
                       "--solution", str(fx.write(solution, root / "solution" / "01_fixture.ipynb")),
                       "--import", "helpers_notebooks"]}


@pytest.fixture(scope="module")
def batch_a(fixture_module):
    root, env, data = fixture_module["root"], fixture_module["env"], fixture_module["notebook"]
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 01 (Fixture)", DUE, points=POINTS)
        files = [("01_fixture.ipynb", data)]
        canvas.add_submission(4321, USERS["ada"], files=files, submitted_at="2027-03-01T20:00:00Z")
        canvas.add_submission(4321, USERS["ben"], files=files, submitted_at="2027-03-03T10:00:00Z")
        canvas.add_submission(4321, CAL, files=files, submitted_at="2027-03-03T10:00:00Z",
                              due_at="2027-03-05T23:59:00Z")  # her override in Canvas
        canvas.add_submission(4321, DEE, files=files, submitted_at="2027-03-03T10:00:00Z")
        canvas.add_submission(4321, USERS["eve"], files=files, submitted_at="2027-03-01T21:00:00Z")
        canvas.submissions[4321][105]["excused"] = True
        course = root / "a" / "course.toml"
        course.parent.mkdir()
        course.write_text(LATE + EXTENSIONS + canvas_table(canvas.url), encoding="utf-8")
        pulled = cli(env, "canvas", "pull", str(root / "a" / "subs"), "--course", str(course))
        assert pulled.returncode == 0, pulled.stderr
        out = root / "a" / "out"
        graded = cli(env, "grade", str(root / "a" / "subs"), "--out", str(out), "--course", str(course),
                     *fixture_module["common"])
        assert graded.returncode == 0, graded.stderr[-3000:]
        yield {"canvas": canvas, "course": course, "out": out, "rows": rows_of(out), "env": env,
               "root": root / "a", "common": fixture_module["common"]}


def test_canvas_override_is_the_students_own_deadline(batch_a):
    """Item 1: cal's override in Canvas (cached_due_date 5 March) makes her on time, though
    she submitted two days after the assignment's due_at; ben, without one, loses 20 %."""
    rows = batch_a["rows"]
    cal = next(r for n, r in rows.items() if n.startswith("cal_uni.edu"))
    assert cal["raw_score"] == AUTO and cal["late"] is None and cal["score"] == AUTO
    ben = rows["ben.baker"]
    assert (ben["late"]["days_late"], ben["late"]["penalty"]) == (2, 0.2)
    assert ben["late"]["due_at"] == DUE and ben["score"] == pytest.approx(AUTO * 0.8)
    assert rows["ada"]["late"] is None


def test_an_extension_keyed_by_a_login_with_at_sign_holds_and_exports(batch_a):
    """Item 3: dee's [extensions] entry is keyed by her Canvas login; the pulled folder has a
    file-safe name, yet the entry is found and export --canvas fills her cell."""
    rows = batch_a["rows"]
    dee = next(r for n, r in rows.items() if n.startswith("dee_uni.edu"))
    assert dee["late"] is None and dee["score"] == AUTO
    roster = batch_a["root"] / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Module 01 (4321)\n"
                      f"Points Possible,,,,,{POINTS}\n"
                      "Diaz Dee,104,S104,dee@uni.edu,A,\nBaker Ben,102,S102,ben.baker,A,\n",
                      encoding="utf-8")
    proc = cli(batch_a["env"], "export", "--canvas", str(roster), str(batch_a["out"]),
               "--course", str(batch_a["course"]))
    assert proc.returncode == 0, proc.stderr
    cells = {line.split(",")[0]: line.split(",")[-1]
             for line in (batch_a["out"] / "canvas.csv").read_text().splitlines()}
    # item 8: Canvas imports on the assignment's scale (14 points), so cells are scaled to it
    assert cells["Diaz Dee"] == str(POINTS) and cells["Points Possible"] == str(POINTS), cells
    assert float(cells["Baker Ben"]) == pytest.approx(AUTO * 0.8 * 2)
    assert f"is worth {POINTS} points in Canvas, the rubric {AUTO}" in proc.stdout


def test_grade_again_without_a_course_file_keeps_the_penalty(batch_a):
    """Item 5: the same grade run from a folder without course.toml uses the settings the
    batch was graded with (recorded, signed, in OUT); ben keeps his -20 %."""
    elsewhere = batch_a["root"] / "elsewhere"
    elsewhere.mkdir()
    proc = cli(batch_a["env"], "grade", str(batch_a["root"] / "subs"), "--out", str(batch_a["out"]),
               *batch_a["common"], cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "course-settings.json" in proc.stderr
    ben = rows_of(batch_a["out"])["ben.baker"]
    assert ben["late"]["penalty"] == 0.2 and ben["score"] == pytest.approx(AUTO * 0.8)


def test_grade_with_another_course_file_is_refused_and_changes_nothing(batch_a):
    other = batch_a["root"] / "other.toml"
    other.write_text(LATE.replace("0.10", "0.25") + canvas_table(batch_a["canvas"].url),
                     encoding="utf-8")
    before = (batch_a["out"] / "grades.json").read_bytes()
    proc = cli(batch_a["env"], "grade", str(batch_a["root"] / "subs"), "--out", str(batch_a["out"]),
               "--course", str(other), *batch_a["common"])
    assert proc.returncode == 2, (proc.stdout, proc.stderr[-2000:])
    assert "[late]" in proc.stderr and "[extensions]" in proc.stderr
    assert str(batch_a["course"]) in proc.stderr and "Traceback" not in proc.stderr
    assert (batch_a["out"] / "grades.json").read_bytes() == before
    push = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--course", str(other))
    assert push.returncode == 2 and "[late]" in push.stderr, push.stderr


def test_push_scales_keeps_the_excuse_and_says_the_late_line(batch_a):
    """Item 11 (excused) and 13 (the comment's late line): eve is excused in Canvas, so no
    grade goes over the excuse; ben's comment says what the late deduction took."""
    canvas = batch_a["canvas"]
    since = len(canvas.requests)
    proc = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--apply",
               "--course", str(batch_a["course"]))
    assert proc.returncode == 0, proc.stderr
    forms = puts(canvas, since)
    assert sorted(forms) == [101, 102, 103, 104], forms
    assert "eve (module 01): excused in Canvas" in proc.stdout
    assert canvas.submissions[4321][105]["score"] is None
    ben = forms[102]
    assert float(ben["submission[posted_grade]"][0]) == pytest.approx(AUTO * 0.8 * 2)
    assert f"- late: {AUTO} before the late deduction of 1.4" in ben["comment[text_comment]"][0]
    assert float(forms[103]["submission[posted_grade]"][0]) == POINTS


def test_push_refuses_what_canvas_late_policy_would_deduct_again(batch_a):
    """Item 2, the other way round: the Late Policy is switched on in Canvas after grading
    with [late]; Canvas would take ben's penalty a second time on saving, and dee (late by
    Canvas's date) would lose points the batch never showed: both are refused, nothing sent."""
    canvas = batch_a["canvas"]
    canvas.set_late_policy(10)
    canvas.set_score(4321, 102, 0)  # both changed in Canvas: --force would send them
    canvas.set_score(4321, 104, 0)
    since = len(canvas.requests)
    proc = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--apply", "--force",
               "--course", str(batch_a["course"]))
    assert proc.returncode == 0, proc.stderr
    assert 102 not in puts(canvas, since) and 104 not in puts(canvas, since)
    assert "ben.baker (module 01): the grade already holds the [late] penalty" in proc.stdout
    assert "Canvas counts this submission late and its Late Policy will deduct" in proc.stdout


def test_push_names_each_assignment_setting_it_cannot_honour(batch_a):
    """Item 10 and 11 (groups): anonymous grading, moderated grading before the grades are
    published, and a group assignment graded as a group each refuse the module's rows with a
    sentence naming the setting; nothing is sent. A pull of the anonymous assignment says so
    instead of blaming the token's rights."""
    canvas = batch_a["canvas"]
    assignment = canvas.assignments[4321]
    canvas.groups[4321] = [{101, 103}]
    for setting, words in ((dict(anonymous_grading=True), "uses anonymous grading"),
                           (dict(moderated_grading=True, grades_published=False),
                            "uses moderated grading and its grades are not published"),
                           (dict(group_category_id=5), "is a group assignment graded as a group")):
        saved = dict(assignment)
        assignment.update(setting)
        canvas.set_score(4321, 103, 1)  # changed in Canvas: --force would send it
        since = len(canvas.requests)
        try:
            proc = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--apply", "--force",
                       "--course", str(batch_a["course"]))
            pulled = cli(batch_a["env"], "canvas", "pull", str(batch_a["root"] / "anon"),
                         "--course", str(batch_a["course"])) if "anonymous_grading" in setting else None
        finally:
            assignment.clear()
            assignment.update(saved)
        assert proc.returncode == 0, proc.stderr
        assert puts(canvas, since) == {}, setting
        assert f"ada (module 01): assignment 4321 {words}" in proc.stdout, proc.stdout
        if pulled is not None:
            assert pulled.returncode == 0 and "uses anonymous grading" in pulled.stdout, pulled.stdout
            assert "allowed to see it" not in pulled.stdout
            assert not list((batch_a["root"] / "anon").rglob("*.ipynb"))


def test_a_refused_action_is_not_called_a_bad_token(batch_a):
    """Item 10: Canvas answers 401 *without* a token challenge when the token is fine but
    the action is refused (moderated grading); push says so and stops."""
    canvas = batch_a["canvas"]
    canvas.set_score(4321, 103, 2)
    canvas.fail("/assignments/4321/submissions/103", 401, headers={"X-Canvas-Note": "refused"},
                method="PUT")
    proc = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--apply", "--force",
               "--course", str(batch_a["course"]))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "the token was accepted, the action was not" in proc.stderr
    assert "moderated grading" in proc.stderr and "CANVAS_TOKEN" not in proc.stderr


def test_a_resubmission_after_the_pull_is_not_graded_with_the_old_grade(batch_a):
    """Item 11: ada resubmits after the pull (attempt 2): her grade is for attempt 1 and is
    not sent over the new attempt."""
    canvas = batch_a["canvas"]
    canvas.add_submission(4321, USERS["ada"], files=[("01_fixture.ipynb", b"{}")],
                          submitted_at="2027-03-01T22:00:00Z")
    canvas.set_score(4321, 101, 0)
    since = len(canvas.requests)
    proc = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--apply", "--force",
               "--course", str(batch_a["course"]))
    assert proc.returncode == 0, proc.stderr
    assert 101 not in puts(canvas, since)
    assert "ada (module 01): resubmitted in Canvas since the pull (attempt 2" in proc.stdout
    # item 12: push --module limits the plan to that module; a module not in the course file
    # is refused with the modules it has
    one = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--module", "01",
              "--course", str(batch_a["course"]))
    assert one.returncode == 0 and "resubmitted in Canvas" in one.stdout, one.stderr
    other = cli(batch_a["env"], "canvas", "push", str(batch_a["out"]), "--module", "02",
                "--course", str(batch_a["course"]))
    assert other.returncode == 2 and "--module 02: not in [canvas] assignments" in other.stderr


@pytest.fixture(scope="module")
def batch_b(fixture_module):
    root, env = fixture_module["root"] / "b", fixture_module["env"]
    with FakeCanvas(TOKEN) as canvas:
        canvas.set_late_policy(10)  # 10 % of the points possible per started day
        canvas.add_assignment(4321, "Module 01 (Fixture)", DUE, points=POINTS)
        canvas.add_submission(4321, USERS["ben"], files=[("01_fixture.ipynb", fixture_module["notebook"])],
                              submitted_at="2027-03-03T10:00:00Z")
        course = root / "course.toml"
        root.mkdir()
        course.write_text(canvas_table(canvas.url), encoding="utf-8")
        pulled = cli(env, "canvas", "pull", str(root / "subs"), "--course", str(course))
        assert pulled.returncode == 0, pulled.stderr
        out = root / "out"
        graded = cli(env, "grade", str(root / "subs"), "--out", str(out), "--course", str(course),
                     *fixture_module["common"])
        assert graded.returncode == 0, graded.stderr[-3000:]
        yield {"canvas": canvas, "course": course, "out": out, "rows": rows_of(out), "env": env,
               "root": root, "common": fixture_module["common"]}


def test_canvas_late_policy_is_shown_and_deducted_once(batch_b):
    """Item 2: the row follows Canvas's rule (2 days x 10 % of the points possible) and push
    sends the score before the deduction; Canvas deducts on saving, once: its score is the
    row's, scaled."""
    ben = batch_b["rows"]["ben.baker"]
    assert ben["late"]["applied_by"] == "canvas" and ben["late"]["penalty"] == pytest.approx(0.2)
    assert ben["score"] == pytest.approx(AUTO - 0.2 * AUTO)
    canvas = batch_b["canvas"]
    since = len(canvas.requests)
    proc = cli(batch_b["env"], "canvas", "push", str(batch_b["out"]), "--apply",
               "--course", str(batch_b["course"]))
    assert proc.returncode == 0, proc.stderr
    (form,) = puts(canvas, since).values()
    assert float(form["submission[posted_grade]"][0]) == POINTS  # before Canvas's deduction
    assert "Canvas's Late Policy deducts it when this grade is saved" in form["comment[text_comment]"][0]
    sub = canvas.submissions[4321][102]
    assert sub["score"] == pytest.approx(ben["score"] * 2) and sub["points_deducted"] == pytest.approx(2.8)
    again = cli(batch_b["env"], "canvas", "push", str(batch_b["out"]), "--apply",
                "--course", str(batch_b["course"]))
    assert again.returncode == 0 and "already in Canvas" in again.stdout, again.stdout


def test_canvas_late_policy_and_a_late_table_are_refused_together(batch_b):
    both = batch_b["root"] / "both.toml"
    both.write_text(LATE + canvas_table(batch_b["canvas"].url), encoding="utf-8")
    proc = cli(batch_b["env"], "grade", str(batch_b["root"] / "subs"), "--out",
               str(batch_b["root"] / "out2"), "--course", str(both), *batch_b["common"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "twice" in proc.stderr and "Late Policy" in proc.stderr and "Traceback" not in proc.stderr


# ---- pull only: no grading ----------------------------------------------------------------


def _pull(env: dict, canvas: FakeCanvas, dest: Path, *extra: str,
          assignments: str = '{ "01" = 4320, "02" = 4321 }') -> subprocess.CompletedProcess:
    course = dest.parent / "course.toml"
    course.write_text(f'[canvas]\nbase_url = "{canvas.url}"\ncourse_id = 7\n'
                      f'assignments = {assignments}\n', encoding="utf-8")
    return cli(env, "canvas", "pull", str(dest), "--course", str(course), *extra, timeout=120)


def _env_plain(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(CANVAS_TOKEN=TOKEN, DLCOURSE_KEY_FILE=str(tmp_path / "key"))
    return env


def notebook_of(module: str) -> bytes:
    stem = {"01": "01_mlp_cifar10_gray", "02": "02_dense_mnist_fashion"}[module]
    return (REPO_ROOT / "examples" / "submissions" / "ada" / f"{stem}.ipynb").read_bytes()


def test_a_notebook_of_another_module_is_not_pulled_as_this_one(tmp_path):
    """Item 4: ada uploads her module 01 notebook to module 02's assignment (late for 02):
    it would be graded as module 01 with no late line; pull lists it and saves nothing."""
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4320, "Module 01", "2027-02-15T23:59:00Z")
        canvas.add_assignment(4321, "Module 02", DUE)
        canvas.add_submission(4321, USERS["ada"], files=[("homework.ipynb", notebook_of("01"))],
                              submitted_at="2027-03-04T10:00:00Z")
        canvas.add_submission(4321, USERS["ben"], files=[("mine.ipynb", notebook_of("02"))],
                              submitted_at="2027-03-01T10:00:00Z")
        proc = _pull(_env_plain(tmp_path), canvas, tmp_path / "subs")
    assert proc.returncode == 0, proc.stderr
    assert "uploaded a module 01 notebook to module 02's assignment; not pulled" in proc.stdout
    saved = sorted(str(p.relative_to(tmp_path / "subs")) for p in (tmp_path / "subs").rglob("*.ipynb"))
    assert saved == ["ben.baker/02_mine.ipynb"]


def test_pull_one_module_never_asks_for_the_others(tmp_path):
    """Item 12: --module 02 pulls module 02 only; module 01's assignment (unpublished, so
    Canvas answers 404 here) is never requested, and a later --module 01 keeps 02's entries."""
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 02", DUE)
        canvas.add_submission(4321, USERS["ada"], files=[("02_x.ipynb", notebook_of("02"))],
                              submitted_at="2027-03-01T10:00:00Z")
        env = _env_plain(tmp_path)
        proc = _pull(env, canvas, tmp_path / "subs", "--module", "02")
        assert proc.returncode == 0, proc.stderr
        assert not any("/assignments/4320" in r["path"] for r in canvas.requests)
        whole = _pull(env, canvas, tmp_path / "subs")
        bad = _pull(env, canvas, tmp_path / "subs", "--module", "03")
    assert whole.returncode == 2 and "4320" in whole.stderr  # without --module it stops
    assert bad.returncode == 2 and "--module 03" in bad.stderr and "01, 02" in bad.stderr
    record = json.loads((tmp_path / "subs" / "canvas-pull.json").read_text())
    assert set(record["modules"]) == {"02"} and record["submissions"]["ada"]["02"]["file"]


def test_canvas_throttling_403_is_retried_and_named(tmp_path):
    """Item 9: throttling.md's ``403 Forbidden (Rate Limit Exceeded)`` is tried again (it
    is not a permission problem); when it persists the message says throttling."""
    with FakeCanvas(TOKEN) as canvas:
        canvas.add_assignment(4321, "Module 02", DUE)
        canvas.add_submission(4321, USERS["ada"], files=[("02_x.ipynb", notebook_of("02"))],
                              submitted_at="2027-03-01T10:00:00Z")
        canvas.throttle("/assignments/4321/submissions", times=2)
        env = _env_plain(tmp_path)
        proc = _pull(env, canvas, tmp_path / "subs", assignments='{ "02" = 4321 }')
        throttled = [r for r in canvas.requests if r["injected"] == 403]
        canvas.throttle("/assignments/4321", times=50)
        stuck = _pull(env, canvas, tmp_path / "again", assignments='{ "02" = 4321 }')
    assert proc.returncode == 0, proc.stderr
    assert len(throttled) == 2 and (tmp_path / "subs" / "ada" / "02_x.ipynb").is_file()
    assert stuck.returncode == 2 and "Rate Limit Exceeded" in stuck.stderr, stuck.stderr
    assert "teacher" not in stuck.stderr and "run the same command again" in stuck.stderr


def test_the_download_zip_is_read_by_canvas_own_file_name_rule(fixture_module):
    """Items 6 and 7 (``lib/content_zipper.rb``: ``[users_name, late ? 'LATE' : nil,
    user_id].compact.join('_')``, then ``filename.gsub(/[^[[:word:]]]/, '').downcase``): the
    whole name is lower-cased, so the marker is ``_late_``; a sortable name may end in
    ``_<digits>`` (Mallory_101 is user 104, not user 101); digits of other scripts are no
    user id. Ana keeps her one submission and her grade."""
    import zipfile

    root, env = fixture_module["root"] / "zip", fixture_module["env"]
    root.mkdir()
    good = fixture_module["notebook"]
    archive = root / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("alvarezana_101_5551234_01_fixture.ipynb", good)
        z.writestr("bakerben_late_102_5551240_01_fixture.ipynb", good)
        z.writestr("mallory_101_104_5551302_01_fixture.ipynb", '{"cells": [ not json')
        z.writestr("alvarezana_\u0661\u0660\u0661_5551303_01_fixture.ipynb", '{"cells": [')
    roster = root / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Module 01 (4321)\n"
                      "\"Alvarez, Ana\",101,s101,ana.alvarez,A,\n"
                      "\"Baker, Ben\",102,s102,ben.baker,A,\n"
                      "Mallory_101,104,s104,mallory,A,\n", encoding="utf-8")
    course = root / "course.toml"
    course.write_text('[canvas]\nassignments = { "01" = 4321 }\n', encoding="utf-8")
    out = root / "out"
    proc = cli(env, "grade", str(archive), "--roster", str(roster), "--out", str(out),
               "--course", str(course), *fixture_module["common"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_of(out)
    assert rows["ana.alvarez"]["error"] is None and rows["ana.alvarez"]["score"] == AUTO
    assert rows["ben.baker"]["late"]["flag"] == "late_marker_without_time"
    assert rows["mallory"]["error"] is not None  # her own (broken) file, under her own key
    (line,) = [x for x in proc.stdout.splitlines() if "\u0661\u0660\u0661" in x]
    assert "not graded" in line and "101" not in line, proc.stdout
    # item 13: export, like push, sends nothing for a row that could not be graded
    exported = cli(env, "export", "--canvas", str(roster), str(out), "--course", str(course))
    assert exported.returncode == 0, exported.stderr
    cells = {line.rsplit(",", 5)[0].strip('"'): line.rsplit(",", 1)[1]
             for line in (out / "canvas.csv").read_text().splitlines()[2:]}
    assert cells == {"Alvarez, Ana": str(AUTO), "Baker, Ben": str(AUTO), "Mallory_101": ""}, cells
    assert "1 submission(s) could not be graded (left empty):" in exported.stdout
    assert "mallory (module 01):" in exported.stdout
