"""The rubrics' full-mode thresholds and the full-mode time limits come from the calibration.

``bench/calibrate.py`` grades every solution in full mode over seeds and writes
``bench/results/calibration.md``; these tests read that file, so a rubric edited by hand, a
module calibrated on fewer than 3 seeds, or a time limit below the slowest measured cell
(with a 1.5x margin) fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.checks.rubric import load_rubric
from grader.kernel.limits import FULL_CELL_TIMEOUT_S, FULL_NOTEBOOK_TIMEOUT_S

REPORT = Path(__file__).resolve().parents[1] / "bench" / "results" / "calibration.md"
MODULES = ("01", "02", "03", "04")


def _section(title: str) -> list[list[str]]:
    text = REPORT.read_text()
    part = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in part.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def _thresholds() -> dict[str, tuple[list[int], float]]:
    return {re.sub(r"`", "", row[0]): ([int(s) for s in row[1].split(",")], float(row[4]))
            for row in _section("Full thresholds")}


@pytest.mark.parametrize("module", MODULES)
def test_full_thresholds_are_the_calibrated_ones_over_three_seeds(module):
    calibrated = _thresholds()
    checks = [c for c in load_rubric(module).checks if c.kind == "accuracy"]
    assert checks, f"module {module} has no accuracy check"
    for spec in checks:
        assert spec.id in calibrated, f"{spec.id} is missing from {REPORT.name}"
        seeds, threshold = calibrated[spec.id]
        assert len(set(seeds)) >= 3, f"{spec.id}: calibrated on seeds {seeds}, expected >= 3"
        assert spec.threshold["full"] == pytest.approx(threshold), (
            f"{spec.id}: rubric full threshold {spec.threshold['full']}, calibration says"
            f" {threshold}")


def test_full_mode_limits_cover_the_slowest_measured_cell_and_notebook():
    rows = _section("Time")
    assert {row[0] for row in rows} >= set(MODULES)
    slowest_cell = max(float(row[2].replace(",", "")) for row in rows)
    slowest_notebook = max(float(row[3].replace(",", "")) for row in rows)
    assert FULL_CELL_TIMEOUT_S >= 1.5 * slowest_cell, (FULL_CELL_TIMEOUT_S, slowest_cell)
    assert FULL_NOTEBOOK_TIMEOUT_S >= 1.5 * slowest_notebook, (FULL_NOTEBOOK_TIMEOUT_S,
                                                               slowest_notebook)
