"""In-kernel verdicts of lesson 01: the colour verdict from both models, the consistency of
the learning-rate sweep and of the batch-size timings."""

from __future__ import annotations

from grader.checks.context import CheckFailed
from grader.checks.verdicts.registry import verdict
from grader.checks.verdicts.shapes import fraction, history, keyed, positive

#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
LEARNING_RATES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
SWEEP_EPOCHS = {"full": 10, "fast": 2}
BATCH_SIZES = (4, 16, 32, 256, 1024)
#: Batch size 4 may not take less than 1/SLOWEST_RATIO of batch size 1024's seconds per
#: epoch. On an idle machine it is several times slower, but with 800 images the epoch time
#: is mostly fixed cost: at load average 12 the grader timed 3.74 s (batch 4) and 3.66 s
#: (1024), and a seed's honest timings once failed a plain "slower than" test.
SLOWEST_RATIO = 2.0


@verdict("colors_help")
def colors_help(ctx, color_model, model) -> bool:
    """Whether the colour MLP beats the grayscale one on this mode's test split.

    Both accuracies are computed here, from the models: ``color_model`` on flattened RGB
    vectors (3,072 values), ``model`` on flattened grayscale vectors (1,024 values).
    """
    from grader.checks.context import model_accuracy, require_model

    color = model_accuracy(require_model(color_model, "color_model"), ctx, inputs="flat")
    gray = model_accuracy(require_model(model, "model"), ctx, inputs="gray_flat")
    return bool(color > gray)


def lr_sweep_values(ctx, lr_results, lr_histories) -> dict[float, float]:
    """Exercise 1.b's results by rate, once each is the best validation accuracy of its history.

    A value taken from the training accuracy (or any other series) differs from the best of
    ``val_accuracy`` and is named.
    """
    results = keyed(lr_results, "lr_results", LEARNING_RATES)
    histories = keyed(lr_histories, "lr_histories", LEARNING_RATES)
    epochs = SWEEP_EPOCHS[ctx.mode]
    values = {}
    for rate in LEARNING_RATES:
        best = fraction(results[rate], f"lr_results[{rate:g}]")
        curve = history(histories[rate], f"lr_histories[{rate:g}]",
                        epochs=epochs)["val_accuracy"]
        if abs(best - max(curve)) > 1e-6:
            raise CheckFailed(f"lr_results[{rate:g}] = {best:.4f} is not the best validation"
                              f" accuracy of lr_histories[{rate:g}] ({max(curve):.4f}): store"
                              " max(history.history['val_accuracy']) of each run, not a"
                              " training figure")
        values[rate] = best
    return values


@verdict("lesson01_lr_sweep")
def lr_sweep(ctx, lr_results, lr_histories) -> str:
    """Exercise 1.b in the kernel: shape and consistency with the histories."""
    lr_sweep_values(ctx, lr_results, lr_histories)
    return (f"{len(LEARNING_RATES)} learning rates, each the best validation accuracy of its"
            f" {SWEEP_EPOCHS[ctx.mode]}-epoch history")


@verdict("lesson01_batch_timing")
def batch_timing(ctx, batch_seconds) -> str:
    """Exercise 1.c in the kernel: a positive time per batch size, tiny batches not faster."""
    seconds = keyed(batch_seconds, "batch_seconds", BATCH_SIZES)
    for size in BATCH_SIZES:
        positive(seconds[size], f"batch_seconds[{size}]", upper=3600)
    if seconds[BATCH_SIZES[0]] * SLOWEST_RATIO < seconds[BATCH_SIZES[-1]]:
        raise CheckFailed(
            f"batch size {BATCH_SIZES[0]} took {seconds[BATCH_SIZES[0]]:.3g} s per epoch and"
            f" batch size {BATCH_SIZES[-1]} {seconds[BATCH_SIZES[-1]]:.3g} s: an epoch of tiny"
            " batches makes hundreds of times more weight updates and is never much faster."
            " Time each run with training.EpochTimer"
        )
    return f"seconds per epoch for {len(BATCH_SIZES)} batch sizes"
