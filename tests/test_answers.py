"""Digests of by-hand answers: one canonical text per answer, whatever its Python type."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from grader.__main__ import main
from grader.base.paths import REPO_ROOT
from grader.checks.answers import NotAnAnswer, canonical, digest, matches, position_digests
from grader.checks.kinds import Context, run_check
from grader.checks.rubric import CheckSpec


@pytest.mark.parametrize("value", [1234, 1234.0, np.int64(1234), np.int32(1234), np.float32(1234),
                                   np.float64(1234.0), np.array(1234), 1234 + 1e-12])
def test_whole_numbers_of_any_type_share_one_text(value):
    assert canonical(value) == "1234"


@pytest.mark.parametrize("a, b", [
    ([0, 1, 0], [0.0, 1.0, 0.0]), ([0, 1, 0], np.array([0.0, 1.0, 0.0])), ((1, 2), [1, 2]),
    ([[1, 2], [3, 4]], np.arange(1, 5).reshape(2, 2)), (0.5, np.float64(0.5)), (-3, -3.0),
    (True, np.bool_(True)), (" Adam ", "adam"),
])
def test_equal_answers_give_equal_texts(a, b):
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize("a, b", [(True, 1), (False, 0), ("1", 1), (0.5, 0.25), ([1, 2], [2, 1]),
                                  ([1, 2], [1, 2, 0]), (None, 0)])
def test_different_answers_give_different_texts(a, b):
    assert canonical(a) != canonical(b)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": 1}, object()])
def test_values_without_a_canonical_text(value):
    with pytest.raises(NotAnAnswer):
        canonical(value)


def test_digest_is_salted_with_the_check_id():
    assert digest("03.a", 1234) != digest("03.b", 1234)
    assert digest("03.a", 1234) == digest("03.a", 1234.0)
    assert position_digests("02.x", [5, 5]) == [digest("02.x[0]", 5), digest("02.x[1]", 5)]
    assert position_digests("02.x", [5, 5])[0] != position_digests("02.x", [5, 5])[1]


def test_a_numeric_string_is_also_read_as_the_number():
    answer = digest("03.a", 1234)
    assert matches("03.a", "1234", answer) and matches("03.a", "1,234", answer)
    assert not matches("03.a", "1235", answer) and not matches("03.a", {"x": 1}, answer)


def _spec(answer, **kw):
    return CheckSpec(id="03.a", kind="value", objects=("x",), points=1.0, answer_sha256=answer,
                     hint="count them", **kw)


def test_value_check_against_a_digest():
    spec = _spec(digest("03.a", 1234))
    ctx = Context(mode="fast")
    assert run_check(spec, {"x": 1234}, ctx).message == "`x` = 1,234"
    wrong = run_check(spec, {"x": 1233.5}, ctx)
    assert not wrong.passed and wrong.message == "`x` = 1233.5 is not the right answer; hint: count them"
    assert "placeholder" in run_check(spec, {"x": ...}, ctx).message


def test_per_position_digests_name_the_wrong_entries_and_the_length():
    spec = _spec(tuple(position_digests("03.a", [10, 20, 30])))
    ctx = Context(mode="fast")
    assert run_check(spec, {"x": np.array([10.0, 20.0, 30.0])}, ctx).passed
    assert run_check(spec, {"x": [10, 21, 31]}, ctx).message.startswith(
        "`x[1]`, `x[2]` are not right; hint:")
    assert run_check(spec, {"x": [10, 20]}, ctx).message.startswith("`x` should hold 3 values, found 2")
    assert run_check(spec, {"x": 10}, ctx).message.startswith("`x` should be a list of 3 values")


def test_literal_and_reference_values_never_print_the_expected_value():
    ctx = Context(mode="fast")
    for expected, found in [(1234, 1233), (0.41, 0.5), ([1, 2, 3], [1, 2, 4]), (True, False)]:
        spec = CheckSpec(id="03.a", kind="value", objects=("x",), points=1.0, expected=expected,
                         tolerance=0.005 if isinstance(expected, float) else 0.0)
        result = run_check(spec, {"x": found}, ctx)
        assert not result.passed
        for text in ("1234", "1,234", "0.41", "[1, 2, 3]", "True"):
            assert text not in result.message, (expected, result.message)


def test_digest_cli_prints_the_rubric_line(capsys):
    assert main(["digest", "03.a", "1234.0"]) == 0
    assert capsys.readouterr().out.strip() == f'answer_sha256 = "{digest("03.a", 1234)}"'
    assert main(["digest", "02.x", "[5, 5]", "--per-position"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("answer_sha256 = [") and all(d in out for d in position_digests("02.x", [5, 5]))
    assert main(["digest", "02.x", "5", "--per-position"]) == 2


def test_digest_cli_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "grader", "digest", "03.a", "1234"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    assert digest("03.a", 1234) in done.stdout
