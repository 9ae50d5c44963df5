#!/usr/bin/env bash
# Quick start 2: set everything up and run the tests (lint, then pytest on both cores).
# The tests read real data: set DLCOURSE_DATA_DIR, or have internet for keras.datasets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh test,dask
ruff check .
python -m grader release --check
python -m pytest -n 2 --dist loadgroup "$@"
