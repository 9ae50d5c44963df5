"""Where things live: the repository root, solutions, student notebooks, rubrics."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
RUBRIC_DIR = PACKAGE_DIR / "checks" / "rubrics"
REPO_ROOT = PACKAGE_DIR.parent
SOLUTIONS_DIR = REPO_ROOT / "solutions"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
MODULES = ("01", "02", "03", "04")
