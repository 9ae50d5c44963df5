"""The rubrics' full-mode thresholds and the full-mode time limits come from the calibration.

``bench/calibrate.py`` grades every solution in full mode over seeds and writes
``bench/results/calibration.md``; these tests read that file, so a rubric edited by hand, a
module calibrated on fewer than 3 seeds, or a time limit below the slowest measured cell
(with a 1.5x margin) fails here.

The accuracy checks of lesson 04's design exercises have goals, not the solution's score, as
their bars ("beat lesson 02's dense network"); ``bench/design_bars.py`` derives them in the
"Design thresholds" table of ``bench/results/design_bars.md``, and the solution's worst seed
must clear each of them by the margin the other full thresholds keep (0.02).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.checks.rubric import load_rubric
from grader.kernel.limits import FULL_CELL_TIMEOUT_S, FULL_NOTEBOOK_TIMEOUT_S

REPORT = Path(__file__).resolve().parents[1] / "bench" / "results" / "calibration.md"
DESIGN_REPORT = REPORT.with_name("design_bars.md")
MODULES = ("01", "02", "03", "04")


def _section(title: str, report: Path = REPORT) -> list[list[str]]:
    text = report.read_text()
    part = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in part.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def _thresholds() -> dict[str, tuple[list[int], float]]:
    return {re.sub(r"`", "", row[0]): ([int(s) for s in row[1].split(",")], float(row[4]))
            for row in _section("Full thresholds")}


def _design_thresholds() -> dict[str, dict[str, float]]:
    return {re.sub(r"`", "", row[0]): {"full": float(row[2]), "fast": float(row[3]),
                                       "solution_full": float(row[4])}
            for row in _section("Design thresholds", DESIGN_REPORT)}


@pytest.mark.parametrize("module", MODULES)
def test_full_thresholds_are_the_calibrated_ones_over_three_seeds(module):
    calibrated = _thresholds()
    design = _design_thresholds()
    checks = [c for c in load_rubric(module).checks if c.kind == "accuracy"]
    assert checks, f"module {module} has no accuracy check"
    for spec in checks:
        if spec.id in design:
            bar = design[spec.id]
            assert spec.threshold == {"full": bar["full"], "fast": bar["fast"]}, (
                f"{spec.id}: rubric thresholds {spec.threshold}, {DESIGN_REPORT.name} says {bar}")
            assert bar["solution_full"] >= bar["full"] + 0.02 - 1e-9, (
                f"{spec.id}: the solution's worst seed {bar['solution_full']} does not clear"
                f" the full threshold {bar['full']} by 0.02")
            continue
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
