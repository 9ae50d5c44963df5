"""The export cell and the grader-side loading, run in-process (the same code a kernel runs)."""

from __future__ import annotations

import json
import zipfile

import helpers_notebooks as fx
import keras
import numpy as np
import pytest

from grader.authoring.release import available_modules
from grader.checks.kinds import FunctionOutput
from grader.checks.rubric import load_rubric
from grader.scoring.export import (
    check_keras_archive,
    export_source,
    load_artifacts,
    write_function_inputs,
)


@pytest.fixture(scope="module")
def rubric(tmp_path_factory):
    return fx.build_rubric(tmp_path_factory.mktemp("rubric"))


def small_model(units: int = 16):
    return keras.Sequential([keras.Input(shape=(784,)),
                             keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def run_export(rubric, folder, namespace: dict):
    """Write inputs, run the export cell's code on ``namespace``, load it back."""
    inputs = write_function_inputs(rubric, folder)
    exec(compile(export_source(rubric, folder), "<export>", "exec"), namespace)  # noqa: S102
    return load_artifacts(rubric, folder, inputs)


def _secrets(rubric) -> list[str]:
    found = []
    for check in rubric.checks:
        if isinstance(check.expected, (int, float)) and not isinstance(check.expected, bool) \
                and abs(check.expected) >= 100:
            found.append(str(check.expected))
        if check.threshold:
            found += [repr(v) for v in check.threshold.values() if v > 0]
    return found


def test_export_cell_holds_no_expected_values_or_thresholds(rubric, tmp_path):
    rubrics = [rubric] + [load_rubric(m) for m in available_modules()]
    for r in rubrics:
        source = export_source(r, tmp_path)
        leaked = [s for s in _secrets(r) if s in source]
        assert leaked == [], f"{r.path.name}: {leaked}"
        assert "REFERENCES" not in source and "threshold" not in source


def test_function_inputs_are_fresh_each_time(rubric, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_function_inputs(rubric, tmp_path / "a")["normalize_images"]["images"]
    second = write_function_inputs(rubric, tmp_path / "b")["normalize_images"]["images"]
    assert first.shape != second.shape or not np.array_equal(first, second)


def test_round_trip_of_models_values_and_function_outputs(rubric, tmp_path):
    def normalize_images(images):
        return images.reshape(len(images), -1) / 255.0

    objects, problems = run_export(rubric, tmp_path, {
        "model": small_model(), "param_bytes": np.int64(50920),
        "history": {0.1: [0.5, 0.6], 0.01: [0.4]}, "normalize_images": normalize_images,
    })
    assert problems == {}
    assert isinstance(objects["model"], keras.Model)
    assert sum(int(np.prod(w.shape)) for w in objects["model"].trainable_weights) == fx.PARAMS
    assert objects["param_bytes"] == 50920
    assert objects["history"] == {0.1: [0.5, 0.6], 0.01: [0.4]}
    out = objects["normalize_images"]
    assert isinstance(out, FunctionOutput) and out.error is None
    assert np.allclose(out.output, fx._reference(out.inputs["images"]))


def test_missing_unsupported_and_raising_objects_are_reported(rubric, tmp_path):
    def normalize_images(images):
        raise ValueError("not today")

    objects, problems = run_export(rubric, tmp_path, {
        "normalize_images": normalize_images, "param_bytes": np.array([object()]),
        "history": ...,
    })
    assert "not defined" in problems["model"]
    assert "could not be exported" in problems["param_bytes"]
    assert objects["history"] is Ellipsis
    assert objects["normalize_images"].error == "ValueError: not today"


def test_grader_keeps_its_own_copy_of_function_inputs(rubric, tmp_path):
    def normalize_images(images):
        return np.zeros((len(images), 784))

    inputs = write_function_inputs(rubric, tmp_path)
    kept = inputs["normalize_images"]["images"].copy()
    # the kernel overwrites the inputs file to make its answer look right
    np.savez(tmp_path / "normalize_images.in.npz", images=np.zeros((2, 28, 28), np.uint8))
    exec(compile(export_source(rubric, tmp_path), "<export>", "exec"),  # noqa: S102
         {"normalize_images": normalize_images})
    objects, _ = load_artifacts(rubric, tmp_path, inputs)
    assert np.array_equal(objects["normalize_images"].inputs["images"], kept)


def _rewrite_config(path, edit) -> None:
    with zipfile.ZipFile(path) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def test_archive_naming_foreign_modules_is_refused_before_loading(tmp_path):
    path = tmp_path / "model.keras"
    small_model().save(path)
    assert check_keras_archive(path) is None

    def poison(config):
        config["config"]["layers"][1]["module"] = "os"

    _rewrite_config(path, poison)
    problem = check_keras_archive(path)
    assert problem is not None and "os" in problem


def test_lambda_layer_model_is_not_loaded(rubric, tmp_path):
    model = keras.Sequential([keras.Input(shape=(784,)),
                              keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.Dense(10, activation="softmax")])
    objects, problems = run_export(rubric, tmp_path, {"model": model})
    assert "model" not in objects
    assert "could not be loaded" in problems["model"]


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a zip")
    assert "not a Keras model archive" in check_keras_archive(path)
