"""Packaging: environment.yml and pyproject.toml name the same dependencies."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from grader.checks.rubric import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1:] if line.strip().startswith("- ")]
    return {_name(r): r.replace(" ", "") for r in reqs if not r.startswith("-e")}


def test_environment_yml_and_pyproject_name_the_same_dependencies():
    pyproject, environment = _pyproject_requirements(), _environment_requirements()
    assert sorted(pyproject) == sorted(environment)
    assert pyproject == environment, "version bounds differ"


def test_packages_import_without_tensorflow():
    """`import helpers, grader` stays cheap: TensorFlow loads only when a function needs it."""
    code = "import sys, helpers, grader, helpers.data, helpers.plotting; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
