"""Generate ``notebooks/`` (student versions) from ``solutions/`` (the single source).

Release is deterministic: running it twice changes nothing, and ``check_release`` lists
every notebook and cell where ``notebooks/`` differs from what release would write.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader.authoring.cells import exercise_labels, normalize, student_cell, validate
from grader.authoring.discussions import DISCUSSION_TAG, discussions_markdown, hide_discussions
from grader.base.errors import GraderError, NotebookFormatError
from grader.base.paths import MODULES, NOTEBOOKS_DIR, SOLUTIONS_DIR
from grader.checks.rubric import Rubric, load_rubric

_KEEP_NB_METADATA = ("kernelspec", "language_info", "dlcourse", "colab")


def read_notebook(path: Path):
    """Read a notebook as nbformat v4, raising NotebookFormatError with the path on failure."""
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types
        raise NotebookFormatError(f"{path}: not a readable notebook ({exc})") from exc


def write_text(nb) -> str:
    """Serialise a notebook the same way every time."""
    return nbformat.writes(nb, version=4) + "\n"


def solution_path(rubric: Rubric, solutions_dir: Path = SOLUTIONS_DIR) -> Path:
    return solutions_dir / rubric.notebook


def load_solution(rubric: Rubric, solutions_dir: Path = SOLUTIONS_DIR):
    """The validated solution notebook of a module."""
    path = solution_path(rubric, solutions_dir)
    if not path.exists():
        raise NotebookFormatError(f"the rubric for module {rubric.module} expects {path}")
    nb = read_notebook(path)
    validate(nb, rubric, str(path))
    return nb


def student_notebook(solution):
    """The released notebook for a solution notebook (discussions handed out later)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {k: solution.metadata[k] for k in _KEEP_NB_METADATA if k in solution.metadata}
    labels = exercise_labels(solution)
    nb.cells = [student_cell(cell, labels.get(cell.get("id"))) for cell in solution.cells]
    hide_discussions(nb)
    nbformat.validate(nb)
    return nb


def available_modules(solutions_dir: Path = SOLUTIONS_DIR) -> list[str]:
    """Modules whose rubric's solution notebook exists."""
    found = []
    for module in MODULES:
        try:
            rubric = load_rubric(module)
        except Exception:  # noqa: BLE001 - a module without a rubric is simply not released
            continue
        if solution_path(rubric, solutions_dir).exists():
            found.append(module)
    return found


def release(
    *, solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR,
    modules: list[str] | None = None,
) -> list[Path]:
    """Write the student notebooks; return the paths written."""
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for module in modules or available_modules(solutions_dir):
        rubric = load_rubric(module)
        text = write_text(student_notebook(load_solution(rubric, solutions_dir)))
        target = notebooks_dir / rubric.notebook
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def check_release(
    *, solutions_dir: Path = SOLUTIONS_DIR, notebooks_dir: Path = NOTEBOOKS_DIR,
    modules: list[str] | None = None,
) -> list[str]:
    """Every difference between ``notebooks/`` and a fresh release, as readable lines."""
    problems = []
    for module in modules or available_modules(solutions_dir):
        rubric = load_rubric(module)
        expected = student_notebook(load_solution(rubric, solutions_dir))
        target = notebooks_dir / rubric.notebook
        if not target.exists():
            problems.append(f"{target}: missing (run `python -m grader release`)")
            continue
        if target.read_text(encoding="utf-8") == write_text(expected):
            continue
        actual = read_notebook(target)
        want = {c.get("id"): c for c in expected.cells}
        have = {c.get("id"): c for c in actual.cells}
        for cid in want:
            if cid not in have:
                problems.append(f"{target.name}: cell {cid} missing")
            elif (have[cid].source != want[cid].source
                  or have[cid].get("metadata") != want[cid].get("metadata")
                  or have[cid].get("outputs", []) != want[cid].get("outputs", [])):
                problems.append(f"{target.name}: cell {cid} differs from the solution's release")
        problems += [f"{target.name}: cell {cid} is not in the solution" for cid in have
                     if cid not in want]
        if not any(p.startswith(target.name) for p in problems):
            problems.append(f"{target.name}: notebook metadata or formatting differs")
    return problems


def normalize_file(path: Path) -> None:
    """Fill in the cell conventions of one solution notebook in place (authoring aid)."""
    nb = read_notebook(path)
    module = nb.metadata.get("dlcourse", {}).get("module") or Path(path).name[:2]
    rubric = load_rubric(module)
    normalize(nb, rubric)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    Path(path).write_text(write_text(nb), encoding="utf-8")


def write_discussions(module: str, target: Path) -> Path:
    """Write ``target/<notebook stem>_discussions.md`` from module ``module``'s solution.

    Raises :class:`GraderError` naming the problem when the module is unknown, has no
    discussion cells, or ``target`` is a file.
    """
    rubric = load_rubric(module)
    text, count = discussions_markdown(load_solution(rubric), Path(rubric.notebook).stem)
    if not count:
        raise GraderError(f"--discussions {module}: {rubric.notebook} has no discussion cells"
                          f" (locked Markdown cells tagged {DISCUSSION_TAG!r}); nothing to hand"
                          " out")
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise GraderError(f"--discussions {module} {target}: is a file; expected a folder (it"
                          " is created when missing)")
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{Path(rubric.notebook).stem}_discussions.md"
    path.write_text(text, encoding="utf-8")
    return path
