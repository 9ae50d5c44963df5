"""Where a warm scoring process spends a submission's score step, check by check.

For each lesson (fast mode, seed 0) the solution runs through the grader's pipeline up to
the export (sandboxed kernel, as a batch worker runs it); then this process does what a warm
scoring process does: its warm-up (:func:`grader.scoring.scoring_server.warm_up`: the
first fit, the datasets), loading the artifacts (vetted, safe mode) and every rubric check
with the private re-run choice. Each check is timed; experiment checks are the re-runs.

Usage::

    python bench/score_split.py [--modules 01 02] [--out bench/results/score_split.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path


def split_module(module: str, data_dir: str) -> dict:
    from grader.base.paths import SOLUTIONS_DIR
    from grader.checks.kinds import Context, run_check
    from grader.checks.rubric import load_rubric
    from grader.data.holdout import plan_holdout
    from grader.data.kernel_cache import with_kernel_data
    from grader.scoring.export import load_artifacts
    from grader.scoring.score_process import model_bounds
    from grader.scoring.scoring_server import warm_up
    from grader.submission import pipeline as steps
    from grader.submission.options import GradingOptions
    from grader.submission.pipeline import rerun_choice_key

    rubric = load_rubric(module)
    holdout, copy = with_kernel_data(plan_holdout(data_dir, fast=True))
    try:
        options = GradingOptions.resolve(fast=True, seed=0, data_dir=data_dir, holdout=holdout)
        request = steps.Request(path=SOLUTIONS_DIR / rubric.notebook, options=options,
                                rubric=rubric)
        sub, ledger = steps.read(request)  # read ... export, as steps.grade runs them
        lesson = steps.set_up(request, sub, ledger)
        nb = steps.inject(steps.restore_cells(sub, lesson, options, ledger.row), options)
        space = steps.prepare(request, sub, rubric, ledger)
        ahead = steps.Ahead(request, rubric, ledger.row.student, space.holdout, ledger)
        executed = steps.execute(request, rubric, nb, space, ahead, ledger)
        exported = steps.export(rubric, executed)
        ctx = Context(mode="fast", dataset=rubric.dataset, data_dir=data_dir, verify=True,
                      choice_key=rerun_choice_key(ledger.row.student, module),
                      holdout=space.holdout)
        start = time.perf_counter()
        warm_up({"mode": "fast", "seed": holdout.seed, "source_dir": holdout.source_dir,
                 "kernel_dir": holdout.kernel_dir, "data_dir": data_dir,
                 "datasets": list(rubric.scoring_datasets)})
        warm = time.perf_counter() - start
        start = time.perf_counter()
        objects, _ = load_artifacts(rubric, exported.artifacts, executed.inputs,
                                    model_bounds(rubric))
        load = time.perf_counter() - start
        kinds: dict[str, float] = {}
        for spec in rubric.checks:
            start = time.perf_counter()
            run_check(spec, objects, ctx)
            kinds[spec.kind] = kinds.get(spec.kind, 0.0) + time.perf_counter() - start
        for remove in reversed(ledger.cleanup):
            remove()
    finally:
        if copy is not None:
            copy.remove()
    return {"module": module, "execute": ledger.row.timings["execute"], "warm_up": warm,
            "load": load, "kinds": kinds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="*", default=["01", "02", "03", "04"])
    ap.add_argument("--out", type=Path, default=Path("bench/results/score_split.md"))
    args = ap.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    if not data_dir:
        raise SystemExit("set DLCOURSE_DATA_DIR to the datasets folder first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    lines = ["# Where the score step goes (fast mode, warm scoring process)", "",
             f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
             f" commit {commit}; load average at the start: {os.getloadavg()[0]:.2f}. One run"
             " per lesson (seed 0), `python bench/score_split.py`. `warm-up` happens while the"
             " kernel runs; the score step after the kernel is `load` plus the checks. Nothing"
             " runs ahead here: `experiment` is every re-run (in grading, the accuracy re-runs run"
             " while the kernel runs, `bench/results/rerun_ahead.md`; timing re-runs after).",
             "",
             "| lesson | execute s | warm-up s | load s | experiment (re-runs) s | accuracy s |"
             " other checks s | score step s | of execute |", "|---|---|---|---|---|---|---|---|---|"]
    for module in args.modules:
        r = split_module(module, data_dir)
        kinds = r["kinds"]
        other = sum(v for k, v in kinds.items() if k not in ("experiment", "accuracy"))
        step = r["load"] + sum(kinds.values())
        lines.append(f"| {module} | {r['execute']:.1f} | {r['warm_up']:.1f} | {r['load']:.2f} |"
                     f" {kinds.get('experiment', 0.0):.2f} | {kinds.get('accuracy', 0.0):.2f} |"
                     f" {other:.2f} | {step:.2f} | {step / r['execute']:.1%} |")
        print(lines[-1], flush=True)
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
