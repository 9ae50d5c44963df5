"""Lesson 04's design exercises judge designs, not one architecture, through the real CLI.

One batch (``python -m grader grade ... --fast``) of lesson 04 grades two submissions made
from the solution by rewriting only the three design exercises' cells (4.2, 4.5b, 4.11b):

* ``designer``: three designs unlike the solution's (strided convolutions without pooling,
  a nested ``keras.Sequential`` of augmentation layers with a rotation the lesson never
  shows). Every design check and every accuracy check on the grader's hold-out passes: the
  grader does not compare layers with the solution's.
* ``shortcut``: the cheapest fakes of a design. A dense network as the "CNN" of 4.2 (it has
  no convolution, and within 100,000 parameters it cannot beat lesson 02's dense network on
  the hold-out), the solution's 79,530-parameter intro design handed in as the compact model
  (it learns well but breaks the 20,000 budget), and the solution's tuned design without its
  augmentation layers.
  Each fails exactly the check that measures what it skipped; its other checks still pass
  (the tuned model's accuracy aside, which lands on either side of its bar in fast mode).
"""

from __future__ import annotations

import json
import subprocess
import sys

import helpers_notebooks as fx
import nbformat
import pytest

from grader.base.paths import SOLUTIONS_DIR
from grader.checks.rubric import load_rubric

pytestmark = [pytest.mark.notebook]

RUBRIC = load_rubric("04")

DESIGNER = {
    "l04-32": '''def create_model_intro():
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(48, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cifar_model_intro")''',
    "l04-compact-code": '''def create_model_compact():
    inputs = keras.Input(shape=(32, 32, 3))
    x = inputs
    for filters in (16, 32, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name="cifar_model_compact")''',
    "l04-78b": '''def create_model_tuned(dropout_rate=0.5, activation="relu"):
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                keras.layers.RandomRotation(0.05)], name="augment")
    inputs = keras.Input(shape=(32, 32, 3))
    x = augment(inputs)
    for filters in (32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation=activation)(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(keras.layers.Dropout(dropout_rate)(x))
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cifar_model_tuned")''',
}

SHORTCUT = {
    "l04-32": '''def create_model_intro():
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cifar_model_intro")''',
    "l04-compact-code": '''def create_model_compact():
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Conv2D(16, (3, 3), activation="relu")(inputs)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Conv2D(32, (3, 3), activation="relu")(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(x))
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cifar_model_compact")''',
    "l04-78b": '''def create_model_tuned(dropout_rate=0.5, activation="relu"):
    inputs = keras.Input(shape=(32, 32, 3))
    x = inputs
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, activation=activation)(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(128, 3, activation=activation)(x)
    x = keras.layers.Flatten()(keras.layers.Dropout(dropout_rate)(x))
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cifar_model_tuned")''',
}


def _submission(cells: dict[str, str]):
    nb = nbformat.read(str(SOLUTIONS_DIR / RUBRIC.notebook), as_version=4)
    found = {cell.get("id"): cell for cell in nb.cells}
    for cid, source in cells.items():
        assert found[cid].metadata["nbgrader"]["solution"], f"{cid} is not an exercise cell"
        found[cid].source = source
    return nb


@pytest.fixture(scope="module")
def batch(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("design")
    subs, out = root / "submissions", root / "out"
    for student, cells in (("designer", DESIGNER), ("shortcut", SHORTCUT)):
        fx.write(_submission(cells), subs / student / RUBRIC.notebook)
    args = [sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--fast",
            "--jobs", "2"]
    done = subprocess.run(args, env=fx.cli_env(root), capture_output=True, text=True,
                          timeout=1800)
    rows = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    return {"done": done, "rows": rows}


def _checks(row: dict) -> dict[str, dict]:
    return {c["id"]: c for c in row["checks"]}


def test_the_batch_exits_0_with_both_rows(batch):
    assert batch["done"].returncode == 0, batch["done"].stderr[-3000:]
    assert set(batch["rows"]) == {"designer", "shortcut"}


def test_designs_unlike_the_solution_earn_every_point(batch):
    row = batch["rows"]["designer"]
    checks = _checks(row)
    for check_id in ("04.intro_design", "04.compact_design", "04.tuned_design",
                     "04.intro_accuracy", "04.compact_accuracy", "04.tuned_accuracy"):
        assert checks[check_id]["passed"], (check_id, checks[check_id]["message"])
    assert "69,082 parameters (budget 100,000)" in checks["04.intro_design"]["message"]
    assert "2 Random*" in checks["04.tuned_design"]["message"]  # counted inside the nested block
    automatic = [checks[spec.id] for spec in RUBRIC.checks]
    assert all(c["passed"] for c in automatic), [c["message"] for c in automatic
                                                  if not c["passed"]]
    assert row["score"] == RUBRIC.max_score


def test_each_shortcut_fails_the_check_of_what_it_skipped_and_nothing_else(batch):
    checks = _checks(batch["rows"]["shortcut"])
    # the tuned model's accuracy is its own matter: in fast mode it trains 4 epochs with the
    # optimizer a noisy search chose, so it lands on either side of the bar without augmentation
    failed = {spec.id for spec in RUBRIC.checks
              if not checks[spec.id]["passed"] and spec.id != "04.tuned_accuracy"}
    assert failed == {"04.intro_design", "04.intro_accuracy", "04.compact_design",
                      "04.tuned_design"}, {cid: checks[cid]["message"] for cid in failed}
    assert "kind *Conv2D, found 0" in checks["04.intro_design"]["message"]
    assert "on images the grader kept aside" in checks["04.intro_accuracy"]["message"]
    assert "is below the 0.34" in checks["04.intro_accuracy"]["message"]
    assert "79,530 parameters (trainable or not), over the budget of 20,000" in (
        checks["04.compact_design"]["message"])
    assert checks["04.compact_accuracy"]["passed"]  # a good model, only over the budget
    assert "kind Random*, found 0" in checks["04.tuned_design"]["message"]
