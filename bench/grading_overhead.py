"""Grading overhead: grade_submission vs a plain nbclient run of the same notebook.

For each module (fast mode, seed 0) this alternates, ``--repeats`` times:

1. ``grade_submission(solution)``: validate, restore, inject, execute, export, score;
2. a plain ``nbclient`` run of the same solution with the same injected parameters and
   kernel environment (no limits, no export, no scoring).

It reports the grader's time split (kernel start, execute, export, score), both wall
times and their ratio (median over repeats). The first grading in a process also pays for
importing Keras and loading the test split in the grader; later ones do not (batch grading
reuses its worker processes), so the cold first ratio is reported separately.

Usage::

    python bench/grading_overhead.py [--modules 01 02] [--repeats 3]
        [--out bench/results/grading_overhead.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grader.authoring.release import available_modules
from grader.base.paths import SOLUTIONS_DIR
from grader.checks.rubric import load_rubric
from grader.submission.execute import kernel_env
from grader.submission.grading import grade_submission
from grader.submission.parameters import inject_parameters


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


def bench_module(module: str, repeats: int, data_dir: str | None) -> dict:
    path = SOLUTIONS_DIR / load_rubric(module).notebook
    rows, plains = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        row = grade_submission(path, fast=True, seed=0, data_dir=data_dir)
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
        "cold_ratio": rows[0][0] / plains[0],
    }


def to_markdown(results: list[dict], repeats: int, load: str) -> str:
    lines = [
        "# Grading overhead (fast mode)",
        "",
        f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
        f" load average at the start: {load}. Other agents were running notebooks at the"
        " same time, so absolute times are inflated; grader and plain runs alternate so the"
        " ratio compares like with like.",
        "",
        f"Median of {repeats} alternating runs per module (seed 0). `grader` is the wall"
        " time of `grade_submission` (validate, restore, inject, execute, export, score);"
        " `plain` a bare nbclient run of the same solution. `cold` is the ratio of the first"
        " pair, where the grader process still imports Keras and loads the test split.",
        "",
        "| module | points | kernel start s | execute s | export s | score s | grader s |"
        " plain s | ratio | cold ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['module']} | {r['points']} | {r['kernel_start']:.1f} | {r['execute']:.1f} |"
            f" {r['export']:.1f} | {r['score']:.1f} | {r['grader']:.1f} | {r['plain']:.1f} |"
            f" {r['ratio']:.2f} | {r['cold_ratio']:.2f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results/grading_overhead.md"))
    args = ap.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    results = []
    for module in args.modules or available_modules():
        results.append(bench_module(module, args.repeats, data_dir))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(to_markdown(results, args.repeats, load), encoding="utf-8")
    print(to_markdown(results, args.repeats, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
