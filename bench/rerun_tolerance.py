"""Calibrate the tolerances of the experiment checks' re-runs on the real data.

An ``experiment`` check re-runs one configuration of a student's sweep in the grader and
compares it with the student's value. Honest values differ from the re-run only by training
noise (initial weights, data order, the validation split). This script measures that noise:
for each re-run configuration it trains with several seeds and reports the spread
(max - min), the figure the tolerances in ``grader/checks/references/lesson0N.py`` must exceed.

Usage::

    DLCOURSE_DATA_DIR=../shared/data python bench/rerun_tolerance.py --mode fast --seeds 4
    python bench/rerun_tolerance.py --mode full --seeds 3 --only lesson01

Writes a Markdown table to stdout (and ``--out FILE``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cases():
    """(name, function(ctx, seed) -> float, dataset, tolerance attribute) per re-run."""
    from grader.checks.references import lesson01, lesson02, lesson03, lesson04

    found = []
    for lr in lesson01.LEARNING_RATES:
        found.append((f"lesson01 lr {lr:g}", lambda c, s, lr=lr: lesson01.rerun_lr(c, lr, s),
                      "cifar10", lambda m, lr=lr: lesson01.LR_TOLERANCE[m].get(lr, "-")))
    for extra in (lesson02, lesson03, lesson04):
        found.extend(getattr(extra, "RERUN_CASES", lambda: [])())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from grader.checks.kinds import Context

    lines = [f"## Re-run spread, {args.mode} mode, seeds 0..{args.seeds - 1}", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python"
             f" {platform.python_version()}; data: {os.environ.get('DLCOURSE_DATA_DIR')}", "",
             "| re-run | values | spread (max - min) | tolerance | seconds per run (median) |",
             "|---|---|---|---|---|"]
    for name, run, dataset, tolerance in cases():
        if args.only not in name:
            continue
        ctx = Context(mode=args.mode, dataset=dataset,
                      data_dir=os.environ.get("DLCOURSE_DATA_DIR"))
        values, seconds = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            values.append(float(run(ctx, seed)))
            seconds.append(time.perf_counter() - start)
        spread = max(values) - min(values)
        lines.append(f"| {name} | {', '.join(f'{v:.3f}' for v in values)} | {spread:.3f} |"
                     f" {tolerance(args.mode)} | {statistics.median(seconds):.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
