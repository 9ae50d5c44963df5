"""Contract over every module whose solution exists (scikit-learn ``test_common`` style).

In fast mode, with the real grader:

* the solution, handed in as a submission, earns full marks and none of its cells raises;
* the released blank notebook earns nothing (checks of what the lesson's locked cells build
  or train are worth 0 points), every check worth points needs an object that the
  student's exercise cells define, and every written question worth points grades a Markdown
  exercise cell the student writes;
* ``python -m grader release --check`` passes.

Each notebook is graded once: every test reads exactly one (module, kind) pair from the
session fixture ``lesson_graded`` (tests/shared_batches.py), which other files read too
(``tests/test_fake_results_cli.py`` reads lesson 01's solution); each pair's readers share an
``xdist_group``, so ``pytest -n 2 --dist loadgroup`` spreads the eight gradings over both
workers and grades each on one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from shared_batches import shared_mark

from grader.authoring.cells import role
from grader.authoring.release import available_modules, load_solution
from grader.base.paths import MODULES, REPO_ROOT
from grader.checks.rubric import load_rubric

FOUND = available_modules()


def _module_params(kind: str):
    return [pytest.param(m, marks=shared_mark(m, kind)) if m in FOUND else
            pytest.param(m, marks=pytest.mark.skip(reason=f"no solution for module {m} yet"))
            for m in MODULES]


def _code_nodes(solution, *, exercise: bool):
    """AST nodes of the solution's code cells that are (or are not) exercise cells."""
    for cell in solution.cells:
        if cell.cell_type != "code" or (role(cell) == "exercise") != exercise:
            continue
        try:
            yield from ast.walk(ast.parse(cell.source))
        except SyntaxError:
            continue


def _exercise_names(solution) -> set[str]:
    """Names assigned or defined in the solution's exercise cells."""
    names: set[str] = set()
    for node in _code_nodes(solution, exercise=True):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _built_from(solution, functions: set[str]) -> set[str]:
    """Names the lesson's own cells assign from a call to a student-written function
    (``intro_model = create_model_intro()``)."""
    names: set[str] = set()
    for node in _code_nodes(solution, exercise=False):
        if isinstance(node, ast.Assign) and any(
                isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                and call.func.id in functions for call in ast.walk(node.value)):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


@pytest.mark.notebook
@pytest.mark.parametrize("module", _module_params("solution"))
def test_solution_earns_full_marks_and_runs_cleanly(lesson_graded, module):
    row, executed = lesson_graded(module, "solution")
    assert row.error is None, row.error
    failed = [(c.id, c.message) for c in row.checks if not c.passed]
    assert failed == [], failed
    assert row.score == row.max_score > 0
    errors = [(c.get("id"), o.get("ename"), o.get("evalue"))
              for c in executed.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == [], errors


@pytest.mark.notebook
@pytest.mark.parametrize("module", _module_params("blank"))
def test_blank_release_earns_nothing(lesson_graded, module):
    row, _ = lesson_graded(module, "blank")
    assert row.error is None, row.error
    earned = [(c.id, c.points, c.message) for c in row.checks if c.points > 0]
    assert earned == [], f"a blank notebook earns points: {earned}"
    assert row.score == 0


@pytest.mark.parametrize("module", FOUND)
def test_points_follow_what_students_write(module):
    """Every check worth points needs an object the student's exercise cells define."""
    rubric = load_rubric(module)
    solution = load_solution(rubric)
    answered = _exercise_names(solution)
    answered |= _built_from(solution, answered)
    free = [c.id for c in rubric.checks
            if c.points > 0 and not any(name in answered for name in c.objects)]
    assert free == [], f"checks worth points that grade only the lesson's own code: {free}"
    # Written questions (kind = "manual") grade a Markdown cell, not an object: that cell must
    # be an exercise cell, so the student writes it (released as the placeholder).
    from grader.authoring.cells import MARKDOWN_STUB
    from grader.authoring.release import student_notebook

    released = {c.id: c for c in student_notebook(solution).cells}
    cells = {c.id: c for c in solution.cells}
    locked = [q.id for q in rubric.questions
              if q.points > 0 and (q.cell not in cells or role(cells[q.cell]) != "exercise"
                                   or cells[q.cell].cell_type != "markdown"
                                   or released[q.cell].source != MARKDOWN_STUB)]
    assert locked == [], f"written questions whose answer cell students cannot write: {locked}"


def test_release_check_passes():
    proc = subprocess.run([sys.executable, "-m", "grader", "release", "--check"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_every_module_with_a_rubric_has_a_solution():
    rubrics = [m for m in MODULES
               if (Path(REPO_ROOT) / "grader" / "checks" / "rubrics" / f"{m}.toml").exists()]
    assert set(rubrics) <= set(FOUND), f"rubrics without a solution: {set(rubrics) - set(FOUND)}"
