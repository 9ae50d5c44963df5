"""helpers.training: seeding, fast-mode resolution and the callbacks on a real tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import training


def test_configure_resolves_fast_mode_and_sets_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("DLCOURSE_FAST", "1")
    assert training.configure(fast=None, seed=1) is True
    assert "Fast mode ON" in capsys.readouterr().out
    assert training.configure(fast=False, seed=1) is False
    import os

    assert os.environ["DLCOURSE_FAST"] == "0"


@pytest.mark.parametrize("bad", ["yes", 1.5])
def test_configure_rejects_non_boolean_fast(bad):
    with pytest.raises(ValueError, match="expected FAST to be True, False or None"):
        training.configure(fast=bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_set_seed_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative integer seed"):
        training.set_seed(bad)


def _tiny_fit(seed, callbacks=()):
    import keras

    training.set_seed(seed)
    x = np.random.default_rng(0).random((64, 4)).astype("float32")
    y = (x.sum(axis=1) > 2).astype("int32")
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=list(callbacks))
    return model


def test_set_seed_makes_initial_weights_repeat():
    a = _tiny_fit(7).get_weights()
    b = _tiny_fit(7).get_weights()
    c = _tiny_fit(8).get_weights()
    assert all(np.allclose(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.allclose(p, q) for p, q in zip(a, c, strict=True))


def test_epoch_timer_and_weight_stats_record_every_epoch(capsys):
    timer, stats = training.EpochTimer(), training.WeightStats()
    _tiny_fit(0, [timer, stats])
    assert len(timer.epoch_seconds) == 3 and all(t > 0 for t in timer.epoch_seconds)
    assert timer.median_seconds > 0
    assert {r["epoch"] for r in stats.records} == {1, 2, 3}
    assert len(stats.records) == 6  # two Dense layers x three epochs
    assert "kernel mean" in capsys.readouterr().out


def test_epoch_timer_median_leaves_out_the_first_epoch_and_its_graph_tracing():
    timer = training.EpochTimer()
    _tiny_fit(0, [timer])                  # a new model: its first epoch traces the graph
    first, *later = timer.epoch_seconds
    assert first > max(later)
    assert timer.median_seconds == pytest.approx(float(np.median(later)))
    assert training.steady_median([5.0]) == 5.0   # a single epoch is all there is


def test_epoch_timer_without_epochs_raises():
    with pytest.raises(ValueError, match="at least one finished epoch"):
        _ = training.EpochTimer().median_seconds


def test_epoch_line_prints_one_line_per_epoch_with_the_rate(capsys):
    import keras

    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    _tiny_fit(0, [scheduler, training.EpochLine("tiny")])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny")]
    assert len(lines) == 3
    assert "epoch  3/3" in lines[-1] and "loss" in lines[-1] and "lr " in lines[-1]
    rates = [float(line.split("lr ")[1].split()[0]) for line in lines]
    assert rates[0] > rates[1] > rates[2]
