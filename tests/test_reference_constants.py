"""The grader's re-runs use the lessons' own constants.

An experiment check re-runs a configuration with constants copied into
``grader/checks/references/lesson0N.py`` (epochs, batch sizes, sample counts per mode). If a lesson
changes one in its locked cells, honest students would fail the re-run: this test reads the
solution notebooks' assignments (``NAME = value`` or ``NAME = a if FAST else b``) and
compares.
"""

from __future__ import annotations

import ast

import pytest

from grader.authoring.release import load_solution
from grader.checks.references import lesson01, lesson02, lesson03, lesson04
from grader.checks.rubric import load_rubric

#: (module, reference module, names compared).
CASES = [
    ("01", lesson01, ["LEARNING_RATES", "SWEEP_EPOCHS", "BATCH_SIZE", "VAL_FRACTION",
                      "BATCH_SIZES", "BATCH_SWEEP_SAMPLES", "BATCH_SWEEP_EPOCHS"]),
    ("02", lesson02, ["BATCH_SIZE", "FASHION_EPOCHS", "ARCH_EPOCHS"]),
    ("03", lesson03, ["BATCH_SIZE", "LEARNING_RATES", "LR_EPOCHS", "SWEEP_EPOCHS",
                      "VAL_FRACTION"]),
    ("04", lesson04, ["BATCH_SIZE", "SPLIT_SEED", "TUNE_SIZE", "TUNE_EPOCHS", "GRID_SIZE",
                      "GRID_EPOCHS", "CV", "DROPOUT_RATES", "OPTIMIZERS"]),
]


def lesson_constants(module: str) -> dict[str, dict[str, object]]:
    """NAME -> {"full": value, "fast": value} for the solution's constant assignments."""
    found: dict[str, dict[str, object]] = {}
    for cell in load_solution(load_rubric(module)).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                continue
            value = node.value
            try:
                if (isinstance(value, ast.IfExp) and isinstance(value.test, ast.Name)
                        and value.test.id == "FAST"):
                    pair = {"fast": ast.literal_eval(value.body),
                            "full": ast.literal_eval(value.orelse)}
                else:
                    same = ast.literal_eval(value)
                    pair = {"fast": same, "full": same}
            except ValueError:
                continue
            found.setdefault(node.targets[0].id, pair)
    return found


def as_modes(value) -> dict[str, object]:
    if isinstance(value, dict):
        return value
    return {"fast": value, "full": value}


def normal(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize(("module", "reference", "names"), CASES, ids=[c[0] for c in CASES])
def test_rerun_constants_match_the_lesson(module, reference, names):
    lesson = lesson_constants(module)
    for name in names:
        assert name in lesson, f"lesson {module} no longer assigns {name}"
        mine = as_modes(getattr(reference, name))
        for mode in ("fast", "full"):
            assert normal(mine[mode]) == normal(lesson[name][mode]), (module, name, mode)
