"""Honest re-run values of every configuration an experiment check may re-run.

Trains each configuration of every lesson's experiment checks with several seeds, exactly as
the grader's re-run does (``grader/checks/references/lesson0N.py``), and stores the values
in a JSON file: ``bench/detection_rate.py`` draws honest students and honest re-runs from
them, and the per-configuration tolerances are checked against their spread.

Usage::

    DLCOURSE_DATA_DIR=../shared/data nice -n 5 python bench/detection_honest.py --seeds 5 \\
        --out bench/results/detection_honest.json [--only lesson01]

The file is updated after every configuration, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def configurations():
    """(check, configuration label, dataset, function(ctx, seed) -> float) per re-run."""
    from grader.checks.references import lesson01, lesson02, lesson03, lesson04

    found = []
    for lr in lesson01.LEARNING_RATES:
        found.append(("01.lr_sweep", f"{lr:g}", "cifar10",
                      lambda c, s, lr=lr: lesson01.rerun_lr(c, lr, s)))
    for size in lesson01.BATCH_SIZES:
        found.append(("01.batch_timing", str(size), "cifar10",
                      lambda c, s, size=size: lesson01.time_batch_size(c, size, s)))
    for hidden in ([64], [512], [256, 128, 64, 32]):
        found.append(("02.fashion_architectures", "-".join(map(str, hidden)), "fashion_mnist",
                      lambda c, s, h=hidden: lesson02.rerun_architecture(c, h, s)))
    for lr in lesson03.LEARNING_RATES:
        found.append(("03.lr_histories", f"{lr:g}", "fashion_mnist",
                      lambda c, s, lr=lr: lesson03.rerun_learning_rate(c, lr, s)))
    for row in SWEEP_ROWS:
        found.append(("03.sweep_results", row["name"], "fashion_mnist",
                      lambda c, s, r=row: lesson03.rerun_configuration(c, r, s)[0]))
    for rate in lesson04.DROPOUT_RATES:
        found.append(("04.dropout_results", f"{rate:g}", "cifar10",
                      lambda c, s, r=rate: lesson04.rerun_tuning(c, r, "relu", s)[-1]))
    for name in lesson04.ACTIVATIONS:
        found.append(("04.activation_results", name, "cifar10",
                      lambda c, s, a=name: lesson04.rerun_tuning(c, 0.45, a, s)[-1]))
    for name in lesson04.OPTIMIZERS:
        found.append(("04.optimizer_search", name, "cifar10",
                      lambda c, s, o=name: lesson04.rerun_search(c, o, s)))
    return found


#: The solution notebook's hyperparameter table (Exercise 3.9), one row per configuration.
_BASE = {"hidden": [128, 200, 256], "activation": "relu", "batch_size": 64, "optimizer": "sgd",
         "learning_rate": 0.1}
SWEEP_ROWS = [
    {**_BASE, "name": "baseline SGD 0.1"},
    {**_BASE, "name": "wider 512-256", "hidden": [512, 256]},
    {**_BASE, "name": "tanh activations", "activation": "tanh"},
    {**_BASE, "name": "batch 256", "batch_size": 256},
    {**_BASE, "name": "Adam 1e-3", "optimizer": "adam", "learning_rate": 1e-3},
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default="", help="only checks whose id contains this")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from grader.checks.context import Context

    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data.setdefault("machine", f"{platform.machine()}, {os.cpu_count()} cores, Python"
                               f" {platform.python_version()}")
    data["mode"], data["seeds"] = args.mode, args.seeds
    values = data.setdefault("values", {})
    for check, label, dataset, run in configurations():
        if args.only not in check:
            continue
        ctx = Context(mode=args.mode, dataset=dataset,
                      data_dir=os.environ.get("DLCOURSE_DATA_DIR"))
        found, seconds = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            found.append(round(float(run(ctx, seed)), 5))
            seconds.append(round(time.perf_counter() - start, 2))
        values.setdefault(check, {})[label] = {"values": found, "seconds": seconds,
                                                "load": round(os.getloadavg()[0], 1)}
        print(check, label, found, seconds, flush=True)
        args.out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
