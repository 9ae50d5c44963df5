"""The student edition: a repository students may see, written by ``release --student-edition``.

It holds the released lesson notebooks, the ``helpers`` package and a trimmed ``grader``
package with only what ``from grader import check`` needs: the check kinds, the in-kernel
verdicts (values recomputed from the student's own model and data, structural and
consistency checks, salted digests of reference outputs on fixed inputs), the answer digests
and the generated ``grader/selfcheck.json`` (per check: digests, hints, tolerances,
thresholds). No solutions, marking guides, references (the grader's own computation of the
expected results), batch, sandbox, LMS or scoring code, tests or benchmarks; its own README,
LICENSE and ``pyproject.toml`` whose dependencies are only what the lessons import.

Every notebook's Colab badge and ``%pip install`` cell point at the edition's repository.
The grader recognises those two cells as the course's own when it restores a submission
(:func:`same_apart_from_repository`), so an edition notebook grades exactly like a course one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from grader.authoring.closure import selfcheck_files
from grader.authoring.release import available_modules, load_solution, student_notebook, write_text
from grader.authoring.selfcheck import SELF_CHECK_DATA, self_check_data
from grader.base.errors import GraderError
from grader.base.paths import PACKAGE_DIR, REPO_ROOT, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

PROJECT_REPO = "https://github.com/dlcourse/dlcourse"
"""The course repository's own address, which the solutions' badges and install cells name."""
PACKAGE_NAME = "dlcourse-student"
"""The edition's distribution name (``pip install "dlcourse-student @ git+URL"``)."""
MARKER = ".dlcourse-edition"
"""The file that marks a folder as a student edition (JSON: the files it wrote)."""


DEPENDENCIES = (
    "tensorflow>=2.19",
    "keras>=3.8",
    "numpy>=1.26.4",
    "scikit-learn>=1.6",
    "seaborn>=0.13",
    "pandas>=2.0",
    "matplotlib>=3.8",
    "tomli>=2.0; python_version < '3.11'",
)
"""What the lessons import; the course's tested floors, which Colab's versions meet
(``bench/results/compat.md``, "Colab's preinstalled set"). No ipykernel, nbclient or other
grader dependency: a Colab install must change nothing Colab ships. (``tomli`` only on
Python 3.10, where the self-check's rubric module needs it for ``tomllib``; Colab runs 3.12.)"""

_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?")
_ANY_GITHUB_REPO = re.compile(r"github(?:\.com|)/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_PIP_NAME = re.compile(r'"[A-Za-z0-9_.-]+ @ git\+')

_GRADER_INIT = '''"""The self-check of the student edition: ``from grader import check``.

Only what the lesson notebooks' self-check cells need. Grades are decided by the course's
grader, outside your notebook, when you hand it in.
"""

from grader.authoring.selfcheck import check

__all__ = ["check"]
'''


@dataclass(frozen=True)
class Repository:
    """A GitHub repository the edition is published in."""

    url: str
    owner: str
    name: str

    def colab_url(self, notebook: str) -> str:
        return (f"https://colab.research.google.com/github/{self.owner}/{self.name}/blob/main/"
                f"notebooks/{notebook}")

    @property
    def pip_spec(self) -> str:
        return f"{PACKAGE_NAME} @ git+https://github.com/{self.owner}/{self.name}"


def parse_repository(url: str | None, source: str) -> Repository:
    """``https://github.com/OWNER/NAME`` as a :class:`Repository`, or a clear error."""
    if url is None:
        raise GraderError("the student edition needs the address of the repository students"
                          " will get: pass --repo-url https://github.com/OWNER/NAME or set"
                          " student_repo in [course] of course.toml (see examples/course.toml)")
    match = _GITHUB.fullmatch(url.strip())
    if not match:
        raise GraderError(f"{source}: expected a GitHub repository address such as"
                          f" https://github.com/acme/dl-student, found {url!r}. Colab's badge"
                          " opens notebooks from GitHub only")
    owner, name = match.groups()
    if f"{owner}/{name}".lower() == "dlcourse/dlcourse":
        raise GraderError(f"{source}: {url} is the course's own repository (it holds the"
                          " solutions); publish the edition in a repository of its own")
    return Repository(url=f"https://github.com/{owner}/{name}", owner=owner, name=name)


def same_apart_from_repository(a: str, b: str) -> bool:
    """Whether two cell sources agree once repository addresses and pip names are set aside.

    The edition's badge and install cells differ from the course's only there; the restore
    step uses this so that they are not reported as edited protected cells.
    """
    def neutral(text: str) -> str:
        return _PIP_NAME.sub('"<package> @ git+', _ANY_GITHUB_REPO.sub("github.com/<repo>", text))

    return neutral(a).strip() == neutral(b).strip()


def _point_at(source: str, repo: Repository, notebook: str) -> str:
    source = re.sub(r"https://colab\.research\.google\.com/github/[^)\s\"]+",
                    repo.colab_url(notebook), source)
    source = source.replace(f'"dlcourse @ git+{PROJECT_REPO}"', f'"{repo.pip_spec}"')
    return source.replace(PROJECT_REPO, repo.url)


def edition_notebooks(repo: Repository, solutions_dir: Path = SOLUTIONS_DIR) -> dict[str, str]:
    """``notebooks/<file>`` -> the released notebook's text, pointing at ``repo``."""
    found = {}
    for module in available_modules(solutions_dir):
        rubric = load_rubric(module)
        nb = student_notebook(load_solution(rubric, solutions_dir))
        for cell in nb.cells:
            cell.source = _point_at(cell.source, repo, rubric.notebook)
        found[f"notebooks/{rubric.notebook}"] = write_text(nb)
    return found


def _package_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted((REPO_ROOT / "helpers").glob("*.py")):
        files[f"helpers/{path.name}"] = path.read_bytes()
    for rel in selfcheck_files():  # what ``from grader import check`` imports, derived
        files[rel] = (PACKAGE_DIR.parent / rel).read_bytes()
    files["grader/__init__.py"] = _GRADER_INIT.encode()
    rubrics = [load_rubric(m) for m in available_modules()]
    data = json.dumps(self_check_data(rubrics), indent=1, sort_keys=True) + "\n"
    files[f"grader/{SELF_CHECK_DATA.name}"] = data.encode()
    return files


def _pyproject() -> str:
    deps = "".join(f"    {json.dumps(d)},\n" for d in DEPENDENCIES)
    return f'''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{PACKAGE_NAME}"
version = "0.1.0"
description = "The student edition of the dlcourse Keras lessons: notebooks, helpers and self-checks."
readme = "README.md"
requires-python = ">=3.10"
license = "MIT"
# Only what the lessons import, with floors that Google Colab's preinstalled versions meet,
# so installing this package in Colab upgrades or downgrades nothing Colab ships.
dependencies = [
{deps}]

[tool.setuptools.packages.find]
include = ["helpers*", "grader*"]

[tool.setuptools.package-data]
grader = ["selfcheck.json", "checks/verdicts/digests.json"]
'''


_LICENSE = """MIT License

Copyright (c) 2026 the dlcourse authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def _readme(repo: Repository, course_name: str, notebooks: list[str]) -> str:
    title = course_name or "Deep learning with Keras"
    rows = "".join(
        f"| [`{n}`](notebooks/{n}) | [![Open In Colab]"
        f"(https://colab.research.google.com/assets/colab-badge.svg)]({repo.colab_url(n)}) |\n"
        for n in notebooks)
    return f"""# {title}: the lessons

Four Keras lessons as Jupyter notebooks. Each exercise is followed by a self-check cell
that tells you right away whether your answer is on track.

| lesson | open in Colab |
|---|---|
{rows}
## Open a lesson

**In Google Colab**: click the lesson's badge (above, or at the top of the notebook). The
first code cell installs this repository's small package (`{PACKAGE_NAME}`: the `helpers`
the lessons use and the self-check). It needs nothing Colab does not already have and
changes none of Colab's own packages (checked with `pip install --dry-run` against Colab's
published package versions, not on Colab itself).

**In Jupyter on your own machine** (Python 3.10 or newer):

```bash
git clone {repo.url}
cd {repo.name}
python -m venv .venv && . .venv/bin/activate
pip install . jupyterlab
jupyter lab notebooks/
```

Run the cells from top to bottom. Write your answers only in the exercise cells (the ones
marked as yours); the grader restores every other cell.

## Fast mode

Each lesson has a `parameters` cell near the top: `FAST = True` runs on a small part of the
data with few epochs, handy while you work on the exercises; `FAST = None` follows the
`DLCOURSE_FAST` environment variable (`DLCOURSE_FAST=1` means fast). Accuracy goals are set
per mode, and the self-check says which mode it measured. The grader runs your notebook
again itself, in the mode your instructor chooses, so what counts is the code in your
exercise cells; check that it also reaches the goals in full mode (`FAST = False`).

## Data

The lessons load MNIST, Fashion-MNIST and CIFAR-10 through `keras.datasets`, which downloads
them on first use (Colab has the network for it). Offline, put `mnist.npz`,
`fashion_mnist.npz` and `cifar10.npz` (the files `keras.datasets` uses) in a folder and set
`DLCOURSE_DATA_DIR` to that folder.

## Self-checks

`check("02.model_params", model=model)` prints `correct` or `not yet` with what to fix; a
failing check stops "Run all", except a missed accuracy goal, which is printed in red. For a
number you work out by hand the check never prints the answer. Checks of your results
recompute them from your own model and data (accuracies, predictions, the confusion
matrix), check that your tables agree with your own training histories, and run your
functions on fixed inputs; the grader also re-runs some of your experiments when it grades.

## What to hand in

For each lesson, the notebook itself, under its own file name (for example
`02_dense_mnist_fashion.ipynb`), saved after a full run so that it holds your answers. In
Colab: File > Download > Download .ipynb. Do not rename or delete cells: the grader finds
your answers by the cells' ids.

## License

MIT (see `LICENSE`).
"""


def edition_files(repo: Repository, course_name: str = "") -> dict[str, bytes]:
    """Every file of the edition, by its path relative to the edition's folder."""
    notebooks = edition_notebooks(repo)
    files = {path: text.encode() for path, text in notebooks.items()}
    for asset in sorted((SOLUTIONS_DIR / "assets").glob("*")):
        if asset.is_file():
            files[f"notebooks/assets/{asset.name}"] = asset.read_bytes()
    files.update(_package_files())
    files["README.md"] = _readme(repo, course_name, [p.split("/", 1)[1] for p in notebooks]).encode()
    files["LICENSE"] = _LICENSE.encode()
    files["pyproject.toml"] = _pyproject().encode()
    files[".gitignore"] = b"__pycache__/\n*.egg-info/\nbuild/\n.ipynb_checkpoints/\n.venv/\n"
    leaks = [path for path, data in files.items() if b"dlcourse/dlcourse" in data]
    if leaks:
        raise GraderError(f"the edition would still name the course repository in {leaks}")
    return files


def _previous_files(target: Path) -> list[str]:
    """The files a previous edition wrote into ``target``; refuse any other non-empty folder."""
    if not target.exists():
        return []
    if not target.is_dir():
        raise GraderError(f"--student-edition {target}: is a file; expected a folder (new, empty"
                          " or a previous edition)")
    marker = target / MARKER
    if marker.is_file():
        try:
            return list(json.loads(marker.read_text(encoding="utf-8"))["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GraderError(f"{marker}: unreadable edition marker ({exc}); delete it only if"
                              f" {target} is an edition") from exc
    others = sorted(p.name for p in target.iterdir() if p.name != ".git")
    if others:
        raise GraderError(f"--student-edition {target}: the folder holds {', '.join(others[:5])}"
                          f" and is not a student edition (no {MARKER}); expected a new or empty"
                          " folder, a fresh clone of the student repository, or a previous"
                          " edition. Fix: choose another folder")
    return []


def write_edition(target: Path, repo: Repository, course_name: str = "") -> list[Path]:
    """Write (or update in place) the edition in ``target``; return the files that changed."""
    previous = _previous_files(target)
    files = edition_files(repo, course_name)
    target.mkdir(parents=True, exist_ok=True)
    changed = []
    for rel in previous:
        path = target / rel
        if rel not in files and path.is_file():
            path.unlink()
            changed.append(path)
    for rel, data in files.items():
        path = target / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        changed.append(path)
    marker = {"format": 1, "repository": repo.url, "files": sorted(files)}
    (target / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    return changed
