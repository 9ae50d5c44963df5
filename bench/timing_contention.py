"""How much a process beside the grader's timing re-run can change what it measures.

The grader times some configurations again (lesson 01's batch sizes, lesson 03's table
rows) and compares the student's seconds per epoch with its own within a factor. A timing
taken while the student's kernel still runs is slower, and a hostile kernel can make it as
slow as it likes. This script measures, per epoch, the wall seconds and the CPU seconds the
timing process used (all of TensorFlow's threads), alone and beside other processes:

* ``idle``: nothing else runs;
* ``training``: another process trains a Keras MLP without pause (an honest kernel);
* ``spin``: N busy Python loops (a hostile kernel, N = the number of cores and twice it);
* ``memory``: N processes copying 256 MB arrays without pause (memory bandwidth, caches).

It reports, per re-run and condition, the medians over repeats, and the two ratios that
decide whether a timing taken beside a kernel can stand for one taken alone: wall /
idle wall (what the kernel can inflate) and CPU / idle wall (what bounds the idle wall
from above when divided by a constant).

Usage: ``python bench/timing_contention.py --repeats 3 --out bench/results/timing_contention.md``
(``DLCOURSE_DATA_DIR`` set).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _spin(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def _memory(stop) -> None:
    import numpy as np

    a = np.ones(32 * 1024 * 1024)  # 256 MB
    b = np.empty_like(a)
    while not stop.is_set():
        np.copyto(b, a)
        np.copyto(a, b)


def _training(stop) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((10000, 1024), dtype=np.float32)
    y = rng.integers(0, 10, 10000)
    model = keras.Sequential([keras.Input(shape=(1024,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    while not stop.is_set():
        model.fit(x, y, epochs=1, batch_size=64, verbose=0)


CONDITIONS = {"idle": (None, 0), "training": (_training, 1), "spin x2": (_spin, 2),
              "spin x4": (_spin, 4), "memory x2": (_memory, 2)}


def _reruns():
    """(name, function(cpu list) -> wall seconds per epoch) for each timing re-run."""
    from grader.checks.context import Context
    from grader.checks.experiments import train_and_validate
    from grader.checks.references import lesson01, lesson03

    data = os.environ.get("DLCOURSE_DATA_DIR")
    c01 = Context(mode="fast", dataset="cifar10", data_dir=data)
    c03 = Context(mode="fast", dataset="fashion_mnist", data_dir=data)
    split01 = lesson01._gray_split(c01, 0)
    split03 = lesson03._fashion_split(c03, 0)

    def batch(size):
        def run(cpu):
            x_fit, x_val, y_fit, y_val = split01
            n = lesson01.BATCH_SWEEP_SAMPLES["fast"]
            _, wall = train_and_validate(lesson01._mlp, x_fit[:n], y_fit[:n], x_val, y_val,
                                         epochs=lesson01.BATCH_SWEEP_EPOCHS["fast"],
                                         batch_size=size, seed=0, validation_batch_size=1024,
                                         cpu_seconds=cpu)
            return wall
        return run

    def row(cpu):
        x_fit, x_val, y_fit, y_val = split03
        _, wall = train_and_validate(lambda: lesson03._mlp((128, 200, 256), "relu"), x_fit, y_fit,
                                     x_val, y_val, epochs=lesson03.SWEEP_EPOCHS["fast"],
                                     batch_size=64, seed=0,
                                     optimizer=lambda: lesson03._optimizer("sgd", 0.1),
                                     cpu_seconds=cpu)
        return wall

    return [("lesson 01 batch 4", batch(4)), ("lesson 01 batch 1024", batch(1024)),
            ("lesson 03 row (sgd, batch 64)", row)]


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reruns = _reruns()
    reruns[0][1]([])  # TensorFlow's start-up, untimed
    found: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    ctx = mp.get_context("spawn")
    for repeat in range(args.repeats):
        for condition, (target, count) in CONDITIONS.items():
            stop = ctx.Event()
            others = [ctx.Process(target=target, args=(stop,)) for _ in range(count)]
            for p in others:
                p.start()
            if others:
                time.sleep(6 if target is _training else 1.5)  # let them get going
            for name, run in reruns:
                cpu: list[float] = []
                wall = run(cpu)
                walls, cpus = found.setdefault((name, condition), ([], []))
                walls.append(statistics.median(wall))
                cpus.append(statistics.median(cpu))
                print(f"repeat {repeat} {condition:10s} {name:30s} wall {walls[-1]:.3f}"
                      f" cpu {cpus[-1]:.3f} load {_load():.2f}", flush=True)
            stop.set()
            for p in others:
                p.join()
    _write(found, args)


def _write(found, args) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    lines = ["# A timing re-run beside other processes (fast mode)", "",
             f"Machine: {os.cpu_count()} cores, no GPU, Python {platform.python_version()};"
             f" commit {commit}; `python bench/timing_contention.py --repeats {args.repeats}`."
             " Per-epoch medians, then the median over repeats (conditions alternate within each"
             " repeat). CPU = the timing process's CPU seconds per epoch, all threads.", "",
             "| re-run | condition | wall s | CPU s | wall / idle wall | CPU / idle wall |"
             " CPU / wall |", "|---|---|---|---|---|---|---|"]
    names = dict.fromkeys(name for name, _ in found)
    for name in names:
        idle = statistics.median(found[(name, "idle")][0])
        for condition in CONDITIONS:
            walls, cpus = found[(name, condition)]
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            worst = max(c / idle for c in cpus)
            lines.append(f"| {name} | {condition} | {wall:.3f} | {cpu:.3f} | {wall / idle:.2f} |"
                         f" {cpu / idle:.2f} (max {worst:.2f}) | {cpu / wall:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
