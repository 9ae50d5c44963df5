"""One options object per batch, the pipeline as a list of steps, one executor interface."""

from __future__ import annotations

import ast
import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

from grader.base.errors import GraderError
from grader.classroom.batch import plan_tasks
from grader.classroom.workers import DaskExecutor, LocalExecutor
from grader.kernel.limits import FULL_CELL_TIMEOUT_S, Limits
from grader.submission.grading import grade_submission
from grader.submission.options import GradingOptions
from grader.submission.pipeline import STEPS, grade
from grader.submission.validate import Submission


def test_options_resolve_the_mode_limits_and_travel_unchanged_through_pickle():
    fast = GradingOptions.resolve(fast=True, sandbox="none", data_dir="/nowhere")
    full = GradingOptions.resolve(fast=False, sandbox="none", data_dir="/nowhere")
    assert fast.limits == Limits() and full.limits.cell_timeout_s == FULL_CELL_TIMEOUT_S
    assert (fast.mode, full.mode) == ("fast", "full")
    assert fast.sandbox == "none" and fast.sandbox_warning and not fast.sandbox_mode.own_user
    assert fast.data_dir == "/nowhere"  # a given folder is used as it is
    again = pickle.loads(pickle.dumps(fast))  # what a worker process and a Dask task get
    assert again == fast and again is not fast
    with pytest.raises(FrozenInstanceError):
        fast.seed = 3  # type: ignore[misc]


def test_an_unknown_sandbox_is_a_usage_error_naming_the_choices():
    with pytest.raises(GraderError, match="expected --sandbox to be one of"):
        GradingOptions.resolve(fast=True, sandbox="docker", data_dir="/nowhere")


def test_the_pipeline_runs_the_documented_steps_in_order():
    """``grade`` calls each step of :data:`STEPS` once, in that order, and each is short."""
    assert [step.__name__ for step in STEPS] == [
        "read", "set_up", "restore_cells", "inject", "prepare", "execute", "export", "score",
        "flag"]
    names = {step.__name__ for step in STEPS}
    calls = [node for node in ast.walk(ast.parse(inspect.getsource(grade)))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in names]
    called = [node.func.id for node in sorted(calls, key=lambda n: (n.lineno, -n.col_offset))]
    assert called == [step.__name__ for step in STEPS]
    assert all(len(inspect.getsource(step).splitlines()) <= 80 for step in STEPS)


def test_both_executors_have_one_run_method_with_the_same_signature():
    local = inspect.signature(LocalExecutor.run)
    assert inspect.signature(DaskExecutor.run) == local
    assert list(local.parameters) == ["self", "tasks", "options", "on_result"]


@dataclass
class _Parsed:
    path: Path
    data: bytes
    parsed: Submission


def test_a_submission_the_batch_parsed_is_not_read_again(tmp_path):
    """The row comes from the parsed submission: the path names a file that does not exist."""
    missing = tmp_path / "gone" / "alice.ipynb"
    parsed = Submission(path=missing, student="alice", module="01",
                        error="stand-in error from the batch's own reading")
    options = GradingOptions.resolve(fast=True, sandbox="none", data_dir=str(tmp_path))
    row = grade_submission(_Parsed(missing, b"", parsed), options)
    assert row.error == parsed.error and row.student == "alice" and row.module == "01"


def test_planned_tasks_carry_their_rubric_and_parsed_submission(tmp_path):
    (tmp_path / "rubric").mkdir()
    rubric = fx.build_rubric(tmp_path / "rubric")
    solution = fx.build_solution(rubric)
    path = fx.write(fx.submission(solution), tmp_path / "in" / "alice.ipynb")
    broken = tmp_path / "in" / "bob.ipynb"
    broken.write_text("{not json", encoding="utf-8")
    tasks = {t.student: t for t in plan_tasks([path, broken], fast=True, seed=0, rubric=rubric,
                                              solution=solution)}
    assert tasks["alice"].rubric is rubric and tasks["bob"].rubric is rubric
    assert tasks["alice"].parsed.error is None
    assert tasks["alice"].parsed.nb == nbformat.reads(path.read_text(), as_version=4)
    assert tasks["bob"].parsed.error is not None and not tasks["bob"].readable
