"""Issue 23: Canvas's Download Submissions zip, the late policy, export into the roster's own
assignment column, through the real CLI (fixture module 01 in fast mode, real kernels).

The zip holds ana (on time), ben (``_LATE``; a broken first file and a good resubmission
``-1``), a user not on the roster, a ``../`` member and an oversized member of cora's. The
roster is ``;``-separated with decimal commas. A second batch grades a folder as ``canvas
pull`` writes it (``canvas-pull.json`` with submission times): ana 1 day 23 hours late at
10 % per day (-20 %), ben late by Canvas's clock but inside his extension. Then a written
answer is imported by hand and the penalty still applies.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest
from test_identity_cli import WRITTEN_TOML, _solution

from grader.base.course import LatePolicy
from grader.base.paths import REPO_ROOT
from grader.classroom.late import apply_late, late_line, parse_time
from grader.lms.canvas_zip import MAX_FILE_BYTES, parse_name
from grader.lms.gradebook_csv import read_roster_table

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("canvas-intake")]

AUTO = 7  # the fixture's automatic points; the written question adds 2
BROKEN = '{"cells": [ not json'
ROSTER = ("Student;ID;SIS User ID;SIS Login ID;Section;Quiz 1 (99);Module 01 (4321)\n"
          "    Points Possible;;;;;2,5;9,0\n"
          "Alvarez, Ana;101;s101;ana.alvarez;A;1,5;\n"
          "Baker, Ben;102;s102;ben.baker;A;2,0;\n"
          "Cruz, Cora;103;s103;cora.cruz;A;0,5;\n")
COURSE = '''
[late]
penalty_per_day = 0.10
max_penalty = 0.50
grace_minutes = 15

[extensions]
"ben.baker" = { "01" = 2027-03-03T23:59:00Z }

[canvas]
assignments = { "01" = 4321 }
student_key = "login"
'''
PULL = {"modules": {"01": {"assignment_id": 4321, "due_at": "2027-03-01T23:59:00Z"}},
        "submissions": {
            "ana.alvarez": {"01": {"submitted_at": "2027-03-03T22:59:00Z", "late": True,
                                   "seconds_late": 169200, "user_id": 101,
                                   "file": "ana.alvarez/01_fixture.ipynb"}},
            "ben.baker": {"01": {"submitted_at": "2027-03-03T20:00:00Z", "late": True,
                                 "seconds_late": 158460, "user_id": 102,
                                 "file": "ben.baker/01_fixture.ipynb"}}}}


def run(env: dict, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, data_dir) -> dict:
    root = tmp_path_factory.mktemp("canvas")
    toml = root / "rubric" / "01_fixture.toml"
    toml.parent.mkdir()
    fx.build_rubric(toml.parent)
    toml.write_text(fx.RUBRIC_TOML + WRITTEN_TOML, encoding="utf-8")
    from grader.checks.rubric import parse_rubric

    solution = _solution(parse_rubric(toml))
    good = fx.submission(solution, **{"ex-written": "The gradient points downhill."})
    text = nbformat.writes(good)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    course = root / "course.toml"
    course.write_text(COURSE, encoding="utf-8")
    roster = root / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    (root / "evil.ipynb").write_text("victim file", encoding="utf-8")
    common = ["--fast", "--jobs", "2", "--cell-timeout", "120", "--rubric", str(toml),
              "--solution", str(solution_path), "--import", "helpers_notebooks",
              "--course", str(course)]
    return {"root": root, "text": text, "common": common, "course": course, "roster": roster,
            "env": fx.cli_env(root)}


@pytest.fixture(scope="module")
def zipped(setup) -> dict:
    root = setup["root"]
    archive = root / "submissions.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("alvarezana_101_5551234_01_fixture.ipynb", setup["text"])
        z.writestr("bakerben_LATE_102_5551240_01_fixture.ipynb", BROKEN)
        z.writestr("bakerben_LATE_102_5551299_01_fixture-1.ipynb", setup["text"])
        z.writestr("mallorymal_999_5551300_01_fixture.ipynb", setup["text"])
        z.writestr("../evil.ipynb", "overwritten")
        z.writestr("../../evil.ipynb", "overwritten")
        z.writestr("cruzcora_103_5551301_01_fixture.ipynb", b"\0" * (MAX_FILE_BYTES + 1024))
    out = root / "zip-out"
    proc = run(setup["env"], "grade", str(archive), "--roster", str(setup["roster"]),
               "--out", str(out), *setup["common"])
    rows = json.loads((out / "grades.json").read_text()) if proc.returncode == 0 else []
    return {"proc": proc, "out": out, "rows": {r["name"]: r for r in rows}}


def test_a_canvas_zip_is_graded_by_roster_login_with_late_marker_and_resubmission(zipped):
    proc, rows = zipped["proc"], zipped["rows"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(rows) == {"ana.alvarez", "ben.baker"}
    ana, ben = rows["ana.alvarez"], rows["ben.baker"]
    assert ana["score"] == AUTO and ana["raw_score"] == AUTO and ana["late"] is None
    # ben's broken first file is superseded by his resubmission -1, which is graded in full
    assert ben["error"] is None and ben["raw_score"] == AUTO and ben["score"] == AUTO
    assert ben["late"]["flag"] == "late_marker_without_time" and ben["late"]["penalty"] == 0
    assert ben["late"]["deducted"] == 0 and ben["late"]["source"] == "canvas-zip"
    out = proc.stdout
    assert "bakerben_LATE_102_5551240_01_fixture.ipynb superseded by" in out
    assert "Canvas user 999 is not on the roster" in out
    assert "Cruz, Cora (ID 103) cora.cruz" in out.split("without a submission")[1]
    assert "cruzcora_103_5551301_01_fixture.ipynb: larger than 50 MB" in out
    report = (zipped["out"] / "report.html").read_text(encoding="utf-8")
    assert "Canvas user 999 is not on the roster" in report and "cora.cruz" in report
    assert "submission time is not known here: flagged, no late penalty" in report


def test_a_hostile_zip_writes_nothing_outside_its_folder(zipped, setup):
    assert zipped["proc"].returncode == 0
    assert (setup["root"] / "evil.ipynb").read_text() == "victim file"
    assert not list(setup["root"].rglob("evil.ipynb"))[1:]
    assert "'../evil.ipynb': a zip member inside a folder" in zipped["proc"].stdout
    staged = zipped["out"] / "canvas-submissions"
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*.ipynb")) == \
        ["ana.alvarez/01_fixture.ipynb", "ben.baker/01_fixture.ipynb"]
    assert zipped["rows"]["ana.alvarez"]["score"] == AUTO  # the victim's row is intact


def test_the_unpacked_folder_is_the_same_class(zipped, setup):
    """Canvas's zip unpacked by hand: same students, same files, so nothing is graded again."""
    folder = setup["root"] / "unpacked"
    folder.mkdir()
    with zipfile.ZipFile(setup["root"] / "submissions.zip") as z:
        for info in z.infolist():
            if "/" not in info.filename and info.file_size < MAX_FILE_BYTES:
                (folder / info.filename).write_bytes(z.read(info))
    proc = run(setup["env"], "grade", str(folder), "--roster", str(setup["roster"]),
               "--out", str(zipped["out"]), *setup["common"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "graded 0 submission(s), 2 already up to date" in proc.stdout
    assert "superseded by bakerben_LATE_102_5551299_01_fixture-1.ipynb" in proc.stdout
    rows = {r["name"]: r for r in json.loads((zipped["out"] / "grades.json").read_text())}
    assert rows["ben.baker"]["late"]["flag"] == "late_marker_without_time"
    assert rows["ana.alvarez"]["score"] == AUTO


def _table(path: Path, sep: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8")), delimiter=sep))


def test_export_fills_the_rosters_own_column_in_its_dialect(zipped, setup):
    proc = run(setup["env"], "export", "--canvas", str(setup["roster"]), str(zipped["out"]),
               "--course", str(setup["course"]))
    assert proc.returncode == 0, proc.stderr
    lines = _table(zipped["out"] / "canvas.csv", ";")
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                        "Module 01 (4321)"]  # Quiz 1 left out, no new column
    cells = {line[0]: line[-1] for line in lines[2:]}
    assert cells == {"Alvarez, Ana": "7", "Baker, Ben": "7", "Cruz, Cora": ""}
    assert lines[1][-1] == "9"


def test_export_without_a_course_file_names_the_columns_and_the_fix(zipped, setup, tmp_path):
    """Without a course file the export uses the settings the batch was graded with (signed
    in OUT); with neither, it stops and names the roster's columns and the fix."""
    proc = run(setup["env"], "export", "--canvas", str(setup["roster"]), str(zipped["out"]),
               "--output", str(tmp_path / "canvas.csv"))
    assert proc.returncode == 0 and "course-settings.json" in proc.stderr, proc.stderr
    record = zipped["out"] / "course-settings.json"
    record.rename(tmp_path / "kept.json")
    try:
        proc = run(setup["env"], "export", "--canvas", str(setup["roster"]), str(zipped["out"]))
    finally:
        (tmp_path / "kept.json").rename(record)
    assert proc.returncode == 2
    assert "'Quiz 1 (99)', 'Module 01 (4321)'" in proc.stderr
    assert "[canvas] assignments" in proc.stderr and "Fix:" in proc.stderr


@pytest.fixture(scope="module")
def pulled(setup) -> dict:
    root = setup["root"]
    folder = root / "pulled"
    for key in ("ana.alvarez", "ben.baker"):
        (folder / key).mkdir(parents=True)
        (folder / key / "01_fixture.ipynb").write_text(setup["text"], encoding="utf-8")
    (folder / "canvas-pull.json").write_text(json.dumps(PULL), encoding="utf-8")
    out = root / "pull-out"
    proc = run(setup["env"], "grade", str(folder), "--out", str(out), *setup["common"])
    rows = json.loads((out / "grades.json").read_text()) if proc.returncode == 0 else []
    return {"proc": proc, "out": out, "rows": {r["name"]: r for r in rows}}


def test_a_pulled_folder_is_penalised_per_started_day_and_extensions_count(pulled):
    assert pulled["proc"].returncode == 0, pulled["proc"].stderr[-3000:]
    ana, ben = pulled["rows"]["ana.alvarez"], pulled["rows"]["ben.baker"]
    assert ana["raw_score"] == AUTO and ana["score"] == pytest.approx(AUTO * 0.8)
    late = ana["late"]
    assert (late["days_late"], late["penalty"], late["seconds_late"]) == (2, 0.2, 169200)
    assert late["due_at"] == "2027-03-01T23:59:00Z" and late["deducted"] == pytest.approx(1.4)
    assert ben["late"] is None and ben["score"] == AUTO  # Canvas said late; his extension holds
    page = (pulled["out"] / "feedback" / "ana.alvarez.html").read_text(encoding="utf-8")
    assert "submitted 1 day 23 hours late: -20 %" in page
    lines = _table(pulled["out"] / "grades.csv", ",")
    row = dict(zip(lines[0], next(line for line in lines if line[1] == "ana.alvarez"), strict=True))
    assert (row["01 total"], row["01 raw"], row["01 late penalty"]) == ("5.6", "7", "0.2")
    report = (pulled["out"] / "report.html").read_text(encoding="utf-8")
    assert "01: submitted 1 day 23 hours late: -20 %" in report


def test_manual_marks_imported_later_get_the_same_penalty(pulled, setup, tmp_path):
    out = pulled["out"]
    assert run(setup["env"], "manual", "export", str(out)).returncode == 0
    lines = list(csv.reader(io.StringIO((out / "manual" / "scores.csv").read_text())))
    header = lines[0]
    for line in lines[1:]:
        line[header.index("points")] = "2"
    scores = tmp_path / "scores.csv"
    scores.write_text("\n".join(",".join(f'"{c}"' for c in line) for line in lines) + "\n")
    proc = run(setup["env"], "manual", "import", str(out), str(scores))
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads((out / "grades.json").read_text())}
    assert rows["ana.alvarez"]["raw_score"] == AUTO + 2
    assert rows["ana.alvarez"]["score"] == pytest.approx((AUTO + 2) * 0.8)
    assert rows["ben.baker"]["score"] == AUTO + 2


# ---- pure parts ------------------------------------------------------------------------


def test_canvas_names_parse_with_late_marker_and_attempt():
    parsed = parse_name("bakerben_LATE_102_5551240_02_dense_mnist_fashion-2.ipynb")
    assert (parsed.user_id, parsed.submission_id, parsed.late, parsed.attempt, parsed.original) \
        == (102, 5551240, True, 2, "02_dense_mnist_fashion.ipynb")
    assert parse_name("02_dense_mnist_fashion.ipynb") is None


@pytest.mark.parametrize(("minutes_late", "days", "penalty"), [
    (10, 0, 0.0), (16, 1, 0.1), (24 * 60 + 15, 1, 0.1), (24 * 60 + 16, 2, 0.2),
    (30 * 24 * 60, 30, 0.5)])
def test_penalty_counts_started_days_after_the_grace_up_to_the_cap(minutes_late, days, penalty):
    due = parse_time("2027-03-01T23:59:00Z")
    from datetime import timedelta

    line = late_line(submitted_at=due + timedelta(minutes=minutes_late), due_at=due,
                     marker=False, policy=LatePolicy(0.1, 0.5, 15), source="test")
    assert (line["days_late"], line["penalty"]) == (days, penalty)


def test_applying_the_penalty_twice_changes_nothing():
    from grader.checks.results import GradeRow

    line = {"penalty": 0.2}
    once = apply_late(GradeRow("a", "01", 10.0, 10.0, None), line)
    assert (once.score, once.raw_score) == (8.0, 10.0)
    assert apply_late(once, line).score == 8.0


def test_a_semicolon_roster_with_decimal_commas_is_read(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(ROSTER, encoding="utf-8")
    roster = read_roster_table(path)
    assert roster.delimiter == ";" and roster.decimal_comma
    assert [s["SIS Login ID"] for s in roster.students] == ["ana.alvarez", "ben.baker", "cora.cruz"]
    assert roster.assignment_columns() == {99: "Quiz 1 (99)", 4321: "Module 01 (4321)"}
    assert roster.number(5.6) == "5,6"


def test_an_edited_late_record_is_ignored_with_a_warning(tmp_path, monkeypatch, capsys):
    from grader.classroom.late import LateRecord, load_record, save_record

    monkeypatch.setenv("DLCOURSE_KEY_FILE", str(tmp_path / "key"))
    save_record(tmp_path, LateRecord(lines={"ana": {"01": {"penalty": 0.2}}}))
    assert load_record(tmp_path).line("ANA", "01") == {"penalty": 0.2}
    path = tmp_path / "late.json"
    path.write_text(path.read_text().replace("0.2", "0.0"))
    assert load_record(tmp_path).lines == {}
    assert "not signed by this grader" in capsys.readouterr().err
