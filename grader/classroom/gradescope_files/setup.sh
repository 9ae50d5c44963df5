#!/usr/bin/env bash
# dlcourse autograder: Gradescope runs this once, as root, when it builds the autograder image.
# It installs dlcourse from the wheel in source/ and the datasets settings.json names (bundled
# in source/data/ by `gradescope build --bundle-data`, else downloaded with keras.datasets).
set -euo pipefail
ROOT="${DLCOURSE_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
PYTHON="${DLCOURSE_PYTHON:-python3}"
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # pip for the system Python; bubblewrap for the sandbox (used when the container allows it)
  apt-get update -qq && apt-get install -y -qq python3-pip bubblewrap util-linux || true
fi
"$PYTHON" -m pip install -q "$SOURCE"/dlcourse-*.whl
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
