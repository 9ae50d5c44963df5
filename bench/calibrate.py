"""Calibrate the full-mode accuracy thresholds and per-cell time limits over seeds.

Grades every solution notebook (``solutions/0N_*.ipynb``) in **full mode** once per seed with
the real grader (:func:`grade_submission`, sandbox as configured, the private hold-out
included): each seed trains the lesson's models on the full training split minus the
hold-out, and draws its own hold-out (the hold-out seed comes from a calibration key made
from the seed), so the numbers cover training noise and the choice of hold-out images.

Runs go to worker processes, ``--jobs`` at a time (default 2, one TensorFlow thread each:
on 2 cores two one-thread runs finish sooner than two two-thread runs in a row), each in
a fresh process, longest modules first. Time limits are generous (``--cell-limit``) so a
busy machine cannot fail a run; the slowest cell of every run is recorded instead.

For every ``accuracy`` check it derives

* full threshold = min private accuracy over seeds - ``--margin`` (0.02), rounded down to
  2 decimals;

and per module the slowest cell and whole-notebook time over the seeds, from which the
grader's full-mode limits are chosen (see docs/cost.md, "Full mode: run time per lesson").

Results are appended to a JSON file as they arrive (a rerun skips what is done) and written
as Markdown::

    DLCOURSE_DATA_DIR=/path/to/data nice -n 19 python bench/calibrate.py --seeds 0 1 42
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from calibrate_holdout import calibration_key, machine  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# longest first, so the last runs to start are short ones (measured full-mode wall times)
ORDER = ["04", "01", "03", "02"]


def grade_one(module: str, seed: int, data_dir: str, sandbox: str, threads: int,
              cell_limit: float, fast: bool = False) -> dict:
    """Grade one solution in full mode with one seed (runs in a fresh worker process)."""
    from grader.authoring.release import solution_path
    from grader.checks.rubric import load_rubric
    from grader.data.holdout import KernelData, plan_holdout
    from grader.kernel.limits import Limits
    from grader.submission.grading import GradingOptions, grade_submission

    rubric = load_rubric(module)
    plan = plan_holdout(data_dir, fast=fast, key=calibration_key(seed))
    copy = KernelData.create(plan)
    load = os.getloadavg()[0]
    limits = Limits(cell_timeout_s=cell_limit, notebook_timeout_s=cell_limit * 3,
                    score_timeout_s=1800)
    t0 = time.perf_counter()
    try:
        options = GradingOptions.resolve(
            fast=fast, seed=seed, data_dir=data_dir, sandbox=sandbox, threads=threads,
            limits=limits, holdout=replace(plan, kernel_dir=str(copy.path)))
        row = grade_submission(solution_path(rubric), options, rubric=rubric)
    finally:
        copy.remove()
    checks = {c.id: {"passed": c.passed, "points": c.points, "max_points": c.max_points,
                     "flag": c.flag, **(c.details or {})} for c in row.checks}
    return {"module": module, "seed": seed, "score": row.score, "max_score": row.max_score,
            "error": row.error, "notes": row.notes, "seconds": round(time.perf_counter() - t0, 1),
            "timings": row.timings, "threads": threads, "load_at_start": round(load, 2),
            "checks": checks}


def _task(args: tuple) -> tuple[str, dict]:
    module, seed = args[0], args[1]
    return f"{module}/seed{seed}", grade_one(*args)


def _commit() -> str:
    import subprocess

    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def run_all(modules: list[str], seeds: list[int], data_dir: str, store: Path, sandbox: str,
            jobs: int, cell_limit: float, fast: bool = False) -> dict:
    done = json.loads(store.read_text()) if store.exists() else {"runs": {}}
    done.setdefault("commit", _commit())
    store.write_text(json.dumps(done, indent=1) + "\n")
    order = sorted(modules, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))
    todo = [(m, s, data_dir, sandbox, 1 if jobs > 1 else 2, cell_limit, fast)
            for m in order for s in seeds if f"{m}/seed{s}" not in done["runs"]]
    if not todo:
        return done
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        for name, run in pool.imap_unordered(_task, todo):
            done = json.loads(store.read_text()) if store.exists() else {"runs": {}}
            done["runs"][name] = run
            store.write_text(json.dumps(done, indent=1) + "\n")
            accuracies = ", ".join(f"{k} {v['private_accuracy']:.4f}"
                                   for k, v in run["checks"].items() if "private_accuracy" in v)
            print(f"{name}: {run['score']:g}/{run['max_score']:g} in {run['seconds']} s"
                  f" (slowest cell {run['timings'].get('slowest_cell')} s); {accuracies}",
                  flush=True)
    return done


def derive(done: dict, margin: float) -> dict:
    per_check: dict[str, list[dict]] = {}
    per_module: dict[str, list[dict]] = {}
    for run in done["runs"].values():
        per_module.setdefault(run["module"], []).append(run)
        for cid, c in run["checks"].items():
            if "private_accuracy" in c:
                per_check.setdefault(cid, []).append({"seed": run["seed"], **c})
    thresholds = {}
    for cid, rows in sorted(per_check.items()):
        low = min(r["private_accuracy"] for r in rows)
        thresholds[cid] = {"seeds": sorted(r["seed"] for r in rows), "min_private": low,
                           "min_public": min(r["public_accuracy"] for r in rows),
                           "threshold": math.floor((low - margin) * 100 + 1e-9) / 100}
    times = {m: {"seeds": sorted(r["seed"] for r in runs),
                 "slowest_cell": max(r["timings"].get("slowest_cell", 0.0) for r in runs),
                 "slowest_notebook": max(r["timings"].get("execute", 0.0) for r in runs)}
             for m, runs in sorted(per_module.items())}
    return {"per_check": per_check, "thresholds": thresholds, "times": times}


NOTES_MARK = "<!-- notes -->"


def write_markdown(done: dict, derived: dict, args, path: Path) -> None:
    lines = ["# Full-mode calibration", "",
             f"Machine: {machine()}.", "",
             f"Command: `nice -n 19 python bench/calibrate.py --seeds"
             f" {' '.join(map(str, args.seeds))} --jobs {args.jobs}` (margin {args.margin}).", "",
             "Every solution notebook graded by the real grader in full mode (sandboxed, private"
             " hold-out of 5,000 training images per dataset, drawn per seed), once per seed."
             " `private` = accuracy on the hold-out (what the grader scores), `public` = on the"
             " test split. Runs went two at a time with one TensorFlow thread each, at nice 19"
             " while other work shared the 2 cores, so the times are upper bounds. CIFAR-10"
             " numbers are on the JPEG-decoded copy of CIFAR-10 (see the data folder's README)."
             f" Lesson code: commit {done.get('commit', '?')}. `passed` is against the"
             " thresholds the rubric had when the run was graded.",
             "", "## Every run", "",
             "| check | seed | private | public | passed |", "|---|---|---|---|---|"]
    for cid, rows in sorted(derived["per_check"].items()):
        for r in sorted(rows, key=lambda r: r["seed"]):
            lines.append(f"| `{cid}` | {r['seed']} | {r['private_accuracy']:.4f} |"
                         f" {r['public_accuracy']:.4f} | {r['passed']} |")
    lines += ["", "Grading runs:", "",
              "| run | score | whole run (s) | notebook (s) | slowest cell (s) | load at start"
              " | error |", "|---|---|---|---|---|---|---|"]
    for name, run in sorted(done["runs"].items()):
        t = run["timings"]
        lines.append(f"| {name} | {run['score']:g} / {run['max_score']:g} | {run['seconds']} |"
                     f" {t.get('execute', 0):.0f} | {t.get('slowest_cell', 0):.0f} |"
                     f" {run['load_at_start']} | {run['error'] or ''} |")
    lines += ["", "## Full thresholds", "",
              f"min private accuracy over the seeds - {args.margin}, rounded down to 2 decimals.",
              "", "| check | seeds | min private | min public | full threshold |",
              "|---|---|---|---|---|"]
    for cid, t in derived["thresholds"].items():
        lines.append(f"| `{cid}` | {', '.join(map(str, t['seeds']))} | {t['min_private']:.4f}"
                     f" | {t['min_public']:.4f} | {t['threshold']:.2f} |")
    lines += ["", "## Time", "", "| module | seeds | slowest cell (s) | slowest notebook (s) |",
              "|---|---|---|---|"]
    for module, t in derived["times"].items():
        lines.append(f"| {module} | {', '.join(map(str, t['seeds']))} |"
                     f" {t['slowest_cell']:.0f} | {t['slowest_notebook']:.0f} |")
    # What follows a line "<!-- notes -->" is written by hand (e.g. confirmation runs) and kept.
    _, mark, notes = (path.read_text() if path.exists() else "").partition(NOTES_MARK)
    path.write_text("\n".join(lines) + "\n" + (f"\n{mark}{notes.rstrip()}\n" if mark else ""))


def installed_root() -> Path | None:
    """Where a fresh Python of this environment imports ``grader`` from (kernels do the same)."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import grader; print(grader.__file__)"],
                         cwd="/", capture_output=True, text=True)
    return Path(out.stdout.strip()).resolve().parents[1] if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 42])
    parser.add_argument("--modules", nargs="+", default=["01", "02", "03", "04"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--margin", type=float, default=0.02)
    parser.add_argument("--cell-limit", type=float, default=5400.0,
                        help="seconds per cell (generous: a busy machine must not fail a run)")
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--json", type=Path, default=RESULTS / "calibration.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "calibration.md")
    parser.add_argument("--fast", action="store_true",
                        help="fast mode: only a quick trial of this script (fast thresholds come"
                             " from bench/calibrate_holdout.py)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the Markdown from the JSON file")
    args = parser.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    if not data_dir:
        parser.error("set DLCOURSE_DATA_DIR to the folder holding the three .npz files")
    if not args.report_only and installed_root() != ROOT:
        parser.error(f"this environment imports dlcourse from {installed_root()}, not from {ROOT}:"
                     " the graded kernels would run that copy's helpers. Install this checkout"
                     " (pip install -e .) or run the script from the installed one")
    if not args.report_only:
        run_all(args.modules, args.seeds, data_dir, args.json, args.sandbox, args.jobs,
                args.cell_limit, args.fast)
    done = json.loads(args.json.read_text())
    derived = derive(done, args.margin)
    write_markdown(done, derived, args, args.out)
    print(json.dumps({"thresholds": derived["thresholds"], "times": derived["times"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
