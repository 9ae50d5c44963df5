"""Release: solution blocks become stubs, outputs go, metadata stays, runs are idempotent."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from grader.authoring.cells import (
    CODE_STUB,
    cell_names,
    exercise_labels,
    normalize,
    student_cell,
    validate,
)
from grader.authoring.release import check_release, release, student_notebook, write_text
from grader.base.errors import NotebookFormatError
from grader.checks.rubric import parse_rubric
from grader.submission.parameters import inject_parameters

RUBRIC = """
module = "01"
notebook = "01_tiny.ipynb"
dataset = "mnist"

[[checks]]
id = "01.answer"
kind = "value"
objects = ["answer"]
points = 2
expected = 42
"""


@pytest.fixture
def rubric(tmp_path):
    path = tmp_path / "01.toml"
    path.write_text(RUBRIC)
    return parse_rubric(path)


def _solution(rubric):
    v4 = nbformat.v4
    nb = v4.new_notebook()
    params = v4.new_code_cell("FAST = None\nSEED = 42", metadata={"tags": ["parameters"]})
    exercise = v4.new_code_cell("x = 1\n### BEGIN SOLUTION\nanswer = 6 * 7\n### END SOLUTION\nprint(x)")
    exercise.outputs = [v4.new_output("stream", text="1\n")]
    exercise.execution_count = 3
    nb.cells = [v4.new_markdown_cell("# Title"), params, exercise,
                v4.new_code_cell('check("01.answer", answer=answer)'),
                v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION")]
    nb.cells[-1].metadata["nbgrader"] = {"solution": True}
    normalize(nb, rubric)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def test_normalize_marks_roles_and_points(rubric):
    nb = _solution(rubric)
    meta = [c.metadata["nbgrader"] for c in nb.cells]
    assert [m["solution"] for m in meta] == [False, False, True, False, True]
    assert meta[3]["grade"] and meta[3]["points"] == 2 and meta[3]["grade_id"] == "check_01_answer"
    assert meta[4]["grade"] and meta[4]["points"] == 0, "nbgrader needs written answers graded"
    assert all(m["locked"] for i, m in enumerate(meta) if i not in (2, 4))
    validate(nb, rubric, "tiny")


def test_student_version_replaces_only_the_solution_block(rubric):
    student = student_notebook(_solution(rubric))
    code = student.cells[2].source
    assert code == "x = 1\n" + CODE_STUB + "\nprint(x)"
    assert "6 * 7" not in write_text(student) and "Because." not in write_text(student)
    assert student.cells[4].source == "YOUR ANSWER HERE"
    assert student.metadata["dlcourse"]["module"] == "01"
    assert student.cells[3].metadata["nbgrader"]["grade_id"] == "check_01_answer"
    assert student.cells[3].metadata["deletable"] is False


def test_student_cell_clears_outputs():
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 5
    out = student_cell(cell)
    assert out.outputs == [] and out.execution_count is None
    assert cell.outputs, "the input cell is left unchanged"


def test_validate_lists_problems(rubric):
    nb = _solution(rubric)
    nb.cells[3].source = "print('no check here')"
    nb.cells[1].metadata["tags"] = []
    nb.cells[0].metadata.pop("nbgrader")
    with pytest.raises(NotebookFormatError) as info:
        validate(nb, rubric, "tiny")
    text = str(info.value)
    for expected in ("no nbgrader metadata", "calls no check", "with no self-check cell",
                     "exactly one cell tagged 'parameters'"):
        assert expected in text


def test_release_is_idempotent_and_check_spots_edits(rubric, tmp_path, monkeypatch):
    import grader.authoring.release as rel

    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    (solutions / "01_tiny.ipynb").write_text(write_text(_solution(rubric)))
    monkeypatch.setattr(rel, "load_rubric", lambda module: rubric)
    kwargs = dict(solutions_dir=solutions, notebooks_dir=notebooks, modules=["01"])
    release(**kwargs)
    first = (notebooks / "01_tiny.ipynb").read_text()
    release(**kwargs)
    assert (notebooks / "01_tiny.ipynb").read_text() == first
    assert check_release(**kwargs) == []
    nb = nbformat.reads(first, as_version=4)
    nb.cells[0].source = "# Edited title"
    (notebooks / "01_tiny.ipynb").write_text(write_text(nb))
    problems = check_release(**kwargs)
    assert problems == [f"01_tiny.ipynb: cell {nb.cells[0].id} differs from the solution's release"]


def test_inject_parameters_goes_after_the_parameters_cell(rubric):
    nb = _solution(rubric)
    index = inject_parameters(nb, FAST=True, SEED=3)
    assert index == 2 and nb.cells[2].source.endswith("FAST = True\nSEED = 3")
    inject_parameters(nb, FAST=False)
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    with pytest.raises(ValueError, match="literal value"):
        inject_parameters(nb, FAST=[1])


@pytest.mark.parametrize("path", sorted(Path("solutions").glob("0*.ipynb")), ids=lambda p: p.name)
def test_feedback_names_the_exercise_the_placeholder_names(path):
    """A student reads one name per exercise: the placeholder's ("Exercise 4.13: replace this
    line") and the feedback's (cell_names) agree, also below a text that mentions another
    exercise (lesson 04's Step 10 speaks of Exercise 4.12 before Exercise 4.13)."""
    nb = nbformat.read(path, as_version=4)
    labels, names = exercise_labels(nb), cell_names(nb)
    assert labels
    for cid, label in labels.items():
        assert names[cid] == f"Exercise {label}" or names[cid].startswith(f"Exercise {label}, "), \
            (cid, label, names[cid])
