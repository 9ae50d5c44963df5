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
