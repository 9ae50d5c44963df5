"""Grading overhead: grade_submission vs a plain nbclient run of the same notebook.

For each module (fast mode, seed 0) this alternates, ``--repeats`` times:

1. ``grade_submission(solution)`` the way a batch worker runs it: validate, restore, inject,
   execute in the sandbox, export, score in the worker's warm scoring process
   (:mod:`grader.submission.scoring_server`, started once and reused) with the run's hold-out copy
   (written once, as a batch does);
2. a plain ``nbclient`` run of the same solution with the same injected parameters
   (no sandbox, no limits, no export, no scoring).

It reports the grader's time split (kernel start, execute, export, score), both wall
times and their ratio (median over repeats, and every pair). The load average at the start
is printed and recorded: measure on a quiet machine (under 0.5), since a busy one changes a
notebook's run time by up to 2x between consecutive runs.

Usage::

    python bench/grading_overhead.py [--modules 01 02] [--repeats 3]
        [--out bench/results/grading_overhead.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grader.authoring.release import available_modules
from grader.base.paths import SOLUTIONS_DIR
from grader.checks.holdout import plan_holdout, with_kernel_data
from grader.checks.rubric import load_rubric
from grader.submission.execute import kernel_env
from grader.submission.grading import GradingOptions, grade_submission
from grader.submission.parameters import inject_parameters
from grader.submission.scoring_server import WarmScorer


def plain_run(path: Path, *, seed: int, data_dir: str | None) -> float:
    """Wall seconds of a plain nbclient run (what `bench/run_notebook.py` does)."""
    nb = nbformat.read(str(path), as_version=4)
    inject_parameters(nb, FAST=True, SEED=seed)
    with tempfile.TemporaryDirectory() as folder:
        client = NotebookClient(nb, timeout=1800, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": folder}})
        start = time.perf_counter()
        client.execute(env=kernel_env(fast=True, data_dir=data_dir), cwd=folder)
        return time.perf_counter() - start


def bench_module(module: str, repeats: int, data_dir: str | None, scorer: WarmScorer,
                 holdout) -> dict:
    path = SOLUTIONS_DIR / load_rubric(module).notebook
    rows, plains = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        options = GradingOptions.resolve(fast=True, seed=0, data_dir=data_dir, holdout=holdout)
        row = grade_submission(path, options, scorer=scorer.handle())
        wall = time.perf_counter() - start
        rows.append((wall, row))
        plains.append(plain_run(path, seed=0, data_dir=data_dir))
        print(f"{module}: grader {wall:.1f} s {row.timings} score {row.score}/{row.max_score};"
              f" plain {plains[-1]:.1f} s", flush=True)
    med = statistics.median
    return {
        "module": module,
        "points": f"{rows[-1][1].score:g}/{rows[-1][1].max_score:g}",
        **{k: med(r.timings.get(k, 0.0) for _, r in rows)
           for k in ("kernel_start", "execute", "export", "score")},
        "grader": med(w for w, _ in rows),
        "plain": med(plains),
        "ratio": med(w / p for (w, _), p in zip(rows, plains, strict=True)),
        "pairs": [w / p for (w, _), p in zip(rows, plains, strict=True)],
    }


def to_markdown(results: list[dict], repeats: int, load: str, commit: str) -> str:
    lines = [
        "# Grading overhead (fast mode)",
        "",
        f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
        f" commit {commit}; load average at the start: {load}.",
        "",
        f"Median of {repeats} alternating runs per module (seed 0). `grader` is the wall"
        " time of `grade_submission` as a batch worker runs it (sandboxed kernel, export,"
        " scoring in the worker's warm scoring process); `plain` a bare nbclient run of the"
        " same solution. `pairs` lists every grader / plain ratio in run order.",
        "",
        "| module | points | kernel start s | execute s | export s | score s | grader s |"
        " plain s | ratio | pairs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pairs = ", ".join(f"{x:.2f}" for x in r["pairs"])
        lines.append(
            f"| {r['module']} | {r['points']} | {r['kernel_start']:.1f} | {r['execute']:.1f} |"
            f" {r['export']:.1f} | {r['score']:.1f} | {r['grader']:.1f} | {r['plain']:.1f} |"
            f" {r['ratio']:.2f} | {pairs} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/grading_overhead.md"))
    args = ap.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the start: {load}", flush=True)
    if os.getloadavg()[0] >= 0.5:
        print("warning: the machine is busy (1-minute load >= 0.5): times will be inflated",
              flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    holdout, copy = with_kernel_data(plan_holdout(data_dir, fast=True))
    results = []
    try:
        with WarmScorer() as scorer:
            for module in args.modules or available_modules():
                results.append(bench_module(module, args.repeats, data_dir, scorer, holdout))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(to_markdown(results, args.repeats, load, commit),
                                    encoding="utf-8")
    finally:
        if copy is not None:
            copy.remove()
    print(to_markdown(results, args.repeats, load, commit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
