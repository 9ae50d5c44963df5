"""Discussions of written questions stay with the instructor until the deadline.

The released notebooks and the student edition keep each discussion cell (same id, same
place) with only its heading; ``python -m grader release --discussions MODULE DIR`` writes
them, each under its question, for handing out afterwards. Run through the real CLI.
"""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from grader.authoring.discussions import (
    HANDED_OUT_LATER,
    discussions_markdown,
    hide_discussions,
    is_discussion,
)
from grader.authoring.edition import edition_notebooks, parse_repository
from grader.authoring.release import load_solution
from grader.base.errors import NotebookFormatError
from grader.base.paths import NOTEBOOKS_DIR, REPO_ROOT
from grader.checks.rubric import load_rubric

LESSON04 = load_solution(load_rubric("04"))
DISCUSSIONS = [cell for cell in LESSON04.cells if is_discussion(cell)]


def _body_lines(cell) -> list[str]:
    """The discussion's own lines, long enough not to occur elsewhere by chance."""
    return [line.strip() for line in cell.source.splitlines()[1:] if len(line.strip()) >= 25]


def _grader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", "release", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_lesson_04_discusses_questions_4b_to_4f():
    headings = [cell.source.splitlines()[0] for cell in DISCUSSIONS]
    assert [h.split(":")[0] for h in headings] == [
        f"### Discussion of 4.{q}" for q in "BCDEF"]
    assert all(_body_lines(cell) for cell in DISCUSSIONS)


def test_released_notebook_keeps_the_cells_but_not_their_text():
    released = nbformat.read(str(NOTEBOOKS_DIR / "04_cnn_cifar10.ipynb"), as_version=4)
    by_id = {cell.get("id"): cell for cell in released.cells}
    text = (NOTEBOOKS_DIR / "04_cnn_cifar10.ipynb").read_text(encoding="utf-8")
    for cell in DISCUSSIONS:
        shown = by_id[cell.get("id")]
        assert shown.source == f"{cell.source.splitlines()[0]}\n\n{HANDED_OUT_LATER}"
        for line in _body_lines(cell):
            assert line not in text, line


def test_student_edition_leaves_the_discussions_out():
    repo = parse_repository("https://github.com/acme/dl-student", "test")
    edition = "\n".join(edition_notebooks(repo).values())
    for cell in DISCUSSIONS:
        for line in _body_lines(cell):
            assert line not in edition, line


def test_hand_out_after_the_deadline_through_the_cli(tmp_path):
    out = tmp_path / "after-deadline"
    done = _grader("--discussions", "04", str(out))
    assert done.returncode == 0, done.stderr
    handout = out / "04_cnn_cifar10_discussions.md"
    assert str(handout) in done.stdout
    text = handout.read_text(encoding="utf-8")
    position = -1
    for letter, cell in zip("BCDEF", DISCUSSIONS, strict=True):
        question = text.index(f"> **Written question 4.{letter}")
        assert position < question < text.index(cell.source.strip())  # question, then answer
        position = text.index(cell.source.strip())
    assert [p.name for p in out.iterdir()] == [handout.name]


@pytest.mark.parametrize(("module", "extra", "expected"), [
    ("05", [], "expected a module in"),
    ("01", [], "01_mlp_cifar10_gray.ipynb has no discussion cells"),
    ("04", ["--check"], "goes alone"),
])
def test_hand_out_errors_name_the_problem(tmp_path, module, extra, expected):
    done = _grader("--discussions", module, str(tmp_path / "out"), *extra)
    assert done.returncode == 2
    assert expected in done.stderr
    assert not (tmp_path / "out").exists()


def test_hand_out_into_a_file_is_refused_and_the_file_kept(tmp_path):
    target = tmp_path / "notes.md"
    target.write_text("mine\n")
    done = _grader("--discussions", "04", str(target))
    assert done.returncode == 2 and "is a file; expected a folder" in done.stderr
    assert target.read_text() == "mine\n"


def test_a_discussion_tag_on_an_answer_cell_is_an_authoring_error():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_markdown_cell("### Discussion of 1.x\n\nthe answer", id="d1")
    cell.metadata = {"tags": ["discussion"],
                     "nbgrader": {"solution": True, "grade": True, "locked": False}}
    nb.cells = [cell]
    with pytest.raises(NotebookFormatError, match="expected a locked Markdown cell"):
        hide_discussions(nb)
    with pytest.raises(NotebookFormatError, match="d1 is tagged 'discussion'"):
        discussions_markdown(nb, "tiny")
