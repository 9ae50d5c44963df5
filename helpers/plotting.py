"""Figures for the lessons.

Every function builds a :class:`matplotlib.figure.Figure` without touching pyplot's global
state and returns it; nothing calls ``plt.show()``. In a notebook, leave the figure as the
last expression of the cell (or call ``display(fig)``) and Jupyter draws it once. This
also works headless (Agg backend), which is how the tests and the grader run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _register_notebook_display() -> None:
    """Let Jupyter and Colab draw a returned Figure even if pyplot was never imported.

    IPython only learns to show Figure objects as PNG when pyplot's inline backend loads;
    these helpers never touch pyplot, so register the PNG formatter ourselves.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to register
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import print_figure

    shell.display_formatter.formatters["image/png"].for_type(
        Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight")
    )


_register_notebook_display()


def history_dict(history) -> dict[str, list[float]]:
    """Return ``history.history`` for a Keras ``History`` or pass a dict through."""
    if isinstance(history, dict):
        return history
    if hasattr(history, "history") and isinstance(history.history, dict):
        return history.history
    raise ValueError(
        f"expected a keras History (what model.fit returns) or a dict, got {type(history).__name__}"
    )


def _labels_1d(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] > 1:  # one-hot or probabilities
        return arr.argmax(axis=1)
    return arr.reshape(len(arr), -1)[:, 0] if arr.ndim else arr


def image_grid(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    *,
    n: int = 25,
    ncols: int = 5,
    predicted: Sequence[int] | np.ndarray | None = None,
) -> Figure:
    """Show the first ``n`` images with their class names.

    With ``predicted`` each title shows the guess and turns red when it is wrong.
    Images may be ``(n, h, w)``, ``(n, h, w, 3)`` or flattened ``(n, h*w)`` squares.
    """
    imgs = np.asarray(images)
    if imgs.ndim == 2:
        side = int(round(np.sqrt(imgs.shape[1])))
        if side * side != imgs.shape[1]:
            raise ValueError(
                f"expected flattened square images, got rows of length {imgs.shape[1]}"
            )
        imgs = imgs.reshape(-1, side, side)
    if imgs.ndim not in (3, 4):
        raise ValueError(f"expected images of shape (n, h, w[, 3]), got {np.shape(images)}")
    true = _labels_1d(labels)
    n = min(n, len(imgs))
    if n < 1:
        raise ValueError("expected at least one image, got none")
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(2.0 * ncols, 2.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    guesses = None if predicted is None else _labels_1d(predicted)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        img = imgs[i]
        if img.dtype != np.uint8 and img.max() > 1.0:
            img = img / 255.0
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        title = class_names[int(true[i])]
        color = "black"
        if guesses is not None:
            guess = class_names[int(guesses[i])]
            title = f"{guess}\n(true: {title})"
            color = "tab:green" if guesses[i] == true[i] else "tab:red"
        ax.set_title(title, fontsize=9, color=color)
    return fig


def vector_strip(vector: np.ndarray, title: str = "") -> Figure:
    """Draw one flattened image as a thin strip of pixels (what a dense layer sees)."""
    vec = np.asarray(vector, dtype=float)
    if vec.ndim != 1:
        raise ValueError(f"expected one flattened image of shape (d,), got shape {vec.shape}")
    fig = Figure(figsize=(10, 1.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(vec.reshape(1, -1), cmap="gray", aspect="auto", interpolation="nearest")
    ax.set_yticks([])
    ax.set_xlabel(f"position in the vector (0 .. {vec.size - 1})")
    ax.set_title(title)
    return fig


def _epoch_axis(ax) -> None:
    """Label an x axis of epochs with whole numbers only (never 1.25, 1.5, ...)."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_beside(ax) -> None:
    """A legend to the right of the axes, where it cannot cover a curve."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _as_histories(histories) -> dict[str, dict[str, list[float]]]:
    if isinstance(histories, Mapping) and histories and all(
        not isinstance(v, (list, tuple, np.ndarray)) for v in histories.values()
    ):
        return {str(k): history_dict(v) for k, v in histories.items()}
    return {"": history_dict(histories)}


def learning_curves(histories, metrics: Sequence[str] = ("loss", "accuracy")) -> Figure:
    """Training and validation curves, one panel per metric.

    ``histories`` is a Keras ``History``, its ``.history`` dict, or a mapping from a label
    to either (several runs in one figure).
    """
    runs = _as_histories(histories)
    metrics = [m for m in metrics if any(m in h for h in runs.values())]
    if not metrics:
        raise ValueError("expected the histories to contain at least one of the metrics asked for")
    fig = Figure(figsize=(5.5 * len(metrics) + 1.5, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=False):
        for i, (label, hist) in enumerate(runs.items()):
            color = f"C{i % 10}"
            prefix = f"{label} " if label else ""
            if metric in hist:
                epochs = np.arange(1, len(hist[metric]) + 1)
                ax.plot(epochs, hist[metric], color=color, label=f"{prefix}train")
            if f"val_{metric}" in hist:
                epochs = np.arange(1, len(hist[f"val_{metric}"]) + 1)
                ax.plot(epochs, hist[f"val_{metric}"], color=color, linestyle="--",
                        label=f"{prefix}validation")
        _epoch_axis(ax)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    _legend_beside(axes[-1])  # every panel has the same lines: one legend, beside the last
    return fig


def compare_histories(histories: Mapping, metric: str = "val_loss", title: str = "") -> Figure:
    """One curve per run for a single metric: learning rates, dropout rates, activations.

    When every run lasted a single epoch there are no curves to draw, so each run becomes
    one bar (its value after that epoch).
    """
    runs = {label: hist[metric] for label, hist in _as_histories(histories).items()
            if metric in hist}
    if not runs:
        raise ValueError(f"expected histories that recorded {metric!r}, found none")
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    if all(len(values) == 1 for values in runs.values()):
        bars = ax.bar(list(runs), [values[0] for values in runs.values()],
                      color=[f"C{i % 10}" for i in range(len(runs))])
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
        ax.set_xlabel("run (one epoch each)")
        ax.tick_params(axis="x", labelrotation=30)
    else:
        for label, values in runs.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
        _epoch_axis(ax)
        _legend_beside(ax)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def confusion_heatmap(
    y_true, y_pred, class_names: Sequence[str], *, normalize: bool = False
) -> Figure:
    """Confusion matrix as a labelled heatmap (rows: true class, columns: predicted)."""
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    true, pred = _labels_1d(y_true), _labels_1d(y_pred)
    if len(true) != len(pred):
        raise ValueError(f"expected as many predictions as labels, got {len(pred)} and {len(true)}")
    cm = confusion_matrix(true, pred, labels=np.arange(len(class_names)))
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False,
                xticklabels=class_names, yticklabels=class_names, ax=ax)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    return fig


def probability_bars(
    probabilities: np.ndarray,
    image: np.ndarray,
    class_names: Sequence[str],
    true_label: int | None = None,
) -> Figure:
    """The model's class probabilities for one image, beside the image itself."""
    probs = np.asarray(probabilities, dtype=float).ravel()
    if probs.size != len(class_names):
        raise ValueError(f"expected {len(class_names)} probabilities, got {probs.size}")
    if probs.min() < -1e-6 or abs(probs.sum() - 1.0) > 1e-3:
        raise ValueError(
            "expected probabilities (non-negative, summing to 1; use a softmax output),"
            f" got values in [{probs.min():.3g}, {probs.max():.3g}] summing to {probs.sum():.3g}"
        )
    img = np.asarray(image)
    if img.ndim == 1:
        side = int(round(np.sqrt(img.size)))
        img = img.reshape(side, side)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_bar, ax_img = fig.subplots(1, 2, width_ratios=[2, 1])
    colors = ["tab:blue"] * len(class_names)
    guess = int(probs.argmax())
    colors[guess] = "tab:orange"
    ax_bar.bar(range(len(class_names)), probs, color=colors)
    ax_bar.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax_bar.set_ylim(0, 1)
    ax_bar.set_ylabel("probability")
    ax_bar.set_title(f"guess: {class_names[guess]} ({probs[guess]:.0%})")
    if img.dtype != np.uint8 and img.max() > 1.0:
        img = img / 255.0
    ax_img.imshow(img, cmap="gray" if img.ndim == 2 else None)
    ax_img.set_axis_off()
    if true_label is not None:
        ax_img.set_title(f"true class: {class_names[int(true_label)]}")
    return fig


def sweep_plot(
    values: Sequence, scores: Sequence[float], *, xlabel: str, ylabel: str,
    log_x: bool = False, title: str = "",
) -> Figure:
    """A score against a hyperparameter (learning rate, dropout rate, ...)."""
    if len(values) != len(scores):
        raise ValueError(f"expected as many scores as values, got {len(scores)} and {len(values)}")
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    numeric = all(isinstance(v, (int, float, np.number)) for v in values)
    if numeric:
        ax.plot(values, scores, marker="o")
        if log_x:
            ax.set_xscale("log")
    else:
        ax.bar([str(v) for v in values], scores)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def batch_size_tradeoff(
    batch_sizes: Sequence[int], seconds_per_epoch: Sequence[float], accuracies: Sequence[float]
) -> Figure:
    """Time per epoch and validation accuracy against batch size (log scale)."""
    if not len(batch_sizes) == len(seconds_per_epoch) == len(accuracies):
        raise ValueError("expected batch_sizes, seconds_per_epoch and accuracies of equal length")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(batch_sizes, seconds_per_epoch, marker="o", color="tab:blue")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per epoch", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(batch_sizes, accuracies, marker="s", color="tab:orange")
    ax2.set_ylabel("validation accuracy", color="tab:orange")
    ax.grid(alpha=0.3)
    return fig


def learning_rate_curve(history, key: str = "learning_rate") -> Figure:
    """The learning rate used in each epoch (Keras logs it when a scheduler changes it)."""
    hist = history_dict(history) if not isinstance(history, (list, tuple, np.ndarray)) else {
        key: list(history)}
    if key not in hist:
        raise ValueError(
            f"expected the history to hold {key!r} (add a LearningRateScheduler or"
            f" ReduceLROnPlateau callback), found keys {sorted(hist)}"
        )
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(hist[key]) + 1), hist[key], marker="o", ms=3)
    ax.set_yscale("log")
    _epoch_axis(ax)
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, which="both")
    return fig


# --- A look inside a trained convolutional network -------------------------------------------


def _conv_layer(model, layer):
    """The ``Conv2D`` layer of ``model`` given by name, index or the layer itself."""
    import keras

    convs = [lay.name for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]
    if isinstance(layer, str):
        try:
            found = model.get_layer(layer)
        except ValueError:
            raise ValueError(f"the model has no layer named {layer!r}; its Conv2D layers are"
                             f" {convs}") from None
    elif isinstance(layer, int) and not isinstance(layer, bool):
        if not -len(model.layers) <= layer < len(model.layers):
            raise ValueError(f"layer index {layer} is outside the model's {len(model.layers)}"
                             f" layers; its Conv2D layers are {convs}")
        found = model.layers[layer]
    else:
        found = layer
    if not isinstance(found, keras.layers.Conv2D):
        raise ValueError(f"expected a Conv2D layer, got {getattr(found, 'name', found)!r}"
                         f" ({type(found).__name__}); the model's Conv2D layers are {convs}")
    return found


def _tile(fig: Figure, count: int, ncols: int):
    ncols = max(1, min(ncols, count))
    nrows = int(np.ceil(count / ncols))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    return axes[:count]


def filter_images(model, layer, *, color: bool = False) -> np.ndarray:
    """The kernels of a ``Conv2D`` layer as images, shape ``(filters, height, width[, 3])``.

    By default every kernel is averaged over its input channels, a grey image. With
    ``color=True`` a kernel over 3 input channels (the first layer of a colour model) stays a
    colour image. Each kernel is min-max scaled to [0, 1] on its own, so its pattern shows
    whatever its size.
    """
    kernel = np.asarray(_conv_layer(model, layer).get_weights()[0], dtype=float)
    kernel = np.moveaxis(kernel, -1, 0)                     # (filters, h, w, in)
    if not (color and kernel.shape[-1] == 3):
        kernel = kernel.mean(axis=-1)
    axes = tuple(range(1, kernel.ndim))
    low = kernel.min(axis=axes, keepdims=True)
    span = kernel.max(axis=axes, keepdims=True) - low
    return (kernel - low) / np.where(span > 0, span, 1.0)


def show_filters(model, layer, *, ncols: int = 8, color: bool = False) -> Figure:
    """Every kernel of a ``Conv2D`` layer as a small grey image (see :func:`filter_images`).

    ``layer`` is the layer's name, its index in ``model.layers`` or the layer itself;
    ``color=True`` shows the kernels of a first layer over RGB in colour.
    """
    conv = _conv_layer(model, layer)
    images = filter_images(model, conv, color=color)
    fig = Figure(figsize=(1.2 * min(ncols, len(images)),
                          1.3 * int(np.ceil(len(images) / ncols)) + 0.5), layout="constrained")
    for i, (ax, img) in enumerate(zip(_tile(fig, len(images), ncols), images, strict=True)):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(str(i), fontsize=8)
    h, w = images.shape[1:3]
    fig.suptitle(f"{conv.name}: {len(images)} filters of {h}x{w}, each on its own scale\n"
                 + ("RGB" if images.ndim == 4 else "mean over input channels, dark = low, light = high"),
                 fontsize=9)
    return fig


def feature_maps(model, image: np.ndarray, layer) -> np.ndarray:
    """The output of a ``Conv2D`` layer for one image, shape ``(height, width, filters)``.

    ``image`` is prepared like the model's training data, e.g. ``(32, 32, 3)`` in [0, 1].
    """
    import keras

    conv = _conv_layer(model, layer)
    img = np.asarray(image, dtype="float32")
    expected = tuple(model.inputs[0].shape[1:])
    if img.shape == (1, *expected):
        img = img[0]
    if img.shape != expected:
        raise ValueError(f"expected one image of shape {expected} (prepared like the training"
                         f" data), got {np.shape(image)}")
    probe = keras.Model(model.inputs, conv.output)
    return np.asarray(keras.ops.convert_to_numpy(probe(img[None], training=False)))[0]


def show_feature_maps(model, image: np.ndarray, layer, *, max_maps: int = 32,
                      ncols: int = 8) -> Figure:
    """What the filters of a ``Conv2D`` layer respond to in one image (up to ``max_maps``)."""
    conv = _conv_layer(model, layer)
    maps = feature_maps(model, image, conv)
    count = min(max_maps, maps.shape[-1])
    fig = Figure(figsize=(1.4 * min(ncols, count + 1),
                          1.5 * int(np.ceil((count + 1) / ncols)) + 0.5), layout="constrained")
    axes = _tile(fig, count + 1, ncols)
    img = np.asarray(image, dtype=float).reshape(model.inputs[0].shape[1:])
    axes[0].imshow(img if img.max() <= 1.0 else img / 255.0,
                   cmap="gray" if img.shape[-1] == 1 else None)
    axes[0].set_title("input", fontsize=8)
    for i, ax in enumerate(axes[1:]):
        ax.imshow(maps[..., i], cmap="viridis")
        ax.set_title(str(i), fontsize=8)
    fig.suptitle(f"{conv.name}: {count} of {maps.shape[-1]} feature maps, "
                 f"{maps.shape[0]}x{maps.shape[1]} each (bright = strong response)")
    return fig


def confident_mistakes(probabilities: np.ndarray, labels, n: int) -> np.ndarray:
    """Indices of the ``n`` wrong predictions with the highest predicted probability."""
    probs = np.asarray(probabilities, dtype=float)
    true = _labels_1d(labels)
    if probs.ndim != 2 or len(probs) != len(true):
        raise ValueError(f"expected one row of probabilities per label, got {probs.shape}"
                         f" for {len(true)} labels")
    guess = probs.argmax(axis=1)
    wrong = np.flatnonzero(guess != true)
    order = np.argsort(-probs[wrong, guess[wrong]], kind="stable")
    return wrong[order[:n]]


def show_mistakes(model, x: np.ndarray, y, class_names: Sequence[str], n: int = 12, *,
                  ncols: int = 6) -> Figure:
    """The ``n`` most confident wrong predictions on ``x``: true class, guess, probability.

    ``y`` may be integer labels (shape ``(n,)`` or ``(n, 1)``) or one-hot rows.
    """
    import keras

    probs = np.asarray(keras.ops.convert_to_numpy(model.predict(x, batch_size=512, verbose=0)))
    picked = confident_mistakes(probs, y, n)
    true = _labels_1d(y)
    fig = Figure(figsize=(1.9 * min(ncols, max(len(picked), 1)),
                          2.3 * max(1, int(np.ceil(len(picked) / ncols)))), layout="constrained")
    if len(picked) == 0:
        fig.text(0.5, 0.5, f"no wrong predictions among {len(x)} images", ha="center")
        return fig
    for ax, i in zip(_tile(fig, len(picked), ncols), picked, strict=True):
        img = np.asarray(x[i], dtype=float)
        ax.imshow(img if img.max() <= 1.0 else img / 255.0,
                  cmap="gray" if img.ndim == 2 or img.shape[-1] == 1 else None)
        guess = int(probs[i].argmax())
        ax.set_title(f"true: {class_names[int(true[i])]}\nguess: {class_names[guess]}"
                     f" ({probs[i, guess]:.0%})", fontsize=8, color="tab:red")
    fig.suptitle(f"the {len(picked)} most confident mistakes among {len(x):,} images")
    return fig
