"""Lesson 01's batch-size sweep (Exercise 1.c) in fast mode, timed over several seeds.

Usage::

    DLCOURSE_DATA_DIR=... python bench/fast_batch_timing.py [--seeds 0 1 2] [--fast | --full]

Runs the exercise's solution for each seed (fresh MLP per batch size, ``EpochTimer``) and prints,
per batch size, the median seconds per epoch over all epochs (the first one also traces the
graph) and without the first epoch (``EpochTimer.median_seconds``), plus whether the steady
times fall as the batch grows. Prints a Markdown table for ``bench/results/fast_vs_full.md``.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np


def sweep(seed: int, fast: bool) -> dict[int, tuple[float, float]]:
    """batch size -> (median over all epochs, median without the first) for one seed."""
    import keras

    from helpers import data, training

    training.configure(fast=fast, seed=seed, verbose=False)
    samples, epochs = (800, 2) if fast else (10000, 8)
    (x_img, y_img), _ = data.load_dataset("cifar10")
    y_all = y_img.reshape(-1).astype("int64")
    x_gray = data.scale(data.flatten(data.to_grayscale(x_img)))
    idx = np.arange(len(y_all))
    train_idx, val_idx, y_train, y_val = data.train_val_split(idx, y_all, val_fraction=0.2,
                                                              seed=seed)
    x_train, x_val = x_gray[train_idx], x_gray[val_idx]
    result = {}
    for size in (4, 16, 32, 256, 1024):
        model = keras.Sequential([keras.Input(shape=(1024,)),
                                  keras.layers.Dense(128, activation="relu"),
                                  keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        timer = training.EpochTimer()
        model.fit(x_train[:samples], y_train[:samples], batch_size=size, epochs=epochs,
                  validation_data=(x_val, y_val), validation_batch_size=1024,
                  callbacks=[timer], verbose=0)
        result[size] = (float(np.median(timer.epoch_seconds)), timer.median_seconds)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--full", action="store_true", help="full mode (default: fast)")
    args = parser.parse_args(argv)
    fast = not args.full
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs;"
          f" mode: {'fast' if fast else 'full'}")
    rows = []
    for seed in args.seeds:
        res = sweep(seed, fast)
        steady = [res[s][1] for s in sorted(res)]
        falls = all(a > b for a, b in zip(steady, steady[1:], strict=False))
        rows.append((seed, res, falls))
        print(f"seed {seed}: " + ", ".join(f"{s}: {a:.2f}/{b:.2f} s" for s, (a, b) in res.items())
              + f"; steady times fall with the batch: {falls}", flush=True)
    print("\n| seed | " + " | ".join(f"batch {s}" for s in sorted(rows[0][1])) + " | falls |")
    print("|---|" + "---|" * (len(rows[0][1]) + 1))
    for seed, res, falls in rows:
        cells = " | ".join(f"{a:.2f} / **{b:.2f}**" for _, (a, b) in sorted(res.items()))
        print(f"| {seed} | {cells} | {'yes' if falls else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
