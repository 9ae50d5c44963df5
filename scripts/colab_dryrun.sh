#!/usr/bin/env bash
# Does the student edition's Colab install cell change anything Colab ships?
#
#   bash scripts/colab_dryrun.sh
#
# Builds the student edition (python -m grader release --student-edition) into a temporary
# folder, then asks pip, in a venv pinned to Google Colab's preinstalled versions, what
# `pip install EDITION` would do: `pip install --dry-run --report`. It passes when pip would
# install the edition's own package and nothing else: no package Colab ships upgraded or
# downgraded, nothing new pulled in. The pins and where they come from are in
# bench/results/compat.md ("Colab's preinstalled set"); keep COLAB_PINS in step with it and
# with tests/test_edition.py, which checks the edition's floors against the same pins offline.
#
# Environment: COLAB_PYTHON (default /root/.pyenv/versions/3.12.1/bin/python, else python3.12:
# Colab runs Python 3.12), COLAB_VENV (default .compat/colab-pins; created once: the
# TensorFlow download is ~600 MB). Needs the package index (PyPI). Exit status 1 when the
# install would change a preinstalled package. It runs pip, not Colab: the real runtime also
# has hundreds of other packages, which the edition does not depend on.
set -euo pipefail
cd "$(dirname "$0")/.."
COLAB_PINS=(tensorflow==2.20.0 keras==3.13.2 numpy==2.0.2 scikit-learn==1.6.1 matplotlib==3.10.0
            seaborn==0.13.2 pandas==2.2.2 ipykernel==6.17.1 ipython==7.34.0)
default_python=/root/.pyenv/versions/3.12.1/bin/python
[ -x "$default_python" ] || default_python=python3.12
colab_python="${COLAB_PYTHON:-$default_python}"
venv="${COLAB_VENV:-.compat/colab-pins}"
python="${PYTHON:-.venv/bin/python}"

if [ ! -x "$venv/bin/python" ]; then
  "$colab_python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet "${COLAB_PINS[@]}"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m grader release --student-edition "$work/edition" \
  --repo-url https://github.com/example/dl-student >/dev/null
"$venv/bin/python" -m pip list --format json >"$work/before.json"
"$venv/bin/python" -m pip install --quiet --dry-run --report "$work/report.json" "$work/edition"
"$venv/bin/python" - "$work/before.json" "$work/report.json" "${COLAB_PINS[@]}" <<'EOF'
import json
import platform
import sys


def norm(name):
    return name.lower().replace("_", "-").replace(".", "-")


before = {norm(p["name"]): p["version"] for p in json.load(open(sys.argv[1]))}
report = json.load(open(sys.argv[2]))
pins = sys.argv[3:]
would = {norm(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
changed = {n: (before[n], v) for n, v in would.items() if n in before and before[n] != v}
new = {n: v for n, v in would.items() if n not in before}
print(f"Python {platform.python_version()}, pins: {' '.join(pins)}")
for n, (old, v) in sorted(changed.items()):
    print(f"CHANGES {n}: {old} -> {v}")
for n, v in sorted(new.items()):
    print(f"installs {n} {v}")
bad = changed or set(new) - {"dlcourse-student"}
print("FAIL: the install changes Colab's packages" if bad else
      "ok: pip would install dlcourse-student only; nothing preinstalled is upgraded or downgraded")
sys.exit(1 if bad else 0)
EOF
