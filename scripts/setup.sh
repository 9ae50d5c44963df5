#!/usr/bin/env bash
# Create .venv (if missing) and install dlcourse with the given extras, e.g. `test,dask`.
# Sourced by demo.sh and test.sh so both quick-start commands work on a fresh machine.
set -euo pipefail
extras="${1:-dask}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# pip's whole output goes to a log shown only when the install fails; the console gets the
# step's name and pip's progress (each package collected or downloaded, then what was
# installed), so a fresh machine's first install (TensorFlow alone is several hundred MB) is not
# minutes of silence, and a machine already set up prints two short lines.
pip_log="$(mktemp "${TMPDIR:-/tmp}/dlcourse-setup.XXXXXX")"
progress() {  # awk, not grep: it exits 0 when no line matches, which pipefail needs
  awk '/^(Collecting|Downloading|Installing collected|Successfully installed)/ {
         line = $0; if (length(line) > 150) line = substr(line, 1, 147) "...";
         print "setup:   " line; fflush() }'
}
echo "setup: installing dlcourse[${extras}] and its dependencies into .venv (pip; log: $pip_log)"
if ! { .venv/bin/python -m pip install --upgrade pip \
       && .venv/bin/python -m pip install -e ".[${extras}]"; } 2>&1 | tee "$pip_log" | progress; then
  cat "$pip_log" >&2
  echo "setup: installing dlcourse failed (pip's output above)" >&2
  rm -f "$pip_log"
  return 1 2>/dev/null || exit 1
fi
echo "setup: dlcourse installed"
rm -f "$pip_log"
export PATH="$PWD/.venv/bin:$PATH"
# The grader runs every student kernel in a bubblewrap sandbox (Linux). Install it where we can.
if [ "$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "setup: could not install bubblewrap; grading will run unsandboxed (see docs/sandbox.md)" >&2
  else
    echo "setup: bubblewrap (bwrap) is missing: install it (e.g. sudo apt-get install bubblewrap)" \
         "or grading runs unsandboxed with a warning (see docs/sandbox.md)" >&2
  fi
fi
