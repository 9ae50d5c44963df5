"""Gradings shared between test files that only read them (registered in ``conftest.py``).

A lesson notebook graded for one purpose is graded once per test session, not once per file
that reads its row: :func:`lesson_graded` grades a lesson's solution or released blank
notebook in fast mode with the real grader (``grade_submission``, what ``python -m grader
grade`` runs for each notebook of a batch) and keeps the row and the executed notebook.

A session fixture is per process: under ``pytest -n 2 --dist loadgroup`` every test that
reads one grading carries the same ``xdist_group`` (:func:`shared_group`), so one worker
grades it and runs them all. Readers must not change what they read (the row and the
notebook are shared objects): copy before editing.
"""

from __future__ import annotations

import nbformat
import pytest

from grader.base.paths import NOTEBOOKS_DIR, SOLUTIONS_DIR
from grader.checks.rubric import load_rubric
from grader.submission.grading import EXECUTED_NAME, grade_submission
from grader.submission.options import GradingOptions

KINDS = ("solution", "blank")


def shared_group(module: str, kind: str) -> str:
    """The xdist group of every test that reads ``lesson_graded(module, kind)``."""
    assert kind in KINDS, kind
    return f"lesson{module}-{kind}"


def shared_mark(module: str, kind: str) -> pytest.MarkDecorator:
    """``pytest.mark.xdist_group`` for the readers of ``lesson_graded(module, kind)``."""
    return pytest.mark.xdist_group(shared_group(module, kind))


class _Gradings:
    """(module, kind) -> (GradeRow, executed notebook), each graded on first use."""

    def __init__(self, tmp_path_factory, data_dir: str) -> None:
        self.tmp_path_factory, self.data_dir, self.done = tmp_path_factory, data_dir, {}

    def get(self, module: str, kind: str):
        if (module, kind) not in self.done:
            rubric = load_rubric(module)
            source = (SOLUTIONS_DIR if kind == "solution" else NOTEBOOKS_DIR) / rubric.notebook
            scratch = self.tmp_path_factory.mktemp(f"{kind}-{module}")
            options = GradingOptions.resolve(fast=True, seed=0, data_dir=self.data_dir)
            row = grade_submission(source, options, scratch_root=scratch)
            (executed,) = scratch.glob(f"*/{EXECUTED_NAME}")
            self.done[module, kind] = row, nbformat.read(str(executed), as_version=4)
        return self.done[module, kind]


@pytest.fixture(scope="session")
def _lesson_gradings(tmp_path_factory, data_dir) -> _Gradings:
    return _Gradings(tmp_path_factory, data_dir)


@pytest.fixture
def lesson_graded(request, _lesson_gradings):
    """``get(module, kind)`` -> (GradeRow, executed notebook), graded once per process.

    ``kind`` is ``"solution"`` (``solutions/``) or ``"blank"`` (the released ``notebooks/``);
    fast mode, seed 0, the course's own rubric. The calling test must carry
    ``shared_mark(module, kind)`` and no other ``xdist_group`` (xdist joins a test's group
    names into one): otherwise each worker that runs a reader would grade the notebook again.
    """

    def get(module: str, kind: str):
        assert kind in KINDS, kind
        groups = {str(m.args[0]) for m in request.node.iter_markers("xdist_group")}
        assert groups == {shared_group(module, kind)}, (
            f"{request.node.nodeid} reads the shared grading ({module}, {kind}): mark it"
            f" with shared_mark({module!r}, {kind!r}) and no other xdist_group (it has"
            f" {sorted(groups)})")
        return _lesson_gradings.get(module, kind)

    return get
