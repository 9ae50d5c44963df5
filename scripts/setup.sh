#!/usr/bin/env bash
# Create .venv (if missing) and install dlcourse with the given extras, e.g. `test,dask`.
# Sourced by demo.sh and test.sh so both quick-start commands work on a fresh machine.
set -euo pipefail
extras="${1:-dask}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
export PATH="$PWD/.venv/bin:$PATH"
