"""Measure lesson 04's design exercises on the private hold-out.

Lesson 04 asks students to design three models under constraints (a CNN of at most 100,000
parameters, a compact CNN of at most 20,000, their own tuned model) and grades what a design
achieves on the grader's private hold-out, not which layers it has. The two small designs
must beat lesson 02's dense network on CIFAR-10 (its calibration is in
``bench/results/calibration.md`` and ``holdout_calibration.md``). This script measures, on
the same hold-outs, what the lesson's text and the other bars rest on:

* dense networks within the 100,000-parameter budget (how far a dense network gets with it);
* the lesson solution's compact design (the margin of its bar), and a compact design with
  global average pooling (the lesson warns that it learns slowly);
* the lesson solution's tuned design (dropout 0.3, ReLU, Adam; up to 4 / 30 epochs with the
  lesson's early stopping on the validation accuracy), from which the tuned model's
  threshold is derived.

Every network is trained exactly as the lesson trains its models (pixels / 255, one-hot
labels, the lesson's 80/20 split, Adam at 0.001, batch 32, ``EPOCHS`` = 3 fast / 10 full, on
the rows the grader's kernel gets) and scored on the private hold-out of each seed, like
``bench/calibrate_holdout.py`` (one calibration key per seed, so each seed also draws its own
hold-out). The intro design's numbers come from ``bench/results/calibration.md`` and
``holdout_calibration.md`` (the solution's intro model is unchanged).

Results are appended to a JSON file as they arrive (a rerun skips what is done)::

    DLCOURSE_DATA_DIR=/path/to/data python bench/design_bars.py --seeds 0 1 42 --modes fast full

The stored file holds every network over seeds 0/1/42 in both modes except ``compact_gap``
in full mode, run for seed 0 only (``--networks compact_gap --modes full --seeds 0``): it
backs one sentence of the lesson, not a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RESULTS = ROOT / "bench" / "results"
EPOCHS = {"fast": 3, "full": 10}
FINAL_EPOCHS = {"fast": 4, "full": 30}  # the tuned model, with early stopping as in the lesson
SPLIT_SEED = 42


def build(name: str):
    """The networks measured, each a plain Keras model for 32 x 32 x 3 inputs."""
    import keras

    inputs = keras.Input(shape=(32, 32, 3))
    if name.startswith("dense"):
        units = [int(u) for u in name.split("_")[1:]]
        x = keras.layers.Flatten()(inputs)
        for n in units:
            x = keras.layers.Dense(n, activation="relu")(x)
    elif name == "compact":  # the lesson solution's design for the compact exercise
        x = inputs
        for filters in (16, 32, 32):
            x = keras.layers.Conv2D(filters, (3, 3), padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D((2, 2))(x)
        x = keras.layers.Flatten()(x)
    elif name == "compact_gap":  # global average pooling instead of Flatten (the text's caveat)
        x = inputs
        for filters in (16, 32, 48):
            x = keras.layers.Conv2D(filters, (3, 3), padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D((2, 2))(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
    elif name == "tuned":  # the lesson solution's create_model_tuned(0.3, "relu")
        x = keras.layers.RandomFlip("horizontal")(inputs)
        x = keras.layers.RandomTranslation(height_factor=0.1, width_factor=0.1)(x)
        for i, filters in enumerate((32, 64, 128)):
            x = keras.layers.Conv2D(filters, (3, 3), activation="relu")(x)
            if i < 2:
                x = keras.layers.MaxPooling2D((2, 2))(x)
        x = keras.layers.Dropout(0.3)(x)
        x = keras.layers.Flatten()(x)
    else:
        raise ValueError(f"unknown network {name!r}")
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def train_and_score(name: str, mode: str, seed: int, data_dir: str) -> dict:
    import keras
    import numpy as np
    from calibrate_holdout import calibration_key
    from sklearn.model_selection import train_test_split

    from grader.data.holdout import _kernel_arrays, load_holdout, plan_holdout

    plan = plan_holdout(data_dir, fast=mode == "fast", key=calibration_key(seed))
    arrays = _kernel_arrays(data_dir, "cifar10", plan.mode, plan.seed, "train")
    x_held, y_held = load_holdout(plan, "cifar10")
    x = arrays["x_train"].astype("float32") / 255.0
    y = keras.utils.to_categorical(arrays["y_train"], num_classes=10)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2,
                                                      random_state=SPLIT_SEED)
    keras.utils.set_random_seed(seed)
    model = build(name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    if name == "tuned":
        stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=4,
                                             restore_best_weights=True)
        history = model.fit(x_train, y_train, epochs=FINAL_EPOCHS[mode], batch_size=32,
                            validation_data=(x_val, y_val), callbacks=[stop], verbose=0)
        epochs = len(history.history["loss"])
    else:
        model.fit(x_train, y_train, epochs=EPOCHS[mode], batch_size=32, verbose=0)
        epochs = EPOCHS[mode]
    seconds = time.perf_counter() - start
    held = float(np.mean(model.predict(x_held.astype("float32") / 255.0, verbose=0).argmax(1)
                         == y_held))
    val = float(np.mean(model.predict(x_val, verbose=0).argmax(1) == y_val.argmax(1)))
    return {"network": name, "mode": mode, "seed": seed, "params": model.count_params(),
            "epochs": epochs, "train_images": len(x_train),
            "holdout_accuracy": round(held, 4), "val_accuracy": round(val, 4),
            "train_seconds": round(seconds, 1)}


def _private(report: str, check: str) -> list[float]:
    """The private hold-out accuracies of ``check`` in one of the calibration reports."""
    runs = json.loads((RESULTS / report).read_text())["runs"].values()
    return [r["checks"][check]["private_accuracy"] for r in runs if check in r.get("checks", {})]


def _measured(done: dict, network: str, mode: str) -> list[float]:
    return [r["holdout_accuracy"] for r in done["runs"].values()
            if r["network"] == network and r["mode"] == mode]


def up(x: float) -> float:
    """Rounded up to 2 decimals (0.4882 -> 0.49)."""
    return math.ceil(round(x * 100, 6)) / 100


def down(x: float) -> float:
    """Rounded down to 2 decimals (0.6542 -> 0.65)."""
    return math.floor(round(x * 100, 6)) / 100


def design_thresholds(done: dict) -> list[dict]:
    """The thresholds of the design exercises' accuracy checks, each with where it comes from.

    Beating lesson 02's dense network (04.intro_accuracy, 04.compact_accuracy): its best
    private accuracy over the seeds + 0.02, rounded up. The tuned design
    (04.tuned_accuracy): the worst run of the solution's tuned design alone (this file) and
    of the whole lesson's chosen model (the calibration files), - 0.02 (full) or - 0.05
    (fast), rounded down, the rule of the other checks.
    """
    dense = {"full": _private("calibration.json", "02.cifar_dense_accuracy"),
             "fast": _private("holdout_calibration.json", "02.cifar_dense_accuracy")}
    solution = {
        "04.intro_accuracy": {"full": _private("calibration.json", "04.intro_accuracy"),
                              "fast": _private("holdout_calibration.json", "04.intro_accuracy")},
        "04.compact_accuracy": {m: _measured(done, "compact", m) for m in ("full", "fast")},
        # the tuned design alone here, and the lesson's chosen model in whole-notebook runs,
        # where the tuning may pick another rate, optimizer or activation than 0.3/Adam/ReLU
        "04.tuned_accuracy": {
            "full": _measured(done, "tuned", "full")
            + _private("calibration.json", "04.best_model_accuracy"),
            "fast": _measured(done, "tuned", "fast")
            + _private("holdout_calibration.json", "04.best_model_accuracy")},
    }
    rows = []
    for check, accs in solution.items():
        if check == "04.tuned_accuracy":
            rule = ("worst of the solution's tuned design alone and the whole lesson's chosen"
                    " model (`04.best_model_accuracy` in the calibration files), - 0.02 (full) /"
                    " - 0.05 (fast), rounded down")
            bars = {"full": down(min(accs["full"]) - 0.02) if accs["full"] else None,
                    "fast": down(min(accs["fast"]) - 0.05) if accs["fast"] else None}
        else:
            rule = "lesson 02's dense network, best seed + 0.02, rounded up"
            bars = {m: up(max(dense[m]) + 0.02) for m in ("full", "fast")}
        rows.append({"check": check, "rule": rule, "full": bars["full"], "fast": bars["fast"],
                     "solution_full": min(accs["full"]) if accs["full"] else None,
                     "solution_fast": min(accs["fast"]) if accs["fast"] else None})
    return rows


def write_markdown(done: dict, path: Path) -> None:
    runs = list(done["runs"].values())
    lines = ["# Lesson 04 design exercises: dense networks and the solution's designs on the hold-out", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python"
             f" {platform.python_version()}; written by `bench/design_bars.py`. CIFAR-10 numbers"
             " are measured on the course's JPEG-decoded copy of CIFAR-10.", "",
             "Each run trains on the rows the grader's kernel gets (fast: the fast subset; full:"
             " the training split minus the private hold-out), split 80/20 as the lesson does,"
             " Adam 0.001, batch 32, 3 (fast) or 10 (full) epochs (the tuned design: up to 4 or 30"
             " with early stopping, patience 4), and is scored on the private"
             " hold-out drawn with that seed's calibration key. \"train s\" is the wall time of"
             " `fit` on a machine shared with other jobs (load average 3 to 5): a loaded"
             " time, not a benchmark.", "",
             "| network | params | mode | seed | hold-out accuracy | validation accuracy |"
             " train s |", "|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["mode"], r["network"], r["seed"])):
        lines.append(f"| {r['network']} | {r['params']:,} | {r['mode']} | {r['seed']} |"
                     f" {r['holdout_accuracy']:.4f} | {r['val_accuracy']:.4f} |"
                     f" {r['train_seconds']} |")
    lines += ["", "## Per network and mode: min / max hold-out accuracy over the seeds", "",
              "| network | mode | min | max |", "|---|---|---|---|"]
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["network"], r["mode"]), []).append(r["holdout_accuracy"])
    for (net, mode), accs in sorted(groups.items()):
        lines.append(f"| {net} | {mode} | {min(accs):.4f} | {max(accs):.4f} |")
    lines += ["", "## Design thresholds", "",
              "Lesson 02's dense network (3072-256-128-10) on the private hold-out, seeds 0/1/42:"
              f" full {_private('calibration.json', '02.cifar_dense_accuracy')}, fast"
              f" {_private('holdout_calibration.json', '02.cifar_dense_accuracy')}"
              " (`calibration.json`, `holdout_calibration.json`). `tests/test_calibration.py`"
              " checks the rubric against this table and that the solution's worst seed clears"
              " each full threshold.", "",
              "| check | rule | full threshold | fast threshold | solution's worst seed, full |"
              " solution's worst seed, fast |", "|---|---|---|---|---|---|"]
    def show(x: float | None, digits: int = 4) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    for row in design_thresholds(done):
        lines.append(f"| `{row['check']}` | {row['rule']} | {show(row['full'], 2)} |"
                     f" {show(row['fast'], 2)} | {show(row['solution_full'])} |"
                     f" {show(row['solution_fast'])} |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 42])
    parser.add_argument("--modes", nargs="+", default=["fast", "full"], choices=["fast", "full"])
    parser.add_argument("--networks", nargs="+",
                        default=["dense_32", "dense_31_16", "compact", "compact_gap", "tuned"])
    parser.add_argument("--out", type=Path, default=RESULTS / "design_bars.json")
    args = parser.parse_args(argv)
    data_dir = os.environ.get("DLCOURSE_DATA_DIR")
    if not data_dir:
        parser.error("DLCOURSE_DATA_DIR is not set: point it at the folder holding cifar10.npz")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    done = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    for mode in args.modes:
        for name in args.networks:
            for seed in args.seeds:
                label = f"{name}/{mode}/seed{seed}"
                if label in done["runs"]:
                    continue
                done["runs"][label] = train_and_score(name, mode, seed, data_dir)
                args.out.write_text(json.dumps(done, indent=1) + "\n")
                print(label, done["runs"][label], flush=True)
    write_markdown(done, args.out.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
