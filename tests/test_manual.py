"""Written answers graded by hand and the Canvas export, through the real CLI.

Two students' module 02 submissions (``examples/submissions``: ada answered everything; ben's
copy gets a written answer with Markdown and HTML in it) are graded once in fast mode into a
module-scoped folder; the tests then export, import bad and good score files, and export for
Canvas, in file order (they share the folder, so they stay in one xdist group).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.base.paths import REPO_ROOT
from grader.checks.rubric import load_rubric

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("manual-grading")]

QUESTION = "02.fashion_written"
ANSWER_CELL = "m02-073"
BEN_ANSWER = "Ben says **more epochs** help <script>alert('x')</script> & shirts ~ coats."
EXAMPLES = REPO_ROOT / "examples" / "submissions"


def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def rows(out: Path) -> dict[str, dict]:
    return {r["student"]: r for r in json.loads((out / "grades.json").read_text())}


def scores_csv(lines: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "module", "question", "max_points", "points", "comment"])
    writer.writerows(lines)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("manual")
    for student in ("ada", "ben"):
        (root / "subs" / student).mkdir(parents=True)
        shutil.copy(EXAMPLES / student / "02_dense_mnist_fashion.ipynb", root / "subs" / student)
    ben = root / "subs" / "ben" / "02_dense_mnist_fashion.ipynb"
    nb = nbformat.read(ben, as_version=4)
    (cell,) = [c for c in nb.cells if c.id == ANSWER_CELL]
    cell.source = BEN_ANSWER
    nbformat.write(nb, ben)
    out = root / "out"
    proc = run("grade", str(root / "subs"), "--out", str(out), "--fast", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_grade_lists_written_questions_as_awaiting_manual_grading(graded):
    total = load_rubric("02").total_points
    for student, row in rows(graded).items():
        assert row["max_score"] == total, student
        (check,) = [c for c in row["checks"] if c["id"] == QUESTION]
        assert check["points"] == 0 and check["max_points"] == 2 and not check["graded"]
        assert check["message"] == "awaiting manual grading"
        assert "answers" not in row  # the answers stay in the signed results
    table = list(csv.DictReader(io.StringIO((graded / "grades.csv").read_text())))
    assert table[0]["student"] == "Points Possible" and table[0][QUESTION] == "2"
    assert {r[QUESTION] for r in table[1:]} == {""}  # pending: empty, counted apart
    assert {r["pending"] for r in table[1:]} == {"1"}
    report = (graded / "report.html").read_text()
    assert "Written answers (graded by hand)" in report and "2 answer(s) still ungraded" in report


def test_export_writes_scores_and_a_page_per_question(graded):
    proc = run("manual", "export", str(graded))
    assert proc.returncode == 0, proc.stderr
    table = list(csv.DictReader(io.StringIO((graded / "manual" / "scores.csv").read_text())))
    assert [(r["student"], r["question"], r["max_points"], r["points"]) for r in table] == [
        ("ada", QUESTION, "2", ""), ("ben", QUESTION, "2", "")]
    page = (graded / "manual" / f"{QUESTION}.html").read_text()
    assert "<strong>more epochs</strong>" in page  # Markdown rendered
    assert "<script>alert" not in page and "&lt;script&gt;" in page  # HTML escaped
    assert "<em>Confidence.</em>" in page  # ada's answer, from the example class
    assert "Marking guide:" in page and 'id="hide"' in page
    assert page.count('<article id="answer-') == 2
    index = (graded / "manual" / "index.html").read_text()
    assert f'href="{QUESTION}.html"' in index


@pytest.mark.parametrize("line, expected", [
    (["zoe", "02", QUESTION, "2", "1", ""], "line 2 (zoe, 02.fashion_written): unknown student"),
    (["ada", "02", QUESTION, "2", "3", ""], "line 2 (ada, 02.fashion_written): points 3 outside"),
    (["ada", "02", "02.nope", "2", "1", ""], "line 2 (ada, 02.nope): unknown question"),
    (["ada", "02", QUESTION, "2", "lots", ""], "line 2 (ada, 02.fashion_written): points 'lots'"),
])
def test_import_refuses_bad_rows_and_changes_nothing(graded, tmp_path, line, expected):
    before = (graded / "grades.json").read_text()
    scores = tmp_path / "scores.csv"
    scores.write_text(scores_csv([["ben", "02", QUESTION, "2", "1", "fine"], line]).replace(
        "line 2", "line 3"))
    proc = run("manual", "import", str(graded), str(scores))
    assert proc.returncode == 2
    assert expected.replace("line 2", "line 3") in proc.stderr, proc.stderr
    assert "nothing was changed" in proc.stderr
    assert (graded / "grades.json").read_text() == before
    assert not (graded / "manual" / "marks.json").exists()


def test_import_refuses_a_malformed_file(graded, tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text("student,module,points\nada,02,1\n")
    proc = run("manual", "import", str(graded), str(scores))
    assert proc.returncode == 2 and "missing column(s) question" in proc.stderr, proc.stderr
    scores.write_text(scores_csv([["ben", "02", QUESTION, "2", "1", ""]])
                      + 'ada,02,02.fashion_written,2,2,"unclosed\n')
    proc = run("manual", "import", str(graded), str(scores))
    assert proc.returncode == 2 and "line 3: not valid CSV" in proc.stderr, proc.stderr
    scores.write_text(scores_csv([]) + "ada,02,02.fashion_written\n")
    proc = run("manual", "import", str(graded), str(scores))
    assert proc.returncode == 2 and "line 2: expected 6 fields, found 3" in proc.stderr, proc.stderr
    assert not (graded / "manual" / "marks.json").exists()


def test_import_gives_ada_full_marks_and_leaves_ben_unchanged(graded, tmp_path):
    before = rows(graded)
    scores = tmp_path / "scores.csv"
    scores.write_text(scores_csv([["ada", "02", QUESTION, "2", "2", "Clear, with numbers."],
                                  ["ben", "02", QUESTION, "2", "", ""]]))
    proc = run("manual", "import", str(graded), str(scores))
    assert proc.returncode == 0, proc.stderr
    assert "1 written answer(s) still ungraded" in proc.stdout
    after = rows(graded)
    ada = after["ada"]
    assert ada["score"] == ada["max_score"] == before["ada"]["max_score"]
    (check,) = [c for c in ada["checks"] if c["id"] == QUESTION]
    assert check["points"] == 2 and check["graded"] and check["comment"] == "Clear, with numbers."
    assert after["ben"] == before["ben"]
    assert "Clear, with numbers." in (graded / "feedback" / "ada.html").read_text()
    assert "Clear, with numbers." not in (graded / "feedback" / "ben.html").read_text()
    report = (graded / "report.html").read_text()
    assert "1 answer(s) still ungraded" in report and "2.00 / 2" in report
    table = {r["student"]: r for r in csv.DictReader(io.StringIO((graded / "grades.csv").read_text()))}
    assert table["ada"][QUESTION] == "2" and table["ben"][QUESTION] == ""
    assert (table["ada"]["pending"], table["ben"]["pending"]) == ("0", "1")


def test_export_again_keeps_graded_rows_and_grading_again_keeps_the_marks(graded, data_dir,
                                                                           tmp_path):
    # Import ada's mark here too: this test must not depend on the order tests run in
    # (importing the same mark twice changes nothing).
    scores = tmp_path / "scores.csv"
    scores.write_text(scores_csv([["ada", "02", QUESTION, "2", "2", "Clear, with numbers."]]))
    assert run("manual", "import", str(graded), str(scores)).returncode == 0
    assert run("manual", "export", str(graded)).returncode == 0
    table = {r["student"]: r for r in csv.DictReader(
        io.StringIO((graded / "manual" / "scores.csv").read_text()))}
    assert (table["ada"]["points"], table["ada"]["comment"]) == ("2", "Clear, with numbers.")
    assert table["ben"]["points"] == ""
    subs = graded.parent / "subs"
    proc = run("grade", str(subs), "--out", str(graded), "--fast", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ada = rows(graded)["ada"]
    assert ada["score"] == ada["max_score"]


def test_canvas_export_matches_the_roster(graded, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (101),Module 2 (4321)\n"
                      "    Points Possible,,,,,10,12\n"
                      "\"Lovelace, Ada\",11,s11,ADA,A,9,\n"
                      "\"Young, Cyd\",13,s13,cyd,A,7,\n")
    course = tmp_path / "course.toml"
    course.write_text('[canvas]\nassignments = { "02" = 4321 }\n')
    proc = run("export", "--canvas", str(roster), str(graded), "--course", str(course))
    assert proc.returncode == 0, proc.stderr
    assert "Young, Cyd" in proc.stdout and "without a submission" in proc.stdout
    assert "ben" in proc.stdout.split("without a roster row")[1]
    lines = list(csv.reader(io.StringIO((graded / "canvas.csv").read_text())))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                        "Module 2 (4321)"]  # the roster's own column; Quiz 1 left out
    # Canvas imports on the assignment's scale: the roster says 12 points, the rubric 13
    total = load_rubric("02").total_points
    assert lines[1][0] == "Points Possible" and lines[1][-1] == "12"
    ada = rows(graded)["ada"]
    assert lines[2] == ["Lovelace, Ada", "11", "s11", "ADA", "A",
                        f"{round(ada['score'] * 12 / total, 2):g}"]
    assert f"is worth 12 points in Canvas, the rubric {total:g}" in proc.stdout
    assert lines[3] == ["Young, Cyd", "13", "s13", "cyd", "A", ""]
    assert len(lines) == 4


def test_canvas_export_refuses_a_roster_without_the_match_column(graded, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("Name,Email\nAda,ada@example.org\n")
    proc = run("export", "--canvas", str(roster), str(graded))
    assert proc.returncode == 2
    assert "expected at least Student and SIS Login ID" in proc.stderr, proc.stderr


def test_a_mark_is_dropped_when_the_answer_changes(tmp_path, monkeypatch):
    """Unit level: marks apply only to the answer they graded; forged marks are ignored."""
    from grader.checks.results import GradeRow
    from grader.classroom.manual import MarkStore, attach_questions

    monkeypatch.setenv("DLCOURSE_KEY_FILE", str(tmp_path / "key"))
    rubric = load_rubric("02")
    nb = nbformat.read(EXAMPLES / "ada" / "02_dense_mnist_fashion.ipynb", as_version=4)

    def fresh(answer: str) -> GradeRow:
        (cell,) = [c for c in nb.cells if c.id == ANSWER_CELL]
        cell.source = answer
        row = GradeRow("ada", "02", 0.0, rubric.max_score, None)  # no automatic checks here
        return attach_questions(row, nbformat.writes(nb).encode(), rubric, tmp_path)

    from grader.classroom.manual import Mark, answer_digest

    MarkStore(tmp_path).save({("ada", "02", QUESTION): Mark(
        "ada", "02", QUESTION, 1.5, "ok", answer_digest("first answer"))})
    row = fresh("first answer")
    assert row.score == 1.5 and row.max_score == rubric.total_points
    row = fresh("a different answer")
    assert row.score == 0 and row.checks[-1].message == "awaiting manual grading"
    row = fresh("YOUR ANSWER HERE")
    assert row.checks[-1].graded and row.checks[-1].points == 0
    marks = tmp_path / "manual" / "marks.json"
    marks.write_text(marks.read_text().replace("1.5", "2"))  # forged: signature breaks
    assert fresh("first answer").score == 0
