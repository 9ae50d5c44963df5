"""References for lesson 02: the re-runs of Exercise 2.6's architectures.

Exercise 2.1 asks for the one-hot row of a label stated in the exercise, so its answer is the
same in every data mode and the rubric stores its digest (``answer_sha256``). The confidence
statistics and the epochs table are decided in full by their in-kernel verdicts
(:mod:`grader.checks.verdicts.lesson02`, from the student's model).
"""

from __future__ import annotations

from grader.checks.experiments import (
    confirm_accuracy,
    train_and_validate,
)
from grader.checks.references.registry import reference
from grader.checks.speculation import ahead, plan
from grader.checks.verdicts import lesson02 as verdicts
from grader.checks.verdicts.lesson02 import (  # noqa: F401 - the lesson constants, re-exported
    CONFIDENCE_KEYS,
    FASHION_EPOCHS,
    MAX_ARCH_LAYERS,
    MAX_ARCH_UNITS,
    STATISTIC_TOLERANCE,
    confidence_statistics,
    parse_architecture,
)

# ----------------------------------------------------------------------------------------
# Experiments of Exercise 2.6: shape, consistency, and a check against the model itself
# ----------------------------------------------------------------------------------------

#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
BATCH_SIZE = 128
ARCH_EPOCHS = {"full": 5, "fast": 1}
#: How far an architecture's re-run may land (bench/results/rerun_tolerance.md).
ARCH_TOLERANCE = {"full": 0.04, "fast": 0.08}
#: How many of the reported architectures the grader re-runs, chosen among all of them.
ARCH_RERUNS = {"full": 1, "fast": 2}


@reference("lesson02_fashion_architectures")
def fashion_architectures(ctx, fashion_architectures) -> str:
    """Question 3: best validation accuracy of at least three other architectures."""
    choice = _arch_choice(ctx, fashion_architectures)
    message = f"{len(fashion_architectures)} architectures"
    return confirm_accuracy(
        ctx, message, **choice, describe=lambda key: f"architecture {key}",
        reported={key: float(value) for key, value in fashion_architectures.items()},
        tolerance=ARCH_TOLERANCE[ctx.mode],
        run=lambda key, seed: rerun_architecture_key(ctx, key, seed),
        advice="Store the best validation accuracy of your own run of each architecture")


def _arch_choice(ctx, fashion_architectures) -> dict:
    """Question 3's shape checks, then among which keys, how many and under which salt its
    re-runs are chosen (the check and the plan run on the early export share it)."""
    verdicts.fashion_architectures(ctx, fashion_architectures)
    return {"options": sorted(fashion_architectures, key=str), "count": ARCH_RERUNS[ctx.mode],
            "salt": "fashion_architectures"}


@ahead
def rerun_architecture_key(ctx, key: str, seed: int) -> float:
    """:func:`rerun_architecture` of the architecture a key of the table names."""
    return rerun_architecture(ctx, parse_architecture(key), seed)


plan("lesson02_fashion_architectures", rerun_architecture_key, _arch_choice,
     needs=("fashion_architectures",))


def rerun_architecture(ctx, hidden: list[int], seed: int) -> float:
    """The grader's run of one architecture: best validation accuracy after ARCH_EPOCHS."""
    import keras

    from helpers.data import flatten, scale, train_val_split

    images, labels = ctx.raw_train_split("fashion_mnist")
    x_fit, x_val, y_fit, y_val = train_val_split(scale(flatten(images)), labels,
                                                 val_fraction=0.2, seed=seed % 2**31)

    def build():
        layers = [keras.Input(shape=(784,))]
        layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
        layers.append(keras.layers.Dense(10, activation="softmax"))
        return keras.Sequential(layers)

    run, _ = train_and_validate(build, x_fit, y_fit, x_val, y_val, epochs=ARCH_EPOCHS[ctx.mode],
                                batch_size=BATCH_SIZE, seed=seed)
    return max(run["val_accuracy"])


def RERUN_CASES():  # noqa: N802 - read by bench/rerun_tolerance.py
    """Re-runs to calibrate: the solution's three architectures."""
    return [(f"lesson02 architecture {'-'.join(map(str, h))}",
             lambda c, s, h=h: rerun_architecture(c, h, s), "fashion_mnist",
             lambda m: ARCH_TOLERANCE[m]) for h in ([64], [512], [256, 128, 64, 32])]
