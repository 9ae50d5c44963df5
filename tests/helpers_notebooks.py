"""Fixture notebooks built in code for the grading tests (nbmake ``tests/helper.py`` style).

A tiny module: an MNIST MLP (784-16-10) that trains in about a second in fast mode, with
one check of every kind. Its rubric is written to a temporary TOML file and parsed with
the real parser; its solution is normalised with the real cell conventions. The self-check
cells call a small ``check`` defined in the fixture's setup cell (the real ``grader.check``
only knows the course rubrics), so the grader never learns anything from them.

``submission(solution, **edits)`` returns a copy of the released notebook with exercise
sources replaced, which is what a student hands in.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat
import numpy as np

from grader.authoring.cells import normalize
from grader.authoring.release import student_notebook
from grader.checks.kinds import CheckFailed
from grader.checks.references import REFERENCES, FunctionCase
from grader.checks.rubric import Rubric, parse_rubric

PARAMS = 784 * 16 + 16 + 16 * 10 + 10  # 12,730


def _make_inputs(rng: np.random.Generator) -> dict:
    n = int(rng.integers(3, 12))
    return {"images": rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)}


def _reference(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype("float32") / 255.0


def _compare(found, expected, inputs) -> str | None:
    found = np.asarray(found)
    if found.shape != expected.shape:
        return f"expected an array of shape {expected.shape}, found {found.shape}"
    if not np.allclose(found, expected, atol=1e-6):
        return "the values differ from pixels / 255"
    return None


if "fixture_normalize" not in REFERENCES:
    REFERENCES["fixture_normalize"] = FunctionCase(
        make_inputs=_make_inputs, reference=_reference, compare=_compare,
        describe=lambda inputs: f"{len(inputs['images'])} random images",
    )

def _history(ctx, history) -> str:
    """Fixture experiment: the two-epoch training history, its loss going down."""
    from grader.checks.experiments import history as check_history

    curves = check_history(history, "history", epochs=2, metrics=("loss", "accuracy"))
    if not curves["loss"][-1] < curves["loss"][0]:
        raise CheckFailed("the training loss should go down over the two epochs")
    return "a two-epoch history with a falling loss"


if "fixture_history" not in REFERENCES:
    REFERENCES["fixture_history"] = _history

RUBRIC_TOML = f"""
module = "01"
notebook = "01_fixture.ipynb"
dataset = "mnist"

[[checks]]
id = "01.fx_function"
kind = "function"
objects = ["normalize_images"]
points = 1
reference = "fixture_normalize"

[[checks]]
id = "01.fx_params"
kind = "param_count"
objects = ["model"]
points = 2
expected = {PARAMS}
units = [16, 10]
output_activation = "softmax"

[[checks]]
id = "01.fx_value"
kind = "value"
objects = ["param_bytes"]
points = 1
expected = {PARAMS * 4}

[[checks]]
id = "01.fx_accuracy"
kind = "accuracy"
objects = ["model"]
points = 2
threshold = {{full = 0.75, fast = 0.75}}
inputs = "flat"

[[checks]]
id = "01.fx_done"
kind = "experiment"
objects = ["history"]
points = 1
reference = "fixture_history"
"""

SETUP = '''import os
import numpy as np
import keras
from helpers.data import load_dataset


def check(check_id, **objects):
    """Fixture self-check: feedback only, the grader never reads it."""
    missing = [k for k, v in objects.items() if v is None]
    if missing:
        raise AssertionError(f"{check_id}: {missing} not set")
    print(f"[{check_id}] correct")'''

PARAMETERS = "FAST = None\nSEED = 42"
LOAD = '''keras.utils.set_random_seed(SEED)
(x_train, y_train), (x_test, y_test) = load_dataset("mnist", fast=FAST)'''

EX_FUNCTION = '''def normalize_images(images):
    ### BEGIN SOLUTION
    return np.asarray(images).reshape(len(images), -1).astype("float32") / 255.0
    ### END SOLUTION'''

EX_MODEL = '''### BEGIN SOLUTION
model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
### END SOLUTION'''

EX_VALUE = '''### BEGIN SOLUTION
param_bytes = model.count_params() * 4
### END SOLUTION'''

EX_TRAIN = '''### BEGIN SOLUTION
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(normalize_images(x_train), y_train, epochs=2, batch_size=64,
                    verbose=0).history
### END SOLUTION'''

#: Names of the exercise slots (grade ids are filled in by normalize).
EXERCISES = ("function", "model", "value", "train")


def build_rubric(folder: Path) -> Rubric:
    """Write the fixture rubric to ``folder`` and parse it with the real parser."""
    path = Path(folder) / "01_fixture.toml"
    path.write_text(RUBRIC_TOML, encoding="utf-8")
    return parse_rubric(path)


def _code(source: str, cid: str, tags: list[str] | None = None):
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = cid
    if tags:
        cell.metadata["tags"] = tags
    return cell


def _md(source: str, cid: str):
    cell = nbformat.v4.new_markdown_cell(source)
    cell["id"] = cid
    return cell


def build_solution(rubric: Rubric):
    """The fixture's solution notebook with nbgrader metadata on every cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        _md("# Fixture lesson\nA tiny MNIST MLP.", "intro"),
        _code(SETUP, "setup"),
        _code(PARAMETERS, "parameters", ["parameters"]),
        _code(LOAD, "load"),
        _md("**Exercise 1**: write `normalize_images`.", "ex-function-md"),
        _code(EX_FUNCTION, "ex-function"),
        _code('check("01.fx_function", normalize_images=normalize_images)', "check-function"),
        _code(EX_MODEL, "ex-model"),
        _code('check("01.fx_params", model=model)', "check-params"),
        _code(EX_VALUE, "ex-value"),
        _code('check("01.fx_value", param_bytes=param_bytes)', "check-value"),
        _code(EX_TRAIN, "ex-train"),
        _code('check("01.fx_accuracy", model=model)', "check-accuracy"),
        _code('check("01.fx_done", history=history)', "check-done"),
        _md("The end.", "outro"),
    ]
    normalize(nb, rubric)
    nbformat.validate(nb)
    return nb


def released(solution):
    """The blank student notebook, as release writes it."""
    return student_notebook(solution)


def submission(solution, **sources: str):
    """A student's notebook: the solution's exercise answers, with some replaced.

    Keywords are exercise slots (``function``, ``model``, ``value``, ``train``) or any cell
    id (``setup``, ``check-params``...), mapped to the source the student left there.
    """
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        slot = cell["id"].removeprefix("ex-")
        if slot in sources:
            cell.source = sources[slot]
        elif cell["id"] in sources:
            cell.source = sources[cell["id"]]
    return nb


def write(nb, path: Path) -> Path:
    """Write a notebook and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def cli_env(root: Path) -> dict[str, str]:
    """The environment of a ``python -m grader`` run on this fixture: the results key under
    ``root``, and this folder importable (``--import helpers_notebooks``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DLCOURSE_KEY_FILE=str(Path(root) / "key" / "results.key"),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent),
                                           env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return env
