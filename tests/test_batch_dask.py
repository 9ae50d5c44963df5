"""The same grading function on a real Dask cluster gives the same grades as local grading."""

from __future__ import annotations

import json

import helpers_notebooks as fx
import pytest

from grader.classroom.batch import grade_class
from grader.kernel.limits import Limits

pytestmark = pytest.mark.notebook
distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed")

LIMITS = Limits(cell_timeout_s=90, notebook_timeout_s=300, export_timeout_s=90)


def _essentials(out) -> dict:
    """Per student: what decides the grade (accuracy messages may differ in the last digit)."""
    data = json.loads((out / "grades.json").read_text())
    return {d["student"]: (d["module"], d["score"], d["max_score"], d["error"],
                           [(c["id"], c["points"], c["passed"]) for c in d["checks"]])
            for d in data}


def test_grading_on_a_local_dask_cluster_matches_local_grading(tmp_path, data_dir):
    rubric = fx.build_rubric(tmp_path)
    solution = fx.build_solution(rubric)
    subs = tmp_path / "submissions"
    fx.write(fx.submission(solution), subs / "ann" / "01_fixture.ipynb")
    fx.write(fx.submission(solution, value="param_bytes = 3"), subs / "bob" / "01_fixture.ipynb")
    (subs / "cyd").mkdir()
    (subs / "cyd" / "01_fixture.ipynb").write_text("{broken")
    common = dict(submissions=[subs], fast=True, seed=1, limits=LIMITS, data_dir=data_dir,
                  rubric=rubric, solution=solution, imports=["helpers_notebooks"],
                  progress=False)

    local = grade_class(out=tmp_path / "local", jobs=2, **common)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        remote = grade_class(out=tmp_path / "dask", scheduler=cluster.scheduler_address, **common)

    assert local.graded == remote.graded == 3
    assert _essentials(tmp_path / "dask") == _essentials(tmp_path / "local")
    assert _essentials(tmp_path / "dask")["ann"][1] == rubric.max_score
    assert (tmp_path / "dask" / "report.html").is_file()
