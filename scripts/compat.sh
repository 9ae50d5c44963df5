#!/usr/bin/env bash
# Compatibility run (a release step): grade every solution in fast mode on several version sets.
#
#   bash scripts/compat.sh [SET...]        (default: floor colab2025 colab newest)
#
# For each SET it creates (or reuses) the venv .compat/SET, installs the project there with that
# set's pins, prints the versions, then grades each solutions/0N*.ipynb with the grader's own
# command line (`python -m grader grade --fast`) run by that venv's Python, so the grader and the
# notebook's kernel both use the set's packages (a probe notebook prints the kernel's Python and
# versions to make sure). A notebook passes when grading raised no error, every automatic check
# passed with full points (written answers wait for manual grading and are not counted) and no
# cell raised an error, was interrupted or was left unrun.
#
# Sets:
#   floor      the lowest versions pyproject.toml allows (tensorflow, keras and every other floor)
#   colab2025  Google Colab, Aug 2025 - Mar 2026: TensorFlow 2.19, Keras 3.10
#   colab      Google Colab since May 2026: TensorFlow 2.20, Keras 3.13
#   newest     the newest releases pip finds
#
# Environment: DLCOURSE_DATA_DIR (the datasets, strongly advised: no downloads per set),
# PYTHON (interpreter for the floor and newest venvs, default python3), COLAB_PYTHON (for the
# colab sets: Colab runs Python 3.12; default python3.12 when found, else PYTHON), COMPAT_NOTEBOOKS (e.g. "01 04"; default
# all), COMPAT_REUSE=1 (no install, no grading: rebuild the verdicts and the table from the
# last run's output), COMPAT_DIR (default .compat), COMPAT_OUT (the Markdown file, default
# bench/results/compat.md; each set's rows are kept in COMPAT_DIR/SET/rows.md and the file is
# rebuilt from every set run so far). Exit status 1 when a notebook failed.
set -euo pipefail
{  # the whole script is read before it runs: editing it during a run is safe
cd "$(dirname "$0")/.."
root="$PWD"
python="${PYTHON:-python3}"
if [ -n "${COLAB_PYTHON:-}" ]; then colab_python="$COLAB_PYTHON"
elif command -v python3.12 >/dev/null 2>&1; then colab_python=python3.12
else colab_python="$python"; fi
compat_dir="${COMPAT_DIR:-.compat}"
mkdir -p "$compat_dir" && compat_dir="$(cd "$compat_dir" && pwd)"
out_md="${COMPAT_OUT:-bench/results/compat.md}"
all_notebooks="01 02 03 04"
notebooks="${COMPAT_NOTEBOOKS:-$all_notebooks}"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(floor colab2025 colab newest)

# Keep in step with pyproject.toml's floors: `floor` pins every runtime dependency to its floor.
floor_pins=(tensorflow==2.19.0 keras==3.8.0 numpy==1.26.4 scikit-learn==1.6.0 seaborn==0.13.0
            pandas==2.0.0 matplotlib==3.8.0 nbformat==5.9.0 nbclient==0.10.0 ipykernel==6.29.0
            tqdm==4.66.0 psutil==5.9.0)

pins_for() {
  case "$1" in
    floor) echo "${floor_pins[*]}" ;;
    colab2025) echo "tensorflow==2.19.* keras==3.10.*" ;;
    colab) echo "tensorflow==2.20.* keras==3.13.*" ;;
    newest) echo "" ;;
    *) echo "compat: unknown set '$1' (floor, colab2025, colab, newest)" >&2; return 2 ;;
  esac
}

# the commit of what is tested (the lessons, helpers and grader), +dirty when they have local edits
commit="$(git log -1 --format=%h -- solutions helpers grader 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no -- solutions helpers grader 2>/dev/null)" ]; then
  commit="$commit+dirty"
fi
machine="$(uname -sm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
status=0

for set in "${sets[@]}"; do
  pins="$(pins_for "$set")"
  venv="$compat_dir/$set"
  echo "== $set: ${pins:-newest releases}" >&2
  py="$venv/bin/python"
  if [ "${COMPAT_REUSE:-0}" = 1 ] && [ -f "$venv/versions.txt" ]; then
    versions="$(cat "$venv/versions.txt")"; probe="$(cat "$venv/probe.txt")"
  else
    case "$set" in colab*) interpreter="$colab_python" ;; *) interpreter="$python" ;; esac
    want="$("$interpreter" -c 'import sys; print(sys.version_info[:2])')"
    if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" != "$want" ]; then
      rm -rf "$venv"  # made with another Python
    fi
    [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
    "$py" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086 # the pins are separate words
    if [ "$set" = newest ]; then
      "$py" -m pip install --quiet --upgrade --upgrade-strategy eager -e . >"$venv/install.log" 2>&1
    else
      "$py" -m pip install --quiet -e . $pins >"$venv/install.log" 2>&1
    fi || { echo "compat: installing $set failed, see $venv/install.log" >&2; tail -20 "$venv/install.log" >&2; exit 1; }
    "$py" -m pip check >&2 || echo "compat: pip check reports conflicts in $set (see above)" >&2

    versions="$("$py" - <<'EOF'
import platform
from importlib.metadata import version
names = ["tensorflow", "keras", "numpy", "scikit-learn", "matplotlib", "pandas", "seaborn",
         "nbclient", "jupyter_client", "ipykernel"]
print(" | ".join([platform.python_version()] + [version(n) for n in names]))
EOF
    )"
    echo "$set: python | tensorflow | keras | numpy | scikit-learn | matplotlib | pandas | seaborn | nbclient | jupyter_client | ipykernel" >&2
    echo "$set: $versions" >&2

    # The kernel the grader starts (kernel name python3, its environment from the grader's kernel_environment) must be
    # this venv's: run one probe cell the same way and compare.
    probe="$("$py" - "$venv" <<'EOF'
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

try:  # the grader's layout since the 'layout' branch; before it, grader/sandbox.py
    from grader.kernel.sandbox import kernel_environment
except ImportError:
    from grader.sandbox import kernel_environment

code = ("import sys, keras, tensorflow, numpy, sklearn\n"
        "print(sys.prefix, tensorflow.__version__, keras.__version__, numpy.__version__,"
        " sklearn.__version__)")
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
with tempfile.TemporaryDirectory() as home:
    env = kernel_environment(fast=True, data_dir=None, threads=1, sandboxed=False, home=Path(home))
    NotebookClient(nb, kernel_name="python3", timeout=600).execute(env=env, cwd=home)
out = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stdout").split()
prefix, versions = out[0], out[1:]
ok = Path(prefix).resolve() == Path(sys.argv[1]).resolve() == Path(sys.prefix).resolve()
print(("ok" if ok else "WRONG") + f" sys.prefix {prefix}: tensorflow {versions[0]}, keras {versions[1]},"
      f" numpy {versions[2]}, scikit-learn {versions[3]}")
EOF
    )" || probe="FAILED"
    echo "$versions" >"$venv/versions.txt"; echo "$probe" >"$venv/probe.txt"
  fi
  echo "$set: kernel probe: $probe" >&2
  case "$probe" in ok*) ;; *) echo "compat: the kernel does not run in $venv" >&2; status=1 ;; esac

  cells=()
  for n in $all_notebooks; do
    case " $notebooks " in *" $n "*) ;; *) cells+=("not run"); continue ;; esac
    nb="$(ls solutions/"$n"_*.ipynb)"
    out="$venv/grade-$n"
    if [ "${COMPAT_REUSE:-0}" != 1 ]; then
      rm -rf "$out"
      t0=$(date +%s)
      DLCOURSE_FAST=1 "$py" -m grader grade "$nb" --out "$out" --fast --force >"$venv/grade-$n.log" 2>&1 || true
      echo $(( $(date +%s) - t0 )) >"$out.secs"
    fi
    secs="$(cat "$out.secs" 2>/dev/null || echo '?')"
    verdict="$("$python" - "$out/grades.json" <<'EOF'
import json
import re
import sys

try:
    rows = json.load(open(sys.argv[1]))
except (OSError, ValueError) as exc:
    print(f"FAIL (no grades.json: {exc.__class__.__name__})")
    sys.exit()
problems, score = ([] if rows else ["grades.json lists no notebook"]), "?"
for row in rows:
    if row.get("error"):
        problems.append(f"error: {row['error']}")
    # written answers (manual checks) wait for a person: only the automatic points count
    auto = [c for c in row["checks"] if not c.get("manual")]
    # the first cell error first: it is usually the cause of the rest
    problems += [" ".join(n.split("\n")[i].strip() for i in (0, -1)) for n in row.get("notes", [])
                 if re.search(r"raised|not run|time limit|interrupted|died|failed", n)]
    problems += [f"{c['id']}: {c.get('message', '')}" for c in auto if not c["passed"]]
    points, max_points = sum(c["points"] for c in auto), sum(c["max_points"] for c in auto)
    if not problems and not 0 < points == max_points:
        problems.append(f"automatic points {points:g}/{max_points:g}")
    score = f"{points:g}/{max_points:g}"
print(f"FAIL {score}: " + "; ".join(problems)[:300] if problems else f"pass {score}")
EOF
)"
    echo "$set $n: $verdict (${secs} s; log $venv/grade-$n.log)" >&2
    case "$verdict" in pass*) ;; *) status=1 ;; esac
    cells+=("${verdict//|//} (${secs} s)")
  done

  {
    printf '| %s | %s | %s | %s | %s | %s |\n' "$set" "$versions" "$(IFS='|'; echo "${cells[*]}" | sed 's/|/ | /g')" \
      "${probe%% *}" "$(date -u +%Y-%m-%d)" "$commit"
  } >"$venv/rows.md"
  cat "$venv/rows.md"
done

# Rebuild the Markdown file from every set run so far (newest run of each set); what follows the
# line "<!-- notes -->" (written by hand: causes of failures, what changed) is kept.
notes=""
[ -f "$out_md" ] && notes="$(sed -n '/^<!-- notes -->$/,$p' "$out_md")"
{
  echo "# Compatibility: the solutions in fast mode on several version sets"
  echo
  echo "Generated by \`bash scripts/compat.sh\` (see its header for the sets). Each notebook is graded by"
  echo "\`python -m grader grade --fast\` run by the set's own venv; \"pass\" means no grading error, every"
  echo "automatic check passed with full points (the score shown; written answers wait for manual grading)"
  echo "and no cell raised an error. Times are the whole grading run"
  echo "(kernel start, the notebook, the grader's re-runs) on $machine,"
  echo "shared with other jobs (times are loaded wall times, not benchmarks). \"kernel\" is the probe: ok = the kernel ran in the set's venv."
  echo
  echo "| set | python | tensorflow | keras | numpy | scikit-learn | matplotlib | pandas | seaborn | nbclient | jupyter_client | ipykernel | $(for n in $all_notebooks; do printf '%s | ' "$n"; done)kernel | date | lesson code commit |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|$(for _ in $all_notebooks; do printf -- '---|'; done)---|---|---|"
  for set in floor colab2025 colab newest; do
    if [ -f "$compat_dir/$set/rows.md" ]; then cat "$compat_dir/$set/rows.md"; fi
  done
  if [ -n "$notes" ]; then echo; echo "$notes"; fi
} >"$out_md.tmp"
mv "$out_md.tmp" "$out_md"
echo "compat: wrote $out_md" >&2
exit "$status"
}
