"""Unit tests for the lesson 01 references (no notebook runs, no real data)."""

from __future__ import annotations

import numpy as np
import pytest

from grader.checks.kinds import Context
from grader.checks.references import REFERENCES

N_TEST = 40


class _FakeModel:
    """Just enough of a Keras model for grader.checks.context.model_accuracy."""

    def __init__(self, input_dim: int, correct: int, labels: np.ndarray) -> None:
        self.input_shape = (None, input_dim)
        self.output_shape = (None, 10)
        self.layers = []
        self.trainable_weights = []
        self._correct = correct
        self._labels = labels

    def __call__(self, x, training=False):  # how the grader predicts (grader.checks.context)
        return self.predict(x)

    def predict(self, x, batch_size=None, verbose=0):
        assert x.shape == (len(self._labels), self.input_shape[1])
        assert 0.0 <= x.min() and x.max() <= 1.0  # the grader scaled the pixels
        guesses = self._labels.copy()
        guesses[self._correct:] = (guesses[self._correct:] + 1) % 10
        return np.eye(10, dtype=np.float32)[guesses]


@pytest.fixture
def ctx(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N_TEST, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(N_TEST) % 10
    monkeypatch.setattr(Context, "raw_test_split", lambda self, dataset=None: (images, labels))
    return Context(mode="fast", dataset="cifar10"), labels


def test_when_colour_model_is_more_accurate_then_colors_help_is_true(ctx):
    context, labels = ctx
    color = _FakeModel(3072, correct=30, labels=labels)
    gray = _FakeModel(1024, correct=20, labels=labels)
    assert REFERENCES["colors_help"](context, color, gray) is True


def test_when_accuracies_tie_or_gray_wins_then_colors_help_is_false(ctx):
    context, labels = ctx
    gray = _FakeModel(1024, correct=25, labels=labels)
    assert REFERENCES["colors_help"](context, _FakeModel(3072, 25, labels), gray) is False
    assert REFERENCES["colors_help"](context, _FakeModel(3072, 10, labels), gray) is False


def test_rubric_01_loads_and_names_the_colors_help_reference():
    from grader.checks.rubric import load_rubric

    rubric = load_rubric("01")
    spec = rubric.get("01.colors_help")
    assert spec.reference == "colors_help"
    assert spec.objects == ("colors_help", "color_model", "model")
    assert rubric.get("01.color_params").expected == 402250
    assert rubric.get("01.model_params").expected == 140106
