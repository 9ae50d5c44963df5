"""Check kinds on real Keras models and plain values (the code both self-check and grader run)."""

from __future__ import annotations

import numpy as np
import pytest

from grader.checks.kinds import Context, FunctionOutput, run_check, trainable_parameters
from grader.checks.references import REFERENCES, FunctionCase
from grader.checks.rubric import CheckSpec


@pytest.fixture(scope="module")
def mlp():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input(shape=(1024,)), keras.layers.Dense(128, activation="relu"),
                             keras.layers.Dense(64, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def spec(**kw):
    base = dict(id="01.x", kind="param_count", objects=("model",), points=2.0)
    base.update(kw)
    return CheckSpec(**base)


CTX = Context(mode="fast", dataset="cifar10")


def test_param_count_passes_on_the_right_model(mlp):
    result = run_check(spec(expected=140106, units=(128, 64, 10), output_activation="softmax",
                            input_shape=(1024,)), {"model": mlp}, CTX)
    assert result.passed and result.points == 2.0 and "140,106" in result.message


def test_param_count_names_expected_and_found(mlp):
    result = run_check(spec(expected=717210), {"model": mlp}, CTX)
    assert not result.passed and result.points == 0
    assert "expected 717,210" in result.message and "found 140,106" in result.message


def test_param_count_checks_structure(mlp):
    result = run_check(spec(expected=140106, output_units=1), {"model": mlp}, CTX)
    assert result.message == "expected 1 output units, found 10"
    result = run_check(spec(expected=140106, output_activation="sigmoid"), {"model": mlp}, CTX)
    assert "expected a sigmoid output, found softmax" in result.message


def test_parameter_count_ignores_a_patched_count_params(mlp, monkeypatch):
    import keras

    monkeypatch.setattr(keras.Model, "count_params", lambda self: 717210)
    assert mlp.count_params() == 717210
    assert trainable_parameters(mlp) == 140106
    assert not run_check(spec(expected=717210), {"model": mlp}, CTX).passed


def test_missing_and_placeholder_objects_fail_with_a_hint(mlp):
    assert "not found" in run_check(spec(expected=1), {}, CTX).message
    assert "placeholder" in run_check(spec(expected=1), {"model": ...}, CTX).message
    assert "Keras model" in run_check(spec(expected=1), {"model": 3}, CTX).message


@pytest.mark.parametrize(
    "found, expected, tolerance, ok",
    [(2352, 2352, 0, True), (2352.0, 2352, 0, True), (2351, 2352, 0, False),
     (0.4123, 0.41, 0.005, True), ("2352", 2352, 0, True), ("abc", 2352, 0, False),
     ([0, 1, 0], [0, 1, 0], 0, True), ([0, 1], [0, 1, 0], 0, False), (True, True, 0, True),
     (1, True, 0, False), (float("nan"), 1.0, 0.1, False)],
)
def test_value_comparison(found, expected, tolerance, ok):
    result = run_check(spec(kind="value", objects=("v",), expected=expected, tolerance=tolerance),
                       {"v": found}, CTX)
    assert result.passed is ok


def test_experiment_needs_filled_results_then_asks_its_reference(monkeypatch):
    seen = []
    monkeypatch.setitem(REFERENCES, "sweep", lambda ctx, results: seen.append(results) or "ok")
    s = spec(kind="experiment", objects=("results",), reference="sweep")
    assert not run_check(s, {"results": {}}, CTX).passed
    assert not run_check(s, {"results": ...}, CTX).passed
    assert seen == []
    result = run_check(s, {"results": {1e-3: 0.4}}, CTX)
    assert result.passed and seen == [{1e-3: 0.4}]
    assert "the grader confirms these results itself" in result.message  # self-check: no re-run
    feedback_only = spec(kind="experiment", objects=("results",), reference="sweep", points=0.0)
    assert "confirms" not in run_check(feedback_only, {"results": {1e-3: 0.4}}, CTX).message


def test_function_check_with_a_live_function_and_with_exported_output(monkeypatch):
    case = FunctionCase(
        make_inputs=lambda rng: {"x": rng.integers(0, 10, 5)},
        reference=lambda x: x * 2,
        compare=lambda found, expected, inputs: None if np.array_equal(found, expected)
        else f"expected {expected.tolist()}, found {np.asarray(found).tolist()}",
    )
    monkeypatch.setitem(REFERENCES, "double", case)
    s = spec(kind="function", objects=("double_it",), reference="double")
    assert run_check(s, {"double_it": lambda x: 2 * x}, CTX).passed
    assert "expected" in run_check(s, {"double_it": lambda x: x + 1}, CTX).message
    boom = run_check(s, {"double_it": lambda x: 1 / 0}, CTX)
    assert not boom.passed and "ZeroDivisionError" in boom.message
    inputs = {"x": np.arange(3)}
    assert run_check(s, {"double_it": FunctionOutput(inputs, np.arange(3) * 2)}, CTX).passed
    assert not run_check(s, {"double_it": FunctionOutput(inputs, error="KeyError: 1")}, CTX).passed


def test_accuracy_on_the_real_test_split(mlp, data_dir):
    """An untrained 10-class model sits near chance: it fails a 0.3 bar and passes 0.0."""
    ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir)
    hard = spec(kind="accuracy", threshold={"full": 0.3, "fast": 0.3})
    easy = spec(kind="accuracy", threshold={"full": 0.0, "fast": 0.0})
    result = run_check(hard, {"model": mlp}, ctx)
    assert not result.passed and "below the 0.3 " in result.message
    assert "pixels / 255" in result.message  # the input convention is stated
    assert run_check(easy, {"model": mlp}, ctx).passed


def test_accuracy_rejects_a_model_with_the_wrong_output(data_dir):
    import keras

    one = keras.Sequential([keras.Input(shape=(1024,)), keras.layers.Dense(1)])
    ctx = Context(mode="fast", dataset="cifar10", data_dir=data_dir)
    result = run_check(spec(kind="accuracy", threshold={"full": 0.0, "fast": 0.0}), {"model": one}, ctx)
    assert result.message == "expected 10 output units (one per class), found 1"


def test_softmax_output_passes_whatever_its_spelling(tmp_path):
    """`tf.nn.softmax` is named softmax_v2; a saved and safely reloaded model keeps passing."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input(shape=(1024,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation=tf.nn.softmax)])
    check = spec(expected=140106, output_activation="softmax")
    assert run_check(check, {"model": model}, CTX).passed
    model.save(tmp_path / "m.keras")
    from grader.scoring.export import _load_model  # what the grader's scoring process does

    loaded = _load_model(tmp_path / "m.keras")
    result = run_check(check, {"model": loaded}, CTX)
    assert result.passed, result.message
    x = np.random.default_rng(0).random((4, 1024)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_self_check_prints_a_missed_accuracy_and_raises_on_a_wrong_model(mlp, data_dir,
                                                                          monkeypatch, capsys):
    """A model below the accuracy bar must not stop "Run all"; a wrong architecture must."""
    from grader import check

    monkeypatch.setenv("DLCOURSE_DATA_DIR", data_dir)
    monkeypatch.setenv("DLCOURSE_FAST", "1")
    monkeypatch.delenv("DLCOURSE_GRADING", raising=False)
    check("01.gray_accuracy", model=mlp)  # untrained: near chance, below the bar
    err = capsys.readouterr().err  # stderr: nbgrader scores the cell zero, Run all goes on
    assert "[01.gray_accuracy] not yet: test accuracy" in err and "goes on" in err
    import keras

    wrong = keras.Sequential([keras.Input(shape=(1024,)), keras.layers.Dense(10)])
    with pytest.raises(AssertionError, match="01.model_params"):
        check("01.model_params", model=wrong)


@pytest.mark.parametrize("regularise, passes", [
    ({"l2": True, "dropout": True}, True), ({"l2": True, "dropout": False}, True),
    ({"l2": False, "dropout": True}, True), ({"l2": False, "dropout": False}, False),
    ({"l2": "zero", "dropout": False}, False)])
def test_regularised_model_needs_l2_or_dropout_when_the_grader_loads_it(tmp_path, regularise,
                                                                       passes):
    """03.regularised_params on the model as the scorer loads it (safe mode, no compile): the
    parameter count cannot see L2 or dropout, the check reads them from the layers."""
    import keras

    from grader.checks.rubric import load_rubric
    from grader.scoring.export import _load_model

    factor = 0.0 if regularise["l2"] == "zero" else 1e-4
    layers = [keras.Input(shape=(784,))]
    for _ in range(3):
        penalty = keras.regularizers.l2(factor) if regularise["l2"] else None
        layers.append(keras.layers.Dense(1000, activation="relu", kernel_regularizer=penalty))
        if regularise["dropout"]:
            layers.append(keras.layers.Dropout(0.3))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    keras.Sequential(layers).save(tmp_path / "regularised_model.keras")
    loaded = _load_model(tmp_path / "regularised_model.keras")
    check = load_rubric("03").get("03.regularised_params")
    result = run_check(check, {"regularised_model": loaded},
                       Context(mode="fast", dataset="fashion_mnist", verify=True))
    assert result.passed is passes, result.message
    if not passes:
        assert "no L2 penalty and no dropout" in result.message and "hint:" in result.message


# ----------------------------------------------------------------------------------------
# design: a model designed under constraints (lesson 04's design exercises)
# ----------------------------------------------------------------------------------------


def design(**kw):
    base = dict(id="04.x", kind="design", objects=("model",), points=1.0, max_params=100_000,
                min_layers=(("*Conv2D", 2),), input_shape=(32, 32, 3), output_units=10,
                output_activation="softmax")
    base.update(kw)
    return CheckSpec(**base)


def _cnn(*blocks, dense=0, augment=None, nest=False):
    import keras

    inputs = keras.Input(shape=(32, 32, 3))
    x = augment(inputs) if augment is not None else inputs
    convs = [layer for filters in blocks
             for layer in (keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
                           keras.layers.MaxPooling2D())]
    if nest:  # the convolutions inside a Sequential block used as one layer
        x = keras.Sequential(convs)(x)
    else:
        for layer in convs:
            x = layer(x)
    x = keras.layers.Flatten()(x)
    if dense:
        x = keras.layers.Dense(dense, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def test_design_passes_any_architecture_within_the_constraints():
    for model in (_cnn(16, 32, 32), _cnn(8, 16, dense=32), _cnn(16, 32, 32, nest=True)):
        result = run_check(design(), {"model": model}, CTX)
        assert result.passed, result.message
        assert f"{trainable_parameters(model):,} parameters (budget 100,000)" in (
            result.message)


def test_design_refuses_a_dense_network_and_names_its_layers():
    import keras

    dense = keras.Sequential([keras.Input(shape=(32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    result = run_check(design(hint="add convolutions"), {"model": dense}, CTX)
    assert not result.passed and result.points == 0
    assert "at least 2 layer(s) of the kind *Conv2D, found 0" in result.message
    assert "Flatten, Dense, Dense" in result.message and "hint: add convolutions" in result.message


def test_design_refuses_a_model_over_its_budget_and_gives_both_counts():
    model = _cnn(16, 32, dense=64)  # 8 x 8 x 32 = 2,048 values into 64 units: 136,266
    count = trainable_parameters(model)
    assert count > 100_000
    result = run_check(design(), {"model": model}, CTX)
    assert not result.passed
    assert f"{count:,} parameters (trainable or not), over the budget of 100,000" in result.message
    assert run_check(design(max_params=count), {"model": model}, CTX).passed  # at most: equal passes


def test_design_counts_layers_inside_nested_models_and_checks_the_outline():
    import keras

    augment = keras.Sequential([keras.layers.RandomFlip("horizontal"),
                                keras.layers.RandomTranslation(0.1, 0.1)])
    tuned = design(max_params=150_000, min_layers=(("Random*", 1), ("*Conv2D", 2)))
    assert run_check(tuned, {"model": _cnn(16, 32, augment=augment)}, CTX).passed
    result = run_check(tuned, {"model": _cnn(16, 32)}, CTX)
    assert "at least 1 layer(s) of the kind Random*, found 0" in result.message
    wrong_input = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                                    keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3),
                                    keras.layers.Flatten(),
                                    keras.layers.Dense(10, activation="softmax")])
    assert "expected input shape (32, 32, 3)" in run_check(design(), {"model": wrong_input},
                                                            CTX).message


def test_design_reads_a_saved_and_reloaded_model_like_the_live_one(tmp_path):
    """The grader scores the model it loaded from the exported .keras file."""
    import keras

    augment = keras.Sequential([keras.layers.RandomFlip("horizontal")])
    model = _cnn(16, 32, augment=augment, nest=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    tuned = design(max_params=150_000, min_layers=(("Random*", 1), ("*Conv2D", 2)))
    live, reloaded = (run_check(tuned, {"model": m}, CTX) for m in (model, loaded))
    assert live.passed and reloaded.passed and live.message == reloaded.message


def test_design_budget_counts_frozen_layers_too():
    """The cheapest way round a budget of trainable parameters: a wide convolution left at its
    random start and frozen, with a small trained head. Its frozen weights count."""
    import keras

    frozen = keras.layers.Conv2D(2048, 5, strides=2, padding="same", activation="relu",
                                 trainable=False)
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Conv2D(4, 1)(frozen(inputs))
    x = keras.layers.Conv2D(4, 3, strides=4)(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(x)))
    assert trainable_parameters(model) < 100_000 < frozen.count_params()
    result = run_check(design(), {"model": model}, CTX)
    assert not result.passed and "(trainable or not), over the budget of 100,000" in (
        result.message)
