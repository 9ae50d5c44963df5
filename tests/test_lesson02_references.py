"""Unit tests for the lesson 02 references and rubric (no notebook runs, no real data)."""

from __future__ import annotations

import numpy as np
import pytest

import helpers.data
from grader.checks.answers import position_digests
from grader.checks.kinds import Context, run_check
from grader.checks.references import REFERENCES
from grader.checks.rubric import load_rubric


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_one_hot_row_is_checked_the_same_way_in_both_modes(mode, monkeypatch):
    """Exercise 2.1 states its label (6): the answer does not depend on the training data."""
    monkeypatch.setattr(helpers.data, "load_dataset", lambda *a, **k: pytest.fail("data read"))
    spec = load_rubric("02").get("02.one_hot_row")
    ctx = Context(mode=mode, dataset="mnist")
    right = [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert run_check(spec, {"one_hot_row": right}, ctx).passed
    assert run_check(spec, {"one_hot_row": np.eye(10, dtype="float32")[6]}, ctx).passed
    for wrong in (right[::-1], np.eye(10)[5].tolist(), right[:9], 6):
        assert not run_check(spec, {"one_hot_row": wrong}, ctx).passed


def test_lesson02_references_are_only_the_experiment_and_figure_checks():
    """Exercise 2.1's row is a digest now: no lesson-02 value reference reads the data."""
    from grader.checks.rubric import load_rubric

    named = {c.reference for c in load_rubric("02").checks if c.reference}
    assert {name for name in REFERENCES if name.startswith("lesson02_")} == named
    assert all(load_rubric("02").get(c.id).kind in ("experiment", "figure")
               for c in load_rubric("02").checks if c.reference)


def test_deep_layer_params_answer_is_the_per_layer_counts_of_lenet_300_100():
    """Exercise 2.4 asks for a network the notebook never builds (no model to read them from)."""
    spec = load_rubric("02").get("02.deep_layer_params")
    sizes = [784, 300, 100, 10]
    counts = [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    assert spec.answer_sha256 == tuple(position_digests("02.deep_layer_params", counts))
    assert sum(counts) == 266610
    ctx = Context(mode="fast", dataset="mnist")
    assert run_check(spec, {"deep_layer_params": counts}, ctx).passed
    wrong = run_check(spec, {"deep_layer_params": [counts[0] - 300, *counts[1:]]}, ctx)
    assert not wrong.passed and wrong.message.startswith("`deep_layer_params[0]` is not right")


def test_first_model_breakdown_adds_up_to_717210():
    sizes = [784, 784, 128, 10]
    counts = [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    assert counts == [615440, 100480, 1290]
    assert sum(counts) == load_rubric("02").get("02.model_params").expected
