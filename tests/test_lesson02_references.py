"""Unit tests for the lesson 02 references and rubric (no notebook runs, no real data)."""

from __future__ import annotations

import numpy as np
import pytest

import helpers.data
from grader.checks import Context, run_check
from grader.references import REFERENCES
from grader.rubric import load_rubric


def _fake_loader(first_label: int):
    def load(name, *, fast=None, data_dir=None):
        y_train = np.array([first_label, 0, 4, 1], dtype=np.uint8)
        x = np.zeros((4, 28, 28), dtype=np.uint8)
        return (x, y_train), (x, y_train)

    return load


@pytest.mark.parametrize("mode, first_label", [("full", 5), ("fast", 7)])
def test_first_label_reference_is_one_hot_of_the_modes_first_label(monkeypatch, mode, first_label):
    monkeypatch.setattr(helpers.data, "load_dataset", _fake_loader(first_label))
    expected = REFERENCES["lesson02_first_label_one_hot"](Context(mode=mode, dataset="mnist"))
    assert expected == [1.0 if k == first_label else 0.0 for k in range(10)]


def test_when_first_label_row_is_wrong_then_value_check_fails(monkeypatch):
    monkeypatch.setattr(helpers.data, "load_dataset", _fake_loader(5))
    spec = load_rubric("02").get("02.first_label_one_hot")
    ctx = Context(mode="full", dataset="mnist")
    right = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert run_check(spec, {"first_label_one_hot": right}, ctx).passed
    assert not run_check(spec, {"first_label_one_hot": right[::-1]}, ctx).passed


def test_deep_layer_params_expected_values_add_up_to_the_model_total():
    spec = load_rubric("02").get("02.deep_layer_params")
    sizes = [784, 256, 64, 64, 32, 10]
    counts = [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    assert spec.expected == counts
    assert sum(counts) == load_rubric("02").get("02.deep_model_params").expected == 223978


def test_first_model_breakdown_adds_up_to_717210():
    sizes = [784, 784, 128, 10]
    counts = [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    assert counts == [615440, 100480, 1290]
    assert sum(counts) == load_rubric("02").get("02.model_params").expected
