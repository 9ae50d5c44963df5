"""How often the experiment checks catch invented values: 1, 2 or 3 per exercise.

For every experiment check of every lesson, simulated students each report one value per
configuration. An honest value is one seed's real re-run from
``bench/results/detection_honest.json`` (``bench/detection_honest.py``: every configuration
trained with 5 seeds exactly as the grader re-runs it); the grader's re-run is another
seed's value. A cheating student replaces 1, 2 or 3 of the values (chosen at random) by
invented ones, in one of two ways:

* **interpolated**: from the student's own honest values, linearly between the nearest
  honest neighbours in the exercise's order of configurations (the nearest one at the ends);
* **guessed**: uniform between the lowest and highest honest value of the exercise (a
  student who knows roughly what the results look like);
* **arbitrary**: an accuracy uniform in [0, 1], a time log-uniform in [0.05, 20] s (a
  student who does not know what fast mode gives).

Each student gets its own private key, derived like the grader's
(``grader.submission.grading.rerun_choice_key``: an HMAC of the student and the module under
a results key, here a fixed benchmark key). The *real* check function of
``grader/checks/references/lesson0N.py`` then judges the student with ``ctx.verify`` set,
with its training function replaced by a look-up of the honest values: the selection rule,
the tolerances and the cross-checks are the grader's own code, only the training is
replayed. Detection = the check fails. The same students are judged by the rule on
``main`` before this change (one re-run from a fixed pool), emulated in ``OLD_RULES``.

``--confirm`` also grades lesson 01's two checks for real (training, no look-up): an
honest sweep passes, and sweeps with invented values, under keys that pick an invented
value, fail.

Usage::

    DLCOURSE_DATA_DIR=../shared/data nice -n 5 python bench/detection_rate.py \\
        --students 200 [--confirm] [--out bench/results/detection_rate_table.md]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HONEST = Path(__file__).resolve().parent / "results" / "detection_honest.json"
BENCH_KEY = b"detection-rate-benchmark-key"
INVENTED = (0, 1, 2, 3)
MODELS = ("interpolated", "guessed", "arbitrary")

#: The rule on main before this change: (pool re-run once, tolerance) per check, fast mode.
OLD_RULES: dict[str, tuple[tuple[str, ...] | None, float]] = {
    "01.lr_sweep": (("0.0001", "0.001"), 0.08),
    "01.batch_timing": (("16", "32", "256"), 4.0),
    "02.fashion_architectures": (None, 0.08),  # None: any reported configuration
    "03.lr_histories": (("0.1",), 0.15),
    "03.sweep_results": (("best",), 0.16),
    "04.dropout_results": (None, 0.14),
    "04.activation_results": (("relu", "tanh", "selu", "leaky_relu"), 0.14),
    "04.optimizer_search": (("sgd", "adam"), 0.07),
}


def choice_key(student: str, module: str) -> str:
    """The grader's derivation (``rerun_choice_key``) under the benchmark's results key."""
    return hmac.new(BENCH_KEY, f"rerun|{student}|{module}".encode(), hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------------------
# Students: honest values from the measured seeds, inventions on top
# ----------------------------------------------------------------------------------------


def invent(values: dict[str, float], invented: list[str], order: list[str], model: str,
           rng: np.random.Generator, span: tuple[float, float]) -> dict[str, float]:
    """``values`` with the ``invented`` configurations replaced the way ``model`` says."""
    out = dict(values)
    honest = [c for c in order if c not in invented]
    for config in invented:
        if model == "arbitrary":
            timing = span[1] > 1.0  # seconds; accuracies never exceed 1
            out[config] = float(np.exp(rng.uniform(np.log(0.05), np.log(20.0)))) if timing \
                else float(rng.uniform(0.0, 1.0))
            continue
        if model == "guessed" or not honest:
            out[config] = float(rng.uniform(*span))
            continue
        i = order.index(config)
        below = [c for c in honest if order.index(c) < i]
        above = [c for c in honest if order.index(c) > i]
        if below and above:
            a, b = below[-1], above[0]
            t = (i - order.index(a)) / (order.index(b) - order.index(a))
            out[config] = values[a] + t * (values[b] - values[a])
        else:
            out[config] = values[(below or above)[-1 if below else 0]]
    return out


class Reruns:
    """The grader's re-run values of one student: per configuration, two seeds other than
    the student's, handed out in order (the second one to a confirming second re-run)."""

    def __init__(self, values: dict[str, list[float]]) -> None:
        self.values = values
        self.seen: dict[str, list[int]] = {}

    def value(self, config: str, seed: int) -> float:
        seeds = self.seen.setdefault(config, [])
        if seed not in seeds:
            seeds.append(seed)
        return self.values[config][min(seeds.index(seed), 1)]


def draw_student(honest: dict[str, list[float]], rng: np.random.Generator,
                 ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """One student's honest values (one seed for all, as one notebook run) and the grader's
    re-run values (two other seeds per configuration)."""
    seeds = len(next(iter(honest.values())))
    own = int(rng.integers(seeds))
    reported = {config: values[own] for config, values in honest.items()}
    rerun = {config: [values[int(i)] for i in rng.choice(
                 [s for s in range(seeds) if s != own], size=2, replace=False)]
             for config, values in honest.items()}
    return reported, rerun


# ----------------------------------------------------------------------------------------
# The real checks, their training replaced by a look-up of ``rerun``
# ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def patched(module: Any, name: str, replacement: Callable) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _lesson01_lr(values, rerun, ctx):
    from grader.checks.references import lesson01 as l1

    epochs = l1.SWEEP_EPOCHS[ctx.mode]
    results = {float(k): v for k, v in values.items()}
    histories = {lr: {"val_accuracy": [v * 0.9] * (epochs - 1) + [v], "loss": [2.0] * epochs}
                 for lr, v in results.items()}
    with patched(l1, "rerun_lr", lambda c, lr, s: rerun.value(f"{lr:g}", s)):
        return l1.lr_sweep(ctx, results, histories)


def _lesson01_timing(values, rerun, ctx):
    from grader.checks.references import lesson01 as l1

    with patched(l1, "time_batch_size", lambda c, size, s: rerun.value(str(size), s)):
        return l1.batch_timing(ctx, {int(k): v for k, v in values.items()})


def _lesson02(values, rerun, ctx):
    from grader.checks.references import lesson02 as l2

    with patched(l2, "rerun_architecture",
                 lambda c, hidden, s: rerun.value("-".join(map(str, hidden)), s)):
        return l2.fashion_architectures(ctx, dict(values))


def _lesson03_lr(values, rerun, ctx):
    from grader.checks.references import lesson03 as l3

    epochs = l3.LR_EPOCHS[ctx.mode]
    found = {k: {"loss": [1.0] * epochs, "val_accuracy": [v] * epochs}
             for k, v in values.items()}
    found["1e-06"]["loss"] = [2.3] * epochs
    with patched(l3, "rerun_learning_rate", lambda c, lr, s: rerun.value(f"{lr:g}", s)):
        return l3.lr_histories(ctx, found)


def _lesson03_sweep(values, rerun, ctx):
    from detection_honest import SWEEP_ROWS  # bench/ is on sys.path

    from grader.checks.references import lesson03 as l3

    rows = [{**row, "val_accuracy": values[row["name"]], "val_loss": 0.5,
             "seconds_per_epoch": 1.0} for row in SWEEP_ROWS]
    with patched(l3, "rerun_configuration",
                 lambda c, row, s: (rerun.value(row["name"], s), 1.0)):
        return l3.sweep_results(ctx, rows)


def _lesson04_dropout(values, rerun, ctx):
    from grader.checks.references import lesson04 as l4

    results = {float(k): v for k, v in values.items()}
    best = max(results, key=results.get)
    with patched(l4, "rerun_tuning", lambda c, rate, act, s: [rerun.value(f"{rate:g}", s)]):
        return l4.dropout_results(ctx, results, best)


def _lesson04_activation(values, rerun, ctx):
    from grader.checks.references import lesson04 as l4

    with patched(l4, "rerun_tuning", lambda c, rate, act, s: [rerun.value(act, s)]):
        return l4.activation_results(ctx, {k: [v] for k, v in values.items()}, 0.45)


def _lesson04_search(values, rerun, ctx):
    from grader.checks.references import lesson04 as l4

    best = max(values, key=values.get)
    with patched(l4, "rerun_search", lambda c, name, s: rerun.value(name, s)):
        return l4.optimizer_search(ctx, dict(values), best)


#: Per check, the constant (module name, attribute) holding how many configurations it
#: re-runs: the "every configuration re-run" column sets it beyond the number of them.
COUNTS = {
    "01.lr_sweep": ("lesson01", "LR_RERUNS"), "01.batch_timing": ("lesson01", "BATCH_RERUNS"),
    "02.fashion_architectures": ("lesson02", "ARCH_RERUNS"),
    "03.lr_histories": ("lesson03", "LR_RERUNS"),
    "03.sweep_results": ("lesson03", "SWEEP_EXTRA_RERUNS"),
    "04.dropout_results": ("lesson04", "TUNE_RERUNS"),
    "04.activation_results": ("lesson04", "ACTIVATION_RERUNS"),
    "04.optimizer_search": ("lesson04", "SEARCH_RERUNS"),
}

CHECKS: dict[str, tuple[str, Callable]] = {
    "01.lr_sweep": ("01", _lesson01_lr),
    "01.batch_timing": ("01", _lesson01_timing),
    "02.fashion_architectures": ("02", _lesson02),
    "03.lr_histories": ("03", _lesson03_lr),
    "03.sweep_results": ("03", _lesson03_sweep),
    "04.dropout_results": ("04", _lesson04_dropout),
    "04.activation_results": ("04", _lesson04_activation),
    "04.optimizer_search": ("04", _lesson04_search),
}


def passes(check: str, values: dict[str, float], rerun: dict[str, list[float]],
           key: str) -> bool:
    from grader.checks.context import CheckFailed, Context

    ctx = Context(mode="fast", verify=True, choice_key=key)
    try:
        CHECKS[check][1](values, Reruns(rerun), ctx)
    except CheckFailed:
        return False
    return True


def old_passes(check: str, values: dict[str, float], reruns: dict[str, list[float]],
               key: str) -> bool:
    """The rule on main: one re-run, chosen with ``choose`` from a fixed pool."""
    from grader.checks.context import Context
    from grader.checks.experiments import choose

    pool, tolerance = OLD_RULES[check]
    rerun = {config: pair[0] for config, pair in reruns.items()}
    if check == "03.sweep_results":
        config = max(values, key=values.get)
    else:
        options = list(pool) if pool else sorted(values, key=str)
        config = choose(Context(choice_key=key), options, {
            "01.lr_sweep": "lr_sweep", "01.batch_timing": "batch_timing",
            "02.fashion_architectures": "fashion_architectures",
            "03.lr_histories": "lr_histories", "04.dropout_results": "dropout_results",
            "04.activation_results": "activation_results",
            "04.optimizer_search": "optimizer_search"}[check])
    if check == "01.batch_timing":
        if values["4"] <= values["1024"]:
            return False
        return 1 / tolerance <= values[config] / rerun[config] <= tolerance
    return abs(values[config] - rerun[config]) <= tolerance


def every_rerun(check: str):
    """The check with every configuration re-run (an upper bound for the selection rule)."""
    import importlib

    module, name = COUNTS[check]
    return patched(importlib.import_module(f"grader.checks.references.{module}"), name,
                   {"fast": 99, "full": 99})


def simulate(check: str, honest: dict[str, list[float]], students: int) -> dict:
    """Detection rates (new rule, old rule, every configuration re-run) per invention model
    and number invented."""
    order = list(honest)
    everything = [v for seeds in honest.values() for v in seeds]
    span = (min(everything), max(everything))
    rates: dict[tuple[str, int], tuple[float, float]] = {}
    for model in MODELS:
        for count in INVENTED:
            if count > len(order) or (model != "interpolated" and count == 0):
                continue
            caught = old_caught = all_caught = 0
            rng = np.random.default_rng(1000 * count + MODELS.index(model))
            for index in range(students):
                key = choice_key(f"student-{index}", CHECKS[check][0])
                values, rerun = draw_student(honest, rng)
                chosen = list(rng.choice(order, size=count, replace=False)) if count else []
                values = invent(values, chosen, order, model, rng, span)
                caught += not passes(check, values, rerun, key)
                old_caught += not old_passes(check, values, rerun, key)
                with every_rerun(check):
                    all_caught += not passes(check, values, rerun, key)
            rates[(model, count)] = (caught / students, old_caught / students,
                                     all_caught / students)
    return rates


# ----------------------------------------------------------------------------------------
# Real re-runs: lesson 01, no look-up
# ----------------------------------------------------------------------------------------


def confirm_lesson01(data_dir: str | None) -> list[str]:
    """Grade lesson 01's checks for real: honest passes, invented (when picked) fails."""
    from grader.checks.context import CheckFailed, Context
    from grader.checks.experiments import choose_many
    from grader.checks.references import lesson01 as l1

    lines = []
    honest = json.loads(HONEST.read_text())["values"]
    seeds = honest["01.lr_sweep"]
    base = {float(k): v["values"][0] for k, v in seeds.items()}
    # A student who ran 1e-4 and 1e-3 and interpolated or copied the rest.
    invented = {**base, 1e-5: base[1e-4], 1e-2: base[1e-3], 1e-1: base[1e-3]}
    epochs = l1.SWEEP_EPOCHS["fast"]

    def run(results, key):
        ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir, verify=True,
                      choice_key=key)
        hist = {lr: {"val_accuracy": [v] * epochs} for lr, v in results.items()}
        start = time.perf_counter()
        try:
            l1.lr_sweep(ctx, results, hist)
            outcome = "passes"
        except CheckFailed:
            outcome = "fails"
        return outcome, time.perf_counter() - start

    key = next(f"k{i}" for i in range(100)
               if {1e-5, 1e-2, 1e-1} & set(choose_many(Context(choice_key=f"k{i}"),
                                                        list(l1.LR_TOLERANCE["fast"]),
                                                        "lr_sweep", l1.LR_RERUNS["fast"])))
    for label, results in (("honest (seed 0's values)", base),
                           ("3 of 5 invented (1e-5, 1e-2, 0.1 copied from neighbours)",
                            invented)):
        outcome, seconds = run(results, key)
        lines.append(f"| 01.lr_sweep | {label} | {outcome} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    # Timings depend on the load of the moment: the honest ones are measured right here.
    ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir)
    timing = {size: l1.time_batch_size(ctx, size, 0) for size in l1.BATCH_SIZES}
    for label, seconds_by_size in (
            ("honest (timed just before)", timing),
            ("all 5 invented at 10x the honest timing", {k: 10 * v for k, v in timing.items()})):
        ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir, verify=True,
                      choice_key="k0")
        start = time.perf_counter()
        try:
            l1.batch_timing(ctx, seconds_by_size)
            outcome = "passes"
        except CheckFailed:
            outcome = "fails"
        lines.append(f"| 01.batch_timing | {label} | {outcome} |"
                     f" {time.perf_counter() - start:.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--confirm", action="store_true", help="also run lesson 01 for real")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    honest = json.loads(HONEST.read_text())["values"]
    lines = [f"Simulated students per cell: {args.students} (each with its own derived key)", "",
             "| check | configurations | invention | honest fails | 1 invented | 2 invented"
             " | 3 invented |", "|---|---|---|---|---|---|---|"]
    for check in CHECKS:
        if check not in honest:
            continue
        values = {k: v["values"] for k, v in honest[check].items()}
        rates = simulate(check, values, args.students)
        for model in MODELS:
            cells = []
            for count in INVENTED:
                if (model, count) not in rates:
                    cells.append("-")
                    continue
                new, old, every = rates[(model, count)]
                cells.append(f"{new:.0%} (was {old:.0%}; all {every:.0%})")
            lines.append(f"| {check} | {len(values)} | {model} | {' | '.join(cells)} |")
            print(lines[-1], flush=True)
    if args.confirm:
        lines += ["", "| check | submission | outcome | seconds |", "|---|---|---|---|"]
        lines += confirm_lesson01(os.environ.get("DLCOURSE_DATA_DIR"))
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
