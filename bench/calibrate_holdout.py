"""Calibrate fast-mode accuracy thresholds and the "saw the test set" margin on the hold-out.

Grades every solution notebook (``solutions/0N_*.ipynb``) in fast mode, once per seed, one
after the other (the cores are shared), with the real grader (:func:`grade_submission`,
sandbox as configured). Each seed also draws its own private hold-out (the hold-out seed
comes from a calibration key made from the seed), so the numbers cover both training noise
and the choice of hold-out images. For every ``accuracy`` check it records the accuracy on
the private hold-out and on the public (fast) test split, then derives:

* fast threshold = min private accuracy over seeds - ``--threshold-margin`` (0.05), rounded
  down to 2 decimals (the rule the rubrics already used);
* flag margin = max honest (public - private) over every check and seed + ``--flag-margin``
  (0.03), rounded up to 2 decimals.

It also measures a cheat: a small dense network trained only on the fast test split
(Fashion-MNIST and CIFAR-10), scored on the same hold-out and test split; its gap must exceed
the flag margin clearly.

Results are appended to a JSON file as they arrive (a rerun skips what is done) and written
as Markdown::

    DLCOURSE_DATA_DIR=/path/to/data python bench/calibrate_holdout.py --seeds 0 1 42
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"


def calibration_key(seed: int) -> bytes:
    """A stand-in for the instructor's key, one per seed (a different hold-out each)."""
    return hashlib.sha256(f"dlcourse calibration {seed}".encode()).hexdigest().encode()


def grade_solutions(modules: list[str], seeds: list[int], data_dir: str, store: Path,
                    sandbox: str) -> dict:
    from grader.authoring.release import solution_path
    from grader.checks.rubric import load_rubric
    from grader.data.holdout import KernelData, plan_holdout
    from grader.submission.grading import GradingOptions, grade_submission

    done = json.loads(store.read_text()) if store.exists() else {"runs": {}}
    base = plan_holdout(data_dir, fast=True, key=calibration_key(seeds[0]))
    copy = KernelData.create(base)  # fast mode: the kernel copy does not depend on the seed
    try:
        for module in modules:
            rubric = load_rubric(module)
            for seed in seeds:
                name = f"{module}/seed{seed}"
                if name in done["runs"]:
                    continue
                plan = replace(plan_holdout(data_dir, fast=True, key=calibration_key(seed)),
                               kernel_dir=str(copy.path))
                t0 = time.perf_counter()
                options = GradingOptions.resolve(fast=True, seed=seed, data_dir=data_dir,
                                                 holdout=plan, sandbox=sandbox)
                row = grade_submission(solution_path(rubric), options, rubric=rubric)
                checks = {c.id: {"passed": c.passed, "flag": c.flag, **(c.details or {})}
                          for c in row.checks if c.details}
                done["runs"][name] = {"module": module, "seed": seed, "score": row.score,
                                      "max_score": row.max_score, "error": row.error,
                                      "seconds": round(time.perf_counter() - t0, 1),
                                      "checks": checks}
                store.write_text(json.dumps(done, indent=1) + "\n")
                print(f"{name}: {row.score:g}/{row.max_score:g} in"
                      f" {done['runs'][name]['seconds']} s; "
                      + ", ".join(f"{k} private {v.get('private_accuracy')} public"
                                  f" {v.get('public_accuracy')}" for k, v in checks.items()),
                      flush=True)
    finally:
        copy.remove()
    return done


def measure_cheats(data_dir: str, seeds: list[int], store: Path) -> dict:
    """Dense nets trained only on the fast test split, scored like the grader does."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from grader.data.holdout import load_holdout, plan_holdout
    from helpers.data import flatten, load_dataset, scale

    done = json.loads(store.read_text())
    cheats = done.setdefault("cheats", {})
    for name, epochs in (("fashion_mnist", 20), ("cifar10", 30)):
        for seed in seeds[:1]:
            label = f"{name}/seed{seed}"
            if label in cheats:
                continue
            keras.utils.set_random_seed(seed)
            _, (x_test, y_test) = load_dataset(name, fast=True, data_dir=data_dir)
            plan = plan_holdout(data_dir, fast=True, key=calibration_key(seed))
            x_held, y_held = load_holdout(plan, name)
            x = scale(flatten(x_test))
            y = np.asarray(y_test).reshape(-1)
            model = keras.Sequential([keras.Input((x.shape[1],)),
                                      keras.layers.Dense(256, activation="relu"),
                                      keras.layers.Dense(10, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
            public = float(np.mean(model.predict(x, verbose=0).argmax(1) == y))
            private = float(np.mean(model.predict(scale(flatten(x_held)), verbose=0).argmax(1)
                                    == y_held))
            cheats[label] = {"dataset": name, "epochs": epochs, "trained_on": "fast test split",
                             "public_accuracy": round(public, 4),
                             "private_accuracy": round(private, 4),
                             "gap": round(public - private, 4)}
            store.write_text(json.dumps(done, indent=1) + "\n")
            print(f"cheat {label}: public {public:.3f} private {private:.3f}", flush=True)
    return done


def derive(done: dict, threshold_margin: float, flag_margin: float) -> dict:
    per_check: dict[str, list[dict]] = {}
    for run in done["runs"].values():
        for cid, c in run["checks"].items():
            per_check.setdefault(cid, []).append({"seed": run["seed"], **c})
    thresholds = {}
    for cid, rows in sorted(per_check.items()):
        low = min(r["private_accuracy"] for r in rows)
        thresholds[cid] = {"min_private": low, "min_public": min(r["public_accuracy"] for r in rows),
                           "threshold": math.floor((low - threshold_margin) * 100 + 1e-9) / 100}
    gaps = [r["gap"] for rows in per_check.values() for r in rows]
    max_gap = max(gaps) if gaps else float("nan")
    margin = math.ceil((max_gap + flag_margin) * 100 - 1e-9) / 100
    return {"per_check": per_check, "thresholds": thresholds, "max_gap": max_gap,
            "flag_margin": margin}


def machine() -> str:
    import numpy as np

    try:
        import tensorflow as tf

        tfv = tf.__version__
    except Exception:  # noqa: BLE001 - only for the record
        tfv = "?"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {cores} cores"
            f" (shared with other jobs), Python {platform.python_version()}, NumPy"
            f" {np.__version__}, TensorFlow {tfv}")


def write_markdown(done: dict, derived: dict, seeds: list[int], args, path: Path) -> None:
    lines = ["# Hold-out calibration (fast mode)", "",
             f"Machine: {machine()}.", "",
             f"Command: `python bench/calibrate_holdout.py --seeds {' '.join(map(str, seeds))}`"
             f" (threshold margin {args.threshold_margin}, flag margin {args.flag_margin}).", "",
             "Every solution notebook graded by the real grader in fast mode, once per seed;"
             " each seed also draws its own private hold-out (2,000 training images outside the"
             " fast subset, stratified). `private` = accuracy on the hold-out, `public` = on the"
             " fast test split (2,000 images), `gap` = public - private. CIFAR-10 numbers are"
             " measured on the JPEG-decoded copy of CIFAR-10 (see the data folder's README).", "",
             "## Every run", "",
             "| check | seed | private | public | gap | passed |", "|---|---|---|---|---|---|"]
    for cid, rows in sorted(derived["per_check"].items()):
        for r in sorted(rows, key=lambda r: r["seed"]):
            lines.append(f"| `{cid}` | {r['seed']} | {r['private_accuracy']:.4f} |"
                         f" {r['public_accuracy']:.4f} | {r['gap']:+.4f} | {r['passed']} |")
    lines += ["", "Grading runs:", "", "| run | score | seconds | error |", "|---|---|---|---|"]
    for name, run in sorted(done["runs"].items()):
        lines.append(f"| {name} | {run['score']:g} / {run['max_score']:g} | {run['seconds']} |"
                     f" {run['error'] or ''} |")
    lines += ["", "## Fast thresholds", "",
              f"min private accuracy over seeds - {args.threshold_margin}, rounded down to 2"
              " decimals.", "", "| check | min private | min public | fast threshold |",
              "|---|---|---|---|"]
    for cid, t in derived["thresholds"].items():
        lines.append(f"| `{cid}` | {t['min_private']:.4f} | {t['min_public']:.4f} |"
                     f" {t['threshold']:.2f} |")
    lines += ["", "## Flag margin", "",
              f"Largest honest gap (public - private) over every check and seed:"
              f" **{derived['max_gap']:+.4f}**. Flag margin = that + {args.flag_margin}, rounded"
              f" up to 2 decimals: **{derived['flag_margin']:.2f}**.", ""]
    cheats = done.get("cheats", {})
    if cheats:
        lines += ["## Cheats (trained only on the fast test split)", "",
                  "A Dense(256, relu) + Dense(10, softmax) network, Adam, batch 64, trained on"
                  " the 2,000 fast test images only, scored like the grader does (/255, flat).",
                  "", "| model | epochs | public | private | gap | gap - flag margin |",
                  "|---|---|---|---|---|---|"]
        for label, c in sorted(cheats.items()):
            lines.append(f"| {label} | {c['epochs']} | {c['public_accuracy']:.4f} |"
                         f" {c['private_accuracy']:.4f} | {c['gap']:+.4f} |"
                         f" {c['gap'] - derived['flag_margin']:+.4f} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 42])
    parser.add_argument("--modules", nargs="+", default=["01", "02", "03", "04"])
    parser.add_argument("--threshold-margin", type=float, default=0.05)
    parser.add_argument("--flag-margin", type=float, default=0.03)
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--json", type=Path, default=RESULTS / "holdout_calibration.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "holdout_calibration.md")
    parser.add_argument("--skip-cheats", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="only rewrite the Markdown from the JSON file")
    args = parser.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    if not data_dir:
        parser.error("set DLCOURSE_DATA_DIR to the folder holding the three .npz files")
    if not args.report_only:
        if not args.json.exists():
            args.json.write_text(json.dumps({"runs": {}}) + "\n")
        if not args.skip_cheats:
            measure_cheats(data_dir, args.seeds, args.json)
        grade_solutions(args.modules, args.seeds, data_dir, args.json, args.sandbox)
    done = json.loads(args.json.read_text())
    derived = derive(done, args.threshold_margin, args.flag_margin)
    write_markdown(done, derived, args.seeds, args, args.out)
    print(json.dumps({"thresholds": derived["thresholds"], "max_gap": derived["max_gap"],
                      "flag_margin": derived["flag_margin"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
