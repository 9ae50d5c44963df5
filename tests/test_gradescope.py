"""Gradescope: the autograder zip built by the real CLI, and its run_autograder run for real.

``run_autograder`` runs in a temporary root (``DLCOURSE_AUTOGRADER_ROOT``) unzipped from the
built zip, with the test environment's Python (``DLCOURSE_PYTHON``; setup.sh is not run: the
venv already holds dlcourse). Kernels, data and the sandbox are real.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.base.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR

NOTEBOOK = "02_dense_mnist_fashion.ipynb"
TOP = {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
TEST_KEYS = {"score", "max_score", "name", "number", "output", "tags", "visibility"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def _cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1200)


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> Path:
    """The module 02 zip, built with a course file asking for ``after_due_date``."""
    folder = tmp_path_factory.mktemp("gsbuild")
    course = folder / "course.toml"
    course.write_text('[gradescope]\nvisibility = "after_due_date"\n')
    done = _cli("gradescope", "build", "02", str(folder / "ag.zip"), "--course", str(course))
    assert done.returncode == 0, done.stderr
    assert "1 written question(s)" in done.stdout
    return folder / "ag.zip"


def _unzip(archive: Path, root: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            zf.extract(info, root)
            os.chmod(root / info.filename, (info.external_attr >> 16) & 0o777)


def run_autograder(archive: Path, root: Path, uploads: dict[str, bytes], *,
                   python: str = sys.executable) -> tuple[dict, subprocess.CompletedProcess]:
    _unzip(archive, root)
    (root / "submission").mkdir()
    for name, data in uploads.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_bytes(data)
    env = dict(os.environ, DLCOURSE_AUTOGRADER_ROOT=str(root), DLCOURSE_PYTHON=python)
    done = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text()), done


def assert_spec(doc: dict, visibility: str = "after_due_date") -> None:
    """results.json has Gradescope's fields with the spec's types."""
    assert TOP <= set(doc), sorted(TOP - set(doc))
    assert isinstance(doc["score"], (int, float)) and not isinstance(doc["score"], bool)
    assert isinstance(doc["execution_time"], int) and doc["execution_time"] >= 0
    assert isinstance(doc["output"], str) and doc["output"]
    assert doc["visibility"] in VISIBILITIES and doc["stdout_visibility"] in VISIBILITIES
    assert doc["visibility"] == visibility
    assert isinstance(doc["tests"], list)
    for number, test in enumerate(doc["tests"], start=1):
        assert set(test) == TEST_KEYS
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float))
        assert 0 <= test["score"] <= test["max_score"] or test["max_score"] == test["score"] == 0
        assert isinstance(test["name"], str) and test["name"]
        assert test["number"] == str(number)
        assert isinstance(test["output"], str) and test["output"]
        assert isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])
        assert test["visibility"] == visibility
    assert doc["score"] == pytest.approx(sum(t["score"] for t in doc["tests"]))


def test_zip_has_the_scripts_at_the_top_and_the_module_inside(autograder):
    with zipfile.ZipFile(autograder) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        settings = json.loads(zf.read("source/settings.json"))
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & stat.S_IXUSR, f"{script} is not executable"
    assert any(n.startswith("source/dlcourse-") and n.endswith(".whl") for n in infos)
    assert {"source/rubric.toml", "source/solution.ipynb", "source/results.key"} <= set(infos)
    assert not any(n.startswith("source/data/") for n in infos)  # downloaded by setup.sh
    assert settings["module"] == "02" and settings["mode"] == "fast"
    assert settings["datasets"] == ["mnist", "fashion_mnist", "cifar10"]
    assert settings["questions"] == {"02.fashion_written": 2.0}
    assert settings["names"]["02.deep_model_params"].startswith("Exercise 2.3: ")


def test_solution_earns_every_automatic_point_the_same_as_grade(autograder, tmp_path, data_dir,
                                                                 bwrap_required):
    upload = (SOLUTIONS_DIR / NOTEBOOK).read_bytes()
    doc, _ = run_autograder(autograder, tmp_path / "root", {"my upload.ipynb": upload})
    assert_spec(doc)
    automatic = [t for t in doc["tests"] if t["max_score"] > 0]
    assert len(automatic) == 10
    assert all(t["score"] == t["max_score"] for t in automatic), \
        [t["output"] for t in automatic if t["score"] < t["max_score"]]
    assert doc["score"] == 11
    written = [t for t in doc["tests"] if t["tags"] == ["02.fashion_written"]]
    assert written[0]["score"] == written[0]["max_score"] == 0
    assert "manual question" in written[0]["output"]
    # the same file through `grade --fast`: the same points, check by check
    (tmp_path / "in" / "alice").mkdir(parents=True)
    (tmp_path / "in" / "alice" / NOTEBOOK).write_bytes(upload)
    done = _cli("grade", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--fast")
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads((tmp_path / "out" / "grades.json").read_text())[0]
    by_grade = {c["id"]: c["points"] for c in row["checks"] if not c.get("manual")}
    assert {t["tags"][0]: t["score"] for t in doc["tests"] if t["tags"][0] in by_grade} == by_grade


def test_blank_student_notebook_scores_zero(autograder, tmp_path, data_dir, bwrap_required):
    doc, _ = run_autograder(autograder, tmp_path / "root",
                            {NOTEBOOK: (NOTEBOOKS_DIR / NOTEBOOK).read_bytes()})
    assert_spec(doc)
    assert doc["score"] == 0 and len(doc["tests"]) == 12
    assert "0 of 11 points" in doc["output"]


def test_truncated_upload_scores_zero_with_an_explanation(autograder, tmp_path):
    data = (SOLUTIONS_DIR / NOTEBOOK).read_bytes()
    doc, _ = run_autograder(autograder, tmp_path / "root", {NOTEBOOK: data[: len(data) // 2]})
    assert_spec(doc)
    assert doc["score"] == 0
    assert doc["output"].startswith("Your submission scored 0 automatic points: ")
    assert "JSON" in doc["output"] or "notebook" in doc["output"]
    assert all(t["output"].startswith("Not graded: ") for t in doc["tests"] if t["max_score"])


@pytest.mark.parametrize("uploads, found", [
    ({}, "found 0"),
    ({"a.ipynb": b"{}", "b/c.ipynb": b"{}"}, "found 2"),
    ({"notes.pdf": b"%PDF-1.4"}, "found 0 (files: notes.pdf)"),
])
def test_no_notebook_or_several_score_zero_and_say_so(autograder, tmp_path, uploads, found):
    doc, _ = run_autograder(autograder, tmp_path / "root", uploads)
    assert_spec(doc)
    assert doc["score"] == 0
    assert "expected exactly one Jupyter notebook (.ipynb)" in doc["output"] and found in doc["output"]


def test_when_python_itself_fails_a_results_json_is_still_written(autograder, tmp_path):
    doc, _ = run_autograder(autograder, tmp_path / "root",
                            {NOTEBOOK: (NOTEBOOKS_DIR / NOTEBOOK).read_bytes()}, python="/bin/false")
    assert_spec(doc)
    assert doc["score"] == 0 and doc["tests"] == []
    assert "failed before it could grade" in doc["output"]


def test_build_bundles_only_the_datasets_the_module_needs(tmp_path, data_dir):
    done = _cli("gradescope", "build", "03", str(tmp_path / "ag.zip"), "--bundle-data")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "ag.zip") as zf:
        data = sorted(n for n in zf.namelist() if n.startswith("source/data/"))
    assert data == ["source/data/fashion_mnist.npz"]


def test_build_errors_exit_2_and_say_what_to_fix(tmp_path):
    done = _cli("gradescope", "build", "07", str(tmp_path / "ag.zip"))
    assert done.returncode == 2 and "invalid choice: '07'" in done.stderr
    env_less = dict(os.environ)
    env_less.pop("DLCOURSE_DATA_DIR", None)
    done = subprocess.run([sys.executable, "-m", "grader", "gradescope", "build", "02",
                           str(tmp_path / "ag.zip"), "--bundle-data"], cwd=REPO_ROOT, env=env_less,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "DLCOURSE_DATA_DIR is not set" in done.stderr
    course = tmp_path / "course.toml"
    course.write_text('[gradescope]\nvisibility = "students"\n')
    done = _cli("gradescope", "build", "02", str(tmp_path / "ag.zip"), "--course", str(course))
    assert done.returncode == 2 and "gradescope.visibility" in done.stderr
    assert not (tmp_path / "ag.zip").exists()
