"""Execute one notebook headlessly with nbclient and report the wall time and any errors.

Usage::

    python bench/run_notebook.py solutions/01_mlp_cifar10_gray.ipynb [--fast] [--seed 0]
        [--out executed.ipynb] [--timeout 1800]

Exit status 1 when a cell raised. Used by authors to time a lesson in full and fast mode.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from grader.submission.parameters import inject_parameters


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = ap.parse_args(argv)
    nb = nbformat.read(str(args.notebook), as_version=4)
    values = {"FAST": bool(args.fast)}
    if args.seed is not None:
        values["SEED"] = args.seed
    inject_parameters(nb, **values)
    client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    start = time.perf_counter()
    status = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc)[-3000:], file=sys.stderr)
        status = 1
    wall = time.perf_counter() - start
    mode = "fast" if args.fast else "full"
    print(f"{args.notebook.name}: {mode} mode, seed {values.get('SEED', 'default')}:"
          f" {wall:.1f} s wall, {'ERROR' if status else 'ok'}")
    if args.out:
        nbformat.write(nb, str(args.out))
    return status


if __name__ == "__main__":
    sys.exit(main())
