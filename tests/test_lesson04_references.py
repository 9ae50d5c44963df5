"""The prepare_dataset function case of lesson 04 accepts any correct split, rejects wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from grader.checks.references import REFERENCES

CASE = REFERENCES["lesson04_prepare_dataset"]


@pytest.fixture()
def inputs():
    return CASE.make_inputs(np.random.default_rng(0))


def _answer(inputs, seed=7):
    """A correct answer with a shuffle of its own (not the reference's)."""
    images, labels = inputs["images"], inputs["labels"][:, 0]
    order = np.random.default_rng(seed).permutation(len(images))
    x = images[order].astype(np.float32) / 255.0
    y = np.eye(10, dtype=np.float32)[labels[order]]
    n_val = len(images) // 5
    return x[n_val:], x[:n_val], y[n_val:], y[:n_val]


def test_when_the_reference_answers_then_it_passes(inputs):
    expected = CASE.reference(**inputs)
    assert CASE.compare(expected, expected, inputs) is None


def test_when_another_shuffle_is_used_then_it_still_passes(inputs):
    assert CASE.compare(_answer(inputs), CASE.reference(**inputs), inputs) is None


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda a: (a[0].astype(np.float64), *a[1:]), "float32"),
        (lambda a: (a[0] * 255, *a[1:]), "[0, 1]"),
        (lambda a: (a[0], a[1], np.roll(a[2], 1, axis=0), a[3]), "another image's label"),
        (lambda a: (a[0], a[0][:10], a[2], a[2][:10]), "both"),
        (lambda a: a[:3], "tuple"),
        (lambda a: (a[0], a[1], a[2].argmax(axis=1), a[3]), "one-hot"),
        (lambda a: (a[0][:30], a[1], a[2][:30], a[3]), "80/20"),
    ],
)
def test_when_the_answer_is_wrong_then_compare_says_why(inputs, mutate, words):
    problem = CASE.compare(mutate(_answer(inputs)), CASE.reference(**inputs), inputs)
    assert problem is not None and words in problem
