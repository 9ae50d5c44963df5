"""Build the example class in ``examples/submissions/`` from the solution notebooks.

Three students hand in modules 01 and 02, in the layout ``<student>/<release name>.ipynb``:

* ``ada``: every exercise answered (the solution's code, without the solution markers);
  earns full marks.
* ``ben``: the first half of the exercises answered, the rest left as released; partial
  marks.
* ``cal``: module 01 is a truncated file (not valid JSON: "not graded" with the reason);
  module 02 is the blank released notebook (zero, with a message per check).

Run it after a solution changes, and commit the result::

    python examples/make_submissions.py
    python -m grader grade examples/submissions --out grading-output --fast
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from grader.authoring.cells import BEGIN, END, role
from grader.authoring.release import load_solution, student_notebook, write_text
from grader.checks.rubric import load_rubric

MODULES = ("01", "02")
OUT = Path(__file__).resolve().parent / "submissions"


def _answer(source: str) -> str:
    """The solution cell's code as a student would write it: markers removed, dedented."""
    lines = [ln for ln in source.splitlines() if ln.strip() not in (BEGIN, END)]
    return "\n".join(lines)


def answered(solution, fraction: float = 1.0):
    """The released notebook with the first ``fraction`` of the exercises answered."""
    nb = student_notebook(solution)
    exercises = [i for i, cell in enumerate(solution.cells) if role(cell) == "exercise"]
    keep = set(exercises[: round(len(exercises) * fraction)])
    for i in keep:
        nb.cells[i].source = _answer(solution.cells[i].source)
    return nb


def build(out: Path = OUT) -> list[Path]:
    """Write the example submissions under ``out`` (replacing earlier ones); return the files."""
    for old in (out.iterdir() if out.exists() else ()):
        if old.is_dir():  # student folders; ruff.toml (keeps these notebooks unlinted) stays
            shutil.rmtree(old)
    written = []
    for module in MODULES:
        rubric = load_rubric(module)
        solution = load_solution(rubric)
        files = {
            "ada": write_text(answered(solution, 1.0)),
            "ben": write_text(answered(solution, 0.5)),
        }
        if module == "01":
            files["cal"] = write_text(student_notebook(solution))[:600]  # cut off mid-upload
        else:
            files["cal"] = write_text(student_notebook(solution))
        for student, text in files.items():
            path = out / student / rubric.notebook
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    for path in build(args.out):
        size = path.stat().st_size
        print(f"wrote {path.relative_to(args.out.parent)} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
