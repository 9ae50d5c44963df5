"""Right and wrong answers to the four lessons, checked by the student edition's self-check.

Run by ``tests/test_edition_verdicts.py`` in a Python that sees only the installed edition
(and third-party packages): ``python -S edition_answers.py LESSON`` with ``DLCOURSE_FAST=1``.
The objects are real: models trained briefly on the real fast-mode data, histories of those
runs, functions written the way students write them (and the ways they get them wrong).
Each case prints one JSON line: the check, the case, the verdict and the message.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from grader import check  # noqa: E402
from helpers.data import flatten, load_dataset, scale, to_grayscale, train_val_split  # noqa: E402

DATA_DIR = os.environ["DLCOURSE_DATA_DIR"]


def verdict(case: str, check_id: str, **objects) -> None:
    """Call the self-check as a notebook does and print what the student would read."""
    out, err = io.StringIO(), io.StringIO()
    raised = False
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            check(check_id, **objects)
        except AssertionError:
            raised = True
    text = (out.getvalue() + err.getvalue()).strip()
    mark = text.split("] ", 1)[1].split(":", 1)[0] if "] " in text else text
    print(json.dumps({"check": check_id, "case": case, "verdict": mark, "raised": raised,
                      "message": text}), flush=True)


def mlp(inputs: int, hidden=(128, 64)) -> keras.Model:
    layers = [keras.Input(shape=(inputs,))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, verbose=0).argmax(axis=1) == y))


def lesson01() -> None:
    (x_all, y_all), (x_test, y_test) = load_dataset("cifar10", fast=True, data_dir=DATA_DIR)
    y_all, y_test = y_all.reshape(-1), y_test.reshape(-1)
    gray, gray_test = scale(flatten(to_grayscale(x_all))), scale(flatten(to_grayscale(x_test)))
    color, color_test = scale(flatten(x_all)), scale(flatten(x_test))
    keras.utils.set_random_seed(0)
    model = mlp(1024)
    model.fit(gray, y_all, epochs=1, batch_size=128, verbose=0)
    verdict("right", "01.model_params", model=model)
    test_accuracy = accuracy(model, gray_test, y_test)
    verdict("right", "01.test_accuracy", test_accuracy=test_accuracy, model=model)
    verdict("wrong: a percentage", "01.test_accuracy", test_accuracy=100 * test_accuracy,
            model=model)
    verdict("wrong: the training accuracy", "01.test_accuracy",
            test_accuracy=accuracy(model, gray, y_all), model=model)
    color_model = mlp(3072)
    color_model.fit(color, y_all, epochs=1, batch_size=128, verbose=0)
    colors_help = accuracy(color_model, color_test, y_test) > test_accuracy
    verdict("right", "01.colors_help", colors_help=colors_help, color_model=color_model,
            model=model)
    verdict("wrong: the comparison reversed", "01.colors_help", colors_help=not colors_help,
            color_model=color_model, model=model)
    x_fit, x_val, y_fit, y_val = train_val_split(gray, y_all, val_fraction=0.2, seed=0)
    histories = {}
    for lr in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        run = mlp(1024)
        run.optimizer.learning_rate = lr
        histories[lr] = run.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=2,
                                batch_size=128, verbose=0).history
    verdict("right", "01.lr_sweep", lr_histories=histories,
            lr_results={lr: max(h["val_accuracy"]) for lr, h in histories.items()})
    verdict("wrong: training instead of validation accuracy", "01.lr_sweep",
            lr_histories=histories,
            lr_results={lr: max(h["accuracy"]) for lr, h in histories.items()})


def confidence(model, x, y) -> dict:
    probs = model.predict(x, verbose=0)
    top, right = probs.max(axis=1), probs.argmax(axis=1) == y
    sure = top >= 0.9
    return {"mean_top_probability": float(np.mean(top)), "share_at_least_0.9": float(sure.mean()),
            "accuracy_at_least_0.9": float(right[sure].mean()) if sure.any() else math.nan,
            "accuracy_below_0.9": float(right[~sure].mean()) if (~sure).any() else math.nan}


def lesson02() -> None:
    (x_all, y_all), _ = load_dataset("fashion_mnist", fast=True, data_dir=DATA_DIR)
    fx_fit, fx_val, fy_fit, fy_val = train_val_split(scale(flatten(x_all)), y_all,
                                                     val_fraction=0.2, seed=0)
    keras.utils.set_random_seed(0)
    fashion_model = mlp(784, (256, 128))
    history = fashion_model.fit(fx_fit, fy_fit, validation_data=(fx_val, fy_val), epochs=3,
                                batch_size=128, verbose=0).history["val_accuracy"]
    result = {f"epoch_{i + 1}": v for i, v in enumerate(history)}
    verdict("right", "02.fashion_epochs", fashion_model=fashion_model,
            fashion_epochs_result={**result, "best_epoch": int(np.argmax(history)) + 1})
    verdict("wrong: the worst epoch as the best", "02.fashion_epochs", fashion_model=fashion_model,
            fashion_epochs_result={**result, "best_epoch": int(np.argmin(history)) + 1})
    verdict("right", "02.fashion_confidence", fashion_model=fashion_model,
            fashion_confidence=confidence(fashion_model, fx_val, fy_val))
    verdict("wrong: statistics of an untrained model", "02.fashion_confidence",
            fashion_model=fashion_model,
            fashion_confidence=confidence(mlp(784, (256, 128)), fx_val, fy_val))
    architectures = {}
    for hidden in ((64,), (512,), (128, 64)):
        run = mlp(784, hidden)
        fit = run.fit(fx_fit, fy_fit, validation_data=(fx_val, fy_val), epochs=1,
                      batch_size=128, verbose=0)
        architectures["-".join(map(str, hidden))] = max(fit.history["val_accuracy"])
    verdict("right", "02.fashion_architectures", fashion_architectures=architectures)
    verdict("wrong: only two other architectures", "02.fashion_architectures",
            fashion_architectures=dict(list(architectures.items())[:2]))
    verdict("wrong: a one-hot row of another label", "02.one_hot_row",
            one_hot_row=[1, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def lesson03() -> None:
    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.85

    def late_schedule(epoch, lr):
        return lr if epoch <= 2 else lr * 0.85

    def preview(function) -> list[float]:
        rates, lr = [], 0.1
        for epoch in range(30):
            lr = function(epoch, lr)
            rates.append(lr)
        return rates

    verdict("right", "03.schedule", schedule=schedule)
    verdict("wrong: decays one epoch late", "03.schedule", schedule=late_schedule)
    verdict("wrong: decays from the first epoch", "03.schedule",
            schedule=lambda epoch, lr: lr * 0.85)
    verdict("wrong: returns text", "03.schedule", schedule=lambda epoch, lr: f"{lr}")
    verdict("right", "03.lr_preview", lr_preview=preview(schedule))
    verdict("wrong: the late schedule's preview", "03.lr_preview",
            lr_preview=preview(late_schedule))
    constants = {"BATCH_SIZE": 64, "SGD_EPOCHS": 3, "N_FIT": 4800}
    verdict("right", "03.n_weight_updates", n_weight_updates=math.ceil(4800 / 64) * 3,
            **constants)
    verdict("wrong: one epoch's updates", "03.n_weight_updates",
            n_weight_updates=math.ceil(4800 / 64), **constants)
    verdict("wrong: every training image, validation included", "03.n_weight_updates",
            n_weight_updates=math.ceil(6000 / 64) * 3, **constants)

    def big(regularise: bool) -> keras.Model:
        penalty = keras.regularizers.l2(1e-4) if regularise else None
        layers = [keras.Input(shape=(784,))]
        for _ in range(3):
            layers.append(keras.layers.Dense(1000, activation="relu",
                                             kernel_regularizer=penalty))
            if regularise:
                layers.append(keras.layers.Dropout(0.3))
        layers.append(keras.layers.Dense(10, activation="softmax"))
        return keras.Sequential(layers)

    verdict("right", "03.regularised_params", regularised_model=big(True))
    verdict("wrong: no L2 and no dropout", "03.regularised_params", regularised_model=big(False))
    model = mlp(784, (128, 200, 256))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    verdict("right", "03.sgd_setup", model=model)
    adam = mlp(784, (128, 200, 256))
    verdict("wrong: Adam instead of SGD", "03.sgd_setup", model=adam)


def cnn(rate: float = 0.0) -> keras.Model:
    layers = [keras.Input(shape=(32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
              keras.layers.MaxPooling2D(2)]
    if rate:
        layers.append(keras.layers.Dropout(rate))
    layers += [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def lesson04() -> None:
    def prepare_dataset(images, labels):
        x = images.astype("float32") / 255
        y = np.eye(10, dtype="float32")[np.asarray(labels).reshape(-1)]
        return tuple(train_test_split(x, y, test_size=0.2, random_state=42))

    def prepare_apart(images, labels):
        x = images.astype("float32") / 255
        y = np.eye(10, dtype="float32")[np.asarray(labels).reshape(-1)]
        x_train, x_val = train_test_split(x, test_size=0.2, random_state=1)
        y_train, y_val = train_test_split(y, test_size=0.2, random_state=2)
        return x_train, x_val, y_train, y_val

    verdict("right", "04.prepare_dataset", prepare_dataset=prepare_dataset)
    verdict("wrong: images and labels split apart", "04.prepare_dataset",
            prepare_dataset=prepare_apart)
    (x_all, y_all), (x_test, y_test) = load_dataset("cifar10", fast=True, data_dir=DATA_DIR)
    x_train, x_val, y_train, y_val = prepare_dataset(x_all, y_all)
    x_test_ready, y_test_labels = x_test.astype("float32") / 255, y_test.reshape(-1)
    keras.utils.set_random_seed(0)
    intro_model = cnn()
    verdict("right", "04.compile", intro_model=intro_model)
    wrong_loss = cnn()
    wrong_loss.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                       loss="binary_crossentropy", metrics=["accuracy"])
    verdict("wrong: binary cross-entropy for ten one-hot classes", "04.compile",
            intro_model=wrong_loss)
    candidates = {"intro": intro_model, "dropout": cnn(0.3), "tuned": cnn(0.15)}
    for epochs, model in zip((1, 2, 1), candidates.values(), strict=True):
        model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    predicted = intro_model.predict(x_test_ready, verbose=0)
    verdict("right", "04.predictions", predicted_labels=predicted.argmax(axis=1),
            intro_model=intro_model)
    verdict("wrong: the probabilities", "04.predictions", predicted_labels=predicted,
            intro_model=intro_model)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y_test_labels, predicted.argmax(axis=1)), 1)
    verdict("right", "04.confusion_matrix", confusion=confusion, intro_model=intro_model)
    verdict("wrong: rows and columns swapped", "04.confusion_matrix", confusion=confusion.T,
            intro_model=intro_model)
    results = {0.15: 0.41, 0.3: 0.44, 0.45: 0.43, 0.6: 0.40, 0.75: 0.35}
    verdict("right", "04.best_dropout_rate", dropout_results=results,
            best_dropout_rate=max(results, key=results.get))
    verdict("wrong: min instead of max", "04.best_dropout_rate", dropout_results=results,
            best_dropout_rate=min(results, key=results.get))
    models = {f"{name}_model": model for name, model in candidates.items()}
    val_scores = {name: float(model.evaluate(x_val, y_val, verbose=0)[1])
                  for name, model in candidates.items()}
    best = max(val_scores, key=val_scores.get)
    verdict("right", "04.best_model_choice", val_scores=val_scores,
            best_model=candidates[best], **models)
    test_scores = {name: accuracy(model, x_test_ready, y_test_labels)
                   for name, model in candidates.items()}
    on_test = max(test_scores, key=test_scores.get)
    verdict("wrong: chosen on the test set", "04.best_model_choice", val_scores=test_scores,
            best_model=candidates[on_test], **models)
    worst = min(val_scores, key=val_scores.get)
    verdict("wrong: not the best of val_scores", "04.best_model_choice", val_scores=val_scores,
            best_model=candidates[worst], **models)


def probe() -> None:
    """Where ``grader`` and ``helpers`` come from, and whether grading code is importable."""
    import importlib.util

    import grader
    import helpers

    print(json.dumps({"probe": [grader.__file__, helpers.__file__],
                      "references": importlib.util.find_spec("grader.checks.references")
                      is not None,
                      "submission": importlib.util.find_spec("grader.submission") is not None}),
          flush=True)


if __name__ == "__main__":
    probe()
    {"01": lesson01, "02": lesson02, "03": lesson03, "04": lesson04}[sys.argv[1]]()
