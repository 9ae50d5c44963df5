"""Gradescope: the autograder zip built by the real CLI and run the way Gradescope runs it.

The harness follows Gradescope's specification (gradescope/autograder_samples, docs/specs.md):

    "Autograders are uploaded to Gradescope in zip format. The file must contain at least two
    files in the root of the archive: setup.sh [...] run_autograder"
    "When the autograder executes, the working directory is /autograder."
    "/autograder/source contains the extracted contents of your autograder zip file."
    "/autograder/run_autograder is where your autograder script gets copied to during the
    Docker image build process."
    "/autograder/results/results.json is where you put the test output that is uploaded to
    Gradescope. This must be produced as a result of executing run_autograder."
    "/autograder/submission contains the student's submission, downloaded from Gradescope."
    "If an assignment level visibility setting is set, a test can override this setting with
    its own visibility setting. [...] useful for pre-submission checks"
    "By default, test cases where the student was awarded the "max_score" points are marked as
    passing [...] you can set the "status" field to either "passed" or "failed""

So every run here extracts the zip into ``ROOT/source``, copies ``run_autograder`` to
``ROOT/run_autograder``, puts the upload in ``ROOT/submission`` and runs
``ROOT/run_autograder`` with the working directory ``ROOT`` (``DLCOURSE_AUTOGRADER_ROOT`` stands
in for ``/autograder``). The slow test runs the real ``setup.sh`` from ``ROOT/source`` in a
fresh virtual environment (``DLCOURSE_PYTHON``), so pip really installs the wheel and its pinned
dependencies, and grades one lesson there; the other tests use this environment's Python, which
already holds dlcourse.
Kernels, data and the sandbox are real. Gradescope itself is not reachable from here.
"""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.utils import canonicalize_name

from grader.base.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR
from grader.lms.gradescope_results import TIME_LIMIT_OUTPUT, UPLOAD_TEST

NOTEBOOK = "02_dense_mnist_fashion.ipynb"
TOP = {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
TEST_KEYS = {"score", "max_score", "status", "name", "number", "output", "tags", "visibility"}
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
COURSE = '[gradescope]\nvisibility = "after_due_date"\n'


def _cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=1200)


def build(module: str, folder: Path, *extra: str) -> Path:
    """``gradescope build MODULE`` with a course file asking for ``after_due_date``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "course.toml").write_text(COURSE)
    done = _cli("gradescope", "build", module, str(folder / f"ag{module}.zip"), "--course",
                str(folder / "course.toml"), *extra)
    assert done.returncode == 0, done.stderr
    return folder / f"ag{module}.zip"


@pytest.fixture(scope="module")
def autograder(tmp_path_factory) -> Path:
    """The module 02 zip (datasets not bundled: this environment's DLCOURSE_DATA_DIR)."""
    return build("02", tmp_path_factory.mktemp("gsbuild"))


def lay_out(archive: Path, root: Path) -> None:
    """What Gradescope does when it builds the image: the zip's contents into ROOT/source
    (modes kept), run_autograder copied to ROOT/run_autograder."""
    source = root / "source"
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            zf.extract(info, source)
            os.chmod(source / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy2(source / "run_autograder", root / "run_autograder")


def _env(root: Path, python: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return dict(env, DLCOURSE_AUTOGRADER_ROOT=str(root), DLCOURSE_PYTHON=python, **extra)


def submit(root: Path, uploads: dict[str, bytes]) -> None:
    (root / "submission").mkdir()
    for name, data in uploads.items():
        (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "submission" / name).write_bytes(data)


def run_autograder(archive: Path | None, root: Path, uploads: dict[str, bytes], *,
                   python: str = sys.executable,
                   **env: str) -> tuple[dict, subprocess.CompletedProcess]:
    if archive is not None:
        lay_out(archive, root)
    submit(root, uploads)
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=_env(root, python, **env),
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text()), done


def assert_spec(doc: dict, visibility: str = "after_due_date") -> None:
    """results.json has Gradescope's fields with the spec's types; every test has a status."""
    assert TOP <= set(doc), sorted(TOP - set(doc))
    assert isinstance(doc["score"], (int, float)) and not isinstance(doc["score"], bool)
    assert isinstance(doc["execution_time"], int) and doc["execution_time"] >= 0
    assert isinstance(doc["output"], str) and doc["output"]
    assert doc["visibility"] in VISIBILITIES and doc["stdout_visibility"] in VISIBILITIES
    assert doc["visibility"] == visibility
    assert isinstance(doc["tests"], list)
    for test in doc["tests"]:
        assert set(test) == TEST_KEYS
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float))
        assert 0 <= test["score"] <= test["max_score"] or test["max_score"] == test["score"] == 0
        assert test["status"] in ("passed", "failed")
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["output"], str) and test["output"]
        assert isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])
        assert test["visibility"] == ("visible" if test["name"] == UPLOAD_TEST else visibility)
    assert doc["score"] == pytest.approx(sum(t["score"] for t in doc["tests"]))


def assert_solution_scores(doc: dict, module: str) -> None:
    """Every automatic point, every check passed, written questions graded by hand."""
    assert_spec(doc)
    from grader.checks.rubric import load_rubric

    rubric = load_rubric(module)
    automatic = [t for t in doc["tests"] if t["tags"][0] in {c.id for c in rubric.checks}]
    assert len(automatic) == len(rubric.checks)
    assert all(t["score"] == t["max_score"] and t["status"] == "passed" for t in automatic), \
        (doc["output"], [t["output"] for t in automatic if t["status"] != "passed"])
    assert doc["score"] == sum(c.points for c in rubric.checks)
    for test in doc["tests"]:
        if test["tags"][0] in {q.id for q in rubric.questions}:
            assert test["max_score"] == 0 and "graded by hand" in test["output"]


def test_zip_has_every_file_at_its_root_and_pins_this_environment(autograder):
    with zipfile.ZipFile(autograder) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        settings = json.loads(zf.read("settings.json"))
        constraints = zf.read("constraints.txt").decode().splitlines()
        pending = json.loads(zf.read("pending.json"))
    assert not [n for n in infos if "/" in n], "the spec wants the files at the zip's root"
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & stat.S_IXUSR, f"{script} is not executable"
    assert any(n.startswith("dlcourse-") and n.endswith(".whl") for n in infos)
    assert {"rubric.toml", "solution.ipynb", "results.key"} <= set(infos)
    assert settings["module"] == "02" and settings["mode"] == "fast"
    assert settings["notebook"] == NOTEBOOK
    assert settings["datasets"] == ["mnist", "fashion_mnist", "cifar10"]
    assert settings["questions"] == {"02.fashion_written": 2.0}
    assert settings["names"]["02.deep_model_params"].startswith("Exercise 2.3: ")
    pins = dict(line.split("==") for line in constraints if not line.startswith("#"))
    assert all(line.startswith("#") or "==" in line for line in constraints)
    for name in ("tensorflow", "keras", "numpy", "nbclient", "ipykernel"):
        assert pins[name] == metadata.version(name), name
    assert pending["score"] == 0 and pending["output"].startswith(TIME_LIMIT_OUTPUT)
    assert_spec(pending)
    assert all(t["status"] == "failed" for t in pending["tests"] if t["max_score"])


def _fresh_venv(folder: Path) -> str:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=600)
    return str(folder / "bin" / "python")


def _image_copy(data: Path) -> None:
    """What a container started from the image sees: the same files under new inodes, their
    modification times to the second (image layers drop the nanoseconds)."""
    for path in sorted(data.glob("*.npz")):
        info = path.stat()
        copy = path.with_name(path.name + ".layer")
        shutil.copyfile(path, copy)
        os.utime(copy, (int(info.st_atime), int(info.st_mtime)))
        os.chmod(copy, stat.S_IMODE(info.st_mode))
        os.replace(copy, path)
        assert path.stat().st_ino != info.st_ino


def _entries(root: Path) -> dict[str, int]:
    """The shared fast copies setup.sh wrote: entry -> inode of its first data file."""
    cache = root / "kcache" / f"dlcourse-kcache-{os.geteuid()}"
    return {e.name: next((e / "data").iterdir()).stat().st_ino for e in sorted(cache.iterdir())
            if e.name.startswith("dlcourse-fast-")}


def _lesson_imports() -> list[str]:
    """Every import in the code cells of the lessons' solutions, as a kernel of any lesson
    runs it: ``import a.b`` as ``a.b``, ``from a import b`` as ``a:b`` (b a name in a or its
    submodule ``a.b``)."""
    found: set[str] = set()
    for path in sorted(SOLUTIONS_DIR.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            code = "\n".join(  # IPython's %magics and !commands: a statement that imports nothing
                line[:len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    found |= {f"{node.module}:{alias.name}" for alias in node.names}
    return sorted(name for name in found if not name.startswith("__future__"))


IMPORT = """import importlib, sys
for spec in sys.argv[1:]:
    module, _, name = spec.partition(":")
    found = importlib.import_module(module)
    if name and not hasattr(found, name):
        importlib.import_module(f"{module}.{name}")
import grader, helpers
print(grader.__file__, helpers.__file__)
"""


FRESH_MODULE = "02"
"""The lesson graded after the fresh install: the cheapest to grade, the one the other tests
here use, and the one whose zip holds every dataset (mnist, fashion_mnist, cifar10)."""


@pytest.mark.slow
def test_fresh_install_in_the_spec_layout_imports_every_lesson_and_gives_a_solution_every_point(
        tmp_path, data_dir, bwrap_required):
    """The real setup.sh installs the wheel and its pinned dependencies into a fresh virtual
    environment (the pins are this environment's versions: what it installs is what the
    other tests run), then run_autograder gives lesson 02's solution every automatic point,
    reusing the data copy setup.sh wrote into the image.

    One lesson is graded here, not four: the wheel, the pins and setup.sh are the same in
    every lesson's zip (only settings.json and the bundled data differ, and lesson 02's zip
    bundles all three datasets), and every solution is graded with these versions by
    tests/test_contract.py. What another lesson could need from a fresh install is a module
    the install lacks: every module any lesson's solution imports is imported in the fresh
    environment."""
    python = _fresh_venv(tmp_path / "venv")
    module = FRESH_MODULE
    root = tmp_path / f"autograder{module}"
    lay_out(build(module, tmp_path / f"build{module}", "--bundle-data"), root)
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root / "source",
                           env=_env(root, python), capture_output=True, text=True, timeout=3000)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
    pins = {line for line in (root / "source" / "constraints.txt").read_text().splitlines()
            if not line.startswith("#")}
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    installed = {f"{canonicalize_name(p['name'])}=={p['version']}" for p in json.loads(listed)}
    assert pins <= installed, sorted(pins - installed)
    imports = _lesson_imports()
    assert {"keras", "helpers:data", "seaborn", "PIL:Image"} <= set(imports), imports
    imported = subprocess.run([python, "-c", IMPORT, *imports], cwd=root, env=_env(root, python),
                              capture_output=True, text=True, timeout=600)
    assert imported.returncode == 0, imported.stderr[-3000:]
    venv = str(tmp_path / "venv")  # the wheel's packages, not this checkout's
    assert all(p.startswith(venv) for p in imported.stdout.split()), imported.stdout
    written = _entries(root)
    assert len(written) == 1, setup.stdout
    _image_copy(root / "source" / "data")
    solution = next(SOLUTIONS_DIR.glob(f"{module}_*.ipynb"))
    doc, done = run_autograder(None, root, {solution.name: solution.read_bytes()}, python=python)
    assert_solution_scores(doc, module)
    assert _entries(root) == written, "the run wrote its own data copy instead of the image's"


def test_solution_in_uid_mode_keeps_the_instructor_warning_out_of_results(
        autograder, tmp_path, data_dir):
    """``--sandbox uid``: the grader's row carries the instructor-only uid warning (the log
    shows it); no student-visible ``output`` does."""
    from grader.kernel.uid_mode import UID_WARNING, uid_problem

    if uid_problem() is not None:
        pytest.skip(f"uid mode does not work here: {uid_problem()}")
    # kernel uids pass through to their folders under TMPDIR: not under pytest's base folder,
    # which every pytest session of this user makes 0700 again
    tmp = Path(tempfile.mkdtemp(prefix="dlcourse-gs-uid-"))
    try:
        os.chmod(tmp, 0o701)
        upload = (SOLUTIONS_DIR / NOTEBOOK).read_bytes()
        doc, done = run_autograder(autograder, tmp_path / "root", {"my upload.ipynb": upload},
                                   DLCOURSE_SANDBOX="uid", TMPDIR=str(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert UID_WARNING[:60] in done.stdout + done.stderr
    assert_solution_scores(doc, "02")
    texts = [doc["output"], *(t["output"] for t in doc["tests"])]
    assert not [t for t in texts if UID_WARNING[:40] in t or "uid" in t]


def test_blank_notebook_fails_every_check_and_says_which_are_informational(
        autograder, tmp_path, data_dir, bwrap_required):
    doc, _ = run_autograder(autograder, tmp_path / "root",
                            {NOTEBOOK: (NOTEBOOKS_DIR / NOTEBOOK).read_bytes()})
    assert_spec(doc)
    assert doc["score"] == 0 and len(doc["tests"]) == 12
    assert "0 of 11 points" in doc["output"]
    scored = [t for t in doc["tests"] if t["max_score"] > 0]
    assert scored and all(t["status"] == "failed" for t in scored)
    informational = [t for t in doc["tests"] if t["tags"] == ["02.mnist_accuracy"]]
    assert informational[0]["output"].startswith("Informational check (0 points")
    shown = "not passed" if informational[0]["status"] == "failed" else "passed"
    assert informational[0]["output"].split("): ", 1)[1].startswith(shown)
    written = [t for t in doc["tests"] if t["tags"] == ["02.fashion_written"]]
    assert "graded by hand" in written[0]["output"] and written[0]["status"] == "passed"


def _without_metadata(path: Path) -> bytes:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("dlcourse", None)
    return nbformat.writes(nb).encode()


_LESSON_01 = next(SOLUTIONS_DIR.glob("01_*.ipynb"))
_SOLUTION = (SOLUTIONS_DIR / NOTEBOOK).read_bytes()


@pytest.mark.parametrize("uploads, says", [
    ({}, "Your upload is empty"),
    ({"notes.pdf": b"%PDF-1.4"}, "has no Jupyter notebook (found notes.pdf)"),
    ({"a.ipynb": _SOLUTION, "b/c.ipynb": _SOLUTION}, "has 2 notebooks (a.ipynb, b/c.ipynb)"),
    ({NOTEBOOK: _SOLUTION[: len(_SOLUTION) // 2]}, "is not valid JSON"),
    ({NOTEBOOK: b'{"cells": 3}'}, "is JSON but not a Jupyter notebook"),
    ({_LESSON_01.name: _LESSON_01.read_bytes()}, "This is the notebook of lesson 01"),
    ({"mine.ipynb": _without_metadata(_LESSON_01)}, "is not the lesson 02 notebook"),
], ids=["empty", "not-a-notebook", "several", "broken-json", "json-not-notebook",
        "wrong-lesson", "wrong-lesson-no-metadata"])
def test_upload_problems_are_visible_at_once_in_one_sentence(autograder, tmp_path, uploads, says):
    doc, _ = run_autograder(autograder, tmp_path / "root", uploads)
    assert_spec(doc)
    assert doc["score"] == 0 and doc["visibility"] == "after_due_date"
    upload = [t for t in doc["tests"] if t["name"] == UPLOAD_TEST]
    assert len(upload) == 1 and upload[0]["visibility"] == "visible"
    assert upload[0]["status"] == "failed"
    reason = upload[0]["output"]
    assert says in reason, reason
    assert f"your lesson 02 notebook ({NOTEBOOK})" in reason
    assert reason.endswith(".") and ". " not in reason and len(reason) < 400, reason
    assert "restored" not in json.dumps(doc)


def test_a_run_killed_at_random_moments_leaves_a_valid_results_json(autograder, tmp_path,
                                                                    data_dir, bwrap_required):
    """Gradescope kills the container at its time limit: SIGKILL of run_autograder's whole
    process group early, while Python starts, and while the kernel runs."""
    rng = random.Random()
    seed = rng.randrange(10**6)
    rng.seed(seed)
    moments = [rng.uniform(0.5, 1.5), rng.uniform(1.5, 6.0), rng.uniform(6.0, 25.0)]
    for number, moment in enumerate(moments):
        root = tmp_path / f"root{number}"
        lay_out(autograder, root)
        submit(root, {NOTEBOOK: _SOLUTION})
        proc = subprocess.Popen([str(root / "run_autograder")], cwd=root,
                                env=_env(root, sys.executable), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moment)
        finished = proc.poll() is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        doc = json.loads((root / "results" / "results.json").read_text())
        assert_spec(doc)
        killed = doc["output"].startswith(TIME_LIMIT_OUTPUT)
        assert killed or finished, (seed, moment, doc["output"])
        if killed:
            assert doc["score"] == 0 and len(doc["tests"]) == 12


def test_when_python_itself_fails_a_results_json_is_still_written(autograder, tmp_path):
    doc, _ = run_autograder(autograder, tmp_path / "root",
                            {NOTEBOOK: (NOTEBOOKS_DIR / NOTEBOOK).read_bytes()}, python="/bin/false")
    assert doc["score"] == 0 and doc["tests"] == []
    assert "failed before it could grade" in doc["output"]
    assert doc["visibility"] == "after_due_date"


def test_build_bundles_only_the_datasets_the_module_needs(tmp_path, data_dir):
    done = _cli("gradescope", "build", "03", str(tmp_path / "ag.zip"), "--bundle-data")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "ag.zip") as zf:
        data = sorted(n for n in zf.namelist() if n.startswith("data/"))
    assert data == ["data/fashion_mnist.npz"]


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
