"""Fast-mode grading throughput: ``--jobs 1``, ``--jobs 2`` and a 2-worker Dask LocalCluster.

All three grade the same N copies of one module's answered solution (full marks), with
``force`` so nothing is skipped; then the example-class command of docs/grading.md is timed on
``examples/submissions``. Results go to ``bench/results/throughput.md``::

    DLCOURSE_DATA_DIR=/path/to/data python bench/throughput.py --module 01 --n 4 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))


def _submissions(module: str, n: int, folder: Path) -> Path:
    from make_submissions import answered

    from grader.authoring.release import load_solution, write_text
    from grader.checks.rubric import load_rubric

    rubric = load_rubric(module)
    text = write_text(answered(load_solution(rubric)))
    for i in range(n):
        path = folder / f"student{i + 1:02d}" / rubric.notebook
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def _run(config: str, subs: Path, out: Path, data_dir: str) -> dict:
    from grader.classroom.batch import grade_class

    kwargs = dict(submissions=[subs], out=out, fast=True, force=True, data_dir=data_dir,
                  progress=False)
    start = time.perf_counter()
    if config == "dask-2":
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                          dashboard_address=None) as cluster:
            start = time.perf_counter()  # cluster start-up is not grading time
            summary = grade_class(scheduler=cluster.scheduler_address, **kwargs)
    else:
        summary = grade_class(jobs=int(config.split("-")[1]), **kwargs)
    wall = time.perf_counter() - start
    scores = [r.error is None and all(c.passed for c in r.checks if not getattr(c, "manual", False))
              for r in summary.rows]  # written questions wait for the instructor
    return {"wall": wall, "per_nb": statistics.median(r.duration_s for r in summary.rows),
            "full_marks": sum(scores), "n": len(summary.rows)}


def _readme_command(data_dir: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="dlcourse-readme-"))
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader", "grade", "examples/submissions", "--out",
                        str(out / "grading-output"), "--fast"], cwd=REPO, check=True,
                       env={**os.environ, "DLCOURSE_DATA_DIR": data_dir},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _machine() -> str:
    import tensorflow as tf

    load = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False, cwd=REPO).stdout.strip() or "unknown"
    return (f"{os.cpu_count()} cores, no GPU, Python {platform.python_version()},"
            f" TensorFlow {tf.__version__}, {platform.system()} {platform.machine()}, commit"
            f" {commit}; load average at the start {load[0]:.2f} (1 min)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--module", default="01")
    ap.add_argument("--n", type=int, default=4, help="submissions per configuration")
    ap.add_argument("--repeats", type=int, default=1, help="runs per configuration (median)")
    ap.add_argument("--configs", default="jobs-1,jobs-2,dask-2")
    ap.add_argument("--skip-readme", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "throughput.md")
    args = ap.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    if not data_dir:
        ap.error("set DLCOURSE_DATA_DIR to the folder holding mnist.npz, cifar10.npz, ...")
    start_load = os.getloadavg()[0]
    print(f"load average at the start: {start_load:.2f}", flush=True)
    machine = _machine()
    root = Path(tempfile.mkdtemp(prefix="dlcourse-bench-"))
    subs = _submissions(args.module, args.n, root / "subs")
    results: dict[str, list[dict]] = {}
    try:
        for rep in range(args.repeats):
            for config in args.configs.split(","):
                result = _run(config, subs, root / f"out-{config}-{rep}", data_dir)
                results.setdefault(config, []).append(result)
                print(f"{config} run {rep + 1}: {result}", flush=True)
        readme = None if args.skip_readme else _readme_command(data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    end_load = os.getloadavg()[0]

    base = statistics.median(r["wall"] for r in results[args.configs.split(",")[0]])
    lines = [
        "# Grading throughput (fast mode)", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `python bench/throughput.py"
        f" --module {args.module} --n {args.n} --repeats {args.repeats}`.", "",
        f"Machine: {machine}; {end_load:.2f} at the end.", "",
        *(["**The machine was busy at the start** (1-minute load average >= 0.5): absolute"
           " times are inflated and speed-ups distorted (two grading processes get a larger"
           " share of a contended CPU than one). Rerun on an idle machine for clean numbers.",
           ""] if start_load >= 0.5 else []),
        f"{args.n} copies of the module {args.module} solution (full automatic marks expected;"
        " written questions wait for the instructor), graded with"
        " `--force`. Wall time is the whole batch (Dask: cluster start-up excluded); per"
        f" notebook is the median grading time of one submission. Medians of {args.repeats}"
        " run(s).", "",
        "| configuration | wall (s) | per notebook (s) | submissions / hour | speed-up | full marks |",
        "|---|---|---|---|---|---|",
    ]
    for config, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        per_nb = statistics.median(r["per_nb"] for r in runs)
        full = min(r["full_marks"] for r in runs)
        lines.append(f"| {config} | {wall:.0f} | {per_nb:.0f} | {args.n / wall * 3600:.0f} |"
                     f" {base / wall:.2f}x | {full}/{args.n} |")
    if readme is not None:
        lines += ["", "Example-class command (`python -m grader grade examples/submissions --out"
                  f" grading-output --fast`, 6 submissions, `--jobs 1`): {readme:.0f} s wall."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
