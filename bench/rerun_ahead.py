"""Re-runs done ahead (while the kernel runs) against re-runs after the kernel, side by side.

For each lesson with planned re-runs (:mod:`grader.checks.speculation`), fast mode, seed 0,
``--repeats`` alternating pairs of the grade CLI on the one solution notebook: once as it
ships, once with ``DLCOURSE_RERUN_AHEAD=0`` (every re-run after the kernel). The shared data
copy is already written (see ``bench/grading_overhead.py`` for the first run). Reports the
wall time, the row's execute and score seconds (medians) and every pair's ratio.

Usage::

    python bench/rerun_ahead.py [--modules 01 02 03 04] [--repeats 2]
        [--out bench/results/rerun_ahead.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

from grading_overhead import cli_run


def main(argv: list[str] | None = None) -> int:
    from grader.base.paths import SOLUTIONS_DIR
    from grader.checks.rubric import load_rubric

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=["01", "02", "03", "04"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results/rerun_ahead.md"))
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    lines = ["# Re-runs ahead (while the kernel runs) against after the kernel (fast mode)", "",
             f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
             f" commit {commit}; load average at the start: {os.getloadavg()[0]:.2f};"
             f" `python bench/rerun_ahead.py --modules {' '.join(args.modules)}"
             f" --repeats {args.repeats}`. Medians of"
             f" {args.repeats} alternating pairs of one-notebook CLI runs (`--jobs 1`); `after`"
             " = `DLCOURSE_RERUN_AHEAD=0`.", "",
             "| lesson | ahead: wall s | execute s | score s | after: wall s | execute s |"
             " score s | ahead / after (pairs) |", "|---|---|---|---|---|---|---|---|"]
    scratch = Path(tempfile.mkdtemp(prefix="dlcourse-ahead-"))
    for module in args.modules:
        solution = SOLUTIONS_DIR / load_rubric(module).notebook
        ahead, after = [], []
        for _ in range(args.repeats):
            ahead.append(cli_run(solution, 1, scratch / "a"))
            after.append(cli_run(solution, 1, scratch / "b", env={"DLCOURSE_RERUN_AHEAD": "0"}))
            print(f"{module}: ahead {ahead[-1]['wall']:.1f} s (execute {ahead[-1]['execute']:.1f},"
                  f" score {ahead[-1]['score']:.1f}); after {after[-1]['wall']:.1f} s (execute"
                  f" {after[-1]['execute']:.1f}, score {after[-1]['score']:.1f})", flush=True)
        med = statistics.median
        pairs = ", ".join(f"{a['wall'] / b['wall']:.2f}" for a, b in zip(ahead, after, strict=True))
        lines.append(
            f"| {module} | {med(r['wall'] for r in ahead):.1f} |"
            f" {med(r['execute'] for r in ahead):.1f} | {med(r['score'] for r in ahead):.1f} |"
            f" {med(r['wall'] for r in after):.1f} | {med(r['execute'] for r in after):.1f} |"
            f" {med(r['score'] for r in after):.1f} |"
            f" {med(a['wall'] / b['wall'] for a, b in zip(ahead, after, strict=True)):.2f}"
            f" ({pairs}) |")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
