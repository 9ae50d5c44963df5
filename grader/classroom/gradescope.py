"""Gradescope: an autograder zip for one module, and grades.json turned into results.json.

``python -m grader gradescope build MODULE OUT.zip`` writes (see the README, "Grading in
Gradescope")::

    setup.sh            installs the dlcourse wheel and the module's datasets (once per image)
    run_autograder      grades /autograder/submission with ``python -m grader grade``
    source/settings.json    module, mode, visibility, datasets (read by run_autograder)
    source/rubric.toml, source/solution.ipynb   the module's rubric and solution notebook
    source/results.key  a results key made for this zip (the hold-out's seed; not the instructor's)
    source/dlcourse-*.whl   this checkout, built with ``pip wheel --no-deps``
    source/data/<name>.npz  only with ``--bundle-data``: the datasets the module needs

``run_autograder`` grades with the same command instructors run (``grade --rubric
rubric.toml --solution solution.ipynb``, the course's own rubric and solution) and then calls
``python -m grader gradescope results`` (:func:`write_results`) to convert the one row of
``grades.json`` into Gradescope's ``results.json``. Whatever fails, a ``results.json`` is
written: a broken upload is a 0 with the reason.
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
from typing import Any

from grader.base.course import load_course
from grader.base.errors import GraderError
from grader.base.paths import REPO_ROOT

SETTINGS_NAME = "settings.json"
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
    from grader.submission.score import exercise_cells_by_check

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
# results.json
# ----------------------------------------------------------------------------------------


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 4)


def _manual_output(points: float) -> str:
    return (f"Written answer, worth {points:g} point(s): graded by hand by your instructor as a"
            " Gradescope manual question; not part of the autograder score.")


def results_document(settings: dict, row: dict | None, *, error: str | None,
                     execution_time: float) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one graded row of ``grades.json`` (or none).

    Parameters
    ----------
    settings : dict
        ``source/settings.json`` of the zip: ``module``, ``names`` (check id -> test name),
        ``points`` (check id -> max points), ``questions`` (manual question id -> points),
        ``visibility``.
    row : dict or None
        The row of ``grades.json``; ``None`` when grading produced none.
    error : str or None
        Why the submission could not be graded (no notebook, several, grade failed); the
        row's own ``error`` is used when this is ``None``.
    execution_time : float
        Seconds the autograder ran.
    """
    visibility = settings["visibility"]
    if row is not None and row.get("module") not in (None, settings["module"]):
        error = (f"this upload is the notebook of module {row['module']}, but this assignment"
                 f" grades module {settings['module']}. Fix: upload your module"
                 f" {settings['module']} notebook and submit again")
    error = error or (row or {}).get("error") or (None if row else "the grader wrote no result")
    found = {c["id"]: c for c in (row or {}).get("checks", []) if not c.get("manual")}
    tests = []
    for number, (check_id, points) in enumerate(settings["points"].items(), start=1):
        check = found.get(check_id) if not error else None
        tests.append({
            "name": settings["names"][check_id], "number": str(number),
            "score": _number(check["points"]) if check else 0, "max_score": _number(points),
            "output": check["message"] if check else f"Not graded: {error}",
            "tags": [check_id], "visibility": visibility,
        })
    for number, (question_id, points) in enumerate(settings["questions"].items(), start=len(tests) + 1):
        tests.append({"name": settings["names"][question_id], "number": str(number), "score": 0,
                      "max_score": 0, "output": _manual_output(points), "tags": [question_id],
                      "visibility": visibility})
    score = sum(t["score"] for t in tests)
    if error:
        output = f"Your submission scored 0 automatic points: {error}"
    else:
        output = (f"Automatic checks: {score:g} of {sum(settings['points'].values()):g} points"
                  f" (module {settings['module']}, {settings['mode']} mode).")
        if row.get("notes"):
            output += "\n" + "\n".join(f"- {n}" for n in row["notes"])
    if settings["questions"]:
        output += ("\nWritten answers are graded by hand (Gradescope manual questions) and"
                   " added to this score by your instructor.")
    return {"score": _number(score), "execution_time": int(round(execution_time)),
            "output": output, "visibility": visibility, "stdout_visibility": "hidden",
            "tests": tests}


def _read_row(grades: Path | None) -> tuple[dict | None, str | None]:
    if grades is None or not grades.is_file():
        return None, None
    try:
        rows = json.loads(grades.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"the grader's grades.json could not be read ({exc})"
    if not isinstance(rows, list) or len(rows) != 1:
        return None, f"expected one graded notebook in grades.json, found {len(rows)}"
    return rows[0], None


def write_results(*, settings: Path, grades: Path | None, out: Path, error: str | None = None,
                  execution_time: float = 0.0) -> dict[str, Any]:
    """Write ``out`` (results.json) from the zip's settings and ``grades.json``; returns it."""
    config = json.loads(Path(settings).read_text(encoding="utf-8"))
    row, problem = _read_row(grades)
    document = results_document(config, row, error=error or problem, execution_time=execution_time)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    partial.replace(out)
    return document


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


def _settings(rubric, solution, *, full: bool, visibility: str, datasets: list[str]) -> dict:
    return {"schema": 1, "module": rubric.module, "mode": "full" if full else "fast",
            "visibility": visibility, "datasets": datasets,
            "names": check_names(rubric, solution),
            "points": {c.id: c.points for c in rubric.checks},
            "questions": {q.id: q.points for q in rubric.questions}}


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _script(name: str) -> bytes:
    return resources.files("grader.classroom").joinpath("gradescope_files", name).read_bytes()


def build_autograder(*, module: str, out: Path, full: bool = False, course: Path | None = None,
                     bundle_data: bool = False, data_dir: str | None = None) -> dict:
    """Write the autograder zip of ``module`` to ``out``; returns its ``settings.json``.

    ``bundle_data`` copies the module's datasets from ``data_dir`` (default
    ``$DLCOURSE_DATA_DIR``) into the zip; otherwise ``setup.sh`` downloads them.
    """
    from grader.authoring.release import load_solution, solution_path
    from grader.checks.rubric import load_rubric

    visibility = load_course(course).gradescope_visibility
    rubric = load_rubric(module)
    solution = load_solution(rubric)
    source = solution_path(rubric).read_text(encoding="utf-8")
    datasets = module_datasets(rubric, source)
    bundled = _bundled_files(datasets, data_dir) if bundle_data else []
    settings = _settings(rubric, solution, full=full, visibility=visibility, datasets=datasets)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dlcourse-gs-") as tmp:
        wheel = build_wheel(Path(tmp))
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w") as archive:
            for name in SCRIPTS:
                _add(archive, name, _script(name), 0o755)
            _add(archive, f"source/{SETTINGS_NAME}", json.dumps(settings, indent=2).encode(), 0o600)
            _add(archive, "source/rubric.toml", rubric.path.read_bytes(), 0o600)
            _add(archive, "source/solution.ipynb", source.encode("utf-8"), 0o600)
            _add(archive, "source/results.key", (secrets.token_hex(32) + "\n").encode(), 0o600)
            _add(archive, f"source/{wheel.name}", wheel.read_bytes(), 0o644)
            for path in bundled:  # already compressed: stored as is
                archive.write(path, f"source/data/{path.name}", compress_type=zipfile.ZIP_STORED)
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
