"""In-kernel verdicts of lesson 04: ``prepare_dataset``'s invariants on random images, the
compile (the loss must fit one-hot labels), the predictions, accuracy and confusion matrix
recomputed from the student's own model, the tuning tables' choices, the best model's choice
(on the validation split, not the test split), and saving and loading."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.checks.context import CheckFailed, predict_scores
from grader.checks.verdicts import shapes
from grader.checks.verdicts.registry import FunctionCase, verdict
from grader.checks.verdicts.shapes import fraction, keyed, read_compile

#: How many random images ``prepare_dataset`` is given.
PREPARE_SAMPLES = 50
NUM_CLASSES = 10
#: The lesson's locked constants, per mode (tests compare them with the solution notebook).
TUNE_EPOCHS = {"full": 5, "fast": 1}
DROPOUT_RATES = (0.15, 0.3, 0.45, 0.6, 0.75)
OPTIMIZERS = ("sgd", "rmsprop", "adam")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "selu", "leaky_relu")
CANDIDATES = ("intro", "dropout", "tuned")
#: Epochs of the intro model's training (Exercise 4.4).
INTRO_EPOCHS = {"full": 10, "fast": 3}
#: The intro model's compile (Exercise 4.3): Adam at this rate, categorical cross-entropy.
INTRO_LEARNING_RATE = 0.001
#: Share of test images whose predicted class may differ from another prediction of the
#: same model (near-ties can flip between batch sizes and machines).
PREDICTION_AGREEMENT = 0.999
#: Accuracies of the candidate models recomputed on the same images with the same weights
#: agree within this (float32 summation order only).
EVALUATION_TOLERANCE = 0.002


def _prepare_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """Random uint8 images (all different) and CIFAR-style labels of shape ``(n, 1)``."""
    images = rng.integers(0, 256, size=(PREPARE_SAMPLES, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=(PREPARE_SAMPLES, 1)).astype(np.uint8)
    return {"images": images, "labels": labels}


def _val_sizes(n: int) -> set[int]:
    return {math.floor(0.2 * n), math.ceil(0.2 * n)}


def _match_rows(x: np.ndarray, images: np.ndarray, part: str) -> tuple[list[int], str | None]:
    """Index of the input image each returned image came from (``x`` == image / 255)."""
    lookup: dict[bytes, list[int]] = {}
    for i, img in enumerate(images):
        lookup.setdefault(img.tobytes(), []).append(i)
    scaled = x.astype(np.float64) * 255.0
    codes = np.rint(scaled)
    if np.max(np.abs(scaled - codes)) > 1e-3 or codes.min() < 0 or codes.max() > 255:
        return [], f"the values in {part} are not the input pixels divided by 255"
    found: list[int] = []
    for row, code in enumerate(codes.astype(np.uint8)):
        candidates = lookup.get(code.tobytes())
        if not candidates:
            return [], (f"image {row} of {part} is not one of the input images divided by 255"
                        " (were the images changed, or the axes reordered?)")
        found.append(candidates.pop(0) if len(candidates) > 1 else candidates[0])
    return found, None


def _compare_prepare(found: Any, expected: Any, inputs: dict[str, Any]) -> str | None:
    """Invariants of a correct ``prepare_dataset`` (any shuffle is accepted)."""
    images = np.asarray(inputs["images"])
    labels = np.asarray(inputs["labels"]).reshape(-1).astype(np.int64)
    n = len(images)
    if not isinstance(found, (tuple, list)) or len(found) != 4:
        what = f"{len(found)} values" if isinstance(found, (tuple, list)) else type(found).__name__
        return f"expected a tuple (x_train, x_val, y_train, y_val), got {what}"
    try:
        x_train, x_val, y_train, y_val = (np.asarray(a) for a in found)
    except Exception as exc:  # noqa: BLE001 - the student's objects may be anything
        return f"could not read the returned values as arrays ({exc})"
    if len(x_val) not in _val_sizes(n) or len(x_train) + len(x_val) != n:
        return (f"expected an 80/20 split of {n} images ({n - math.ceil(0.2 * n)} training,"
                f" {math.ceil(0.2 * n)} validation), got {len(x_train)} and {len(x_val)}")
    for name, x in (("x_train", x_train), ("x_val", x_val)):
        if x.shape[1:] != images.shape[1:]:
            return f"expected {name} of shape (k, 32, 32, 3), got {x.shape}"
        if x.dtype != np.float32:
            return (f"expected {name} as float32, got {x.dtype}; convert with"
                    " .astype('float32') and divide by 255")
        if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or not np.all(np.isfinite(x))):
            return f"expected {name} values in [0, 1]; divide the pixels by 255"
    for name, y, x in (("y_train", y_train, x_train), ("y_val", y_val, x_val)):
        if y.shape != (len(x), NUM_CLASSES):
            return f"expected {name} of shape ({len(x)}, {NUM_CLASSES}) (one-hot), got {y.shape}"
        if not np.issubdtype(y.dtype, np.number):
            return f"expected numeric one-hot labels in {name}, got dtype {y.dtype}"
        if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            return f"expected one-hot rows in {name} (a single 1 per row, zeros elsewhere)"
    train_idx, problem = _match_rows(x_train, images, "x_train")
    if problem:
        return problem
    val_idx, problem = _match_rows(x_val, images, "x_val")
    if problem:
        return problem
    for name, idx, y in (("training", train_idx, y_train), ("validation", val_idx, y_val)):
        wrong = int(np.sum(y.argmax(axis=1) != labels[idx]))
        if wrong:
            return (f"{wrong} {name} image(s) carry another image's label: split images and"
                    " labels together, in one call")
    if set(train_idx) & set(val_idx):
        return "some images are in both the training and the validation part"
    if sorted(train_idx + val_idx) != list(range(n)):
        return "the training and validation parts together do not hold every input image once"
    return None


def _describe_prepare(inputs: dict[str, Any]) -> str:
    n = len(inputs["images"])
    return f"{n} random 32x32x3 uint8 images with labels 0-9"


PREPARE_CASE = verdict("lesson04_prepare_dataset")(
    FunctionCase(
        make_inputs=_prepare_inputs,
        reference=lambda **inputs: None,  # the invariants need no reference output
        compare=_compare_prepare,
        describe=_describe_prepare,
    )
)


def _best_key(results: dict, chosen: Any, chosen_name: str, results_name: str) -> None:
    top = max(results.values())
    match = next((k for k in results if shapes.same_key(chosen, k)), None)
    if match is None:
        raise CheckFailed(f"`{chosen_name}` = {chosen!r} is not one of the keys of"
                          f" `{results_name}`")
    if results[match] < top - 1e-9:
        raise CheckFailed(f"`{chosen_name}` = {chosen!r} does not have the highest value in"
                          f" `{results_name}`; hint: the best is the key whose validation"
                          " accuracy is the largest (a maximum, not a minimum)")


def _best_of(table: Any, name: str, keys: tuple, chosen: Any, chosen_name: str) -> None:
    found = keyed(table, name, keys)
    values = {k: fraction(found[k], f"{name}[{k!r}]") for k in keys}
    _best_key(values, chosen, chosen_name, name)


@verdict("lesson04_dropout_results")
def dropout_results_values(ctx, dropout_results, best_dropout_rate) -> str:
    """Exercise 4.9 in the kernel: an accuracy per rate, and the best rate is the best of them."""
    _best_of(dropout_results, "dropout_results", DROPOUT_RATES, best_dropout_rate,
             "best_dropout_rate")
    return f"{len(DROPOUT_RATES)} dropout rates, best {float(best_dropout_rate):g}"


@verdict("lesson04_optimizer_search")
def optimizer_search_values(ctx, search_results, best_optimizer) -> str:
    """Exercise 4.10 in the kernel: a mean accuracy per optimizer, the best one chosen."""
    _best_of(search_results, "search_results", OPTIMIZERS, best_optimizer, "best_optimizer")
    return f"{len(OPTIMIZERS)} optimizers, best {best_optimizer}"


@verdict("lesson04_activation_results")
def activation_curves(ctx, activation_results, best_dropout_rate) -> str:
    """Exercise 4.11 in the kernel: per activation, one validation accuracy per epoch."""
    found = keyed(activation_results, "activation_results", ACTIVATIONS)
    epochs = TUNE_EPOCHS[ctx.mode]
    for name in ACTIVATIONS:
        curve = found[name]
        if not isinstance(curve, (list, tuple)) or len(curve) != epochs:
            size = len(curve) if isinstance(curve, (list, tuple)) else type(curve).__name__
            raise CheckFailed(f"activation_results[{name!r}] should be the list of {epochs}"
                              f" per-epoch validation accuracies, found {size}")
        for value in curve:
            fraction(value, f"activation_results[{name!r}]")
    best_rate(best_dropout_rate)
    return f"{len(ACTIVATIONS)} activations, {epochs} epoch(s) each"


def best_rate(best_dropout_rate) -> float:
    """The entry of DROPOUT_RATES the student's ``best_dropout_rate`` names."""
    rate = next((r for r in DROPOUT_RATES if shapes.same_key(best_dropout_rate, r)), None)
    if rate is None:
        raise CheckFailed(f"`best_dropout_rate` = {best_dropout_rate!r} is not one of"
                          f" DROPOUT_RATES; run Exercise 4.9 first")
    return rate


def candidate_models(intro_model, dropout_model, tuned_model) -> dict[str, Any]:
    from grader.checks.context import require_model

    return {"intro": require_model(intro_model, "intro_model"),
            "dropout": require_model(dropout_model, "dropout_model"),
            "tuned": require_model(tuned_model, "tuned_model")}


def test_split_accuracies(ctx, models: dict[str, Any]) -> dict[str, float]:
    """Each model's accuracy on this mode's test split (images / 255)."""
    from grader.checks.context import prepare_inputs

    images, labels = ctx.raw_test_split("cifar10")
    return {name: float(np.mean(predict_scores(model, prepare_inputs(images, model, "image"))
                                .argmax(axis=1) == labels))
            for name, model in models.items()}


@verdict("lesson04_best_model_choice")
def best_model_choice(ctx, val_scores, best_model, intro_model, dropout_model,
                      tuned_model) -> str:
    """Exercise 4.12 in the kernel: ``best_model`` is the best of ``val_scores``, and
    ``val_scores`` are not the candidates' test accuracies (a choice made on the test set)."""
    from grader.checks.context import prepare_inputs, require_model

    found = keyed(val_scores, "val_scores", CANDIDATES)
    values = {c: fraction(found[c], f"val_scores[{c!r}]") for c in CANDIDATES}
    models = candidate_models(intro_model, dropout_model, tuned_model)
    chosen = require_model(best_model, "best_model")
    tested = test_split_accuracies(ctx, models)
    if all(abs(values[c] - tested[c]) <= EVALUATION_TOLERANCE for c in CANDIDATES):
        raise CheckFailed("val_scores are the candidates' accuracies on the test set: choose the"
                          " best model on the validation split (x_val, y_val); the test set"
                          " measures the chosen model once, at the end")
    top = max(values, key=values.get)
    images, _ = ctx.raw_test_split("cifar10")
    sample = prepare_inputs(images[:256], chosen, "image")
    same = np.allclose(predict_scores(chosen, sample), predict_scores(models[top], sample),
                       atol=1e-5)
    if not same:
        raise CheckFailed(f"val_scores ranks {top!r} first, but best_model does not predict"
                          f" like that model: set best_model = candidates[{top!r}]")
    return f"best_model is the {top} model, the best of val_scores"


@verdict("lesson04_intro_training")
def intro_history(ctx, intro_history, intro_model) -> str:
    """Exercise 4.4 in the kernel: a validated history of the lesson's number of epochs."""
    from grader.checks.context import require_model

    epochs = INTRO_EPOCHS[ctx.mode]
    shapes.history(intro_history, "intro_history", epochs=epochs,
                        metrics=("loss", "accuracy", "val_loss", "val_accuracy"))
    require_model(intro_model, "intro_model")
    return f"a validated history of {epochs} epochs"


@verdict("lesson04_compile")
def compile_settings(ctx, intro_model) -> str:
    """Exercise 4.3: the intro model compiled with Adam, categorical cross-entropy, accuracy.

    A model the grader loaded has no compile settings, so there the check only confirms the
    model exists; 04.intro_training checks the compile through the training history (its
    loss and accuracy are recomputed by the grader).
    """
    settings = read_compile(
        ctx, intro_model, "intro_model",
        loaded="compile settings are checked in your notebook; the grader checks their effect"
               " through the training history (04.intro_training)",
        missing="`intro_model` is not compiled: complete `compile_model` and run the cell that"
                " calls it")
    if isinstance(settings, str):
        return settings
    if settings["optimizer"] != "Adam":
        raise CheckFailed(f"expected the Adam optimizer, found {settings['optimizer']}")
    rate = settings["learning_rate"]
    if rate is None or not math.isclose(rate, INTRO_LEARNING_RATE, rel_tol=1e-5):
        raise CheckFailed("the learning rate is not the one the cell passes: compile with the"
                          " `optimizer` argument of compile_model, not a new optimizer")
    if settings["loss"] != "categorical_crossentropy":
        raise CheckFailed(f"the loss {settings['loss']!r} does not fit our labels: look at what"
                          " prepare_dataset made of them (integers or one-hot rows) and at the"
                          " last layer, then choose again from Step 5's list")
    if "accuracy" not in settings["metrics"]:
        raise CheckFailed(f"expected a metric named \"accuracy\" (so the history has the keys"
                          f" accuracy and val_accuracy), found {settings['metrics']!r}")
    return "compiled with Adam, categorical cross-entropy and a metric named accuracy"


def _test_predictions(ctx, model) -> tuple[np.ndarray, np.ndarray]:
    """The grader's predicted classes of ``model`` on this mode's test split, and the labels."""
    from grader.checks.context import prepare_inputs, require_model

    model = require_model(model, "intro_model")
    images, labels = ctx.raw_test_split("cifar10")
    scores = predict_scores(model, prepare_inputs(images, model, "image"))
    return scores.argmax(axis=1), labels


def _labels(value: Any, name: str, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == NUM_CLASSES:
        raise CheckFailed(f"`{name}` holds probabilities (shape {array.shape}): take the class"
                          " with the largest probability of each row (argmax over axis 1)")
    if array.shape != (n,):
        raise CheckFailed(f"`{name}` should hold one class per test image, shape ({n},),"
                          f" found shape {array.shape}")
    if array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= NUM_CLASSES:
        raise CheckFailed(f"`{name}` should hold class numbers 0-9 (integers)")
    return array.astype(np.int64)


@verdict("lesson04_predictions")
def predictions(ctx, predicted_labels, intro_model) -> str:
    """Exercise 4.6: the predicted class of every test image equals the grader's prediction."""
    grader_labels, _ = _test_predictions(ctx, intro_model)
    found = _labels(predicted_labels, "predicted_labels", len(grader_labels))
    agree = float(np.mean(found == grader_labels))
    if agree < PREDICTION_AGREEMENT:
        raise CheckFailed(
            f"`predicted_labels` agrees with the grader's predictions of intro_model on only"
            f" {agree:.1%} of the test images: predict x_test_ready (the test images / 255)"
            " with intro_model and take the argmax of each row")
    return f"{len(found):,} predicted classes, {agree:.1%} equal to the grader's predictions"


@verdict("lesson04_confusion")
def confusion(ctx, confusion, intro_model) -> str:
    """Exercise 4.8: the confusion matrix (rows true, columns predicted) of intro_model."""
    grader_labels, labels = _test_predictions(ctx, intro_model)
    try:
        found = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailed("`confusion` should be a 10 x 10 table of counts") from None
    if found.shape != (NUM_CLASSES, NUM_CLASSES):
        raise CheckFailed(f"`confusion` should be a 10 x 10 table, found shape {found.shape}")
    if not np.all(np.isfinite(found)) or np.any(found < 0) or np.any(found != np.rint(found)):
        raise CheckFailed("`confusion` should hold counts of images (whole numbers)")
    if int(found.sum()) != len(labels):
        raise CheckFailed(f"`confusion` counts {int(found.sum()):,} images; the test set has"
                          f" {len(labels):,}: count every test image once")
    true_counts = np.bincount(labels, minlength=NUM_CLASSES)
    if not np.array_equal(found.sum(axis=1), true_counts):
        if np.array_equal(found.sum(axis=0), true_counts):
            raise CheckFailed("`confusion` has the true classes in its columns: rows should be"
                              " the true class, columns the predicted class")
        raise CheckFailed("the rows of `confusion` do not add up to the number of test images"
                          " of each class: rows should be the true class (y_test_labels)")
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES))
    np.add.at(expected, (labels, grader_labels), 1)
    off = int(np.abs(found - expected).sum())
    if off > _confusion_slack(len(labels)):
        raise CheckFailed("`confusion` does not match the grader's confusion matrix of"
                          " intro_model on the test set: count (true class, predicted class)"
                          " pairs of y_test_labels and predicted_labels")
    return "the confusion matrix of intro_model matches the grader's"


def _confusion_slack(n_images: int) -> int:
    """How many counts a matrix may be off from the grader's (prediction near-ties)."""
    return 2 * max(1, math.ceil((1 - PREDICTION_AGREEMENT) * n_images))


@verdict("lesson04_confusion_image")
def confusion_image(ctx, figure, intro_model) -> str:
    """The student's plot of the confusion matrix: an image equal to the grader's matrix.

    The image may hold counts or each row's fractions (rows: true class, columns: predicted
    class); it is compared with the grader's confusion matrix of the exported intro_model on
    the test split, with the slack of ``04.confusion_matrix``.
    """
    grader_labels, labels = _test_predictions(ctx, intro_model)
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES))
    np.add.at(expected, (labels, grader_labels), 1)
    true_counts = expected.sum(axis=1)
    images = [image for _, image in figure.images]
    square = [image for image in images if image.shape == (NUM_CLASSES, NUM_CLASSES)]
    if not square:
        shapes = ", ".join(f"{a.shape[0]} x {a.shape[1]}" for a in images[:4]) or "none"
        raise CheckFailed(f"expected the 10 x 10 confusion matrix drawn as an image (imshow,"
                          f" matshow or a heatmap), found images of shape: {shapes}")
    slack = _confusion_slack(len(labels))
    for image in square:
        if not np.all(np.isfinite(image)):
            continue
        counts = image
        if np.allclose(image.sum(axis=1), 1, atol=1e-3):  # each row as fractions
            counts = image * true_counts[:, None]
        if np.abs(counts - expected).sum() <= slack:
            return "the image shows the grader's confusion matrix of intro_model, labelled"
        if np.abs(counts.T - expected).sum() <= slack:
            raise CheckFailed("the image shows the confusion matrix with the true classes in its"
                              " columns: rows should be the true class, columns the prediction")
    raise CheckFailed("the 10 x 10 image does not show the grader's confusion matrix of"
                      " intro_model on the test set: draw `confusion` (counts, or each row"
                      " divided by its sum), not other numbers")


@verdict("lesson04_save_load")
def save_load(ctx, loaded_model, best_model) -> str:
    """Exercise 4.13: the model loaded from the file predicts exactly like ``best_model``."""
    from grader.checks.context import prepare_inputs, require_model

    loaded = require_model(loaded_model, "loaded_model")
    original = require_model(best_model, "best_model")
    if loaded is original:
        raise CheckFailed("`loaded_model` is `best_model` itself: load it from the saved"
                          " file with keras.models.load_model")
    images, _ = ctx.raw_test_split("cifar10")
    sample = images[np.random.default_rng(0).choice(len(images), size=min(64, len(images)),
                                                      replace=False)]
    try:
        a = predict_scores(loaded, prepare_inputs(sample, loaded, "image"))
    except Exception as exc:  # noqa: BLE001 - the student's model may be anything
        raise CheckFailed(f"`loaded_model` could not predict test images ({exc})") from None
    b = predict_scores(original, prepare_inputs(sample, original, "image"))
    if a.shape != b.shape or not np.allclose(a, b, atol=1e-5):
        raise CheckFailed("`loaded_model` does not predict like `best_model`: save best_model"
                          " and load that same file")
    return "the loaded model predicts exactly like best_model"
