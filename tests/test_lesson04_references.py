"""The prepare_dataset function case of lesson 04 accepts any correct split, rejects wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from grader.checks.references import REFERENCES

CASE = REFERENCES["lesson04_prepare_dataset"]


@pytest.fixture()
def inputs():
    return CASE.make_inputs(np.random.default_rng(0))


def _answer(inputs, seed=7):
    """A correct answer with a shuffle of its own (not the reference's)."""
    images, labels = inputs["images"], inputs["labels"][:, 0]
    order = np.random.default_rng(seed).permutation(len(images))
    x = images[order].astype(np.float32) / 255.0
    y = np.eye(10, dtype=np.float32)[labels[order]]
    n_val = len(images) // 5
    return x[n_val:], x[:n_val], y[n_val:], y[:n_val]


def test_when_the_reference_answers_then_it_passes(inputs):
    expected = CASE.reference(**inputs)
    assert CASE.compare(expected, expected, inputs) is None


def test_when_another_shuffle_is_used_then_it_still_passes(inputs):
    assert CASE.compare(_answer(inputs), CASE.reference(**inputs), inputs) is None


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda a: (a[0].astype(np.float64), *a[1:]), "float32"),
        (lambda a: (a[0] * 255, *a[1:]), "[0, 1]"),
        (lambda a: (a[0], a[1], np.roll(a[2], 1, axis=0), a[3]), "another image's label"),
        (lambda a: (a[0], a[0][:10], a[2], a[2][:10]), "both"),
        (lambda a: a[:3], "tuple"),
        (lambda a: (a[0], a[1], a[2].argmax(axis=1), a[3]), "one-hot"),
        (lambda a: (a[0][:30], a[1], a[2][:30], a[3]), "80/20"),
    ],
)
def test_when_the_answer_is_wrong_then_compare_says_why(inputs, mutate, words):
    problem = CASE.compare(mutate(_answer(inputs)), CASE.reference(**inputs), inputs)
    assert problem is not None and words in problem


# --- the workflow exercises: predictions, confusion matrix, save/load, compile, training ---

from grader.checks.kinds import Context, run_check  # noqa: E402
from grader.checks.references import lesson04  # noqa: E402
from grader.checks.rubric import load_rubric  # noqa: E402

LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 4)
PREDICTED = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 9] * 4)   # class 8 always taken for 9


class _Stub:
    """A model that predicts fixed classes for the (image-shaped) test inputs."""

    def __init__(self, predicted):
        self.input_shape, self.output_shape = (None, 32, 32, 3), (None, 10)
        self.layers, self.trainable_weights = [], []
        self._predicted = np.asarray(predicted)

    def predict(self, x, batch_size=None, verbose=0):
        return np.eye(10, dtype="float32")[self._predicted][: len(x)]

    def __call__(self, x, training=False):  # how the grader predicts (grader.checks.context)
        return self.predict(x)


@pytest.fixture()
def tiny_test_split(monkeypatch):
    images = np.random.default_rng(1).integers(0, 256, (len(LABELS), 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(Context, "raw_test_split", lambda self, dataset=None: (images, LABELS))


def _run(check_id, objects, verify=False):
    spec = load_rubric("04").get(check_id)
    return run_check(spec, objects, Context(mode="fast", dataset="cifar10", verify=verify))


def test_predictions_must_equal_the_graders_argmax(tiny_test_split):
    model = _Stub(PREDICTED)
    assert _run("04.predictions", {"predicted_labels": PREDICTED, "intro_model": model}).passed
    wrong = _run("04.predictions", {"predicted_labels": LABELS, "intro_model": model})
    assert not wrong.passed and "agrees" in wrong.message
    probs = _run("04.predictions", {"predicted_labels": np.eye(10)[PREDICTED], "intro_model": model})
    assert not probs.passed and "argmax" in probs.message


def test_confusion_matrix_rows_are_true_classes(tiny_test_split):
    from sklearn.metrics import confusion_matrix

    model = _Stub(PREDICTED)
    right = confusion_matrix(LABELS, PREDICTED, labels=range(10))
    assert _run("04.confusion_matrix", {"confusion": right, "intro_model": model}).passed
    flipped = _run("04.confusion_matrix", {"confusion": right.T, "intro_model": model})
    assert not flipped.passed and "columns" in flipped.message
    other = confusion_matrix(LABELS, LABELS, labels=range(10))
    assert not _run("04.confusion_matrix", {"confusion": other, "intro_model": model}).passed


def test_save_load_needs_a_separate_model_that_predicts_the_same(tiny_test_split):
    best = _Stub(PREDICTED)
    assert _run("04.save_load", {"loaded_model": _Stub(PREDICTED), "best_model": best}).passed
    same_object = _run("04.save_load", {"loaded_model": best, "best_model": best})
    assert not same_object.passed and "load it" in same_object.message
    assert not _run("04.save_load", {"loaded_model": _Stub(LABELS), "best_model": best}).passed


def test_compile_check_reads_the_settings_in_the_kernel_only():
    import keras

    def model(**kwargs):
        m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(10, activation="softmax")])
        if kwargs:
            m.compile(**kwargs)
        return m

    good = model(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                 loss=keras.losses.CategoricalCrossentropy(),
                 metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    assert _run("04.compile", {"intro_model": good}).passed
    sparse = model(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                   loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    binary = model(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                   loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
    for wrong, name in ((sparse, "sparse_categorical_crossentropy"),
                        (binary, "binary_crossentropy")):
        result = _run("04.compile", {"intro_model": wrong})
        # Exercise 4.3 asks the student to choose the loss: the message names what was found
        # and where to look, never the loss to choose.
        assert not result.passed and repr(name) in result.message, result.message
        assert "prepare_dataset" in result.message
        assert not any(answer in result.message.lower().replace(repr(name), "")
                       for answer in ("categorical cross-entropy", "categoricalcrossentropy",
                                      "categorical_crossentropy"))
    unnamed = model(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                    loss="categorical_crossentropy",
                    metrics=[keras.metrics.CategoricalAccuracy()])
    assert "accuracy" in _run("04.compile", {"intro_model": unnamed}).message
    assert not _run("04.compile", {"intro_model": model()}).passed
    assert _run("04.compile", {"intro_model": model()}, verify=True).passed


def test_intro_training_history_matches_the_graders_evaluation(monkeypatch):
    n_val = 20
    x_val = np.random.default_rng(2).random((n_val, 32, 32, 3), dtype=np.float32)
    y_val = np.eye(10, dtype=np.float32)[np.arange(n_val) % 10]
    monkeypatch.setattr(lesson04, "_split", lambda ctx: (None, x_val, None, y_val))
    model = _Stub(np.arange(n_val) % 10)           # every validation image right
    loss = float(-np.log(1.0 - 1e-7))              # Keras clips the probabilities
    epochs = lesson04.INTRO_EPOCHS["fast"]
    good = {k: [0.5] * (epochs - 1) + [v] for k, v in
            {"loss": 1.0, "accuracy": 0.9, "val_loss": loss, "val_accuracy": 1.0}.items()}
    assert _run("04.intro_training", {"intro_history": good, "intro_model": model}, True).passed
    made_up = {**good, "val_accuracy": [0.5] * epochs}
    result = _run("04.intro_training", {"intro_history": made_up, "intro_model": model}, True)
    assert not result.passed and "grader measured" in result.message
    short = {k: v[:-1] for k, v in good.items()}
    assert not _run("04.intro_training", {"intro_history": short, "intro_model": model}).passed


# --- Exercise 4.8b: the confusion matrix drawn by the student ---


def _image(matrix, *, labels=True, heatmap=False):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    if heatmap:
        import seaborn as sns

        sns.heatmap(matrix, ax=ax)
    else:
        fig.colorbar(ax.imshow(matrix), ax=ax)
    if labels:
        ax.set(xlabel="predicted class", ylabel="true class")
    return fig


def test_confusion_plot_must_show_the_graders_matrix(tiny_test_split):
    from sklearn.metrics import confusion_matrix

    model = _Stub(PREDICTED)
    right = confusion_matrix(LABELS, PREDICTED, labels=range(10))
    rows = right / right.sum(axis=1, keepdims=True)
    for fig in (_image(right), _image(rows), _image(right, heatmap=True)):
        result = _run("04.confusion_plot", {"confusion_fig": fig, "intro_model": model})
        assert result.passed, result.message
    flipped = _run("04.confusion_plot", {"confusion_fig": _image(right.T), "intro_model": model})
    assert not flipped.passed and "true classes in its columns" in flipped.message
    made_up = confusion_matrix(LABELS, LABELS, labels=range(10))
    other = _run("04.confusion_plot", {"confusion_fig": _image(made_up), "intro_model": model})
    assert not other.passed and "does not show the grader's confusion matrix" in other.message
    bare = _run("04.confusion_plot", {"confusion_fig": _image(right, labels=False),
                                      "intro_model": model})
    assert not bare.passed and "no x-axis and y-axis label" in bare.message
    small = _run("04.confusion_plot", {"confusion_fig": _image(right[:3, :3]), "intro_model": model})
    assert not small.passed and "found images of shape: 3 x 3" in small.message


def test_the_self_check_reads_a_live_figure_of_a_real_model(data_dir, monkeypatch, capsys):
    """grader.check on a live Figure, a real (untrained) CNN and the real fast test split."""
    import keras
    from sklearn.metrics import confusion_matrix

    from grader import check
    from helpers.data import load_dataset

    monkeypatch.setenv("DLCOURSE_FAST", "1")
    monkeypatch.delenv("DLCOURSE_GRADING", raising=False)
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10, activation="softmax")])
    _, (x_test, y_test) = load_dataset("cifar10", fast=True, data_dir=data_dir)
    predicted = model.predict(x_test / 255.0, verbose=0).argmax(axis=1)
    confusion = confusion_matrix(y_test.ravel(), predicted, labels=range(10))
    check("04.confusion_plot", confusion_fig=_image(confusion), intro_model=model)
    assert "[04.confusion_plot] correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="does not show the grader's confusion matrix"):
        check("04.confusion_plot", confusion_fig=_image(confusion[::-1]), intro_model=model)
