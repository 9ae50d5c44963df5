"""Tests for grader.scoring.vetting: refuse hostile ``.keras`` archives from their config alone."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader.scoring import model_archive
from grader.scoring.model_archive import vet_keras_archive
from grader.scoring.vetting import ModelBounds, estimate_params, vet_model_config

keras = pytest.importorskip("keras")
layers = keras.layers

BOUNDS = ModelBounds()
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# Helpers


def _read_config(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _rewrite(
    source: Path, dest: Path, config: Any = None, raw: bytes | None = None, drop_config: bool = False
) -> Path:
    """Copy the archive ``source`` to ``dest`` with config.json replaced (or removed)."""
    payload = raw if raw is not None else json.dumps(config).encode("utf-8")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename == "config.json":
                if not drop_config:
                    out.writestr("config.json", payload)
            else:
                out.writestr(info, src.read(info))
    return dest


def _layer_configs(config: Any) -> list[dict[str, Any]]:
    """Every serialized layer (``{"class_name", "config"}``) under ``config``'s ``layers`` lists."""
    found = []
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict):
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _named(config: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [n for n in _layer_configs(config) if n["config"].get("name") == name]
    assert len(matches) == 1, f"no single layer named {name!r}"
    return matches[0]


def _build_config_present(config: dict[str, Any]) -> bool:
    weighted = [
        n
        for n in _layer_configs(config)
        if {"units", "filters", "output_dim"} & n["config"].keys() or n["class_name"] == "BatchNormalization"
    ]
    return bool(weighted) and all("build_config" in n for n in weighted)


# ----------------------------------------------------------------------------------------------
# Models shaped like the course's


def _mlp_1024() -> keras.Model:
    """Lesson 01's shape: 1,024 grey pixels, two hidden layers, ten classes."""
    model = keras.Sequential([keras.Input((1024,))])
    for width, act in ((128, "relu"), (64, "relu"), (10, "softmax")):
        model.add(layers.Dense(width, activation=act))
    return model


def _mlp_784() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((784,)),
            layers.Dense(784, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def _cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def _functional() -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _batchnorm() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(16, 3),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(64),
            layers.BatchNormalization(),
            layers.Dense(10),
        ]
    )


def _large() -> keras.Model:  # about 2.56 million parameters
    return keras.Sequential(
        [
            keras.Input((3072,)),
            layers.Dense(768, activation="relu"),
            layers.Dense(256, activation="relu"),
            layers.Dense(10),
        ]
    )


def _nested() -> keras.Model:
    head = keras.Sequential([keras.Input((16,)), layers.Dense(8), layers.Dense(3)], name="head")
    inputs = keras.Input((5, 12), dtype="float32")
    x = layers.TimeDistributed(layers.Dense(16))(inputs)
    x = layers.Bidirectional(layers.LSTM(8))(x)
    x = layers.LayerNormalization()(x)
    return keras.Model(inputs, head(x))


def _embedding() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((20,), dtype="int32"),
            layers.Embedding(1000, 16),
            layers.GRU(12),
            layers.Reshape((3, 4)),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )


COURSE_MODELS = {
    "mlp_1024": _mlp_1024,
    "mlp_784": _mlp_784,
    "cnn": _cnn,
    "functional": _functional,
    "batchnorm": _batchnorm,
    "large_2_5M": _large,
    "nested": _nested,
    "embedding": _embedding,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[Path, int]]:
    """Each course-like model saved once: name -> (archive, model.count_params())."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for name, build in COURSE_MODELS.items():
        model = build()
        path = folder / f"{name}.keras"
        model.save(path)
        out[name] = (path, model.count_params())
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A small real archive with named layers, rewritten by the hostile tests."""
    model = keras.Sequential(
        [
            keras.Input((16,), name="pixels"),
            layers.Dense(8, name="hidden"),
            layers.Reshape((8, 1), name="to_seq"),
            layers.Conv1D(4, 3, name="conv"),
            layers.Flatten(name="flat"),
            layers.Dense(2, name="scores"),
        ]
    )
    path = tmp_path_factory.mktemp("small") / "small.keras"
    model.save(path)
    return path


def _hostile(small: Path, tmp_path: Path, edit) -> Path:
    config = _read_config(small)
    edit(config)
    return _rewrite(small, tmp_path / "hostile.keras", config)


# ----------------------------------------------------------------------------------------------
# Legitimate models pass, with an estimate close to the real count


@pytest.mark.parametrize("name", list(COURSE_MODELS))
def test_course_models_pass_with_close_estimate(saved, name):
    path, real = saved[name]
    config = _read_config(path)
    assert _build_config_present(config)
    assert vet_keras_archive(path, BOUNDS) is None
    assert vet_model_config(config, BOUNDS) is None
    estimate = estimate_params(config)
    assert 0.9 * real <= estimate <= 3 * real, (estimate, real)


def test_estimate_is_exact_for_dense_and_conv(saved):
    for name in ("mlp_1024", "mlp_784", "cnn", "functional", "batchnorm", "large_2_5M"):
        path, real = saved[name]
        assert estimate_params(_read_config(path)) == real, name


def test_missing_build_config_overestimates(saved):
    """Without build_config each layer's input is taken as the largest size in the model."""
    path, real = saved["mlp_784"]
    config = _read_config(path)
    for node in _layer_configs(config):
        node.pop("build_config", None)
    estimate = estimate_params(config)
    assert estimate >= real
    # 784 inputs assumed for every Dense: 784*784+784 + 784*128+128 + 784*10+10
    assert estimate == 784 * 784 + 784 + 784 * 128 + 128 + 784 * 10 + 10
    assert vet_model_config(config, BOUNDS) is None


def test_vetting_imports_no_keras(saved, small, tmp_path):
    """The check runs in a fresh interpreter without importing Keras or TensorFlow."""
    hostile = _hostile(small, tmp_path, lambda c: _named(c, "hidden")["config"].update(units=1_000_000))
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from grader.scoring.model_archive import vet_keras_archive\n"
        "from grader.scoring.vetting import ModelBounds\n"
        f"ok = vet_keras_archive(Path({str(saved['cnn'][0])!r}), ModelBounds())\n"
        f"bad = vet_keras_archive(Path({str(hostile)!r}), ModelBounds())\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'h5py'))\n"
        "print(json.dumps([ok, bad, heavy]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    ok, bad, heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert ok is None
    assert bad and "hidden" in bad
    assert heavy == []


# ----------------------------------------------------------------------------------------------
# Hostile widths


def test_huge_dense_units_refused(small, tmp_path):
    path = _hostile(small, tmp_path, lambda c: _named(c, "hidden")["config"].update(units=1_000_000))
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None
    assert "'hidden'" in reason and "Dense" in reason
    assert "units=1,000,000" in reason and "65,536" in reason


def test_huge_dense_units_refused_by_parameter_bound_too(small, tmp_path):
    path = _hostile(small, tmp_path, lambda c: _named(c, "hidden")["config"].update(units=1_000_000))
    reason = vet_keras_archive(path, ModelBounds(max_units=10**7, max_params=5_000_000))
    assert reason is not None
    assert "about 17,000,0" in reason and "up to 5,000,000 parameters" in reason
    assert "'hidden'" in reason and "Dense(1,000,000)" in reason


@pytest.mark.parametrize(
    "value",
    [1e6, 64.0, "1000", True, None, [8], -1, 10**30, float("nan")],
    ids=["float", "integral-float", "string", "bool", "null", "list", "negative", "huge", "nan"],
)
def test_malformed_units_refused(small, tmp_path, value):
    path = _hostile(small, tmp_path, lambda c: _named(c, "hidden")["config"].update(units=value))
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None
    assert "'hidden'" in reason and "units=" in reason


def test_huge_conv_filters_refused(small, tmp_path):
    path = _hostile(small, tmp_path, lambda c: _named(c, "conv")["config"].update(filters=10**9))
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None
    assert "'conv'" in reason and "filters=1,000,000,000" in reason


@pytest.mark.parametrize("kernel", [[3, "3"], [100_000], [], 2.5])
def test_malformed_kernel_size_refused(small, tmp_path, kernel):
    path = _hostile(small, tmp_path, lambda c: _named(c, "conv")["config"].update(kernel_size=kernel))
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "kernel_size" in reason


@pytest.mark.parametrize("shape", [[None, 16.0], [None, "16"], [None, 10**12], [None, -3]])
def test_malformed_input_shape_refused(small, tmp_path, shape):
    path = _hostile(small, tmp_path, lambda c: _named(c, "pixels")["config"].update(batch_shape=shape))
    assert vet_keras_archive(path, BOUNDS) is not None


def test_lying_build_config_refused(small, tmp_path):
    def edit(config):
        _named(config, "hidden")["build_config"] = {"input_shape": [None, "16"]}

    assert "build_config" in (vet_keras_archive(_hostile(small, tmp_path, edit), BOUNDS) or "")


def test_wide_input_without_build_config_refused(small, tmp_path):
    """A missing build_config falls back to the widest declared shape, not to 0."""

    def edit(config):
        _named(config, "pixels")["config"]["batch_shape"] = [None, 5_000_000]
        config["config"]["build_input_shape"] = [None, 5_000_000]
        config["build_config"] = {"input_shape": [None, 5_000_000]}
        _named(config, "hidden").pop("build_config")

    path = _hostile(small, tmp_path, edit)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "parameters" in reason and "'hidden'" in reason


def test_estimate_above_max_params_refused(tmp_path):
    """Each width within max_units, but Dense(60000) after Dense(60000) is 3.6 billion weights."""
    model = keras.Sequential([keras.Input((4,)), layers.Dense(6, name="a"), layers.Dense(6, name="b")])
    model.save(tmp_path / "base.keras")
    config = _read_config(tmp_path / "base.keras")
    _named(config, "a")["config"]["units"] = 60_000
    _named(config, "b")["config"]["units"] = 60_000
    _named(config, "b")["build_config"] = {"input_shape": [None, 60_000]}
    path = _rewrite(tmp_path / "base.keras", tmp_path / "wide.keras", config)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None
    assert "about 3,600," in reason and "'b'" in reason and "Dense(60,000)" in reason
    assert "20,000,000" in reason and "build the model the exercise asks for" in reason


def test_huge_layer_hidden_in_wrapper_and_nested_model_refused(saved, tmp_path):
    path, _ = saved["nested"]
    for target in ("TimeDistributed", "head"):
        config = _read_config(path)
        if target == "TimeDistributed":
            wrapper = next(n for n in _layer_configs(config) if n["class_name"] == "TimeDistributed")
            wrapper["config"]["layer"]["config"]["units"] = 1_000_000
        else:
            head = _named(config, "head")
            next(n for n in head["config"]["layers"] if n["class_name"] == "Dense")["config"]["units"] = 10**6
        reason = vet_keras_archive(_rewrite(path, tmp_path / f"{target}.keras", config), BOUNDS)
        assert reason is not None and "units=1,000,000" in reason, target


def test_too_many_layers_refused(small, tmp_path):
    def edit(config):
        dense = _named(config, "hidden")
        dense["config"]["units"] = 16
        copies = []
        for i in range(2_000):
            clone = copy.deepcopy(dense)
            clone["config"]["name"] = f"d{i}"
            copies.append(clone)
        config["config"]["layers"] = config["config"]["layers"][:1] + copies

    path = _hostile(small, tmp_path, edit)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "1,000 layers" in reason
    assert vet_keras_archive(path, ModelBounds(max_layers=5_000)) is None  # only the count is wrong


# ----------------------------------------------------------------------------------------------
# Hostile archives


def test_zip_without_config_refused(small, tmp_path):
    path = _rewrite(small, tmp_path / "noconfig.keras", drop_config=True)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "config.json" in reason and "model.save" in reason


def test_not_a_zip_refused(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "not a zip" in reason
    assert vet_keras_archive(tmp_path / "missing.keras", BOUNDS) is not None
    assert vet_keras_archive(tmp_path, BOUNDS) is not None


def test_deeply_nested_json_refused(small, tmp_path):
    depth = 100_000
    path = _rewrite(small, tmp_path / "deep.keras", raw=b"[" * depth + b"]" * depth)
    reason = vet_keras_archive(path, BOUNDS)
    assert reason is not None and "100,000 levels" in reason
    # Brackets inside strings do not count.
    config = _read_config(small)
    config["config"]["name"] = "[" * 5_000
    assert vet_keras_archive(_rewrite(small, tmp_path / "brackets.keras", config), BOUNDS) is None


def test_deeply_nested_dict_refused_without_recursion(small):
    config = _read_config(small)
    deep: list[Any] = []
    node = deep
    for _ in range(50_000):
        node.append([])
        node = node[0]
    _named(config, "hidden")["config"]["kernel_regularizer"] = deep
    reason = vet_model_config(config, BOUNDS)
    assert reason is not None and "levels deep" in reason


HUGE_INT_CONFIG = b'{"class_name": "Dense", "config": {"units": 1' + b"0" * 5000 + b"}}"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", '{"a": "\xe9"}'.encode("latin-1"), b"[1, 2]", HUGE_INT_CONFIG],
    ids=["invalid", "not-utf8", "not-a-model", "5000-digit-int"],
)
def test_unreadable_config_refused(small, tmp_path, raw):
    reason = vet_keras_archive(_rewrite(small, tmp_path / "bad.keras", raw=raw), BOUNDS)
    assert reason is not None and "config.json" in reason


def test_size_limits(small, tmp_path, monkeypatch):
    assert vet_keras_archive(small, BOUNDS) is None
    monkeypatch.setattr(model_archive, "MAX_CONFIG_BYTES", 100)
    reason = vet_keras_archive(small, BOUNDS)
    assert reason is not None and "config.json" in reason and "bytes" in reason
    monkeypatch.undo()
    monkeypatch.setattr(model_archive, "MAX_ARCHIVE_UNCOMPRESSED_BYTES", 1_000)
    reason = vet_keras_archive(small, BOUNDS)
    assert reason is not None and "unpacks to" in reason


def test_oversized_config_refused(small, tmp_path):
    config = _read_config(small)
    config["config"]["padding_field"] = "x" * (21 * 1024 * 1024)
    reason = vet_keras_archive(_rewrite(small, tmp_path / "big.keras", config), BOUNDS)
    assert reason is not None and "config.json" in reason and "20,971,520" in reason
