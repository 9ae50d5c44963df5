#!/usr/bin/env bash
# Quick start 1: set everything up and grade the bundled example submissions (fast mode).
# Offline? Point DLCOURSE_DATA_DIR at a folder holding mnist.npz, fashion_mnist.npz, cifar10.npz.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh dask
# DLCOURSE_JOBS=N grades N submissions at once (default 2, for a 2-core laptop).
python -m grader grade examples/submissions --out grading-output --fast --jobs "${DLCOURSE_JOBS:-2}"
echo "Open grading-output/report.html (class overview) and grading-output/feedback/ (per student)."
