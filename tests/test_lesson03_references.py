"""Unit tests for lesson 03's references (no notebook runs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grader.checks.kinds import CheckFailed, Context, FunctionOutput, run_check
from grader.checks.references import REFERENCES, lesson03
from grader.checks.rubric import load_rubric


def test_when_schedule_inputs_are_generated_then_the_epoch_is_after_the_switch():
    case = REFERENCES["lesson03_schedule"]
    for seed in range(50):
        inputs = case.make_inputs(np.random.default_rng(seed))
        assert inputs["epoch"] >= lesson03.LR_SWITCH_EPOCH
        assert 0 < inputs["lr"] < 1


def test_when_schedule_decays_correctly_then_the_check_passes_and_constant_fails():
    spec = load_rubric("03").get("03.schedule")
    ctx = Context(mode="fast", dataset="fashion_mnist")
    good = run_check(spec, {"schedule": lambda epoch, lr: lr if epoch < 2 else lr * 0.85}, ctx)
    constant = run_check(spec, {"schedule": lambda epoch, lr: lr}, ctx)
    assert good.passed and not constant.passed
    assert "0.85" in constant.message


def test_when_schedule_raised_in_the_kernel_then_the_check_fails_with_the_error():
    spec = load_rubric("03").get("03.schedule")
    call = FunctionOutput(inputs={"epoch": 12, "lr": 0.1}, error="NotImplementedError: ")
    result = run_check(spec, {"schedule": call}, Context(mode="full"))
    assert not result.passed and "NotImplementedError" in result.message


def test_lr_preview_is_flat_for_two_epochs_then_decays():
    rates = REFERENCES["lesson03_lr_preview"](Context(mode="full"))
    assert len(rates) == 30
    assert rates[:2] == [0.1] * 2
    assert rates[2] == pytest.approx(0.085)
    assert rates[-1] == pytest.approx(0.1 * 0.85 ** 28)


def test_when_the_preview_ignores_the_switch_then_the_check_fails():
    spec = load_rubric("03").get("03.lr_preview")
    wrong = [0.1 * 0.85 ** (e + 1) for e in range(30)]
    assert not run_check(spec, {"lr_preview": wrong}, Context(mode="full")).passed


def test_fitted_samples_matches_the_80_20_split():
    assert lesson03.fitted_samples(60000) == 48000
    assert lesson03.fitted_samples(6000) == 4800
    assert lesson03.fitted_samples(11) == 8  # scikit-learn rounds the test part up


def test_weight_updates_uses_the_dataset_size_not_the_exported_n_fit(monkeypatch):
    import helpers.data

    fake = np.zeros((6000, 28, 28), dtype=np.uint8)
    monkeypatch.setattr(helpers.data, "load_dataset",
                        lambda *a, **k: ((fake, None), (None, None)))
    ctx = Context(mode="fast", dataset="fashion_mnist")
    assert REFERENCES["lesson03_weight_updates"](ctx, 64, 3, 123) == math.ceil(4800 / 64) * 3


@pytest.mark.parametrize("bad", [0, -5, 2.5, "x", None])
def test_when_batch_size_is_not_a_positive_integer_then_the_reference_explains(bad):
    with pytest.raises(CheckFailed):
        REFERENCES["lesson03_weight_updates"](Context(mode="fast"), bad, 3, 100)


def test_sgd_setup_accepts_the_lesson_compile_and_names_what_is_wrong():
    import keras

    spec = load_rubric("03").get("03.sgd_setup")
    ctx = Context(mode="fast", dataset="fashion_mnist")

    def model(**compile_kwargs):
        m = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(10, activation="softmax")])
        if compile_kwargs:
            m.compile(**compile_kwargs)
        return m

    good = model(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert run_check(spec, {"model": good}, ctx).passed
    assert "not compiled" in run_check(spec, {"model": model()}, ctx).message
    adam = model(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert "SGD" in run_check(spec, {"model": adam}, ctx).message
    slow = model(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert "SGD_LR" in run_check(spec, {"model": slow}, ctx).message
    # the grader's copy is loaded without compile settings: nothing to see, no points lost
    verify = Context(mode="fast", dataset="fashion_mnist", verify=True)
    assert run_check(spec, {"model": model()}, verify).passed
