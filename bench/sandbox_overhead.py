"""What the bubblewrap sandbox costs: kernel start-up and whole gradings, side by side.

Two measurements, each alternating ``--sandbox bwrap`` and ``--sandbox none`` in one run so
that both see the same machine load:

1. **Start-up** (``--startups N``): start a grading kernel the way the grader does (ipc
   transport, allow-listed environment; inside bubblewrap or not), run one cell that imports
   TensorFlow, shut it down. Reports the median seconds of kernel start (until the kernel
   answers) and of start + import.
2. **Grading** (``--gradings N``): ``grade_submission`` of a module's solution in fast mode
   (seed 0), sandboxed and not: median wall time and the grader's timings.

Usage::

    python bench/sandbox_overhead.py [--startups 7] [--gradings 3] [--module 02]
        [--out bench/results/sandbox_overhead.md]
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

from grader.base.paths import SOLUTIONS_DIR
from grader.checks.rubric import load_rubric
from grader.kernel.execute import execute_notebook
from grader.kernel.limits import Limits
from grader.kernel.sandbox import (
    KernelHome,
    kernel_environment,
    make_kernel_manager,
    sandboxed_kernel_manager,
)
from grader.submission.grading import GradingOptions, grade_submission


def one_startup(sandboxed: bool, data_dir: str | None) -> tuple[float, float]:
    """(kernel start s, start + `import tensorflow` s) for one fresh kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import tensorflow")]
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-") as folder:
        home = KernelHome.create(Path(folder))
        try:
            env = kernel_environment(fast=True, data_dir=data_dir, threads=None,
                                     sandboxed=sandboxed, home=home.home)
            km = (sandboxed_kernel_manager(home, data_dir=data_dir, env=env) if sandboxed
                  else make_kernel_manager(home.sockets))
            result = execute_notebook(nb, workdir=home.scratch, limits=Limits(), env=env, km=km)
        finally:
            home.remove()
    if result.cell_errors:
        raise RuntimeError(f"the benchmark cell failed: {result.cell_errors}")
    return result.durations["kernel_start"], result.durations["kernel_start"] + result.durations["execute"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--startups", type=int, default=7)
    ap.add_argument("--gradings", type=int, default=3)
    ap.add_argument("--module", default="02")
    ap.add_argument("--out", type=Path, default=Path("bench/results/sandbox_overhead.md"))
    args = ap.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"load average at the start: {load}", flush=True)
    med = statistics.median
    starts: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(args.startups):
        for sandboxed in ((True, False) if i % 2 == 0 else (False, True)):
            starts[sandboxed].append(one_startup(sandboxed, data_dir))
            print(f"start-up sandboxed={sandboxed}: {starts[sandboxed][-1]}", flush=True)
    gradings: dict[str, list] = {"bwrap": [], "none": []}
    path = SOLUTIONS_DIR / load_rubric(args.module).notebook
    for i in range(args.gradings):
        for mode in (("bwrap", "none") if i % 2 == 0 else ("none", "bwrap")):
            t0 = time.perf_counter()
            options = GradingOptions.resolve(fast=True, seed=0, data_dir=data_dir, sandbox=mode)
            row = grade_submission(path, options)
            gradings[mode].append((time.perf_counter() - t0, row))
            print(f"grading {mode}: {gradings[mode][-1][0]:.1f} s {row.timings}"
                  f" {row.score}/{row.max_score}", flush=True)

    lines = [
        "# Sandbox overhead",
        "",
        f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()}; commit"
        f" {commit}; load average at the start: {load}. Sandboxed and unsandboxed runs"
        " alternate in one process, so both see the same load.",
        "",
        f"## Kernel start-up (median of {args.startups} each)",
        "",
        "| sandbox | kernel start s | start + import tensorflow s |",
        "|---|---|---|",
    ]
    for sandboxed, label in ((False, "none"), (True, "bwrap")):
        lines.append(f"| {label} | {med(s for s, _ in starts[sandboxed]):.2f} |"
                     f" {med(t for _, t in starts[sandboxed]):.2f} |")
    diff = med(s for s, _ in starts[True]) - med(s for s, _ in starts[False])
    diff_tf = med(t for _, t in starts[True]) - med(t for _, t in starts[False])
    lines += ["", f"Sandbox start-up adds {diff:+.2f} s to the kernel start and {diff_tf:+.2f} s"
              " to start + TensorFlow import (difference of medians).", ""]
    if args.gradings:
        lines += [f"## Grading the module {args.module} solution, fast mode (median of"
                  f" {args.gradings} each)", "",
                  "| sandbox | points | kernel start s | execute s | export s | score s | wall s |",
                  "|---|---|---|---|---|---|---|"]
        for mode in ("none", "bwrap"):
            rows = gradings[mode]
            t = {k: med(r.timings.get(k, 0.0) for _, r in rows)
                 for k in ("kernel_start", "execute", "export", "score")}
            lines.append(f"| {mode} | {rows[-1][1].score:g}/{rows[-1][1].max_score:g} |"
                         f" {t['kernel_start']:.2f} | {t['execute']:.1f} | {t['export']:.2f} |"
                         f" {t['score']:.2f} | {med(w for w, _ in rows):.1f} |")
        ratio = med(w for w, _ in gradings["bwrap"]) / med(w for w, _ in gradings["none"])
        lines += ["", f"Wall-time ratio sandboxed / unsandboxed: {ratio:.3f}.", ""]
    text = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
