"""Rubric loading: the real rubrics load; malformed ones fail naming file and check."""

from __future__ import annotations

import pytest

from grader.base.errors import RubricError
from grader.base.paths import MODULES, RUBRIC_DIR
from grader.checks.rubric import load_rubric, parse_rubric

GOOD = """
module = "01"
notebook = "01_x.ipynb"
dataset = "cifar10"

[[checks]]
id = "01.model_params"
kind = "param_count"
objects = ["model"]
points = 1
expected = 10
"""


def _write(tmp_path, text):
    path = tmp_path / "01.toml"
    path.write_text(text)
    return path


def test_minimal_rubric_parses(tmp_path):
    rubric = parse_rubric(_write(tmp_path, GOOD))
    assert rubric.max_score == 1.0
    assert rubric.get("01.model_params").grade_id == "check_01_model_params"
    assert rubric.exported_objects == ("model",)


@pytest.mark.parametrize(
    "change, match",
    [
        (('kind = "param_count"', 'kind = "vibes"'), "unknown kind 'vibes'"),
        (("points = 1\n", ""), "missing required field 'points'"),
        (('id = "01.model_params"', 'id = "02.model_params"'), "expected an id of the form '01"),
        (("expected = 10", "expected = 10\nthreshold = 3"), "unknown field"),
        (("expected = 10", ""), "param_count needs expected"),
        (('objects = ["model"]', 'objects = ["not a name"]'), "list of Python names"),
        (("expected = 10", 'answer_sha256 = "abc"'), "64-digit lowercase hex"),
        (("expected = 10", f'expected = 10\nanswer_sha256 = "{"a" * 64}"'), "not both"),
        (("expected = 10", f'answer_sha256 = ["{"a" * 64}"]'), "one answer_sha256 string"),
        (("expected = 10", 'expected = 10\nhint = 3'), "hint must be a string"),
    ],
)
def test_malformed_rubric_names_file_and_check(tmp_path, change, match):
    path = _write(tmp_path, GOOD.replace(*change))
    with pytest.raises(RubricError, match=match) as info:
        parse_rubric(path)
    assert str(path) in str(info.value)


DESIGN = GOOD.replace('kind = "param_count"', 'kind = "design"').replace(
    "expected = 10", 'max_params = 1000\nmin_layers = {"*Conv2D" = 2}')


def test_design_check_parses_its_budget_and_layer_patterns(tmp_path):
    spec = parse_rubric(_write(tmp_path, DESIGN)).get("01.model_params")
    assert spec.kind == "design" and spec.max_params == 1000
    assert spec.min_layers == (("*Conv2D", 2),)


@pytest.mark.parametrize(
    "change, match",
    [
        (("max_params = 1000\n", ""), "design needs max_params"),
        (("max_params = 1000", "max_params = 0"), "design needs max_params"),
        (("max_params = 1000", "max_params = true"), "design needs max_params"),
        (('{"*Conv2D" = 2}', '{"*Conv2D" = 0}'), "min_layers must be a table"),
        (('{"*Conv2D" = 2}', '["Conv2D"]'), "min_layers must be a table"),
        (("max_params = 1000", "max_params = 1000\nexpected = 3"), "unknown field"),
    ],
)
def test_malformed_design_check_is_refused(tmp_path, change, match):
    with pytest.raises(RubricError, match=match):
        parse_rubric(_write(tmp_path, DESIGN.replace(*change)))


def test_accuracy_needs_both_thresholds(tmp_path):
    text = GOOD + """
[[checks]]
id = "01.acc"
kind = "accuracy"
objects = ["model"]
points = 1
threshold = { full = 0.4 }
"""
    with pytest.raises(RubricError, match=r"01.acc.*threshold = \{full"):
        parse_rubric(_write(tmp_path, text))


def test_unknown_reference_is_rejected(tmp_path):
    text = GOOD + """
[[checks]]
id = "01.val"
kind = "value"
objects = ["x"]
points = 1
reference = "no_such_reference"
"""
    with pytest.raises(RubricError, match="no_such_reference"):
        parse_rubric(_write(tmp_path, text))


VALUE = GOOD + """
[[checks]]
id = "01.val"
kind = "value"
objects = ["x"]
points = 1
"""


@pytest.mark.parametrize(
    "fields, match",
    [
        ('expected = 3\nreference = "model_accuracy"', "exactly one of expected, answer_sha256"),
        ('expected = 3\nanswer_sha256 = "' + "b" * 64 + '"', "exactly one of expected"),
        ('answer_sha256 = "' + "b" * 64 + '"\ntolerance = 0.5', "remove the tolerance"),
    ],
)
def test_value_checks_take_one_source_of_truth(tmp_path, fields, match):
    with pytest.raises(RubricError, match=match):
        parse_rubric(_write(tmp_path, VALUE + fields + "\n"))


def test_value_check_with_digests_and_a_hint_parses(tmp_path):
    text = VALUE + 'answer_sha256 = ["' + "c" * 64 + '", "' + "d" * 64 + '"]\nhint = "add them"\n'
    check = parse_rubric(_write(tmp_path, text)).get("01.val")
    assert check.answer_sha256 == ("c" * 64, "d" * 64) and check.hint == "add them"


FIGURE = GOOD + """
[[checks]]
id = "01.plot"
kind = "figure"
objects = ["fig", "history"]
points = 1
"""


@pytest.mark.parametrize(
    "fields, match",
    [
        ("", "figure needs reference"),
        ('reference = "no_such_plot"', "no_such_plot"),
        ('reference = "history_curves"\ntolerance = 0.1', "unknown field.*'tolerance'.*'figure'"),
    ],
)
def test_figure_checks_need_a_known_reference_and_no_other_fields(tmp_path, fields, match):
    with pytest.raises(RubricError, match=match):
        parse_rubric(_write(tmp_path, FIGURE + fields + "\n"))


def test_figure_check_parses(tmp_path):
    text = FIGURE + 'reference = "history_curves"\nhint = "plot the history"\n'
    check = parse_rubric(_write(tmp_path, text)).get("01.plot")
    assert (check.kind, check.reference, check.objects) == ("figure", "history_curves",
                                                              ("fig", "history"))


@pytest.mark.parametrize("path", sorted(RUBRIC_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_rubrics_load(path):
    rubric = load_rubric(path.stem)
    assert rubric.checks and rubric.max_score > 0


def test_points_guide_lists_every_check_with_its_points():
    """docs/points.md's tables ("What each point rewards") stay true to the rubrics."""
    import re

    from grader.base.paths import REPO_ROOT

    text = (REPO_ROOT / "docs" / "points.md").read_text(encoding="utf-8")
    listed = {m.group(1): float(m.group(2))
              for m in re.finditer(r"^\| `(0\d\.\w+)` \| ([0-9.]+) \|", text, re.M)}
    for module in MODULES:
        rubric = load_rubric(module)
        assert f"**Lesson {module}: {rubric.total_points:g} points.**" in text
        for check in (*rubric.checks, *rubric.questions):
            assert listed.get(check.id) == check.points, check.id
    assert set(listed) == {c.id for m in MODULES for r in [load_rubric(m)]
                           for c in (*r.checks, *r.questions)}


MANUAL = """module = "01"
notebook = "01_x.ipynb"
dataset = "cifar10"

[[checks]]
id = "01.written"
kind = "manual"
points = 2
"""


def test_manual_question_parses_apart_from_the_automatic_checks(tmp_path):
    rubric = parse_rubric(_write(tmp_path, MANUAL + 'cell = "abc"\nguide = "say why"\n'))
    assert rubric.checks == () and rubric.max_score == 0
    (question,) = rubric.questions
    assert question.manual and question.cell == "abc" and question.guide == "say why"
    assert rubric.total_points == rubric.manual_points == 2
    assert rubric.question("01.written") is question


@pytest.mark.parametrize("fields, match", [
    ('guide = "say why"\n', "manual needs cell"),
    ('cell = "abc"\n', "manual needs guide"),
    ('cell = "abc"\nguide = "g"\nobjects = ["x"]\n', "unknown field"),
])
def test_manual_question_needs_a_cell_and_a_guide(tmp_path, fields, match):
    with pytest.raises(RubricError, match=match):
        parse_rubric(_write(tmp_path, MANUAL + fields))


def test_every_shipped_written_question_names_a_markdown_answer_cell():
    from grader.authoring.cells import role
    from grader.authoring.release import load_solution

    for module in MODULES:
        rubric = load_rubric(module)
        cells = {c.id: c for c in load_solution(rubric).cells}
        for question in rubric.questions:
            cell = cells[question.cell]
            assert cell.cell_type == "markdown" and role(cell) == "exercise", question.id
    assert len(load_rubric("04").questions) >= 5


def test_every_lesson_has_one_student_plot_worth_a_point():
    """Issue 13: each lesson grades one plot the student draws (a ``figure`` check)."""
    from grader.checks.references import REFERENCES

    for module in ("01", "02", "03", "04"):
        specs = [c for c in load_rubric(module).checks if c.kind == "figure"]
        assert len(specs) == 1 and specs[0].points == 1, module
        assert specs[0].reference in REFERENCES and len(specs[0].objects) == 2, module
