#!/usr/bin/env bash
# dlcourse autograder: Gradescope runs this once, as root, from /autograder/source (the zip's
# contents) while it builds the autograder image. It installs dlcourse from the wheel here,
# with its dependencies pinned by constraints.txt, the datasets settings.json names (bundled
# in data/ by `gradescope build --bundle-data`, else downloaded with keras.datasets), and, in
# fast mode, the shared fast-mode data copy every submission's container then reuses.
# DLCOURSE_AUTOGRADER_ROOT (default /autograder) and DLCOURSE_PYTHON (default python3, the
# system Python, which apt gives pip first) let you try it outside Gradescope.
set -euo pipefail
ROOT="${DLCOURSE_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
PYTHON="${DLCOURSE_PYTHON:-python3}"
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -z "${DLCOURSE_PYTHON:-}" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # pip for the system Python; bubblewrap for the sandbox (used when the container allows it)
  apt-get update -qq && apt-get install -y -qq python3-pip bubblewrap util-linux || true
fi
wheels=("$SOURCE"/dlcourse-*.whl)
"$PYTHON" -m pip install -q -c "$SOURCE/constraints.txt" "${wheels[@]}"
# where bubblewrap cannot start, kernels run as unprivileged uids (--sandbox uid): the
# installed rubrics must not be readable by them
"$PYTHON" -c 'import os; from grader.base.paths import RUBRIC_DIR; os.chmod(RUBRIC_DIR, 0o700)'

mkdir -p "$SOURCE/data"
datasets=$("$PYTHON" -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["datasets"]))' \
  "$SOURCE/settings.json")
for name in $datasets; do
  if [ -f "$SOURCE/data/$name.npz" ]; then
    echo "dataset $name: bundled"
    continue
  fi
  echo "dataset $name: downloading with keras.datasets"
  "$PYTHON" - "$name" "$SOURCE/data" <<'PY'
import os
import sys

import keras
import numpy as np

name, folder = sys.argv[1:]
(x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
partial = os.path.join(folder, f"{name}.partial.npz")
np.savez(partial, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
os.replace(partial, os.path.join(folder, f"{name}.npz"))
PY
done
# the rubric, solution, results key and data are the grader's alone
chmod -R go-rwx "$SOURCE"

# fast mode: the kernels' data copy (the public fast subsets) is written once, here, into the
# image; run_autograder points the grader at the same folder (grader/data/kernel_cache.py)
if grep -q '"mode": "fast"' "$SOURCE/settings.json"; then
  mkdir -p -m 0755 "$ROOT/kcache"
  DLCOURSE_KCACHE_DIR="$ROOT/kcache" "$PYTHON" - "$SOURCE/data" <<'PY'
import sys

from grader.data.holdout import HoldoutPlan
from grader.data.kernel_cache import shared_fast_copy

copy = shared_fast_copy(HoldoutPlan(mode="fast", seed=0, source_dir=sys.argv[1]))
print(f"fast-mode data copy: {copy.path if copy else 'not written (each run writes its own)'}")
PY
fi
