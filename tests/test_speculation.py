"""Re-runs done ahead (while the kernel runs) are exactly the ones the check then asks for.

For every lesson check with a plan, the plan's re-runs are run ahead and then the check is
scored on valid objects; the re-run function's own computation is replaced by a recorder
(what is tested is which re-runs are planned and used, not the training, which the lesson
reference tests and the batch tests run for real). A check must find every result it asks
for, use each exactly once, and compute nothing itself; a result is kept for one
submission's key and context only.
"""

from __future__ import annotations

import pytest

from grader.checks import speculation
from grader.checks.context import Context
from grader.checks.references import lesson01, lesson03, lesson04
from grader.checks.speculation import PLANS, forget, run_ahead, waiting


def _history(values: list[float], flat: bool = False) -> dict:
    loss = [1.0] * len(values) if flat else [1.0 - 0.1 * i for i in range(len(values))]
    return {"loss": loss, "val_accuracy": values, "accuracy": values, "val_loss": loss}


def _lesson01(ctx):
    results = {lr: 0.3 for lr in lesson01.LEARNING_RATES}
    epochs = lesson01.SWEEP_EPOCHS[ctx.mode]
    histories = {lr: _history([0.3] * epochs) for lr in lesson01.LEARNING_RATES}
    return lesson01.rerun_lr, lambda: lesson01.lr_sweep(ctx, results, histories), 0.3


def _lesson03(ctx):
    epochs = lesson03.LR_EPOCHS[ctx.mode]
    histories = {lr: _history([0.6] * epochs, flat=lr == 1e-6) for lr in lesson03.LEARNING_RATES}
    return (lesson03.rerun_learning_rate, lambda: lesson03.lr_histories(ctx, histories), 0.6)


def _lesson04_dropout(ctx):
    results = {rate: 0.5 for rate in lesson04.DROPOUT_RATES}
    return (lesson04.rerun_dropout,
            lambda: lesson04.dropout_results(ctx, results, lesson04.DROPOUT_RATES[0]), 0.5)


def _lesson04_search(ctx):
    results = {name: 0.4 for name in lesson04.OPTIMIZERS}
    return (lesson04.rerun_search,
            lambda: lesson04.optimizer_search(ctx, results, lesson04.OPTIMIZERS[0]), 0.4)


CASES = {"lesson01_lr_sweep": _lesson01, "lesson03_lr_histories": _lesson03,
         "lesson04_dropout_results": _lesson04_dropout,
         "lesson04_optimizer_search": _lesson04_search}


def test_every_plan_has_a_case_here():
    assert set(PLANS) == set(CASES)


@pytest.mark.parametrize("mode", ["fast", "full"])
@pytest.mark.parametrize("reference", sorted(CASES))
def test_the_check_uses_exactly_the_reruns_done_ahead(monkeypatch, reference, mode):
    ctx = Context(mode=mode, dataset="x", data_dir="/data", verify=True,
                  choice_key=f"key-{reference}-{mode}")
    func, check, value = CASES[reference](ctx)
    calls: list[tuple] = []
    monkeypatch.setattr(func, "compute", lambda c, option, seed: calls.append((option, seed))
                        or value)
    forget()
    done = run_ahead(ctx, [reference])
    ahead = list(calls)
    assert done == len(ahead) >= 1 and waiting() == done
    message, details = check()
    assert calls == ahead  # the check computed nothing itself
    assert waiting() == 0  # and used every result done ahead, once
    reruns = details["reruns"]
    assert len(reruns) == done and all(r["agrees"] for r in reruns), reruns
    assert "re-ran" in message


def test_a_result_is_only_found_by_the_same_key_and_dropped_after_use(monkeypatch):
    ctx = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="ann")
    other = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="bob")
    calls: list[tuple] = []
    monkeypatch.setattr(lesson03.rerun_learning_rate, "compute",
                        lambda c, option, seed: calls.append((c.choice_key, option)) or 0.6)
    forget()
    run_ahead(ctx, ["lesson03_lr_histories"])
    planned = PLANS["lesson03_lr_histories"](ctx)
    _, option, seed = planned[0]
    before = len(calls)
    lesson03.rerun_learning_rate(other, option, seed)  # another student: computed
    assert calls[before:] == [("bob", option)]
    lesson03.rerun_learning_rate(ctx, option, seed)  # this student: done ahead
    lesson03.rerun_learning_rate(ctx, option, seed)  # used once: computed again
    assert calls[before + 1:] == [("ann", option)]
    forget()
    assert waiting() == 0


def test_nothing_runs_ahead_for_a_self_check(monkeypatch):
    ctx = Context(mode="fast", dataset="x", data_dir="/data", verify=False, choice_key="ann")
    monkeypatch.setattr(lesson01.rerun_lr, "compute", lambda *a: pytest.fail("ran"))
    assert run_ahead(ctx, list(CASES)) == 0
    speculation.forget()
