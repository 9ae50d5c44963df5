"""Does the grader's kernel run a notebook slower than a plain run, and is it the re-runs ahead?

For each lesson (fast mode, seed 0) this alternates, ``--repeats`` rounds of three cold
commands:

1. **plain**: ``python bench/run_notebook.py SOLUTION --fast --seed 0 --out ...``; its
   *execute* is the span from the first code cell's start to the last one's reply, read from
   the cells' timing metadata (what the grader's row calls ``execute``, without the export);
2. **ahead**: the grade CLI on the one notebook as it ships (the warm scorer warms up and runs
   the lesson's fixed re-runs while the kernel runs);
3. **after**: the same with ``DLCOURSE_RERUN_AHEAD=0`` (the scorer still warms up; no re-run
   runs while the kernel runs).

``ahead`` minus ``after`` execute is what the re-runs done ahead cost the kernel beside them;
``after`` minus ``plain`` execute is what the rest (sandbox, limits, the kernel watch, the
scorer's warm-up, the kernel's data copy) costs or saves. Reports medians and every round.

Usage::

    python bench/execute_gap.py [--modules 03] [--repeats 5] [--out bench/results/execute_gap.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from grading_overhead import ROOT, cli_run, load1, timed


def _stamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def plain_execute(solution: Path, out: Path) -> dict:
    """A plain run's wall time and execute span (first code cell's start to last reply)."""
    load = load1()
    wall, done = timed([sys.executable, "bench/run_notebook.py", str(solution), "--fast",
                        "--seed", "0", "--out", str(out)])
    if done.returncode != 0:
        raise SystemExit(f"plain run of {solution.name} failed:\n{done.stderr[-2000:]}")
    cells = [c for c in json.loads(out.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    first = _stamp(cells[0]["metadata"]["execution"]["iopub.execute_input"])
    last = _stamp(cells[-1]["metadata"]["execution"]["shell.execute_reply"])
    return {"wall": wall, "execute": (last - first).total_seconds(), "load": load}


def main(argv: list[str] | None = None) -> int:
    from grader.base.paths import SOLUTIONS_DIR
    from grader.checks.rubric import load_rubric

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=["03"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results/execute_gap.md"))
    args = ap.parse_args(argv)
    if not os.environ.get("DLCOURSE_DATA_DIR"):
        raise SystemExit("set DLCOURSE_DATA_DIR to the datasets folder first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False, cwd=ROOT).stdout.strip() or "unknown"
    lines = ["# The grader's kernel against a plain run: execute time (fast mode)", "",
             f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
             f" commit {commit}; `python bench/execute_gap.py --modules {' '.join(args.modules)}"
             f" --repeats {args.repeats}`. Rounds alternate plain, ahead, after (one-notebook"
             " CLI, `--jobs 1`; after = `DLCOURSE_RERUN_AHEAD=0`); the shared data copy is"
             " already written. Execute = first code cell's start to the last cell's reply.", "",
             "| lesson | plain wall s | plain execute s | ahead execute s | after execute s |"
             " ahead score s | after score s | ahead wall / plain wall | after wall / plain"
             " wall |", "|---|---|---|---|---|---|---|---|---|"]
    rounds_text = []
    with tempfile.TemporaryDirectory(prefix="execgap-") as tmp:
        scratch = Path(tmp)
        for module in args.modules:
            solution = SOLUTIONS_DIR / load_rubric(module).notebook
            rounds = []
            for i in range(args.repeats):
                plain = plain_execute(solution, scratch / "plain.ipynb")
                ahead = cli_run(solution, 1, scratch / "ahead")
                after = cli_run(solution, 1, scratch / "after", {"DLCOURSE_RERUN_AHEAD": "0"})
                rounds.append((plain, ahead, after))
                text = (f"{module} round {i + 1}: plain {plain['wall']:.1f} s (execute"
                        f" {plain['execute']:.1f}); ahead {ahead['wall']:.1f} s (execute"
                        f" {ahead['execute']:.1f}, score {ahead['score']:.1f}); after"
                        f" {after['wall']:.1f} s (execute {after['execute']:.1f}, score"
                        f" {after['score']:.1f}); loads {plain['load']:.2f}/{ahead['load']:.2f}"
                        f"/{after['load']:.2f}")
                print(text, flush=True)
                rounds_text.append(f"- {text}")
            med = statistics.median
            lines.append(
                f"| {module} | {med(p['wall'] for p, _, _ in rounds):.1f}"
                f" | {med(p['execute'] for p, _, _ in rounds):.1f}"
                f" | {med(a['execute'] for _, a, _ in rounds):.1f}"
                f" | {med(b['execute'] for _, _, b in rounds):.1f}"
                f" | {med(a['score'] for _, a, _ in rounds):.2f}"
                f" | {med(b['score'] for _, _, b in rounds):.2f}"
                f" | {med(a['wall'] / p['wall'] for p, a, _ in rounds):.2f}"
                f" | {med(b['wall'] / p['wall'] for p, _, b in rounds):.2f} |")
    lines += ["", "## Every round", "", *rounds_text, ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
