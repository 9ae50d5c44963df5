"""Student identity and the gradebook files, through the real CLI.

One batch of the tiny fixture module (``python -m grader grade SUBS ... --fast --rubric
--solution --import``), graded with a custom rubric of 9 points (the fixture's 7 automatic
points and a 2-point written question; the course's lesson 01 rubric has 12), holds:

* ``victim/01_fixture.ipynb``, an honest full-marks notebook, and ``mallory/``, who hands in
  a poor notebook twice, once as ``mallory/victim.ipynb`` (a file name claiming another
  student's id): mallory gets one error row for the collision, victim keeps her score;
* ``-A1-A2/`` and ``=1+2/``: names a spreadsheet would run as formulas;
* ``ana@uni.edu/`` and ``ben smith/`` (broken files): Canvas logins that are not file-safe ids;
* ``sam/`` (full marks) and ``ſam/`` (U+017F, a broken file) and ``Tom/`` + ``tom/`` (both
  broken): names that casefold together.

Broken files and collisions are graded without a kernel, so only three notebooks run. The tests then read
grades.csv, export the manual scores, import them back and export for Canvas, in file order
(they share the folder, so they stay in one xdist group).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

from grader.base.paths import REPO_ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("identity-cli")]

QUESTION = "01.fx_written"
WRITTEN_CELL = "ex-written"
RUBRIC_TOTAL = 9  # fx.RUBRIC_TOML's 7 automatic points + the 2-point written question
WRITTEN_TOML = f'''
[[checks]]
id = "{QUESTION}"
kind = "manual"
cell = "{WRITTEN_CELL}"
points = 2
description = "Why does the loss go down?"
guide = "One point per sensible reason."
'''
WRONG_MODEL = '''model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])'''
FORMULA_START = tuple("=+-@\t\r")
BROKEN = '{"cells": [ not json'


def _solution(rubric):
    nb = fx.build_solution(rubric)
    cell = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nThe optimiser follows the"
                                         " gradient.\n### END SOLUTION")
    cell["id"] = WRITTEN_CELL
    nb.cells.insert(len(nb.cells) - 1, cell)
    from grader.authoring.cells import normalize

    normalize(nb, rubric)
    return nb


def cli(batch: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO_ROOT,
                          env=batch["env"], capture_output=True, text=True, timeout=timeout)


def table(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory, data_dir) -> dict:
    root = tmp_path_factory.mktemp("identity")
    toml = root / "rubric" / "01_fixture.toml"
    toml.parent.mkdir()
    rubric = fx.build_rubric(toml.parent)
    toml.write_text(fx.RUBRIC_TOML + WRITTEN_TOML, encoding="utf-8")
    from grader.checks.rubric import parse_rubric

    rubric = parse_rubric(toml)
    assert rubric.total_points == RUBRIC_TOTAL
    solution = _solution(rubric)
    solution_path = fx.write(solution, root / "solution" / "01_fixture.ipynb")
    answer = {WRITTEN_CELL: "Because *gradient descent* lowers it."}
    good = fx.submission(solution, **answer)
    poor = fx.submission(solution, model=WRONG_MODEL, value="param_bytes = 1", **answer)
    subs = root / "subs"
    for student in ("victim", "-A1-A2", "sam"):
        fx.write(good, subs / student / "01_fixture.ipynb")
    fx.write(poor, subs / "mallory" / "01_fixture.ipynb")
    fx.write(poor, subs / "mallory" / "victim.ipynb")
    for student in ("=1+2", "ana@uni.edu", "ben smith", "\u017fam", "Tom", "tom"):
        (subs / student).mkdir(parents=True)
        (subs / student / "01_fixture.ipynb").write_text(BROKEN, encoding="utf-8")
    before = {p: sha(p) for p in subs.rglob("*.ipynb")}
    out = root / "out"
    env = fx.cli_env(root)
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast",
         "--jobs", "2", "--cell-timeout", "120", "--rubric", str(toml), "--solution",
         str(solution_path), "--import", "helpers_notebooks"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500)
    rows = json.loads((out / "grades.json").read_text(encoding="utf-8")) if proc.returncode == 0 \
        else []
    return {"proc": proc, "out": out, "subs": subs, "before": before, "toml": toml, "env": env,
            "rows": rows}


def _row(batch: dict, name: str) -> dict:
    found = [r for r in batch["rows"] if r.get("name", r["student"]) == name]
    assert len(found) == 1, (name, [r["student"] for r in batch["rows"]])
    return found[0]


def test_a_file_named_after_another_student_never_takes_her_row(batch):
    proc = batch["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    victim = _row(batch, "victim")
    assert victim["student"] == "victim" and victim["error"] is None
    assert victim["score"] == RUBRIC_TOTAL - 2  # full automatic marks, the answer still pending
    assert victim["submission"].endswith("victim/01_fixture.ipynb")
    assert not [r for r in batch["rows"] if "+" in r["student"]]  # nobody was renamed
    mallory = _row(batch, "mallory")
    assert mallory["score"] == 0
    assert mallory["error"].startswith("two submissions for module 01: mallory/01_fixture.ipynb,"
                                       " mallory/victim.ipynb; keep one")
    assert "mallory" in proc.stdout and "two submissions for module 01" in proc.stdout
    report = (batch["out"] / "report.html").read_text(encoding="utf-8")
    assert "two submissions for module 01" in report
    assert {p: sha(p) for p in batch["subs"].rglob("*.ipynb")} == batch["before"]


def _neutral(cell: str) -> bool:
    return not cell.startswith(FORMULA_START)


def test_grades_csv_has_a_points_row_numbers_and_no_formulas(batch):
    lines = table(batch["out"] / "grades.csv")
    header, points, students = lines[0], lines[1], lines[2:]
    assert header[:2] == ["student", "name"] and header[-2:] == ["total", "pending"]
    assert points[0] == "Points Possible"
    assert float(points[header.index("01 total")]) == RUBRIC_TOTAL
    assert float(points[header.index(QUESTION)]) == 2
    assert float(points[header.index("total")]) == RUBRIC_TOTAL
    numeric = [i for i, h in enumerate(header) if h not in ("student", "name")]
    for line in lines[1:]:
        assert all(_neutral(cell) for cell in line), line
        for i in numeric:
            if line[i]:
                float(line[i])  # every score cell is a number (or empty)
    by_name = {line[1]: dict(zip(header, line, strict=True)) for line in students}
    victim = by_name["victim"]
    assert victim[QUESTION] == "" and victim["pending"] == "1"
    assert float(victim["01 total"]) == RUBRIC_TOTAL - 2
    assert by_name["'=1+2"]["student"] != "'=1+2"  # the id is file-safe, the name kept
    formula = by_name["'-A1-A2"]
    assert formula["student"] == "'-A1-A2"
    assert float(formula["01 total"]) == RUBRIC_TOTAL - 2
    assert by_name["ana@uni.edu"]["name"] == "ana@uni.edu"
    assert by_name["ben smith"]["pending"] == "0"  # a broken file has nothing to grade by hand


def test_manual_scores_are_neutralised_and_import_back(batch, tmp_path):
    proc = cli(batch, "manual", "export", str(batch["out"]))
    assert proc.returncode == 0, proc.stderr
    lines = table(batch["out"] / "manual" / "scores.csv")
    assert all(_neutral(cell) for line in lines for cell in line)
    header = lines[0]
    students = [line[header.index("student")] for line in lines[1:]]
    assert "'-A1-A2" in students and "-A1-A2" not in students
    filled = io.StringIO()
    writer = csv.writer(filled, lineterminator="\n")
    writer.writerow(header)
    for line in lines[1:]:
        if line[0] == "'-A1-A2":
            line[header.index("points")], line[header.index("comment")] = "2", "=good"
        writer.writerow(line)
    scores = tmp_path / "scores.csv"
    scores.write_text(filled.getvalue(), encoding="utf-8")
    proc = cli(batch, "manual", "import", str(batch["out"]), str(scores))
    assert proc.returncode == 0, proc.stderr
    rows = {r["student"]: r for r in json.loads((batch["out"] / "grades.json").read_text())}
    (check,) = [c for c in rows["-A1-A2"]["checks"] if c["id"] == QUESTION]
    assert check["graded"] and check["points"] == 2 and check["comment"] == "=good"
    assert rows["-A1-A2"]["score"] == RUBRIC_TOTAL
    assert rows["victim"]["score"] == RUBRIC_TOTAL - 2  # nobody else changed
    again = cli(batch, "manual", "export", str(batch["out"]))
    assert again.returncode == 0, again.stderr
    kept = {line[0]: line for line in table(batch["out"] / "manual" / "scores.csv")}
    assert kept["'-A1-A2"][header.index("comment")] == "'=good"
    line = {ln[1]: ln for ln in table(batch["out"] / "grades.csv")}["'-A1-A2"]
    assert line[0] == "'-A1-A2"


ROSTER = ("Student,ID,SIS User ID,SIS Login ID,Section,Lesson 1 (4320)\n"
          "    Points Possible,,,,,9\n"
          "Ana,1,s1,ana@uni.edu,A,\n"
          "Ben,2,s2,ben smith,A,\n"
          "Sam,3,s3,Sam,A,\n"
          "Tom,4,s4,tom,A,\n"
          "Victim,5,s5,victim,A,\n"
          "Formula,6,s6,-A1-A2,A,\n")


def _canvas(batch: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict, list]:
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    course = tmp_path / "course.toml"
    course.write_text('[canvas]\nassignments = { "01" = 4320 }\n', encoding="utf-8")
    proc = cli(batch, "export", "--canvas", str(roster), str(batch["out"]), "--course",
               str(course))
    assert proc.returncode == 0, proc.stderr
    lines = table(batch["out"] / "canvas.csv")
    return proc, {line[0]: line[-1] for line in lines[2:]}, lines


def test_canvas_matches_the_names_the_instructor_gave(batch, tmp_path):
    proc, cells, lines = _canvas(batch, tmp_path)
    assert lines[0][-1] == "Lesson 1 (4320)"
    full = {"Victim", "Sam"}  # honest notebooks: automatic points in full
    assert {s: cells[s] for s in full} == dict.fromkeys(full, f"{RUBRIC_TOTAL - 2:g}")
    rows = {r["student"]: r for r in json.loads((batch["out"] / "grades.json").read_text())}
    assert cells["Formula"] == f"{rows['-A1-A2']['score']:g}"  # with or without the import
    # "ana@uni.edu" and "ben smith" hand in broken files: rows that could not be graded keep
    # an empty cell and are listed by the names given, as `canvas push` sends nothing for them
    assert (cells["Ana"], cells["Ben"]) == ("", "")
    failed = proc.stdout.split("could not be graded (left empty):")[1]
    assert "ana@uni.edu (module 01):" in failed and "ben smith (module 01):" in failed
    unknown = proc.stdout.split("without a roster row")[1].split("could not be graded")[0]
    assert "ana@uni.edu" not in unknown and "ben smith" not in unknown
    # ſam (U+017F) is not sam: sam keeps her own grade (above), ſam is listed, not merged
    assert "\u017fam" in proc.stdout.split("without a roster row")[1]
    # Tom and tom both match the roster's "tom": the cell stays empty and both are listed
    assert cells["Tom"] == ""
    conflict = [line for line in proc.stdout.splitlines() if "Tom (" in line]
    assert conflict and "Tom" in conflict[0] and "tom" in conflict[0].split("match")[1]
    assert all(_neutral(cell) for line in lines for cell in line)


def test_canvas_points_come_from_the_graded_rubric_even_after_it_changed(batch, tmp_path):
    toml = batch["toml"]
    original = toml.read_text(encoding="utf-8")
    try:
        toml.write_text(original.replace("points = 2\ndescription", "points = 5\ndescription"),
                        encoding="utf-8")
        proc, _, lines = _canvas(batch, tmp_path)
        assert lines[1][0] == "Points Possible" and float(lines[1][-1]) == RUBRIC_TOTAL
        assert "rubric of module 01" in proc.stderr and "has changed" in proc.stderr, proc.stderr
        scores = tmp_path / "scores.csv"
        scores.write_text("student,module,question,max_points,points,comment\n")
        imported = cli(batch, "manual", "import", str(batch["out"]), str(scores))
        assert imported.returncode == 0, imported.stderr
        assert "has changed" in (batch["out"] / "report.html").read_text(encoding="utf-8")
    finally:
        toml.write_text(original, encoding="utf-8")
