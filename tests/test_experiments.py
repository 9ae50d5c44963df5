"""Experiment checks: fake results of the right type lose the points they target.

Each test hands a rubric ``experiment`` check fake results of the right shape and types
(what a student could write without running anything) and lets the grader verify them as
it does when grading (``Context(verify=True)``): on the real data, with real re-runs of
configurations chosen among all the reported ones, in fast mode. Shape errors are caught
without training. The solutions' honest results passing the same checks is the contract
test's job (tests/test_contract.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from grader.checks.experiments import (
    CPU_BOUND,
    MISMATCH,
    Timing,
    choose,
    choose_many,
    confirm,
    confirm_accuracy,
    fraction,
    history,
    keyed,
    rerun_accuracy,
    rerun_timed,
    rerun_timing,
    verdict,
)
from grader.checks.kinds import CheckFailed, Context, run_check
from grader.checks.references import lesson01, lesson02, lesson03, lesson04
from grader.checks.rubric import find_check


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def verify(check_id: str, data_dir: str, **objects):
    rubric, spec = find_check(check_id)
    ctx = Context(mode="fast", dataset=rubric.dataset, data_dir=data_dir, verify=True,
                  choice_key="test-key")
    return run_check(spec, objects, ctx)


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------


def test_keyed_matches_numbers_numerically_and_names_missing_keys():
    found = keyed({"0.001": 1, 1e-4: 2}, "lr_results", (1e-4, 1e-3))
    assert found == {1e-4: 2, 1e-3: 1}
    with pytest.raises(CheckFailed, match="missing 0.01; unexpected 'x'"):
        keyed({"x": 1, 1e-4: 2}, "lr_results", (1e-4, 1e-2))
    with pytest.raises(CheckFailed, match="should be a dict"):
        keyed([1, 2], "lr_results", (1e-4,))


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), "0.5x", None, True])
def test_fraction_refuses_what_is_not_an_accuracy(value):
    with pytest.raises(CheckFailed):
        fraction(value, "x")


def test_history_needs_one_value_per_epoch():
    assert history({"val_accuracy": [0.1, 0.2]}, "h", epochs=2)["val_accuracy"] == [0.1, 0.2]
    with pytest.raises(CheckFailed, match=r"one value per epoch \(3\), found 2"):
        history({"val_accuracy": [0.1, 0.2]}, "h", epochs=3)


def test_choice_is_private_and_stable():
    options = list(range(10))
    a = Context(choice_key="key-a")
    picks = {choose(Context(choice_key=f"key-{i}"), options, "s") for i in range(40)}
    assert choose(a, options, "s") == choose(a, options, "s")
    assert len(picks) > 3  # different keys choose differently


def test_choose_many_picks_distinct_options_each_equally_often():
    options = ["a", "b", "c", "d", "e"]
    counts = dict.fromkeys(options, 0)
    for i in range(1000):
        chosen = choose_many(Context(choice_key=f"key-{i}"), options, "s", 3)
        assert len(set(chosen)) == 3 and chosen == [o for o in options if o in chosen]
        for option in chosen:
            counts[option] += 1
    assert all(540 <= n <= 660 for n in counts.values()), counts  # 600 expected each
    a = Context(choice_key="key-a")
    assert choose_many(a, options, "s", 3) == choose_many(a, options, "s", 3)
    assert choose_many(a, options, "s", 9) == options
    assert choose_many(a, options, "s", 0) == []


def test_verdict_names_no_configuration_to_the_student():
    agree = rerun_accuracy("learning rate 0.01", 0.20, 0.22, 0.08)
    differ = rerun_accuracy("learning rate 0.1", 0.25, 0.10, 0.08)
    message, details = verdict("5 rates", [agree], "Report your own numbers")
    assert "0.01" not in message and details["reruns"] == [agree]
    timed = rerun_timing("learning rate 0.01", 1.0, 1.2, 4.0)
    assert "re-ran 1 of your" in verdict("5 rates", [agree, timed], "")[0]
    with pytest.raises(CheckFailed) as failed:
        verdict("5 rates", [agree, differ], "Report your own numbers")
    assert "0.1" not in str(failed.value) and MISMATCH in str(failed.value)
    assert failed.value.details["reruns"] == [agree, differ]


def test_confirm_runs_nothing_in_the_self_check_and_the_chosen_ones_when_grading():
    """The shared last steps: no re-run without ``verify``; with it, ``first``
    then the privately chosen options, each with its own salt, and the verdict's outcome."""
    ran: list[tuple] = []

    def rerun(option, salt):
        ran.append((option, salt))
        return rerun_accuracy(f"rate {option}", 0.5, 0.5, 0.05)

    options = [0.1, 0.01, 1e-3, 1e-4]
    assert confirm(Context(mode="fast"), "4 rates", options=options, count=2, salt="s",
                   rerun=rerun, advice="") == "4 rates"
    assert ran == []
    ctx = Context(mode="fast", verify=True, choice_key="k")
    message, details = confirm(ctx, "4 rates", options=options, count=2, salt="s", rerun=rerun,
                               advice="", first=[7])
    chosen = choose_many(ctx, options, "s", 2)
    assert ran == [(7, "s|7"), *((o, f"s|{o:g}") for o in chosen)]
    assert len(details["reruns"]) == 3 and "re-ran 3 of your" in message
    ran.clear()
    confirm(ctx, "4 rates", options=options, count=1, salt="s", rerun=rerun, advice="",
            first=[7], salt_by_position=True)
    assert [salt for _, salt in ran] == ["s|0", "s|1"]


def test_confirm_accuracy_gives_a_disagreement_a_second_seed_and_then_fails():
    ctx = Context(mode="fast", verify=True, choice_key="k")
    seeds: list[int] = []

    def run(option, seed):
        seeds.append(seed)
        return 0.9  # the grader's runs all land far from the reported 0.5

    with pytest.raises(CheckFailed) as failed:
        confirm_accuracy(ctx, "2 rates", options=["a", "b"], count=1, salt="s",
                         describe=lambda o: f"rate {o}", reported={"a": 0.5, "b": 0.5},
                         tolerance={"a": 0.05, "b": 0.05}, run=run, advice="Report yours")
    (record,) = failed.value.details["reruns"]
    assert len(seeds) == 2 and seeds[0] != seeds[1]  # confirmed with another seed
    assert not record["agrees"] and record["first_rerun"] == 0.9
    assert "rate a" not in str(failed.value) and MISMATCH in str(failed.value)


# ----------------------------------------------------------------------------------------
# Lesson 01
# ----------------------------------------------------------------------------------------


def fake_lr_sweep(value: float):
    epochs = lesson01.SWEEP_EPOCHS["fast"]
    histories = {lr: {"val_accuracy": [value] * epochs, "loss": [1.0] * epochs}
                 for lr in lesson01.LEARNING_RATES}
    return {lr: value for lr in lesson01.LEARNING_RATES}, histories


def test_lr_sweep_fake_of_the_right_type_loses(data_dir):
    results, histories = fake_lr_sweep(0.6)
    result = verify("01.lr_sweep", data_dir, lr_results=results, lr_histories=histories)
    assert not result.passed and MISMATCH in result.message
    assert not all(r["agrees"] for r in result.details["reruns"])


def test_lr_sweep_best_must_come_from_its_history(data_dir):
    results, histories = fake_lr_sweep(0.3)
    results[1e-3] = 0.5
    result = verify("01.lr_sweep", data_dir, lr_results=results, lr_histories=histories)
    assert not result.passed and "is not the best validation accuracy" in result.message


def test_batch_timing_fake_of_the_right_type_loses(data_dir):
    fake = {4: 60.0, 16: 40.0, 32: 30.0, 256: 20.0, 1024: 10.0}
    result = verify("01.batch_timing", data_dir, batch_seconds=fake)
    assert not result.passed and MISMATCH in result.message
    assert [r["agrees"] for r in result.details["reruns"]] == [False, False]


def test_batch_timing_accepts_honest_timings_from_a_loaded_machine():
    """Seconds per epoch the grader measured at load average 12 (800 images): batch 4 barely
    slower than batch 1024. Shape and consistency must not fail them."""
    measured = {4: 3.744, 16: 3.643, 32: 2.348, 256: 2.261, 1024: 3.662}
    ctx = Context(mode="fast", dataset="cifar10")
    assert lesson01.batch_timing(ctx, measured).startswith("seconds per epoch")
    assert lesson01.batch_timing(ctx, {**measured, 4: 3.0}).startswith("seconds per epoch")


def test_a_timing_slowed_by_a_load_spike_is_timed_again_and_an_invented_one_still_fails():
    """Seconds seen in CI: an honest 0.88 s epoch re-timed at 4.47 s during a load spike
    (beyond the factor of 4), then at a normal 1.4 s. The second timing decides; an invented
    90 s still fails both."""
    timings = iter([4.4705, 1.4498])
    record = rerun_timed("batch size 16", 0.8787, 4.0, lambda: next(timings))
    assert record["agrees"] and record["first_rerun_seconds"] == 4.4705
    timings = iter([1.3, 1.2])
    assert not rerun_timed("batch size 4", 90.0, 4.0, lambda: next(timings))["agrees"]
    calls = []
    assert rerun_timed("batch size 32", 1.0, 4.0, lambda: calls.append(1) or 1.1)["agrees"]
    assert len(calls) == 1  # an agreeing timing costs no second run


def test_a_timing_taken_beside_the_kernel_agrees_only_within_bounds_the_kernel_cannot_widen():
    """Figures from bench/results/timing_contention.md (lesson 01, batch 4): alone 0.63 s wall,
    0.71 s CPU; beside 4 busy loops 1.83 s wall, 0.85 s CPU."""
    idle, cpu_idle = 0.63, 0.71
    honest = Timing(1.07, 0.79).taken_beside()  # beside an honest training kernel
    after = []
    record = rerun_timed("batch size 4", 0.65, 4.0, lambda: after.append(1) or idle, first=honest)
    assert record["agrees"] and record["beside_kernel"] and not after  # no timing after

    slowed = Timing(1.83, 0.85).taken_beside()
    # 3 x the idle time lies within 4 x the slowed wall time, not within 4 x CPU / CPU_BOUND:
    # the ahead timing is refused and the value is timed after the kernel, as without it
    record = rerun_timed("batch size 4", 3 * idle, 4.0, lambda: after.append(1) or idle,
                         first=slowed)
    assert record["agrees"] and "beside_kernel" not in record and len(after) == 1
    assert record["beside_rerun_seconds"] == 1.83
    # an invented 6 x would pass the slowed wall time; alone it fails both timings after
    after.clear()
    record = rerun_timed("batch size 4", 6 * idle, 4.0, lambda: after.append(1) or idle,
                         first=slowed)
    assert not record["agrees"] and len(after) == 2
    # a value far below what the kernel let the grader measure is refused beside too
    assert not rerun_timing("batch size 4", 0.3, slowed, 4.0)["agrees"]
    assert rerun_timing("batch size 4", 0.3, Timing(1.0, cpu_idle), 4.0)["agrees"]  # alone: wall
    assert 4.0 * slowed.cpu / CPU_BOUND < 4.0 * idle  # what the bound rests on


def test_batch_timing_small_batches_must_be_slower(data_dir):
    fake = {4: 0.1, 16: 0.2, 32: 0.3, 256: 0.4, 1024: 0.5}
    result = verify("01.batch_timing", data_dir, batch_seconds=fake)
    assert not result.passed and "never much faster" in result.message


# ----------------------------------------------------------------------------------------
# Lesson 02
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_model(keras, data_dir):
    """A real, briefly trained Fashion-MNIST model (about 0.8 accuracy in fast mode)."""
    from helpers.data import flatten, load_dataset, scale

    (x, y), _ = load_dataset("fashion_mnist", fast=True, data_dir=data_dir)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(scale(flatten(x)), y, epochs=2, batch_size=128, verbose=0)
    return model


def test_fashion_confidence_honest_passes_and_fake_loses(fashion_model, data_dir):
    from helpers.data import flatten, load_dataset, scale

    (x, y), _ = load_dataset("fashion_mnist", fast=True, data_dir=data_dir)
    honest = lesson02.confidence_statistics(
        fashion_model.predict(scale(flatten(x[-1200:])), verbose=0), y[-1200:].astype(int))
    assert verify("02.fashion_confidence", data_dir, fashion_confidence=honest,
                  fashion_model=fashion_model).passed
    fake = {"mean_top_probability": 0.99, "share_at_least_0.9": 0.97,
            "accuracy_at_least_0.9": 0.99, "accuracy_below_0.9": 0.6}
    result = verify("02.fashion_confidence", data_dir, fashion_confidence=fake,
                    fashion_model=fashion_model)
    assert not result.passed and "your fashion_model gives" in result.message


def test_fashion_epochs_fake_loses(fashion_model, data_dir):
    fake = {"epoch_1": 0.9, "epoch_3": 0.99, "best_epoch": 3}
    result = verify("02.fashion_epochs", data_dir, fashion_epochs_result=fake,
                    fashion_model=fashion_model)
    assert not result.passed and "reaches" in result.message


def test_fashion_architectures_fake_loses(data_dir):
    fake = {"64": 0.97, "512": 0.98, "32-16": 0.96}
    result = verify("02.fashion_architectures", data_dir, fashion_architectures=fake)
    assert not result.passed and MISMATCH in result.message


def test_fashion_architectures_need_parseable_keys(data_dir):
    result = verify("02.fashion_architectures", data_dir,
                    fashion_architectures={"narrow": 0.8, "wide": 0.8, "deep": 0.8})
    assert not result.passed and 'joined by "-"' in result.message


# ----------------------------------------------------------------------------------------
# Lesson 03
# ----------------------------------------------------------------------------------------


def fake_lr_histories(accuracy: float, tiny_loss_end: float = 2.3):
    epochs = lesson03.LR_EPOCHS["fast"]
    found = {f"{lr:g}": {"loss": list(np.linspace(1.0, 0.5, epochs)),
                         "val_accuracy": [accuracy] * epochs} for lr in lesson03.LEARNING_RATES}
    found["1e-06"]["loss"] = list(np.linspace(2.3, tiny_loss_end, epochs))
    return found


def test_lr_histories_fake_loses(data_dir):
    result = verify("03.lr_histories", data_dir, lr_histories=fake_lr_histories(0.99))
    assert not result.passed and MISMATCH in result.message
    assert len(result.details["reruns"]) == 3


def test_lr_histories_tiny_rate_must_leave_the_loss_flat(data_dir):
    result = verify("03.lr_histories", data_dir,
                    lr_histories=fake_lr_histories(0.8, tiny_loss_end=1.0))
    assert not result.passed and "barely change the weights" in result.message


def sweep_row(name, accuracy, **config):
    row = {"name": name, "hidden": [64], "activation": "relu", "batch_size": 64,
           "optimizer": "adam", "learning_rate": 1e-3, "val_accuracy": accuracy,
           "val_loss": 0.5, "seconds_per_epoch": 0.5}
    row.update(config)
    return row


def test_sweep_results_fake_best_loses(data_dir):
    rows = [sweep_row("a", 0.99), sweep_row("b", 0.8, hidden=[32]),
            sweep_row("c", 0.8, activation="tanh"), sweep_row("d", 0.8, batch_size=128)]
    result = verify("03.sweep_results", data_dir, sweep_results=rows)
    assert not result.passed and MISMATCH in result.message
    assert result.details["reruns"][0]["configuration"] == "configuration 'a'"
    assert not result.details["reruns"][0]["agrees"]


def test_sweep_results_need_the_configuration(data_dir):
    rows = [{"name": str(i), "val_accuracy": 0.8, "seconds_per_epoch": 1.0} for i in range(4)]
    result = verify("03.sweep_results", data_dir, sweep_results=rows)
    assert not result.passed and "'hidden'" in result.message


# ----------------------------------------------------------------------------------------
# Lesson 04
# ----------------------------------------------------------------------------------------


def test_dropout_results_fake_loses(data_dir):
    fake = {rate: 0.9 for rate in lesson04.DROPOUT_RATES}
    result = verify("04.best_dropout_rate", data_dir, dropout_results=fake,
                    best_dropout_rate=0.15)
    assert not result.passed and MISMATCH in result.message


def test_best_dropout_rate_must_be_the_best(data_dir):
    fake = {rate: 0.2 + i / 100 for i, rate in enumerate(lesson04.DROPOUT_RATES)}
    result = verify("04.best_dropout_rate", data_dir, dropout_results=fake,
                    best_dropout_rate=0.15)
    assert not result.passed and "does not have the highest value" in result.message


def test_optimizer_search_fake_loses(data_dir):
    fake = {name: 0.9 for name in lesson04.OPTIMIZERS}
    result = verify("04.optimizer_search", data_dir, search_results=fake, best_optimizer="adam")
    assert not result.passed and MISMATCH in result.message


def test_activation_results_fake_loses(data_dir):
    fake = {name: [0.9] for name in lesson04.ACTIVATIONS}
    result = verify("04.activation_results", data_dir, activation_results=fake,
                    best_dropout_rate=0.3)
    assert not result.passed and MISMATCH in result.message


def test_best_model_choice_recomputes_validation_accuracy(keras, data_dir):
    def tiny(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input(shape=(32, 32, 3)), keras.layers.Flatten(),
                                 keras.layers.Dense(10, activation="softmax")])

    models = {"intro_model": tiny(1), "dropout_model": tiny(2), "tuned_model": tiny(3)}
    ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir)
    _, x_val, _, y_val = lesson04._split(ctx)
    honest = {name: float(np.mean(models[f"{name}_model"].predict(x_val, verbose=0).argmax(1)
                                  == y_val.argmax(1))) for name in lesson04.CANDIDATES}
    best = max(honest, key=honest.get)
    assert verify("04.best_model_choice", data_dir, val_scores=honest,
                  best_model=models[f"{best}_model"], **models).passed
    other = next(name for name in lesson04.CANDIDATES if name != best)
    wrong_choice = verify("04.best_model_choice", data_dir, val_scores=honest,
                          best_model=models[f"{other}_model"], **models)
    assert not wrong_choice.passed and "best_model does not predict like" in wrong_choice.message
    inflated = {**honest, best: 0.9}
    fake = verify("04.best_model_choice", data_dir, val_scores=inflated,
                  best_model=models[f"{best}_model"], **models)
    assert not fake.passed and "the grader evaluated your" in fake.message
    images, labels = ctx.raw_test_split("cifar10")
    on_test = {name: float(np.mean(models[f"{name}_model"].predict(images / 255, verbose=0)
                                   .argmax(1) == labels)) for name in lesson04.CANDIDATES}
    chosen = max(on_test, key=on_test.get)
    test_choice = verify("04.best_model_choice", data_dir, val_scores=on_test,
                         best_model=models[f"{chosen}_model"], **models)
    assert not test_choice.passed and "accuracies on the test set" in test_choice.message
