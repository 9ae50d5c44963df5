"""Every plot helper renders to a non-empty PNG under Agg and validates its input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import plotting

RNG = np.random.default_rng(0)
NAMES = [f"class {i}" for i in range(10)]
HIST = {"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.85],
        "accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.45, 0.55, 0.6],
        "learning_rate": [1e-2, 1e-2, 5e-3]}


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _assert_drawn(fig: Figure) -> None:
    from PIL import Image

    png = _png_bytes(fig)
    assert png.startswith(b"\x89PNG")
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert pixels.std() > 1.0, "the figure is blank"


CASES = {
    "image_grid_rgb": lambda: plotting.image_grid(
        RNG.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), RNG.integers(0, 10, (8, 1)), NAMES),
    "image_grid_predictions": lambda: plotting.image_grid(
        RNG.random((6, 784)), np.arange(6), NAMES, predicted=np.array([0, 1, 2, 0, 0, 0])),
    "vector_strip": lambda: plotting.vector_strip(RNG.random(1024), "one image"),
    "learning_curves": lambda: plotting.learning_curves(HIST),
    "learning_curves_several": lambda: plotting.learning_curves({"a": HIST, "b": HIST}, ["loss"]),
    "compare_histories": lambda: plotting.compare_histories({"lr=0.1": HIST, "lr=0.01": HIST}),
    "confusion_heatmap": lambda: plotting.confusion_heatmap(
        RNG.integers(0, 10, 200), RNG.integers(0, 10, 200), NAMES),
    "probability_bars": lambda: plotting.probability_bars(
        np.full(10, 0.1), RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8), NAMES, 3),
    "sweep_plot": lambda: plotting.sweep_plot([1e-4, 1e-3, 1e-2], [0.3, 0.4, 0.35],
                                              xlabel="learning rate", ylabel="val acc", log_x=True),
    "sweep_plot_categories": lambda: plotting.sweep_plot(["relu", "tanh"], [0.6, 0.5],
                                                         xlabel="activation", ylabel="val acc"),
    "batch_size_tradeoff": lambda: plotting.batch_size_tradeoff([4, 32, 1024], [9.0, 1.5, 0.3],
                                                                [0.40, 0.42, 0.35]),
    "learning_rate_curve": lambda: plotting.learning_rate_curve(HIST),
}


def _drawn_epoch_ticks(fig: Figure) -> list[float]:
    _png_bytes(fig)                                             # place the ticks
    return [t for ax in fig.axes if ax.get_xlabel() == "epoch"
            for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]


def test_epoch_axes_show_whole_epochs_only():
    short = {"loss": [1.0, 0.8], "val_loss": [1.1, 0.9], "learning_rate": [1e-2, 5e-3]}
    figures = [plotting.learning_curves(short, ["loss"]),
               plotting.compare_histories({"a": short, "b": short}, metric="loss"),
               plotting.learning_rate_curve(short)]
    for fig in figures:
        ticks = _drawn_epoch_ticks(fig)
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_runs_of_one_epoch_are_compared_as_bars_not_dots():
    runs = {"relu": {"val_accuracy": [0.31]}, "tanh": {"val_accuracy": [0.27]},
            "sigmoid": {"val_accuracy": [0.10]}}
    fig = plotting.compare_histories(runs, metric="val_accuracy")
    ax = fig.axes[0]
    assert [round(bar.get_height(), 2) for bar in ax.patches] == [0.31, 0.27, 0.10]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "tanh", "sigmoid"]
    assert not ax.lines
    _assert_drawn(fig)


def test_legends_sit_beside_the_curves():
    runs = {f"batch {b}": HIST for b in (4, 16, 32, 256, 1024)}
    for fig in (plotting.learning_curves(runs, ["loss", "accuracy"]),
                plotting.compare_histories(runs, metric="loss")):
        _png_bytes(fig)
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert len(legends) == 1
        box = legends[0].get_window_extent()
        for ax in fig.axes:
            assert box.x0 >= ax.get_window_extent().x1 - 1     # right of every panel


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_renders_non_empty_png(name):
    fig = CASES[name]()
    assert isinstance(fig, Figure)
    _assert_drawn(fig)


def test_plots_accept_keras_history_objects():
    class FakeHistory:  # the one attribute plotting reads from keras.callbacks.History
        history = HIST

    _assert_drawn(plotting.learning_curves(FakeHistory()))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: plotting.probability_bars(np.array([2.0, -1.0] + [0.0] * 8),
                                           np.zeros((4, 4)), NAMES), "expected probabilities"),
        (lambda: plotting.probability_bars(np.full(3, 1 / 3), np.zeros((4, 4)), NAMES),
         "expected 10 probabilities"),
        (lambda: plotting.image_grid(np.zeros((2, 10)), [0, 1], NAMES), "square images"),
        (lambda: plotting.vector_strip(np.zeros((2, 2))), "one flattened image"),
        (lambda: plotting.learning_curves({"loss": [1.0]}, ["accuracy"]), "at least one"),
        (lambda: plotting.learning_rate_curve({"loss": [1.0]}), "learning_rate"),
        (lambda: plotting.sweep_plot([1, 2], [0.1], xlabel="x", ylabel="y"), "as many scores"),
        (lambda: plotting.confusion_heatmap([0, 1], [0], NAMES), "as many predictions"),
        (lambda: plotting.learning_curves(42), "keras History"),
    ],
)
def test_plot_helpers_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_returned_figure_is_drawn_in_a_real_kernel(tmp_path):
    """Jupyter shows the Figure a cell returns as a PNG, without importing pyplot."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\nfrom helpers import plotting\n"
        "plotting.vector_strip(np.linspace(0, 1, 64), 'strip')")]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert any("image/png" in out.get("data", {}) for out in outputs), outputs


# --- A look inside a trained CNN, on a real model trained on real CIFAR-10 images -------------

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


@pytest.fixture(scope="module")
def trained_cnn(data_dir):
    """A small CNN trained for 2 epochs on 2,000 real CIFAR-10 images, and 300 test images."""
    import keras

    from helpers import data

    (x_train, y_train), (x_test, y_test) = data.load_dataset("cifar10", fast=True,
                                                             data_dir=data_dir)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        keras.layers.Conv2D(8, (3, 3), activation="relu", name="conv_a"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(12, (3, 3), activation="relu", name="conv_b"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train[:2000] / 255.0, y_train[:2000], epochs=2, batch_size=64, verbose=0)
    return model, (x_test[:300] / 255.0).astype("float32"), y_test[:300]


def _shown(fig: Figure) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def test_show_filters_draws_every_kernel_of_the_trained_layer(trained_cnn):
    model, _, _ = trained_cnn
    kernel = model.get_layer("conv_a").get_weights()[0]          # (3, 3, 3, 8)
    fig = plotting.show_filters(model, "conv_a")
    shown = _shown(fig)
    assert len(shown) == 8 and all(img.shape == (3, 3) for img in shown)   # grey by default
    for k, img in enumerate(shown):               # the kernel's channel mean, on its own scale
        own = kernel[..., k].mean(axis=-1)
        np.testing.assert_allclose(img, (own - own.min()) / (own.max() - own.min()), atol=1e-6)
    assert all(ax.images[0].get_cmap().name == "gray" for ax in fig.axes if ax.images)
    colour = _shown(plotting.show_filters(model, "conv_a", color=True))
    assert all(img.shape == (3, 3, 3) for img in colour)
    own = kernel[..., 0]
    np.testing.assert_allclose(colour[0], (own - own.min()) / (own.max() - own.min()), atol=1e-6)
    second = plotting.show_filters(model, 2)                     # conv_b: 8 input channels
    assert len(_shown(second)) == 12 and _shown(second)[0].shape == (3, 3)
    _assert_drawn(fig)


def test_show_feature_maps_shows_the_layer_output_for_the_image(trained_cnn):
    import keras

    model, x_test, _ = trained_cnn
    fig = plotting.show_feature_maps(model, x_test[0], "conv_a")
    shown = _shown(fig)
    np.testing.assert_allclose(shown[0], x_test[0])              # the input first
    direct = keras.ops.convert_to_numpy(model.get_layer("conv_a")(x_test[:1]))[0]
    assert len(shown) == 1 + 8
    for k, img in enumerate(shown[1:]):
        np.testing.assert_allclose(img, direct[..., k], rtol=1e-5, atol=1e-5)
    deeper = plotting.feature_maps(model, x_test[:1], "conv_b")  # a batch of one is accepted
    assert deeper.shape == (13, 13, 12)
    _assert_drawn(fig)


def test_show_mistakes_picks_the_most_confident_wrong_predictions(trained_cnn):
    model, x_test, y_test = trained_cnn
    probs = model.predict(x_test, verbose=0)
    guess, true = probs.argmax(axis=1), y_test[:, 0]
    picked = plotting.confident_mistakes(probs, y_test, 6)
    assert len(picked) == 6 and all(guess[picked] != true[picked])
    confidence = probs[picked, guess[picked]]
    assert list(confidence) == sorted(confidence, reverse=True)
    others = np.setdiff1d(np.flatnonzero(guess != true), picked)
    assert probs[others, guess[others]].max() <= confidence.min()
    fig = plotting.show_mistakes(model, x_test, y_test, CIFAR_NAMES, n=6)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    first = picked[0]
    assert titles[0] == (f"true: {CIFAR_NAMES[true[first]]}\nguess: {CIFAR_NAMES[guess[first]]}"
                         f" ({probs[first, guess[first]]:.0%})")
    assert len(titles) == 6
    one_hot = np.eye(10)[true]
    assert list(plotting.confident_mistakes(probs, one_hot, 6)) == list(picked)
    _assert_drawn(fig)


@pytest.mark.parametrize(("layer", "match"), [
    ("flatten", "expected a Conv2D layer.*conv_a"),
    ("nope", "no layer named 'nope'"),
    (99, "outside the model's"),
])
def test_the_inside_views_name_the_conv_layers_when_given_another(trained_cnn, layer, match):
    model, _, _ = trained_cnn
    if layer == "flatten":
        layer = model.layers[3].name
    with pytest.raises(ValueError, match=match):
        plotting.show_filters(model, layer)


def test_feature_maps_reject_an_image_of_the_wrong_shape(trained_cnn):
    model, x_test, _ = trained_cnn
    with pytest.raises(ValueError, match=r"expected one image of shape \(32, 32, 3\)"):
        plotting.feature_maps(model, x_test[:2], "conv_a")
