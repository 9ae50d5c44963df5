"""Figures as data (grader.checks.figures) and the ``figure`` check kind, on real matplotlib
figures (Agg backend, set in conftest) and real lesson references."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from grader.checks import figures
from grader.checks.context import Context
from grader.checks.figures import FigureData, describe_figure
from grader.checks.kinds import run_check
from grader.checks.rubric import CheckSpec

HISTORY = {"loss": [1.9, 1.5, 1.3, 1.2], "accuracy": [0.31, 0.44, 0.52, 0.57],
           "val_loss": [1.7, 1.6, 1.5, 1.55], "val_accuracy": [0.38, 0.42, 0.47, 0.46]}


def curves(history=HISTORY, *, xlabel="epoch", ylabel="accuracy", legend=True, start=1,
           keys=("accuracy", "val_accuracy")) -> Figure:
    fig = Figure()
    ax = fig.subplots()
    for key in keys:
        values = history[key]
        ax.plot(range(start, start + len(values)), values, label=key)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    return fig


SPEC = CheckSpec(id="01.first_curves", kind="figure", objects=("fig", "history"), points=1,
                 reference="history_curves")


def check(fig, history=HISTORY):
    return run_check(SPEC, {"fig": fig, "history": history}, Context(mode="fast"))


def test_describe_figure_reads_labels_lines_images_and_bars():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    left.plot([1, 2, 3], [0.5, np.nan, 0.7], label="train")
    left.set(title="curves", xlabel="epoch", ylabel="accuracy")
    left.legend()
    right.imshow(np.arange(12).reshape(3, 4))
    right.bar(["a", "b"], [3, 5])
    data = describe_figure(right)  # an Axes stands for its figure
    assert json.loads(json.dumps(data)) == data  # plain JSON, no NaN
    first, second = data["axes"]
    assert (first["title"], first["xlabel"], first["ylabel"]) == ("curves", "epoch", "accuracy")
    assert first["legend"] == ["train"]
    assert first["lines"] == [{"label": "train", "x": [1.0, 2.0, 3.0], "y": [0.5, None, 0.7]}]
    assert second["images"] == [[[float(v) for v in row] for row in np.arange(12).reshape(3, 4)]]
    assert second["bars"][0]["heights"] == [3.0, 5.0]
    parsed = FigureData.from_dict(data)
    assert np.isnan(parsed.axes[0].lines[0].y[1])
    assert parsed.axes[1].images[0].shape == (3, 4)


def test_describe_figure_reads_a_seaborn_heatmap_and_ignores_the_colorbar():
    import seaborn as sns

    fig = Figure()
    ax = fig.subplots()
    matrix = np.arange(100).reshape(10, 10)
    sns.heatmap(matrix, ax=ax, annot=False)
    ax.set(xlabel="predicted", ylabel="true")
    parsed = FigureData.of(fig)
    assert [a.has_data for a in parsed.axes] == [True, False]
    assert np.array_equal(parsed.axes[0].images[0], matrix)


def test_describe_figure_caps_sizes_and_refuses_other_objects():
    fig = Figure()
    for _ in range(figures.MAX_AXES + 3):
        fig.add_subplot()
    ax = fig.axes[0]
    ax.plot(np.arange(50_000), np.zeros(50_000))
    ax.imshow(np.zeros((300, 300)))
    data = describe_figure(fig)
    assert len(data["axes"]) == figures.MAX_AXES
    assert len(data["axes"][0]["lines"][0]["y"]) == figures.MAX_POINTS
    assert data["axes"][0]["images"] == []  # too large to be a plotted matrix
    FigureData.from_dict(data)
    with pytest.raises(TypeError, match="expected a matplotlib Figure or Axes, found list"):
        describe_figure([1, 2])


def _valid() -> dict:
    return describe_figure(curves())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(axes="x"), "the figure's axes: expected a list, found a string"),
    (lambda d: d["axes"][0].pop("xlabel"), "axes 0: expected the keys .* missing \\['xlabel'\\]"),
    (lambda d: d["axes"][0].update(evil=1), "unexpected \\['evil'\\]"),
    (lambda d: d["axes"][0]["lines"][0]["y"].__setitem__(0, float("nan")),
     "line 0 y\\[0\\]: expected a finite number or null, found nan"),
    (lambda d: d["axes"][0]["lines"][0]["y"].__setitem__(1, "0.5"),
     "line 0 y\\[1\\]: expected a number or null, found a string"),
    (lambda d: d["axes"][0]["lines"][0]["y"].__setitem__(1, 10 ** 400),
     "expected a finite number or null"),
    (lambda d: d["axes"][0]["lines"][0]["x"].pop(), "expected as many x as y values, found 3 and 4"),
    (lambda d: d["axes"][0]["lines"][0].update(y=[0.0] * (figures.MAX_POINTS + 1)),
     "expected at most 10,000 entries, found 10,001"),
    (lambda d: d["axes"][0].update(title="t" * 5000), "expected at most 200 characters"),
    (lambda d: d["axes"][0]["images"].append([[1.0, 2.0], [3.0]]),
     "image 0: expected a non-empty rectangular table"),
    (lambda d: d.update(format=True), "expected format 1"),
])
def test_figure_data_names_what_it_expected_and_what_it_found(edit, message):
    data = _valid()
    edit(data)
    with pytest.raises(ValueError, match=message):
        FigureData.from_dict(data)


def test_figure_data_from_json_refuses_deep_huge_and_broken_files():
    with pytest.raises(ValueError, match="nested too deeply"):
        FigureData.from_json("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="expected at most"):
        FigureData.from_json(b" " * (figures.MAX_FIGURE_BYTES + 1))
    with pytest.raises(ValueError, match="not valid JSON"):
        FigureData.from_json(b"{ nope")
    with pytest.raises(ValueError, match="found a list of 1"):
        FigureData.from_json(b"[1]")
    assert FigureData.from_json(json.dumps(_valid())).axes[0].xlabel == "epoch"


def test_the_figure_kind_passes_a_correct_plot_live_and_exported():
    live = check(curves())
    exported = check(FigureData.from_json(json.dumps(describe_figure(curves(start=0)))))
    losses = check(curves(keys=("loss", "val_loss"), ylabel="loss"))
    assert live.passed and exported.passed and losses.passed, (live, exported, losses)
    assert "`accuracy` and `val_accuracy` curves" in live.message


def test_labels_with_made_up_data_fail_without_leaking_the_history():
    made_up = {key: [0.1, 0.2, 0.3, 0.4] for key in HISTORY}
    result = check(curves(made_up))
    assert not result.passed
    assert "none of the 2 lines shows a series of `history`" in result.message
    for values in HISTORY.values():
        for v in values:
            assert f"{v:g}" not in result.message
    shifted = {k: [v + 1e-4 for v in vals] for k, vals in HISTORY.items()}
    assert not check(curves(shifted)).passed  # within 1e-6, not 1e-4


@pytest.mark.parametrize("kwargs, message", [
    ({"xlabel": ""}, "has no x-axis label"),
    ({"xlabel": " ", "ylabel": ""}, "has no x-axis and y-axis label"),
    ({"legend": False}, "0 legend entries; expected a legend naming both curves"),
    ({"start": 5}, "its x positions are not the epoch numbers"),
    ({"keys": ("accuracy",)}, "found the curve of `accuracy` but none with the values of `val_accuracy`"),
])
def test_the_figure_kind_says_what_is_missing(kwargs, message):
    result = check(curves(**kwargs))
    assert not result.passed
    assert message in result.message, result.message


def test_the_figure_kind_refuses_placeholders_and_other_objects():
    assert "still a placeholder" in check(...).message
    assert "should be a matplotlib Figure" in check([0.1, 0.2]).message
    empty = Figure()
    empty.subplots()
    assert "has no plotted data" in check(empty).message


def test_a_keras_history_object_is_read_like_its_dict():
    class History:  # what keras.callbacks.History exposes to the check
        history = HISTORY

    assert check(curves(), History()).passed


def test_the_matplotlib_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_the_self_check_reads_a_real_keras_history(data_dir, monkeypatch, capsys):
    """grader.check on a live pyplot Figure and the History of a real (tiny) training run."""
    import keras
    import matplotlib.pyplot as plt

    from grader import check
    from helpers.data import load_dataset

    monkeypatch.delenv("DLCOURSE_GRADING", raising=False)
    (x, y), _ = load_dataset("mnist", fast=True, data_dir=data_dir)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:600].reshape(600, -1) / 255.0, y[:600], epochs=3, batch_size=64,
                        validation_split=0.2, verbose=0)
    fig, ax = plt.subplots()
    ax.plot(history.history["accuracy"], label="training")
    ax.plot(history.history["val_accuracy"], label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy")
    ax.legend()
    check("02.mnist_curves", curves_fig=fig, history=history)
    assert "[02.mnist_curves] correct" in capsys.readouterr().out
    ax.lines[1].set_ydata([0.5, 0.6, 0.7])  # the validation curve made up
    with pytest.raises(AssertionError, match="found the curve of `accuracy` but none with"):
        check("02.mnist_curves", curves_fig=fig, history=history)
    plt.close(fig)
