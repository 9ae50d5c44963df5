"""Figures through the export: in-process round trips, forged files loaded by the grader, and
a batch of hostile submissions graded through the real command line.

The CLI batch uses a tiny fixture module (no Keras model: a hand-made history and a plot), so
each kernel only imports the course package; the honest row passing in the sandbox shows that
the kernel can import ``grader.checks.figures`` there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from matplotlib.figure import Figure

from grader.authoring.cells import normalize
from grader.checks.context import Context
from grader.checks.figures import MAX_FIGURE_BYTES
from grader.checks.kinds import run_check
from grader.checks.rubric import parse_rubric
from grader.kernel.sandbox import bwrap_problem
from grader.scoring.export import collect_artifacts, export_source, load_artifacts

HISTORY = {"loss": [1.2, 0.9, 0.7], "val_loss": [1.1, 1.0, 0.95],
           "accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.55, 0.58, 0.6]}

RUBRIC = '''
module = "01"
notebook = "01_plotfx.ipynb"
dataset = "mnist"

[[checks]]
id = "01.fx_plot"
kind = "figure"
objects = ["curves_fig", "history"]
points = 1
reference = "history_curves"

[[checks]]
id = "01.fx_answer"
kind = "value"
objects = ["answer"]
points = 1
expected = 42
'''


@pytest.fixture(scope="module")
def rubric(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot-rubric") / "01_plotfx.toml"
    path.write_text(RUBRIC, encoding="utf-8")
    return parse_rubric(path)


def curves(history=HISTORY) -> Figure:
    fig = Figure()
    ax = fig.subplots()
    ax.plot([1, 2, 3], history["loss"], label="training")
    ax.plot([1, 2, 3], history["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="loss")
    ax.legend()
    return fig


def export_and_score(rubric, folder: Path, namespace: dict):
    kernel = folder / "kernel"
    exec(compile(export_source(rubric, kernel), "<export>", "exec"), namespace)  # noqa: S102
    refused = collect_artifacts(rubric, kernel, folder / "grader")
    objects, problems = load_artifacts(rubric, folder / "grader", {})
    problems.update(refused)
    return objects, problems


class History:
    """Stands in for keras.callbacks.History: the export sends its ``.history`` dict."""

    def __init__(self, history):
        self.history = history


def test_a_figure_and_a_history_object_round_trip_and_score(rubric, tmp_path):
    objects, problems = export_and_score(rubric, tmp_path, {
        "curves_fig": curves().axes[0], "history": History(HISTORY), "answer": 42})
    assert problems == {}
    assert (tmp_path / "kernel" / "curves_fig.figure.json").exists()
    assert objects["history"] == HISTORY
    ctx = Context(mode="fast")
    result = run_check(rubric.get("01.fx_plot"), objects, ctx)
    assert result.passed, result.message


def test_labels_over_made_up_data_fail_after_the_export(rubric, tmp_path):
    made_up = {k: [0.3, 0.2, 0.1] for k in HISTORY}
    objects, problems = export_and_score(rubric, tmp_path, {
        "curves_fig": curves(made_up), "history": HISTORY, "answer": 42})
    result = run_check(rubric.get("01.fx_plot"), objects, Context(mode="fast"))
    assert not result.passed and "none of the 2 lines shows a series of `history`" in result.message


FORGERIES = {
    "nan": (b'{"format": 1, "axes": [{"title": "", "xlabel": "e", "ylabel": "l", "legend": [],'
            b' "lines": [{"label": "", "x": [1], "y": [NaN]}], "images": [], "bars": []}]}',
            "line 0 y[0]: expected a finite number or null, found nan"),
    "types": (b'{"format": 1, "axes": [{"title": 5, "xlabel": "e", "ylabel": "l", "legend": [],'
              b' "lines": [], "images": [], "bars": []}]}',
              "axes 0 title: expected a string, found a number"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "huge": (b"[" + b"0," * (MAX_FIGURE_BYTES // 2) + b"0]", "over 8 MB (a figure is a few kB): refused"),
    "notjson": (b"\xff\xfe{", "not valid JSON"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_figure_file_becomes_a_problem_not_a_crash(rubric, tmp_path, forgery):
    data, message = FORGERIES[forgery]
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / "curves_fig.figure.json").write_bytes(data)
    (kernel / "history.json").write_text(json.dumps({"value": HISTORY}))
    refused = collect_artifacts(rubric, kernel, tmp_path / "grader")
    objects, problems = load_artifacts(rubric, tmp_path / "grader", {})
    problems.update(refused)
    assert "curves_fig" not in objects and objects["history"] == HISTORY
    assert message in problems["curves_fig"], problems["curves_fig"]


# ----------------------------------------------------------------------------------------
# The real command line, on a batch with forged figure files
# ----------------------------------------------------------------------------------------

SETUP = '''import json
import numpy as np


def check(check_id, **objects):
    """Fixture self-check: feedback only."""
    print(f"[{check_id}] ran")'''

EX_HISTORY = '''### BEGIN SOLUTION
history = {"loss": [1.2, 0.9, 0.7], "val_loss": [1.1, 1.0, 0.95]}
### END SOLUTION'''

EX_PLOT = '''from matplotlib.figure import Figure

### BEGIN SOLUTION
curves_fig = Figure()
ax = curves_fig.subplots()
ax.plot([1, 2, 3], history["loss"], label="training loss")
ax.plot([1, 2, 3], history["val_loss"], label="validation loss")
ax.set_xlabel("epoch")
ax.set_ylabel("loss")
ax.legend()
### END SOLUTION'''

EX_ANSWER = '''### BEGIN SOLUTION
answer = 42
### END SOLUTION'''

#: A kernel that replaces what the export writes for its figure (json.dump is the module
#: the export cell imports too).
FORGE = EX_ANSWER.replace("### END SOLUTION", '''import json as _json_module
_real_dump = _json_module.dump
def _forged_dump(obj, handle, *args, **kwargs):
    if str(getattr(handle, "name", "")).endswith("curves_fig.figure.json"):
        handle.write({payload})
        return None
    return _real_dump(obj, handle, *args, **kwargs)
_json_module.dump = _forged_dump
### END SOLUTION''')

#: Python expressions the forging kernel evaluates to the text it writes.
PAYLOADS = {
    "huge": repr('{"format": 1, "axes": [], "pad": "') + f" + 'x' * {MAX_FIGURE_BYTES + 10}"
            + " + " + repr('"}'),
    "nan": repr('{"format": 1, "axes": [{"title": "", "xlabel": "epoch", "ylabel": "loss",'
                ' "legend": ["a", "b"], "lines": [{"label": "a", "x": [1, 2, 3],'
                ' "y": [NaN, 0.9, 0.7]}], "images": [], "bars": []}]}'),
    "types": repr('{"format": 1, "axes": [{"title": "", "xlabel": ["epoch"], "ylabel": "loss",'
                  ' "legend": [], "lines": [], "images": [], "bars": []}]}'),
    "deep": "'[' * 200_000 + ']' * 200_000",
}
EXPECTED = {
    "huge": "over 8 MB (a figure is a few kB): refused",
    "nan": "expected a finite number or null, found nan",
    "types": "axes 0 xlabel: expected a string, found a list of 1",
    "deep": "nested too deeply",
}


def _solution(rubric):
    def code(source, cid, tags=None):
        cell = nbformat.v4.new_code_cell(source)
        cell["id"] = cid
        if tags:
            cell.metadata["tags"] = tags
        return cell

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        code(SETUP, "setup"),
        code("FAST = None\nSEED = 42", "parameters", ["parameters"]),
        code(EX_HISTORY, "ex-history"),
        code(EX_PLOT, "ex-plot"),
        code('check("01.fx_plot", curves_fig=curves_fig, history=history)', "check-plot"),
        code(EX_ANSWER, "ex-answer"),
        code('check("01.fx_answer", answer=answer)', "check-answer"),
    ]
    normalize(nb, rubric)
    return nb


def _with(nb, cid: str, source: str):
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:
        if cell["id"] == cid:
            cell.source = source
    return copy


@pytest.fixture(scope="module")
def batch(tmp_path_factory, rubric, data_dir):
    root = tmp_path_factory.mktemp("plot-batch")
    solution = _solution(rubric)
    solution_path = root / "solution" / "01_plotfx.ipynb"
    solution_path.parent.mkdir()
    nbformat.write(solution, str(solution_path))
    subs = root / "submissions"
    # made-up: labels and legend right, numbers not the history's
    students = {"honest": solution, "madeup": _with(solution, "ex-plot", EX_PLOT.replace(
        'history["loss"]', "[0.5, 0.4, 0.3]").replace('history["val_loss"]', "[0.6, 0.5, 0.45]"))}
    for name, payload in PAYLOADS.items():
        students[name] = _with(solution, "ex-answer", FORGE.replace("{payload}", payload))
    for name, nb in students.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, str(subs / name / "01_plotfx.ipynb"))
    sandbox = "bwrap" if bwrap_problem() is None else "none"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    args = [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(root / "out"),
            "--fast", "--jobs", "2", "--sandbox", sandbox, "--memory-mb", "2500",
            "--cell-timeout", "120", "--rubric", str(rubric.path), "--solution", str(solution_path)]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1500)
    rows = {}
    if (root / "out" / "grades.json").exists():
        rows = {r["student"]: r for r in json.loads((root / "out" / "grades.json").read_text())}
    return {"run": run, "rows": rows, "sandbox": sandbox, "names": set(students)}


def _checks(row: dict) -> dict:
    return {c["id"]: c for c in row["checks"]}


@pytest.mark.notebook
@pytest.mark.xdist_group("figure-batch")
def test_the_batch_exits_0_with_one_graded_row_per_submission(batch):
    assert batch["run"].returncode == 0, batch["run"].stderr[-3000:]
    assert set(batch["rows"]) == batch["names"]
    assert all(row["error"] is None for row in batch["rows"].values()), batch["rows"]


@pytest.mark.notebook
@pytest.mark.xdist_group("figure-batch")
def test_the_honest_plot_scores_in_the_kernel_the_batch_ran(batch):
    if batch["sandbox"] != "bwrap" and os.environ.get("DLCOURSE_REQUIRE_SANDBOX") == "1":
        pytest.fail("bubblewrap is not usable here")
    honest = _checks(batch["rows"]["honest"])
    assert honest["01.fx_plot"]["passed"], honest["01.fx_plot"]["message"]
    assert batch["rows"]["honest"]["score"] == 2


@pytest.mark.notebook
@pytest.mark.xdist_group("figure-batch")
def test_labelled_made_up_curves_score_0(batch):
    checks = _checks(batch["rows"]["madeup"])
    assert not checks["01.fx_plot"]["passed"]
    assert "none of the 2 lines shows a series of `history`" in checks["01.fx_plot"]["message"]
    assert checks["01.fx_answer"]["passed"]


@pytest.mark.notebook
@pytest.mark.xdist_group("figure-batch")
@pytest.mark.parametrize("forgery", sorted(PAYLOADS))
def test_a_forged_figure_file_fails_that_check_only(batch, forgery):
    row = batch["rows"][forgery]
    checks = _checks(row)
    assert not checks["01.fx_plot"]["passed"]
    assert EXPECTED[forgery] in checks["01.fx_plot"]["message"], checks["01.fx_plot"]["message"]
    assert checks["01.fx_answer"]["passed"], checks["01.fx_answer"]["message"]
    assert row["score"] == 1
