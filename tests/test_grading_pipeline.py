"""grade_submission end to end on the fixture module, in real kernels with real Keras.

Each test hands in one student notebook built in code (tests/helpers_notebooks.py) and
checks the GradeRow. The fixture's full score is 7: function 1, params 2, value 1,
accuracy 2, completed 1.
"""

from __future__ import annotations

from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

from grader.authoring.cells import cell_names
from grader.kernel.limits import Limits
from grader.pages.feedback import write_feedback
from grader.submission.grading import EXECUTED_NAME, grade_submission
from grader.submission.options import GradingOptions

pytestmark = pytest.mark.notebook  # each test runs one kernel: let xdist spread them

LIMITS = Limits(cell_timeout_s=40, notebook_timeout_s=300, export_timeout_s=60)


@pytest.fixture(scope="session")
def module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fixture-module")
    rubric = fx.build_rubric(folder)
    return rubric, fx.build_solution(rubric)


def grade(module, tmp_path: Path, nb, name: str = "alice.ipynb", limits: Limits = LIMITS,
          data_dir: str | None = None, **kw):
    rubric, solution = module
    path = fx.write(nb, tmp_path / "submissions" / name)
    options = GradingOptions.resolve(fast=True, rubric=rubric, solution=solution, limits=limits,
                                     data_dir=data_dir, **kw)
    return grade_submission(path, options, scratch_root=tmp_path / "scratch")


def points(row) -> dict[str, float]:
    return {c.id: c.points for c in row.checks}


def executed(tmp_path: Path):
    (path,) = (tmp_path / "scratch").glob(f"*/{EXECUTED_NAME}")
    return path


def test_when_solution_is_submitted_then_full_marks(module, tmp_path, data_dir):
    row = grade(module, tmp_path, fx.submission(module[1]), data_dir=data_dir)
    assert row.error is None, row.error
    assert row.score == row.max_score == 7, [c.message for c in row.checks]
    assert row.student == "alice"
    assert set(row.timings) == {"kernel_start", "execute", "slowest_cell", "export", "score"}
    assert row.timings["slowest_cell"] <= row.timings["execute"], row.timings
    assert all(v > 0 for v in row.timings.values()), row.timings


def test_when_blank_release_is_submitted_then_no_points(module, tmp_path, data_dir):
    row = grade(module, tmp_path, fx.released(module[1]), data_dir=data_dir)
    assert row.error is None
    assert row.score == 0, [(c.id, c.message) for c in row.checks if c.passed]
    assert "01.fx_done" in points(row)


def test_when_self_check_edited_to_print_correct_then_restored_and_no_effect(
        module, tmp_path, data_dir):
    wrong_model = fx.EX_MODEL.replace("Dense(16", "Dense(8")
    nb = fx.submission(module[1], model=wrong_model,
                       **{"check-params": 'print("[01.fx_params] correct: 12,730 parameters")'})
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    assert points(row)["01.fx_params"] == 0
    assert "8" in next(c.message for c in row.checks if c.id == "01.fx_params")
    name = cell_names(module[1])["check-params"]  # students read names, never internal ids
    assert any("edited protected" in n and name in n and "check-params" not in n
               for n in row.notes), row.notes
    text = executed(tmp_path).read_text()
    assert 'check(\\"01.fx_params\\", model=model)' in text  # the course's cell ran, not theirs


def test_when_protected_cells_deleted_then_restored_and_noted(module, tmp_path, data_dir):
    nb = fx.submission(module[1])
    nb.cells = [c for c in nb.cells if c["id"] not in {"setup", "load", "check-params", "intro"}]
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    assert row.score == 7, [c.message for c in row.checks]
    note = next(n for n in row.notes if "deleted protected" in n)
    names = cell_names(module[1])
    assert names["setup"] in note and names["check-params"] in note, note
    assert "locked_setup" not in note and "check_01_fx_params" not in note, note


PATCHES = '''
import numpy, sklearn.metrics
keras.Model.count_params = lambda self: 12730
numpy.mean = lambda *args, **kwargs: 1.0
sklearn.metrics.accuracy_score = lambda *args, **kwargs: 1.0
'''


def test_when_student_monkeypatches_their_kernel_then_grade_unaffected(
        module, tmp_path, data_dir):
    # A wrong, untrained model whose kernel swears it has the right count and accuracy.
    wrong = fx.EX_MODEL.replace("Dense(16", "Dense(4") + PATCHES
    nb = fx.submission(module[1], model=wrong, train="history = {'loss': [0.1]}")
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    got = points(row)
    assert got["01.fx_params"] == 0 and got["01.fx_accuracy"] == 0, row.checks
    assert "found [4, 10]" in next(c.message for c in row.checks if c.id == "01.fx_params")
    # ... and the same patches next to a correct answer cost nothing.
    nb = fx.submission(module[1], model=fx.EX_MODEL + PATCHES)
    row = grade(module, tmp_path / "ok", nb, data_dir=data_dir)
    assert row.score == 7, [c.message for c in row.checks]


CLAIMING_SUBCLASS = '''
class Claimed(keras.Sequential):
    def count_params(self):
        return 12730

model = Claimed([keras.Input(shape=(784,)), keras.layers.Dense(10, activation="softmax")])
'''

DUCK = '''
import types
model = types.SimpleNamespace(
    trainable_weights=[np.zeros(12730)], layers=[], predict=lambda x, **k: None,
    count_params=lambda: 12730, input_shape=(None, 784), output_shape=(None, 10))
'''


@pytest.mark.parametrize("source", [CLAIMING_SUBCLASS, DUCK], ids=["subclass", "duck-typed"])
def test_when_model_only_claims_the_right_parameter_count_then_no_points(
        module, tmp_path, data_dir, source):
    nb = fx.submission(module[1], model=source, value="param_bytes = 0",
                       train="history = {'loss': [0.1]}")
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    got = points(row)
    assert got["01.fx_params"] == 0 and got["01.fx_accuracy"] == 0, row.checks
    message = next(c.message for c in row.checks if c.id == "01.fx_params")
    assert "model" in message


def test_when_cell_prints_100_mb_then_output_capped(module, tmp_path, data_dir):
    loud = fx.EX_VALUE + "\nprint('x' * 100_000_000)\nfor _ in range(200):\n    print('y' * 100_000)"
    row = grade(module, tmp_path, fx.submission(module[1], value=loud), data_dir=data_dir)
    assert row.score == 7
    assert executed(tmp_path).stat().st_size < 3_000_000
    html, md = write_feedback(row, tmp_path / "feedback")
    assert html.stat().st_size < 100_000 and md.stat().st_size < 100_000
    assert any("output was cut" in n for n in row.notes)


def test_when_cell_loops_forever_then_limit_hits_and_later_checks_still_score(
        module, tmp_path, data_dir):
    nb = fx.submission(module[1], value="param_bytes = 50920\nwhile True:\n    pass")
    limits = Limits(cell_timeout_s=25, notebook_timeout_s=300, export_timeout_s=60)
    row = grade(module, tmp_path, nb, data_dir=data_dir, limits=limits)
    assert row.error is None
    name = cell_names(module[1])["ex-value"]
    assert any("time limit" in n and name in n for n in row.notes), row.notes
    got = points(row)
    assert got["01.fx_accuracy"] == 2 and got["01.fx_done"] == 1, row.checks
    assert got["01.fx_value"] == 1  # assigned before the loop: the artifact counts


def test_when_one_cell_has_a_syntax_error_then_later_checks_still_score(
        module, tmp_path, data_dir):
    nb = fx.submission(module[1], value="param_bytes = = 4 *")
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    got = points(row)
    assert got["01.fx_value"] == 0
    assert got["01.fx_accuracy"] == 2 and got["01.fx_done"] == 1 and got["01.fx_params"] == 2
    assert any("SyntaxError" in n for n in row.notes)


def test_when_kernel_exits_then_error_row_says_so(module, tmp_path, data_dir):
    nb = fx.submission(module[1], model="import os\nos._exit(1)")
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    name = cell_names(module[1])["ex-model"]
    assert row.error is not None and "died" in row.error and name in row.error, row.error
    assert row.score == 0 and len(row.checks) == 5


def test_when_kernel_blows_memory_then_it_is_stopped_and_reported(module, tmp_path, data_dir):
    hog = "blocks = []\nwhile True:\n    blocks.append(np.ones(25_000_000))"
    limits = Limits(cell_timeout_s=120, notebook_timeout_s=300, memory_mb=3000)
    row = grade(module, tmp_path, fx.submission(module[1], model=hog), data_dir=data_dir,
                limits=limits)
    assert row.error is not None and "3,000 MB" in row.error, row.error
    assert row.score == 0


def test_when_student_code_runs_then_it_sees_only_the_submission(module, tmp_path, data_dir):
    spy = fx.EX_VALUE + "\nimport os, json\nseen = sorted(os.listdir('.'))\nprint(seen)"
    nb = fx.submission(module[1], value=spy)
    row = grade(module, tmp_path, nb, data_dir=data_dir)
    assert row.score == 7
    cell = next(c for c in nbformat.read(str(executed(tmp_path)), as_version=4).cells
                if c["id"] == "ex-value")
    assert cell.outputs[0]["text"].strip() == "['submission.ipynb']"
