"""The student edition (``python -m grader release --student-edition DIR``) and the course file.

Everything goes through the command line. The edition must hold no answer (no line only the
solutions have, no marking guide, no reference implementation, no ``solutions/``), import
nothing from the course repository, install nothing Colab does not already ship, and grade
exactly like the course's own notebooks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement
from packaging.version import Version

from grader.authoring.cells import role
from grader.authoring.edition import MARKER
from grader.authoring.release import load_solution
from grader.base.course import tomllib
from grader.base.paths import MODULES, REPO_ROOT, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric
from grader.submission.restore import restore

REPO_URL = "https://github.com/acme/dl-student"
LESSON = "02_dense_mnist_fashion.ipynb"
LESSON_IMPORTS = {"keras", "tensorflow", "numpy", "matplotlib", "scikit-learn", "seaborn", "pandas"}


def run(*args: str, cwd: Path = REPO_ROOT, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def build(target: Path, *extra: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return run("release", "--student-edition", str(target), *extra, cwd=cwd)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("edition") / "dl-student"
    proc = build(target, "--repo-url", REPO_URL)
    assert proc.returncode == 0, proc.stderr
    return target


def text_files(root: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix != ".png"}


def cell_lines(path: Path) -> set[str]:
    nb = nbformat.read(path, as_version=4)
    return {line.strip() for cell in nb.cells for line in cell.source.splitlines()}


def solution_only_lines() -> set[str]:
    """Lines (25+ characters) of the solutions that neither the released notebooks nor the
    ``helpers`` package (which students always had) contain: the answers."""
    solution = set().union(*(cell_lines(p) for p in SOLUTIONS_DIR.glob("*.ipynb")))
    released = set().union(*(cell_lines(p) for p in (REPO_ROOT / "notebooks").glob("*.ipynb")))
    helpers = {line.strip() for p in (REPO_ROOT / "helpers").glob("*.py")
               for line in p.read_text().splitlines()}
    return {line for line in solution - released - helpers if len(line) >= 25}


def filled_from_solution(path: Path, module: str = "02") -> nbformat.NotebookNode:
    """The edition notebook ``path`` with every exercise cell replaced by the solution's."""
    solution = load_solution(load_rubric(module))
    answers = {c.id: c.source for c in solution.cells if role(c) == "exercise"}
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
    return nb


# ----------------------------------------------------------------------------------------
# What the edition holds
# ----------------------------------------------------------------------------------------


def test_edition_holds_the_lessons_helpers_and_self_check_only(edition):
    names = {p.relative_to(edition).as_posix() for p in edition.rglob("*") if p.is_file()}
    for module in MODULES:
        assert f"notebooks/{load_rubric(module).notebook}" in names
    for needed in ("README.md", "LICENSE", "pyproject.toml", MARKER, "grader/__init__.py",
                   "grader/selfcheck.json", "helpers/data.py", "helpers/plotting.py",
                   "helpers/training.py"):
        assert needed in names
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"notebooks", "helpers", "grader", "README.md", "LICENSE", "pyproject.toml",
                    MARKER, ".gitignore"}
    assert not {"solutions", "tests", "bench", "scripts", "examples", "docs"} & tops
    grader_parts = {n for n in names if n.startswith("grader/")}
    for absent in ("references", "rubrics", "submission", "classroom", "pages", "__main__",
                   "holdout", "leakage", "experiments", "keys", "processes"):
        assert not any(absent in n for n in grader_parts), absent
    assert "MIT License" in (edition / "LICENSE").read_text()


def test_edition_has_no_answer_no_marking_guide_and_no_course_repository(edition):
    only_solution = solution_only_lines()
    assert len(only_solution) > 100  # the definition catches the answers
    guides = [q.guide for m in MODULES for q in load_rubric(m).questions]
    assert guides
    guide_lines = {line.strip() for g in guides for line in g.splitlines() if len(line.strip()) >= 25}
    for path, text in text_files(edition).items():
        lines = cell_lines(path) if path.suffix == ".ipynb" else {
            line.strip() for line in text.splitlines()}
        hits = only_solution & lines if path.suffix == ".ipynb" else {
            line for line in only_solution if line in text}
        assert not hits, f"{path}: {sorted(hits)[:3]}"
        leaked = [g for g in guide_lines if g in text]
        assert not leaked, f"{path} holds marking-guide text: {leaked[:1]}"
        assert "dlcourse/dlcourse" not in text, path
        assert "BEGIN SOLUTION" not in text, path
    data = json.loads((edition / "grader" / "selfcheck.json").read_text())
    entries = [e for m in data["modules"].values() for e in m["checks"]]
    assert entries and not any("guide" in e for e in entries)
    # a description, where kept, is the exercise label alone ("Exercise 2.1"), nothing more
    assert all(re.fullmatch(r"Exercise \d+\.\w+", e.get("description", "Exercise 1.a"))
               for e in entries), [e["description"] for e in entries if "description" in e]
    assert not any(e["kind"] == "manual" for e in entries)


def test_every_badge_and_install_cell_points_at_the_edition_repository(edition):
    for module in MODULES:
        name = load_rubric(module).notebook
        text = "\n".join(c.source for c in nbformat.read(edition / "notebooks" / name, as_version=4).cells)
        assert f"https://colab.research.google.com/github/acme/dl-student/blob/main/notebooks/{name}" in text
        assert '%pip install -q "dlcourse-student @ git+https://github.com/acme/dl-student"' in text
        assert "dlcourse @ git+" not in text


def colab_pins() -> dict[str, str]:
    """The Colab pins the dry-run script uses (and bench/results/compat.md records)."""
    script = (REPO_ROOT / "scripts" / "colab_dryrun.sh").read_text()
    block = re.search(r"COLAB_PINS=\(([^)]*)\)", script).group(1)
    return dict(pin.split("==") for pin in block.split())


def test_edition_depends_only_on_what_lessons_import_with_floors_colab_meets(edition):
    project = tomllib.loads((edition / "pyproject.toml").read_text())["project"]
    colab = {"python_version": "3.12", "python_full_version": "3.12.1"}
    requirements = [r for r in map(Requirement, project["dependencies"])
                    if r.marker is None or r.marker.evaluate(colab)]
    assert {r.name for r in requirements} == LESSON_IMPORTS
    assert project["dependencies"][len(requirements):] == ["tomli>=2.0; python_version < '3.11'"]
    pins = colab_pins()
    recorded = (REPO_ROOT / "bench" / "results" / "compat.md").read_text()
    for name, version in pins.items():
        assert f"{name}=={version}" in recorded, f"{name}=={version} is not in compat.md"
    for req in requirements:
        assert Version(pins[req.name]) in req.specifier, f"Colab's {req.name} {pins[req.name]} misses {req}"
    assert "ipykernel" not in (edition / "pyproject.toml").read_text()


# ----------------------------------------------------------------------------------------
# Re-running, refusing, the course file
# ----------------------------------------------------------------------------------------


def test_rerun_updates_in_place_and_a_foreign_folder_is_refused(tmp_path):
    target = tmp_path / "edition"
    (target / ".git").mkdir(parents=True)  # a fresh clone of an empty repository is fine
    assert build(target, "--repo-url", REPO_URL).returncode == 0
    (target / "notes.md").write_text("the instructor's own file")
    marker = json.loads((target / MARKER).read_text())
    (target / "helpers" / "old.py").write_text("# written by an older edition")
    marker["files"].append("helpers/old.py")
    (target / MARKER).write_text(json.dumps(marker))
    proc = build(target, "--repo-url", "https://github.com/other/course-2028")
    assert proc.returncode == 0, proc.stderr
    assert not (target / "helpers" / "old.py").exists()
    assert (target / "notes.md").read_text() == "the instructor's own file"
    assert (target / ".git").is_dir()
    lesson = (target / "notebooks" / LESSON).read_text()
    assert "other/course-2028" in lesson and "acme/dl-student" not in lesson

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    proc = build(foreign, "--repo-url", REPO_URL)
    assert proc.returncode == 2
    assert "not a student edition" in proc.stderr and "thesis.tex" in proc.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_repository_comes_from_course_file_and_is_required(tmp_path):
    course = tmp_path / "course.toml"
    course.write_text('[course]\nname = "DL 2027"\nstudent_repo = "https://github.com/uni/dl-2027"\n')
    target = tmp_path / "from-course"
    proc = build(target, "--course", str(course))
    assert proc.returncode == 0, proc.stderr
    assert "uni/dl-2027" in (target / "notebooks" / LESSON).read_text()
    assert (target / "README.md").read_text().startswith("# DL 2027")
    # the default ./course.toml, read from the working directory
    proc = build(tmp_path / "from-default", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    proc = build(tmp_path / "none", cwd=empty)  # no course.toml, no --repo-url
    assert proc.returncode == 2 and "--repo-url" in proc.stderr and "student_repo" in proc.stderr
    assert not (tmp_path / "none").exists()
    proc = build(tmp_path / "gitlab", "--repo-url", "https://gitlab.com/acme/dl")
    assert proc.returncode == 2 and "GitHub repository address" in proc.stderr


@pytest.mark.parametrize(("toml", "key", "expected"), [
    ('[course]\nstudent_repo = "https://github.com/a/b"\nnmae = "x"\n', "[course]", "unknown key 'nmae'"),
    ('[due]\n"02" = 2027-03-01\n', "due.02", "without a time"),
    ('[due]\n"02" = 2027-03-01T23:59:00\n', "due.02", "without a time zone"),
    ('[due]\n"02" = "next friday"\n', "due.02", "a date and time with a time zone"),
    ('[due]\n"07" = 2027-03-01T23:59:00Z\n', "due.07", "expected a module key"),
    ('[late]\npenalty_per_day = "10%"\n', "late.penalty_per_day", "a number from 0 to 1"),
    ('[late]\ngrace_minutes = 2.5\n', "late.grace_minutes", "a whole number"),
    ('[extensions]\n"ben" = { "02" = 5 }\n', "extensions.ben.02", "a date and time"),
    ('[canvas]\ncourse_id = "seven"\n', "canvas.course_id", "a whole number"),
    ('[canvas]\nassignments = { "02" = "x" }\n', "canvas.assignments.02", "a whole number"),
    ('[canvas]\nstudent_key = "email"\n', "canvas.student_key", '"login", "sis", "id"'),
    ('[gradescope]\nvisibility = "always"\n', "gradescope.visibility", '"after_published"'),
    ('[grading]\nfast = true\n', "'grading'", "unknown table or key"),
    ("[course\n", "course.toml", "not valid TOML"),
])
def test_a_bad_course_file_is_one_clear_error(tmp_path, toml, key, expected):
    course = tmp_path / "course.toml"
    course.write_text(toml)
    target = tmp_path / "out"
    proc = build(target, "--course", str(course), "--repo-url", REPO_URL)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert message.startswith(f"error: {course}:"), message
    assert key in message and expected in message, message
    assert len(message.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not target.exists()


def test_the_example_course_file_parses_with_every_key():
    from grader.base.course import load_course

    course = load_course(REPO_ROOT / "examples" / "course.toml")
    assert course.student_repo and course.name
    assert course.due and course.extensions and course.canvas.assignments
    assert course.late.penalty_per_day > 0 and course.canvas.student_key == "login"
    proc = run("release", "--student-edition", "/nonexistent/x", "--course", "/nonexistent/course.toml")
    assert proc.returncode == 2 and "no such course file" in proc.stderr


# ----------------------------------------------------------------------------------------
# Grading is unchanged
# ----------------------------------------------------------------------------------------


def test_restore_treats_the_edition_notebook_like_the_course_notebook(edition):
    solution = load_solution(load_rubric("02"))
    from_edition = restore(filled_from_solution(edition / "notebooks" / LESSON), solution)
    from_course = restore(filled_from_solution(REPO_ROOT / "notebooks" / LESSON), solution)
    assert from_edition.notes == [] and from_edition.edited == []
    assert [c.source for c in from_edition.nb.cells] == [c.source for c in from_course.nb.cells]
    # an edit of a protected cell in the edition is still reported
    tampered = filled_from_solution(edition / "notebooks" / LESSON)
    tampered.cells[3].source += "\nimport os"
    assert restore(tampered, solution).edited == [tampered.cells[3].metadata.nbgrader.grade_id]


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.xdist_group("edition")
def test_filled_edition_notebook_grades_like_the_solution(edition, tmp_path, data_dir):
    """One grading of lesson 02 (fast): the solution's answers in the edition's notebook get
    every automatic point, exactly as the solution does (bench/results/compat.md)."""
    subs = tmp_path / "subs" / "ada"
    subs.mkdir(parents=True)
    nbformat.write(filled_from_solution(edition / "notebooks" / LESSON), subs / LESSON)
    out = tmp_path / "out"
    proc = run("grade", str(tmp_path / "subs"), "--out", str(out), "--fast", timeout=1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads((out / "grades.json").read_text())
    assert row["error"] is None, row
    rubric = load_rubric("02")
    automatic = {c["id"]: c for c in row["checks"] if not c.get("manual")}
    assert set(automatic) == {c.id for c in rubric.checks}
    failed = {cid: c["message"] for cid, c in automatic.items() if c["points"] != c["max_points"]}
    assert not failed
    assert row["score"] == rubric.max_score
    assert not [n for n in row["notes"] if "protected cell" in n], row["notes"]


# ----------------------------------------------------------------------------------------
# The edition alone, installed and run
# ----------------------------------------------------------------------------------------

PROBE = """import importlib.util, grader, helpers
print("EDITION-PROBE", grader.__file__, helpers.__file__,
      importlib.util.find_spec("grader.checks.references") is None,
      importlib.util.find_spec("grader.submission") is None)"""
WRONG = 'check("02.one_hot_row", one_hot_row=[0, 0, 0, 0, 0, 1, 0, 0, 0, 0])'


def installed_edition(edition: Path, root: Path) -> Path:
    """``pip install --no-deps --target`` of a copy of the edition (TensorFlow etc. come from
    this venv's site-packages, the course repository's own packages from nowhere)."""
    source = root / "source"
    shutil.copytree(edition, source)
    target = root / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def edition_kernel(root: Path, site: Path, data_dir: str) -> str:
    """A kernelspec whose Python skips site's .pth files (``-S``: no editable install of the
    course repository) and sees the edition first, then this venv's third-party packages."""
    spec = root / "jupyter" / "kernels" / "edition"
    spec.mkdir(parents=True)
    packages = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{site}{os.pathsep}{packages}", "DLCOURSE_FAST": "1",
           "DLCOURSE_DATA_DIR": data_dir, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-S", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "edition", "language": "python", "env": env}))
    return str(root / "jupyter")


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", "") if out.output_type == "stream" else
                     f"{out.get('ename', '')}: {out.get('evalue', '')}"
                     if out.output_type == "error" else "")
    return "".join(parts)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.xdist_group("edition")
def test_installed_edition_runs_lesson_02_with_every_self_check_passing(
        edition, tmp_path, data_dir, monkeypatch):
    site = installed_edition(edition, tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", edition_kernel(tmp_path, site, data_dir))
    nb = filled_from_solution(site.parent / "source" / "notebooks" / LESSON)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    nb.cells.append(nbformat.v4.new_code_cell(WRONG))
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copytree(site.parent / "source" / "notebooks" / "assets", workdir / "assets")
    client = NotebookClient(nb, timeout=900, kernel_name="edition", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()

    probe = outputs_text(nb.cells[0]).split()
    assert probe[0] == "EDITION-PROBE", outputs_text(nb.cells[0])
    assert Path(probe[1]).is_relative_to(site) and Path(probe[2]).is_relative_to(site), probe
    assert probe[3:] == ["True", "True"], probe  # no references, no grading code importable
    errors = [(c.id, outputs_text(c)) for c in nb.cells[:-1]
              if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert not errors, errors
    verdicts = [line for c in nb.cells for line in outputs_text(c).splitlines()
                if re.match(r"\[02\.\w+\] ", line)]
    ids = {c.id for c in load_rubric("02").checks}
    seen = {re.match(r"\[(02\.\w+)\]", v).group(1) for v in verdicts[:-1]}
    assert seen == ids, ids - seen
    passed = [v for v in verdicts[:-1] if "] correct: " in v]
    assert passed == verdicts[:-1], [v for v in verdicts if v not in passed]  # no "looks complete"
    wrong = outputs_text(nb.cells[-1])
    hint = load_rubric("02").get("02.one_hot_row").hint
    assert "[02.one_hot_row] not yet:" in wrong and "AssertionError" in wrong
    assert hint.split()[0:6] == wrong.split("hint: ", 1)[1].split()[0:6]


def test_self_check_data_round_trips_every_automatic_check(edition):
    """The edition's checks are the rubric's, field for field (the description cut to its
    exercise label; ``ahead_after``, where the grader exports early, is not a self-check's)."""
    from dataclasses import replace

    from grader.authoring.selfcheck import _EXERCISE, _spec_from_data

    def label(text: str) -> str:
        found = _EXERCISE.search(text or "")
        return found.group(0) if found else ""

    data = json.loads((edition / "grader" / "selfcheck.json").read_text())
    for module in MODULES:
        rubric = load_rubric(module)
        entries = data["modules"][module]["checks"]
        assert data["modules"][module]["dataset"] == rubric.dataset
        assert [_spec_from_data(e) for e in entries] == [
            replace(c, description=label(c.description), ahead_after=None) for c in rubric.checks]


@pytest.mark.slow
@pytest.mark.skipif(not Path(os.environ.get("COLAB_VENV", "/nonexistent")).is_dir(),
                    reason="COLAB_VENV (a venv holding Colab's pins, scripts/colab_dryrun.sh"
                    " builds it) is not set: the ~600 MB TensorFlow download is too slow for CI")
def test_colab_dry_run_changes_nothing_preinstalled():
    """`pip install --dry-run` of the edition in a venv pinned to Colab's set (run by hand)."""
    proc = subprocess.run(["bash", "scripts/colab_dryrun.sh"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "installs dlcourse-student" in proc.stdout and "CHANGES" not in proc.stdout
