#!/usr/bin/env bash
# Grade the four solutions and the example class in fast mode with two checkouts of this
# repository (each with its own .venv, made by scripts/setup.sh), then compare the grades.
#
#   bash bench/grades_before_after.sh BEFORE_CHECKOUT AFTER_CHECKOUT OUT
#
# A change that must not change grades (a refactoring) shows 0 grade differences;
# bench/compare_grades.py lists every difference, grade and text, and ignores timings.
# SIDES="after" grades only one side again (the other's grades kept in OUT).
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); out=$3
mkdir -p "$out"
out=$(cd "$out" && pwd)
for side in ${SIDES:-before after}; do
  repo=${!side}
  for what in solutions examples; do
    if [ "$what" = solutions ]; then inputs=("$repo"/solutions/0*.ipynb); else inputs=("$repo/examples/submissions"); fi
    rm -rf "$out/$side/$what"
    start=$(date +%s)
    (cd "$repo" && .venv/bin/python -m grader grade "${inputs[@]}" --out "$out/$side/$what" --fast --jobs 1 >"$out/$side-$what.log" 2>&1)
    echo "$side $what: $(( $(date +%s) - start )) s" | tee -a "$out/walls.txt"
  done
done
status=0
for what in solutions examples; do
  echo "== $what"
  python3 "$after/bench/compare_grades.py" "$out/before/$what/grades.json" "$out/after/$what/grades.json" || status=$?
done
exit $status
