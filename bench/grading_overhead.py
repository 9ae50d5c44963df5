"""Grading cost as users meet it: the grader's CLI against a plain run of the same notebook.

For each lesson (fast mode, seed 0) this alternates, ``--repeats`` times, two cold commands
run the way a user runs them, each a fresh Python process:

1. **plain**: ``python bench/run_notebook.py SOLUTION --fast --seed 0`` (a bare nbclient run
   of the solution: no sandbox, no limits, no export, no scoring);
2. **one**: ``python -m grader grade`` on a one-notebook batch of the same solution
   (``--fast --seed 0 --jobs 1``, a fresh output folder);

and then, ``--batch-repeats`` times, **batch**: the CLI on ``--batch`` copies of the solution
(one per made-up student, ``--jobs 1``), whose wall time is divided by the copies.

Before a lesson's first ``one`` run (with ``--cold alternate``, before every other one) the
shared fast-mode data copy (:mod:`grader.data.kernel_cache`) is deleted, so that run
writes it again as a batch does the first time on a machine; the later runs find it. The
split comes from the grader's own records: each row's ``timings`` in ``grades.json`` (kernel
start, execute, export, score) and the batch's phases in ``batch.json`` (plan, data copy,
grading, outputs); *start-up* is the CLI's wall time minus those phases (Python, imports,
argument checks) and *around* is everything of the one-notebook wall time that is not the
row's kernel start, execute, export or score. The 1-minute load average is printed and
recorded before every run: measure on a quiet machine.

Usage::

    python bench/grading_overhead.py [--modules 01 02] [--repeats 3] [--batch 4]
        [--batch-repeats 1] [--out bench/results/grading_overhead.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW_STEPS = ("kernel_start", "execute", "export", "score")
PHASES = ("plan", "data_copy", "grading", "outputs")

TARGETS = {"one": 1.10, "batch": 1.06, "score": 0.05, "around": 3.0}
"""Issue 27's targets: one-notebook ratio, per-notebook ratio in a batch, score / execute,
seconds around the grading of one notebook."""


def load1() -> float:
    return os.getloadavg()[0]


def timed(cmd: list[str], env: dict[str, str] | None = None
          ) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})})
    return time.perf_counter() - start, done


def plain_run(solution: Path) -> dict:
    load = load1()
    wall, done = timed([sys.executable, "bench/run_notebook.py", str(solution), "--fast",
                        "--seed", "0"])
    if done.returncode != 0:
        raise SystemExit(f"plain run of {solution.name} failed:\n{done.stderr[-2000:]}")
    return {"wall": wall, "load": load}


def cli_run(solution: Path, copies: int, folder: Path, env: dict[str, str] | None = None) -> dict:
    """The grade CLI on ``copies`` copies of ``solution`` (students s0, s1, ...), with ``env``
    added to the environment."""
    shutil.rmtree(folder, ignore_errors=True)
    inbox = folder / "in"
    inbox.mkdir(parents=True)
    for i in range(copies):
        shutil.copy(solution, inbox / f"s{i}_{solution.name}")
    load = load1()
    wall, done = timed([sys.executable, "-m", "grader", "grade", str(inbox), "--out",
                        str(folder / "out"), "--fast", "--seed", "0", "--jobs", "1"], env)
    if done.returncode != 0:
        raise SystemExit(f"grade failed ({done.returncode}):\n{done.stderr[-2000:]}")
    rows = json.loads((folder / "out" / "grades.json").read_text(encoding="utf-8"))
    batch = json.loads((folder / "out" / "batch.json").read_text(encoding="utf-8"))
    if len(rows) != copies or any(r["error"] for r in rows):
        raise SystemExit(f"expected {copies} graded rows, got {[r['error'] for r in rows]}")
    phases = {k: float(batch["timings"].get(k, 0.0)) for k in PHASES}
    steps = {k: statistics.mean(float(r["timings"].get(k, 0.0)) for r in rows)
             for k in ROW_STEPS}
    return {"wall": wall, "load": load, "points": f"{rows[0]['score']:g}/{rows[0]['max_score']:g}",
            "startup": wall - sum(phases.values()), **phases, **steps,
            "around": wall - sum(steps.values()) if copies == 1 else None}


def bench_module(module: str, repeats: int, copies: int, batch_repeats: int,
                 scratch: Path, cold: str = "first") -> dict:
    from grader.base.paths import SOLUTIONS_DIR
    from grader.checks.rubric import load_rubric
    from grader.data.kernel_cache import cache_root

    solution = SOLUTIONS_DIR / load_rubric(module).notebook
    plains, ones, batches = [], [], []
    for repeat in range(repeats):
        plains.append(plain_run(solution))
        first = repeat == 0 or (cold == "alternate" and repeat % 2 == 0)
        if first:  # a first run on a machine: it writes fast mode's shared data copy again
            shutil.rmtree(cache_root(), ignore_errors=True)
        ones.append({**cli_run(solution, 1, scratch / f"{module}-one"), "first": first})
        print(f"{module}: plain {plains[-1]['wall']:.1f} s, one {ones[-1]['wall']:.1f} s"
              f" (score {ones[-1]['score']:.1f} s, around {ones[-1]['around']:.1f} s;"
              f" load {plains[-1]['load']:.2f}/{ones[-1]['load']:.2f})", flush=True)
    for _ in range(batch_repeats):
        batches.append(cli_run(solution, copies, scratch / f"{module}-batch"))
        print(f"{module}: batch of {copies} {batches[-1]['wall']:.1f} s"
              f" ({batches[-1]['wall'] / copies:.1f} s per notebook)", flush=True)
    med = statistics.median
    plain = med(p["wall"] for p in plains)
    one = {k: med(r[k] for r in ones) for k in ("wall", "startup", *PHASES, *ROW_STEPS, "around")}
    result = {"module": module, "points": ones[-1]["points"], "plain": plain, "one": one,
              "ratio_one": med(r["wall"] / p["wall"] for r, p in zip(ones, plains, strict=True)),
              "pairs": [r["wall"] / p["wall"] for r, p in zip(ones, plains, strict=True)],
              "loads": [round(x["load"], 2) for pair in zip(plains, ones, strict=True)
                        for x in pair],
              "score_share": med(r["score"] / r["execute"] for r in ones),
              "first": {k: ones[0][k] for k in ("wall", "data_copy", "around")},
              "first_around": [round(r["around"], 2) for r in ones if r["first"]],
              "first_copy": [round(r["data_copy"], 2) for r in ones if r["first"]],
              "later_around": [round(r["around"], 2) for r in ones if not r["first"]]}
    if batches:
        per = med(b["wall"] / copies for b in batches)
        result.update(batch_per=per, ratio_batch=per / plain,
                      batch_score=med(b["score"] for b in batches),
                      batch_loads=[round(b["load"], 2) for b in batches])
    return result


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "-"
    return "yes" if value <= target else "**no**"


def to_markdown(results: list[dict], args, commit: str) -> str:
    lines = [
        "# Grading cost (fast mode)",
        "",
        f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
        f" commit {commit}; `python bench/grading_overhead.py --repeats {args.repeats}"
        f" --batch {args.batch} --batch-repeats {args.batch_repeats}"
        + (f" --cold {args.cold}" if args.cold != "first" else "") + "`.",
        "",
        f"Medians over {args.repeats} alternating pairs per lesson (seed 0) of cold commands:"
        " `plain` = `python bench/run_notebook.py SOLUTION --fast --seed 0`, `one` ="
        " `python -m grader grade` on that one notebook (`--jobs 1`); `batch` = the CLI on"
        f" {args.batch} copies (`--jobs 1`), wall time per notebook. Loads are the 1-minute"
        " load averages before each run, in run order.",
        "",
        "## Against the targets",
        "",
        "| lesson | points | plain s | one s | one / plain (target <= 1.10) | pairs |"
        " batch s per notebook | batch / plain (target <= 1.06) | score / execute"
        " (target <= 0.05) | around one notebook s (target < 3) | loads |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        one, batch = r["one"], r.get("batch_per")
        cells = [r["module"], r["points"], f"{r['plain']:.1f}", f"{one['wall']:.1f}",
                 f"{r['ratio_one']:.2f} ({verdict(r['ratio_one'], TARGETS['one'])})",
                 ", ".join(f"{x:.2f}" for x in r["pairs"]),
                 f"{batch:.1f}" if batch is not None else "-",
                 (f"{r['ratio_batch']:.2f} ({verdict(r['ratio_batch'], TARGETS['batch'])})"
                  if batch is not None else "-"),
                 f"{r['score_share']:.3f} ({verdict(r['score_share'], TARGETS['score'])})",
                 f"{one['around']:.1f} ({verdict(one['around'], TARGETS['around'])})",
                 ", ".join(map(str, r["loads"] + r.get("batch_loads", [])))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The first run on a machine (the shared fast-mode data copy written again)",
        "",
        "| lesson | one s (first) | data copy s (first runs) | around s (first runs) |"
        " around s (later runs) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['module']} | {r['first']['wall']:.1f} |"
                     f" {', '.join(map(str, r['first_copy']))} |"
                     f" {', '.join(map(str, r['first_around']))} |"
                     f" {', '.join(map(str, r['later_around']))} |")
    lines += [
        "",
        "## Where a one-notebook batch spends its time (medians, seconds)",
        "",
        "| lesson | start-up | plan | data copy | kernel start | execute | export | score |"
        " outputs | grading phase | wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r["one"]
        lines.append(
            f"| {r['module']} | {o['startup']:.2f} | {o['plan']:.2f} | {o['data_copy']:.2f} |"
            f" {o['kernel_start']:.2f} | {o['execute']:.1f} | {o['export']:.2f} |"
            f" {o['score']:.2f} | {o['outputs']:.2f} | {o['grading']:.1f} | {o['wall']:.1f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="copies in the batch run")
    ap.add_argument("--batch-repeats", type=int, default=1)
    ap.add_argument("--cold", choices=("first", "alternate"), default="first",
                    help="which one-notebook runs write the shared data copy again: the first"
                    " of each lesson, or every other one (first runs measured several times)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/grading_overhead.md"))
    args = ap.parse_args(argv)
    from grader.authoring.release import available_modules

    if not os.environ.get("DLCOURSE_DATA_DIR"):
        raise SystemExit("set DLCOURSE_DATA_DIR to the datasets folder first")
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False, cwd=ROOT).stdout.strip() or "unknown"
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="dlcourse-cost-"))
    try:
        for module in args.modules or available_modules():
            results.append(bench_module(module, args.repeats, args.batch, args.batch_repeats,
                                        scratch, args.cold))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(to_markdown(results, args, commit), encoding="utf-8")
            (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1) + "\n",
                                                       encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(to_markdown(results, args, commit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
