"""Round trip through the real nbgrader CLI (0.9) in a temporary course folder.

* ``nbgrader generate_assignment`` on our solutions yields student notebooks whose cell
  sources equal ``notebooks/0N_*.ipynb`` (our release and nbgrader's agree), except that our
  placeholders name their exercise (nbgrader has one stub for every cell); the grader
  recognises both.
* ``nbgrader autograde`` in fast mode gives the solution full marks on every self-check
  cell (read back through ``nbgrader.api.Gradebook``).

nbgrader is slow (its own kernel, database and a full notebook run), so autograde runs for
one module by default (04; its written-answer cells are Markdown grade cells that nbgrader
leaves to manual grading, and only the ``check_`` cells are compared) and
``DLCOURSE_AUTOGRADE_MODULES=02,04`` (or ``all``) chooses others.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.authoring.cells import CODE_STUB, is_stub_line
from grader.authoring.release import available_modules
from grader.base.paths import NOTEBOOKS_DIR, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("nbgrader")]

FOUND = available_modules()
CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "dlcourse"
# Lessons import TensorFlow and train: nbgrader's 30 s cell limit is far too short.
c.Execute.timeout = 1800
c.Execute.iopub_timeout = 120
"""


def _autograde_modules() -> list[str]:
    wanted = os.environ.get("DLCOURSE_AUTOGRADE_MODULES", "04")
    chosen = FOUND if wanted == "all" else [m.strip() for m in wanted.split(",")]
    return [m for m in chosen if m in FOUND]


def nbgrader(course: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    full_env = {**os.environ, **(env or {}), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course,
                          env=full_env, capture_output=True, text=True, timeout=3000)
    failed = proc.returncode != 0 or "[ERROR]" in proc.stderr.replace("Timeout waiting", "")
    assert not failed, f"nbgrader {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=str(root)))
    for module in FOUND:
        name = load_rubric(module).notebook
        (root / "source" / f"m{module}").mkdir(parents=True)
        shutil.copy(SOLUTIONS_DIR / name, root / "source" / f"m{module}" / name)
    return root


def _plain_stubs(source: str) -> str:
    """Our release with nbgrader's plain ``raise`` line in place of each labelled one."""
    plain = CODE_STUB.splitlines()[-1]
    return "\n".join(line[:len(line) - len(line.lstrip())] + plain if is_stub_line(line) else line
                     for line in source.split("\n"))


@pytest.mark.skipif(not FOUND, reason="no solution notebooks yet")
@pytest.mark.parametrize("module", FOUND)
def test_generate_assignment_matches_our_release(course, module):
    nbgrader(course, "generate_assignment", f"m{module}")
    name = load_rubric(module).notebook
    theirs = nbformat.read(str(course / "release" / f"m{module}" / name), as_version=4)
    ours = nbformat.read(str(NOTEBOOKS_DIR / name), as_version=4)
    assert [c.cell_type for c in theirs.cells] == [c.cell_type for c in ours.cells]
    differ = [c.get("id") for c, o in zip(theirs.cells, ours.cells, strict=True)
              if c.source != _plain_stubs(o.source)]
    # nbgrader does not know our `discussion` tag: its release keeps those cells whole, ours
    # hands them out after the deadline (see docs/nbgrader.md)
    from grader.authoring.discussions import is_discussion

    discussions = [c.get("id") for c in theirs.cells if is_discussion(c)]
    assert differ == discussions, f"{name}: nbgrader's release differs from ours in cells {differ}"


@pytest.mark.parametrize("module", _autograde_modules())
def test_autograde_gives_the_solution_full_marks_on_self_checks(course, module, data_dir):
    from nbgrader.api import Gradebook

    assignment = f"m{module}"
    name = load_rubric(module).notebook
    if not (course / "release" / assignment).exists():
        nbgrader(course, "generate_assignment", assignment)
    submitted = course / "submitted" / "alice" / assignment
    submitted.mkdir(parents=True)
    shutil.copy(SOLUTIONS_DIR / name, submitted / name)
    nbgrader(course, "autograde", assignment,
             env={"DLCOURSE_FAST": "1", "DLCOURSE_DATA_DIR": data_dir})
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(Path(name).stem, assignment, "alice")
        checks = {g.name: (g.auto_score, g.max_score) for g in nb.grades
                  if g.name.startswith("check_")}
    solution = nbformat.read(SOLUTIONS_DIR / name, as_version=4)
    check_cells = {c.metadata["nbgrader"]["grade_id"] for c in solution.cells
                   if c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
                   .startswith("check_")}
    # A self-check cell may run several checks (lesson 04's best-model cell); nbgrader
    # knows it by the grade id of its first one.
    assert check_cells <= {c.grade_id for c in load_rubric(module).checks}
    assert set(checks) == check_cells
    lost = {k: v for k, v in checks.items() if v[0] != v[1]}
    assert lost == {}, f"self-check cells that lost points under nbgrader: {lost}"
