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
from grader.checks.experiments import Timing
from grader.checks.references import lesson01, lesson02, lesson03, lesson04
from grader.checks.speculation import PLANS, forget, run_ahead, waiting


def _history(values: list[float], flat: bool = False) -> dict:
    loss = [1.0] * len(values) if flat else [1.0 - 0.1 * i for i in range(len(values))]
    return {"loss": loss, "val_accuracy": values, "accuracy": values, "val_loss": loss}


def _lesson01(ctx):
    results = {lr: 0.3 for lr in lesson01.LEARNING_RATES}
    epochs = lesson01.SWEEP_EPOCHS[ctx.mode]
    histories = {lr: _history([0.3] * epochs) for lr in lesson01.LEARNING_RATES}
    return lesson01.rerun_lr, lambda: lesson01.lr_sweep(ctx, results, histories), 0.3


def _lesson01_timing(ctx):
    seconds = {size: 0.5 for size in lesson01.BATCH_SIZES}
    return (lesson01.time_batch_size, lambda: lesson01.batch_timing(ctx, seconds),
            Timing(0.5, 0.6))


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


SWEEP = [{"name": f"row {i}", "hidden": [64 * (i + 1)], "activation": "relu", "batch_size": 64,
          "optimizer": "sgd", "learning_rate": 0.1, "val_accuracy": 0.8 + 0.01 * i,
          "seconds_per_epoch": 0.5} for i in range(5)]


def _lesson03_sweep(ctx):
    return (lesson03.rerun_configuration, lambda: lesson03.sweep_results(ctx, SWEEP),
            (0.8, Timing(0.5, 0.6)))


TABLE = {"64": 0.8, "512": 0.82, "256-128": 0.83, "256-128-64-32": 0.81, "32-16": 0.78}


def _lesson02(ctx):
    return (lesson02.rerun_architecture_key,
            lambda: lesson02.fashion_architectures(ctx, TABLE), 0.8)


def _lesson04_activations(ctx):
    epochs = lesson04.TUNE_EPOCHS[ctx.mode]
    curves = {name: [0.45] * epochs for name in lesson04.ACTIVATIONS}
    best = lesson04.DROPOUT_RATES[-1]
    return (lesson04.rerun_activation,
            lambda: lesson04.activation_results(ctx, curves, best), 0.45)


CASES = {"lesson01_lr_sweep": _lesson01, "lesson01_batch_timing": _lesson01_timing,
         "lesson03_lr_histories": _lesson03,
         "lesson04_dropout_results": _lesson04_dropout,
         "lesson04_optimizer_search": _lesson04_search,
         "lesson02_fashion_architectures": _lesson02,
         "lesson04_activation_results": _lesson04_activations,
         "lesson03_sweep_results": _lesson03_sweep}
#: What the early export hands the plans that need the student's values.
EARLY = {"lesson02_fashion_architectures": {"fashion_architectures": TABLE},
         "lesson04_activation_results": {"best_dropout_rate": lesson04.DROPOUT_RATES[-1]},
         "lesson03_sweep_results": {"sweep_results": SWEEP}}


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
    if reference in EARLY:  # a plan on the student's values waits for the early export
        assert run_ahead(ctx, [reference]) == 0
    else:  # a plan the lesson fixes runs on the first request only
        assert run_ahead(ctx, [reference], {"unrelated": 1}) == 0
    done = run_ahead(ctx, [reference], EARLY.get(reference))
    ahead = list(calls)
    assert done == len(ahead) >= 1 and waiting() == done
    message, details = check()
    assert calls == ahead  # the check computed nothing itself
    assert waiting() == 0  # and used every result done ahead, once
    reruns = details["reruns"]
    timings = [r for r in reruns if "rerun_seconds" in r]
    assert len(reruns) == done * (2 if reference == "lesson03_sweep_results" else 1)
    assert all(r["agrees"] for r in reruns), reruns
    assert "re-ran" in message
    # a timing done ahead is judged as one taken beside the kernel
    assert all(r["beside_kernel"] and r["rerun_cpu_seconds"] == 0.6 for r in timings)


def test_a_result_is_only_found_by_the_same_key_and_dropped_after_use(monkeypatch):
    ctx = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="ann")
    other = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="bob")
    calls: list[tuple] = []
    monkeypatch.setattr(lesson03.rerun_learning_rate, "compute",
                        lambda c, option, seed: calls.append((c.choice_key, option)) or 0.6)
    forget()
    run_ahead(ctx, ["lesson03_lr_histories"])
    planned = PLANS["lesson03_lr_histories"].reruns(ctx)
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


def test_every_early_plan_needs_only_names_its_check_exports_early():
    """A plan on the early export needs objects of its own check, exported after the cell the
    rubric names; that cell exists in the lesson and its solution and assigns every name
    the plan needs in the solution (else the early export would find nothing to plan on)."""
    import json

    from grader.base.paths import NOTEBOOKS_DIR, SOLUTIONS_DIR
    from grader.checks.rubric import load_rubric

    seen = set()
    for module in ("01", "02", "03", "04"):
        rubric = load_rubric(module)
        for spec in rubric.checks:
            found = PLANS.get(spec.reference) if spec.reference else None
            if found is None or not found.needs:
                assert spec.ahead_after is None, spec.id
                continue
            seen.add(spec.reference)
            assert spec.ahead_after and set(found.needs) <= set(spec.objects), spec.id
            sources = {folder: {c.get("id"): "".join(c["source"]) for c in json.loads(
                (folder / rubric.notebook).read_text())["cells"]}
                for folder in (NOTEBOOKS_DIR, SOLUTIONS_DIR)}
            assert spec.ahead_after in sources[NOTEBOOKS_DIR], spec.id  # the student's cell
            solved = sources[SOLUTIONS_DIR][spec.ahead_after]  # where the solution assigns
            assert all(f"{name} = " in solved for name in found.needs), spec.id
    assert seen == set(EARLY)


@pytest.mark.parametrize("value", [{"64": 0.8}, {"64": 0.8, "a-b": 0.5, "1-2": 0.4, "3": 0.1},
                                   "not a table", {"64": 2.0, "32": 0.1, "16": 0.1}, None])
def test_early_values_the_check_refuses_run_nothing(monkeypatch, value):
    ctx = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="ann")
    monkeypatch.setattr(lesson02.rerun_architecture_key, "compute", lambda *a: pytest.fail("ran"))
    forget()
    assert run_ahead(ctx, ["lesson02_fashion_architectures"],
                     {"fashion_architectures": value}) == 0
    assert run_ahead(ctx, ["lesson02_fashion_architectures"], {"other": TABLE}) == 0
    assert waiting() == 0


def test_a_table_changed_after_the_early_export_is_rerun_as_it_ends(monkeypatch):
    """The student's table at the end differs from the early one: the check re-runs what the
    final table holds (computed then), never takes a result kept for another architecture."""
    ctx = Context(mode="fast", dataset="x", data_dir="/data", verify=True, choice_key="ann")
    calls: list[str] = []
    monkeypatch.setattr(lesson02.rerun_architecture_key, "compute",
                        lambda c, key, seed: calls.append(key) or 0.8)
    forget()
    early = {"64": 0.8, "512": 0.8, "1024": 0.8, "2048": 0.8}
    assert run_ahead(ctx, ["lesson02_fashion_architectures"], {"fashion_architectures": early})
    ahead = list(calls)
    final = {"16": 0.8, "32": 0.8, "48": 0.8, "96": 0.8}
    _, details = lesson02.fashion_architectures(ctx, final)
    rerun = [r["configuration"].split()[-1] for r in details["reruns"]]
    assert calls[len(ahead):] == rerun and set(rerun) <= set(final)
    assert waiting() == len(ahead)  # kept for nothing, dropped with the submission
    forget()
