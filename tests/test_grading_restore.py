"""Restoring protected cells from the solution, by cell id and nbgrader grade_id."""

from __future__ import annotations

import helpers_notebooks as fx
import pytest

from grader.authoring.cells import CODE_STUB
from grader.submission.restore import restore


@pytest.fixture(scope="module")
def solution(tmp_path_factory):
    return fx.build_solution(fx.build_rubric(tmp_path_factory.mktemp("rubric")))


def sources(nb) -> dict[str, str]:
    return {c["id"]: c.source for c in nb.cells}


def test_when_solution_submitted_then_nothing_to_note(solution):
    out = restore(fx.submission(solution), solution)
    assert out.notes == []
    assert sources(out.nb)["ex-model"] == fx.EX_MODEL


def test_when_self_check_edited_then_course_version_restored(solution):
    nb = fx.submission(solution, **{"check-params": 'print("correct")'})
    out = restore(nb, solution)
    assert sources(out.nb)["check-params"] == 'check("01.fx_params", model=model)'
    assert out.edited == ["check_01_fx_params"]
    assert "edited protected" in out.notes[0]


def test_when_protected_cells_deleted_then_restored_in_solution_order(solution):
    nb = fx.submission(solution)
    nb.cells = [c for c in nb.cells if c["id"] not in {"setup", "check-done"}]
    out = restore(nb, solution)
    assert [c["id"] for c in out.nb.cells] == [c["id"] for c in solution.cells]
    assert out.deleted == ["locked_setup", "check_01_fx_done"]


def test_exercise_cells_matched_by_grade_id_even_when_moved_and_renamed(solution):
    nb = fx.submission(solution, model="model = 'mine'")
    cell = next(c for c in nb.cells if c["id"] == "ex-model")
    nb.cells.remove(cell)
    cell["id"] = "renamed-by-colab"
    nb.cells.insert(0, cell)
    out = restore(nb, solution)
    assert sources(out.nb)["ex-model"] == "model = 'mine'"
    assert out.dropped == [] and out.missing_exercises == []


def test_when_student_adds_cells_then_they_are_dropped_and_noted(solution):
    import nbformat

    nb = fx.submission(solution)
    extra = nbformat.v4.new_code_cell("import os; os.system('echo hi')")
    extra["id"] = "student-extra"
    nb.cells.insert(3, extra)
    out = restore(nb, solution)
    assert "student-extra" not in sources(out.nb)
    assert out.dropped == ["student-extra"] and "ignored 1 cell" in out.notes[-1]


def test_when_exercise_cell_deleted_then_blank_stub_and_note(solution):
    nb = fx.submission(solution)
    nb.cells = [c for c in nb.cells if c["id"] != "ex-value"]
    out = restore(nb, solution)
    assert CODE_STUB in sources(out.nb)["ex-value"]
    assert out.missing_exercises and "graded as blank" in out.notes[0]


def test_when_an_exercise_cell_is_pasted_twice_then_the_last_copy_is_graded(solution):
    """Jupyter keeps the nbgrader metadata of a copied cell: the stale first copy must not win."""
    import copy

    nb = fx.submission(solution, value="param_bytes = 1  # first try")
    index = next(i for i, c in enumerate(nb.cells) if c["id"] == "ex-value")
    later = copy.deepcopy(nb.cells[index])
    later["id"] = "pasted-copy"
    later.source = "param_bytes = model.count_params() * 4  # fixed"
    nb.cells.insert(index + 2, later)  # after the self-check, where a student would paste it
    out = restore(nb, solution)
    assert sources(out.nb)["ex-value"] == later.source
    assert any("more than once" in n and "last copy" in n for n in out.notes), out.notes
    assert not any("you added" in n for n in out.notes)
