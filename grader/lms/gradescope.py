"""Gradescope: the autograder zip of one module.

``python -m grader gradescope build MODULE OUT.zip`` writes, every file at the zip's root as
Gradescope's specification asks (it extracts the zip into ``/autograder/source``, copies
``run_autograder`` to ``/autograder/run_autograder`` and runs ``setup.sh`` once per image;
see docs/gradescope.md)::

    setup.sh            installs the wheel (pinned by constraints.txt), the module's datasets
                        and the shared fast-mode data copy
    run_autograder      grades /autograder/submission with ``python -m grader grade``
    settings.json       module, mode, visibility, datasets, test names (read by run_autograder)
    pending.json        the results.json in place until grading finishes (time-limit message)
    constraints.txt     the exact versions of dlcourse's dependencies this checkout runs with
    rubric.toml, solution.ipynb   the module's rubric and solution notebook
    results.key         a results key made for this zip (the hold-out's seed; not the instructor's)
    dlcourse-*.whl      this checkout, built with ``pip wheel --no-deps``
    data/<name>.npz     only with ``--bundle-data``: the datasets the module needs

``run_autograder`` grades with the same command instructors run (``grade --rubric
rubric.toml --solution solution.ipynb``) after ``python -m grader gradescope upload`` has
checked the upload, and then calls ``python -m grader gradescope results`` to turn the one row
of ``grades.json`` into Gradescope's ``results.json``
(:mod:`grader.lms.gradescope_results`). A valid ``results.json`` exists from its first
step on, whatever fails or however early the platform stops it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from grader.base.course import load_course
from grader.base.errors import GraderError
from grader.base.paths import REPO_ROOT

SETTINGS_NAME = "settings.json"
PENDING_NAME = "pending.json"
CONSTRAINTS_NAME = "constraints.txt"
SCRIPTS = ("setup.sh", "run_autograder")
_WHEEL_FILES = ("pyproject.toml", "README.md", "LICENSE")
_WHEEL_DIRS = ("grader", "helpers")


# ----------------------------------------------------------------------------------------
# What the module needs
# ----------------------------------------------------------------------------------------


def module_datasets(rubric, solution_source: str) -> list[str]:
    """The datasets module ``rubric`` uses: those its checks score on and those its solution
    notebook loads (``load_dataset("name"``, ``DATASET = "name"``), in the loader's order."""
    from helpers.data import DATASETS

    used = {rubric.dataset} | {c.dataset for c in rubric.checks if c.dataset}
    for name in DATASETS:
        if re.search(rf"""["']{name}["']""", solution_source):
            used.add(name)
    return [name for name in DATASETS if name in used]


def check_names(rubric, solution) -> dict[str, str]:
    """Check or question id -> the test name students see: the exercise and what it checks."""
    from grader.authoring.cells import exercise_labels
    from grader.scoring.score import exercise_cells_by_check

    labels = exercise_labels(solution)
    cells = exercise_cells_by_check(solution, rubric)
    names = {}
    for spec in (*rubric.checks, *rubric.questions):
        what = spec.description or spec.id
        found = [labels[c.get("id")] for c in cells.get(spec.id, []) if c.get("id") in labels]
        if found and not what.lower().startswith("exercise"):
            what = f"Exercise {found[-1]}: {what}"
        names[spec.id] = f"{what} ({spec.id})"
    return names


# ----------------------------------------------------------------------------------------
# The zip
# ----------------------------------------------------------------------------------------


def build_wheel(dest: Path) -> Path:
    """Build the dlcourse wheel of this checkout into ``dest`` (``pip wheel --no-deps``).

    The checkout's files are copied to a temporary folder first, so the build leaves nothing
    behind in the repository.
    """
    with tempfile.TemporaryDirectory(prefix="dlcourse-wheel-") as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        for name in _WHEEL_FILES:
            if (REPO_ROOT / name).is_file():
                shutil.copy2(REPO_ROOT / name, tree / name)
        for name in _WHEEL_DIRS:
            shutil.copytree(REPO_ROOT / name, tree / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                               str(dest), str(tree)], capture_output=True, text=True)
        if done.returncode:
            raise GraderError(f"building the dlcourse wheel failed (pip wheel exit"
                              f" {done.returncode}): {done.stderr.strip()[-600:]}. Fix: make"
                              " sure pip can install setuptools>=77 (network or a local index)")
    wheels = sorted(dest.glob("dlcourse-*.whl"))
    if not wheels:
        raise GraderError(f"pip wheel wrote no dlcourse wheel into {dest}")
    return wheels[-1]


def pinned_requirements(project: str = "dlcourse") -> list[str]:
    """``name==version`` of every distribution ``project`` needs (its dependencies without
    extras, and theirs), as installed in this environment: the versions the tests ran with."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    todo = [project]
    while todo:
        dist = metadata.distribution(todo.pop())
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(req.name)
            if name in pins:
                continue
            try:
                pins[name] = metadata.version(req.name)
            except metadata.PackageNotFoundError as exc:
                raise GraderError(f"{project} needs {req} but it is not installed here. Fix:"
                                  " build the zip from the environment the tests run in"
                                  " (pip install -e .)") from exc
            todo.append(req.name)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def _constraints() -> bytes:
    lines = [f"# pip constraints: the versions installed where this zip was built (Python"
             f" {sys.version_info.major}.{sys.version_info.minor})", *pinned_requirements()]
    return ("\n".join(lines) + "\n").encode()


def _settings(rubric, solution, *, full: bool, visibility: str, datasets: list[str]) -> dict:
    return {"schema": 1, "module": rubric.module, "notebook": rubric.notebook,
            "mode": "full" if full else "fast", "visibility": visibility, "datasets": datasets,
            "names": check_names(rubric, solution),
            "points": {c.id: c.points for c in rubric.checks},
            "questions": {q.id: q.points for q in rubric.questions}}


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _script(name: str) -> bytes:
    return resources.files("grader.lms").joinpath("gradescope_files", name).read_bytes()


def build_autograder(*, module: str, out: Path, full: bool = False, course: Path | None = None,
                     bundle_data: bool = False, data_dir: str | None = None) -> dict:
    """Write the autograder zip of ``module`` to ``out``; returns its ``settings.json``.

    ``bundle_data`` copies the module's datasets from ``data_dir`` (default
    ``$DLCOURSE_DATA_DIR``) into the zip; otherwise ``setup.sh`` downloads them.
    """
    from grader.authoring.release import load_solution, solution_path
    from grader.checks.rubric import load_rubric
    from grader.lms.gradescope_results import pending_document

    visibility = load_course(course).gradescope_visibility
    rubric = load_rubric(module)
    solution = load_solution(rubric)
    source = solution_path(rubric).read_text(encoding="utf-8")
    datasets = module_datasets(rubric, source)
    bundled = _bundled_files(datasets, data_dir) if bundle_data else []
    settings = _settings(rubric, solution, full=full, visibility=visibility, datasets=datasets)
    constraints = _constraints()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlcourse-gs-") as tmp:
        wheel = build_wheel(Path(tmp))
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for name in SCRIPTS:
                _add(archive, name, _script(name), 0o755)
            _add(archive, SETTINGS_NAME, json.dumps(settings, indent=2).encode(), 0o600)
            _add(archive, PENDING_NAME, json.dumps(pending_document(settings), indent=2).encode(),
                 0o644)
            _add(archive, CONSTRAINTS_NAME, constraints, 0o644)
            _add(archive, "rubric.toml", rubric.path.read_bytes(), 0o600)
            _add(archive, "solution.ipynb", source.encode("utf-8"), 0o600)
            _add(archive, "results.key", (secrets.token_hex(32) + "\n").encode(), 0o600)
            _add(archive, wheel.name, wheel.read_bytes(), 0o644)
            for path in bundled:  # already compressed: stored as is
                archive.write(path, f"data/{path.name}", compress_type=zipfile.ZIP_STORED)
        partial.replace(out)
    return settings


def _bundled_files(datasets: list[str], data_dir: str | None) -> list[Path]:
    folder = data_dir or os.environ.get("DLCOURSE_DATA_DIR")
    if not folder:
        raise GraderError("--bundle-data needs the datasets: DLCOURSE_DATA_DIR is not set."
                          f" Fix: point it at a folder holding {', '.join(d + '.npz' for d in datasets)}"
                          " or leave out --bundle-data (setup.sh then downloads them)")
    files = [Path(folder) / f"{name}.npz" for name in datasets]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise GraderError(f"--bundle-data: expected {', '.join(missing)}, not found. Fix: copy"
                          " the dataset files there or leave out --bundle-data")
    return files
