"""One writer of the class outputs (:mod:`grader.classroom.outputs`), through the real CLI.

A fixture submission with a written answer is graded unsandboxed (``--sandbox none``: the
report carries the no-sandbox warning), then ``manual export`` and ``manual import`` with a
real mark rewrite the outputs. The rewritten report must still say what ``grade`` said: the
warning (it vanished before) and the similarity threshold; the imported mark
reaches grades.json, grades.csv, the report and the student's feedback page, which never
shows the warning.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

from grader.base.paths import REPO_ROOT
from grader.checks.rubric import parse_rubric

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("outputs-cli")]

QUESTION = "01.fx_written"
ANSWER = "The hidden layer has **16** units; a wider one would overfit sooner."
QUESTION_TOML = f'''
[[checks]]
id = "{QUESTION}"
kind = "manual"
cell = "ex-written"
points = 2
description = "Written: why 16 hidden units"
guide = "One point per reason."
'''


def _cli(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLCOURSE_KEY_FILE": str(root / "key"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _solution_with_question(root: Path):
    """The fixture solution with a Markdown exercise cell for :data:`QUESTION`."""
    path = root / "01_fixture.toml"
    path.write_text(fx.RUBRIC_TOML + QUESTION_TOML, encoding="utf-8")
    solution = fx.build_solution(parse_rubric(path))
    cell = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\nSixteen is enough.\n### END SOLUTION")
    cell["id"] = "ex-written"
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "ex_ex-written", "locked": False,
                                 "points": 0, "schema_version": 3, "solution": True}
    solution.cells.insert(len(solution.cells) - 1, cell)
    nbformat.validate(solution)
    return solution


def _similarity_text(report: str) -> str:
    found = re.search(r'<section id="similarity">.*?</p>', report, re.S)
    assert found, report[:2000]
    return found.group(0)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("outputs-cli")
    solution = _solution_with_question(root)
    fx.write(solution, root / "solution.ipynb")
    fx.write(fx.submission(solution, **{"ex-written": ANSWER}), root / "subs" / "ada" / "01_fixture.ipynb")
    proc = _cli(root, "grade", str(root / "subs"), "--out", str(root / "out"), "--fast",
                "--sandbox", "none", "--rubric", str(root / "01_fixture.toml"),
                "--solution", str(root / "solution.ipynb"), "--import", "helpers_notebooks")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_manual_import_rewrites_the_outputs_as_grade_wrote_them(graded):
    root, out = graded, graded / "out"
    before = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="sandbox-warning"' in before and "WITHOUT a sandbox" in before
    (row,) = json.loads((out / "grades.json").read_text())
    (check,) = [c for c in row["checks"] if c["id"] == QUESTION]
    assert not check["graded"] and check["points"] == 0
    automatic = row["score"]

    proc = _cli(root, "manual", "export", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = out / "manual" / "scores.csv"
    table = list(csv.DictReader(io.StringIO(scores.read_text(encoding="utf-8"))))
    (entry,) = [r for r in table if r["student"] == "ada" and r["question"] == QUESTION]
    entry["points"], entry["comment"] = "1.5", "Clear on the width, say why it overfits."
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    scores.write_text(buffer.getvalue(), encoding="utf-8")
    (out / "report.html").unlink()  # only the import can write it again

    proc = _cli(root, "manual", "import", str(out), str(scores), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="sandbox-warning"' in report and "WITHOUT a sandbox" in report
    assert _similarity_text(report) == _similarity_text(before)  # same threshold
    (row,) = json.loads((out / "grades.json").read_text())
    (check,) = [c for c in row["checks"] if c["id"] == QUESTION]
    assert check["graded"] and check["points"] == 1.5
    assert row["score"] == pytest.approx(automatic + 1.5)
    (csv_row,) = [r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))
                  if r["student"] == "ada"]
    assert csv_row[QUESTION] == "1.5"
    page = (out / "feedback" / "ada.html").read_text(encoding="utf-8")
    assert "Clear on the width" in page and "WITHOUT a sandbox" not in page


def test_pages_describe_the_checks_of_the_rubric_graded_with(graded):
    """Graded with ``--rubric``, the pages take each check's description from that rubric (as
    recorded in rubrics.json), not from the course's rubric of the same module number, which
    has no such check (the description was missing before)."""
    page = (graded / "out" / "feedback" / "ada.html").read_text(encoding="utf-8")
    assert "Written: why 16 hidden units" in page
    record = json.loads((graded / "out" / "rubrics.json").read_text(encoding="utf-8"))
    assert record["modules"]["01"]["descriptions"][QUESTION] == "Written: why 16 hidden units"
