"""What writing fast mode's shared kernel copy costs on a machine's first batch, and where.

Each round runs in fresh Python processes (as a first batch does, nothing imported yet),
alternating: the whole ``write_kernel_files`` for every dataset in ``DLCOURSE_DATA_DIR`` into
a new temporary folder as the grader does it (stratified draws with NumPy alone,
:mod:`helpers.sampling`; two threads taking the datasets' train and test splits largest
first), the same with a thread per dataset as at commit 5afae11, and the same with the
draws made by scikit-learn's ``train_test_split`` as before (its import paid on the first
draw); then its parts: importing scikit-learn, reading each source ``.npz``.

Usage: ``python bench/data_copy.py --rounds 5 --out bench/results/data_copy.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WHOLE = """
import json, os, sys, tempfile, time
from pathlib import Path
if sys.argv[1:] == ["sklearn"]:  # the draws as before: scikit-learn's, imported on first use
    import numpy as np
    import helpers.sampling

    def _sklearn_rows(labels, size, seed):
        from sklearn.model_selection import train_test_split

        kept, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels,
                                   random_state=seed)
        return np.sort(kept)

    helpers.sampling.stratified_train_rows = _sklearn_rows
from grader.data.holdout import dataset_files, plan_holdout, write_kernel_files
if sys.argv[1:] == ["datasets"]:  # as at 5afae11: a thread per dataset, both splits in it
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from grader.data.holdout import _kernel_arrays

    def write_kernel_files(plan, names, folder):
        folder.mkdir(mode=0o755)

        def write(name):
            arrays = {k: v for split in ("train", "test")
                      for k, v in _kernel_arrays(plan.source_dir, name, plan.mode, plan.seed,
                                                 split).items()}
            with open(folder / f"{name}.npz", "xb") as handle:
                np.savez(handle, **arrays)

        by_size = sorted(names, key=lambda n: -(Path(plan.source_dir) / f"{n}.npz").stat().st_size)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for done in [pool.submit(write, name) for name in by_size]:
                done.result()
source = os.environ["DLCOURSE_DATA_DIR"]
plan = plan_holdout(source, fast=True, key=b"k" * 32)
folder = Path(tempfile.mkdtemp()) / "data"
start = time.perf_counter()
write_kernel_files(plan, dataset_files(source), folder)
label = "write_kernel_files" + {"sklearn": " (scikit-learn draws)",
                                "datasets": " (a thread per dataset, as at 5afae11)"}.get(
                                    "".join(sys.argv[1:]), "")
print(json.dumps({label: time.perf_counter() - start}))
"""

PARTS = """
import json, os, time
from pathlib import Path
from grader.data.holdout import dataset_files
from helpers.data import read_npz
source = os.environ["DLCOURSE_DATA_DIR"]
found = {}
start = time.perf_counter()
from sklearn.model_selection import train_test_split
found["import scikit-learn"] = time.perf_counter() - start
for name in dataset_files(source):
    start = time.perf_counter()
    read_npz(name, Path(source) / f"{name}.npz")
    found[f"read {name}.npz"] = time.perf_counter() - start
print(json.dumps(found))
"""


def _run(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    found: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for code, extra in ((WHOLE, ()), (WHOLE, ("datasets",)), (WHOLE, ("sklearn",)),
                            (PARTS, ())):
            for key, value in _run(code, *extra).items():
                found.setdefault(key, []).append(value)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    lines = ["# Writing fast mode's shared kernel copy (first batch on a machine)", "",
             f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; commit"
             f" {commit}; `python bench/data_copy.py --rounds {args.rounds}`; each round in"
             " fresh processes; load average at the end"
             f" {os.getloadavg()[0]:.2f}.", "", "| step | median s | rounds |", "|---|---|---|"]
    for key, values in found.items():
        lines.append(f"| {key} | {statistics.median(values):.2f} |"
                     f" {', '.join(f'{v:.2f}' for v in values)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
