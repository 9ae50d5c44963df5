"""Self-checks teach without answering: no failing message, and no file students get, shows a
by-hand answer.

The expected values are computed here from first principles (28 * 28 * 3, the layer sizes,
the schedule's rule), never read from the rubrics, so a rubric that leaked its answer into a
message would be caught whatever it stores.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import helpers.data
from grader.base.paths import REPO_ROOT
from grader.checks.kinds import Context, run_check
from grader.checks.rubric import load_rubric


def _dense_counts(sizes):
    return [a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


# --- the answers, from first principles -------------------------------------------------
RGB_INPUT_DIM = 28 * 28 * 3
LESSON03_LAYERS = _dense_counts([784, 128, 200, 256, 10])
N_PARAMS_BY_HAND = sum(LESSON03_LAYERS)
PARAM_BYTES = 4 * N_PARAMS_BY_HAND
#: Exercise 2.4: LeNet-300-100, a network lesson 02 describes but never builds.
DEEP_LAYER_PARAMS = _dense_counts([784, 300, 100, 10])
ONE_HOT_LABEL = 6
ONE_HOT_ROW = [1 if k == ONE_HOT_LABEL else 0 for k in range(10)]
#: ceil(0.8 * n_train / 64) * epochs: full mode 60,000 images, 10 epochs; fast 6,000 and 3.
WEIGHT_UPDATES = {"full": math.ceil(48000 / 64) * 10, "fast": math.ceil(4800 / 64) * 3}
#: The schedule: 0.1 for epochs 0..1, then times 0.85 each epoch, for 30 epochs.
LR_PREVIEW = [0.1 if e < 2 else 0.1 * 0.85 ** (e - 1) for e in range(30)]

#: Every number a student works out by hand in the lessons (with the per-layer arithmetic of
#: Exercise 3.2); none may appear, in any common spelling, in the student package.
BY_HAND_NUMBERS = sorted({RGB_INPUT_DIM, N_PARAMS_BY_HAND, PARAM_BYTES, *DEEP_LAYER_PARAMS,
                          *LESSON03_LAYERS[1:], *WEIGHT_UPDATES.values()})


def test_the_first_principles_are_what_the_issue_reports():
    assert (RGB_INPUT_DIM, N_PARAMS_BY_HAND, PARAM_BYTES) == (2352, 180306, 721224)
    assert DEEP_LAYER_PARAMS == [235500, 30100, 1010] and sum(DEEP_LAYER_PARAMS) == 266610


def _spellings(value) -> set[str]:
    """Ways a message could print ``value``."""
    if isinstance(value, bool):
        return {str(value)}
    if isinstance(value, int):
        return {str(value), f"{value:,}", f"{value:_}", f"{value:.4g}"}
    if isinstance(value, float):
        return {repr(value), f"{value:.3f}", f"{value:.4f}", f"{value:.4g}", f"{value:.6g}",
                str(round(value, 4))}
    return {repr(value), repr([float(v) for v in value]), str(np.asarray(value))}


def _contains(message: str, spelling: str) -> bool:
    """``spelling`` as a whole token of ``message`` (not inside a longer number or word)."""
    return re.search(rf"(?<![\w.]){re.escape(spelling)}(?![\w]|\.\d)", message) is not None


class _StubModel:
    """Just enough of a Keras model for the accuracy references: fixed class predictions."""

    def __init__(self, inputs: int, predicted: list[int]):
        self.input_shape, self.output_shape = (None, inputs), (None, 10)
        self.layers, self.trainable_weights = [], []
        self._predicted = predicted

    def predict(self, x, batch_size=None, verbose=0):
        return np.eye(10, dtype="float32")[self._predicted][: len(x)]

    def __call__(self, x, training=False):  # how the grader predicts (grader.checks.context)
        return self.predict(x)


LABELS = [0, 1, 2, 3, 4, 5, 6, 7]
GRAY_PREDICTED = [0, 1, 2, 3, 4, 9, 9, 9]    # 5 of 8 right: accuracy 0.625
COLOR_PREDICTED = [0, 1, 2, 3, 4, 5, 9, 9]   # 6 of 8 right: 0.75, so colours help


@pytest.fixture
def tiny_cifar(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(Context, "raw_test_split",
                        lambda self, dataset=None: (images, np.array(LABELS)))


def _fake_fashion(n_train: int):
    def load(name, *, fast=None, data_dir=None):
        x = np.zeros((n_train, 28, 28), dtype=np.uint8)
        return (x, np.zeros(n_train, dtype=np.uint8)), (x[:10], np.zeros(10, dtype=np.uint8))

    return load


def _model_with_a_bias_missing():
    import keras

    return keras.Sequential([keras.Input(shape=(784,)),
                             keras.layers.Dense(128, activation="relu", use_bias=False),
                             keras.layers.Dense(200, activation="relu"),
                             keras.layers.Dense(256, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def _schedule_without_the_flat_start():
    lr, rates = 0.1, []
    for _ in range(30):
        lr *= 0.85
        rates.append(lr)
    return rates


# check id -> (objects with a wrong answer, expected values that must not be printed, mode)
WRONG = {
    "01.test_accuracy": (lambda: {"test_accuracy": 0.3, "model": _StubModel(1024, GRAY_PREDICTED)},
                         [5 / 8], "fast"),
    "01.colors_help": (lambda: {"colors_help": False,
                                "color_model": _StubModel(3072, COLOR_PREDICTED),
                                "model": _StubModel(1024, GRAY_PREDICTED)}, [True], "fast"),
    "02.one_hot_row": (lambda: {"one_hot_row": [0.0] * 10}, [ONE_HOT_ROW, ONE_HOT_LABEL], "fast"),
    "02.deep_layer_params": (lambda: {"deep_layer_params": [784 * 300, 300 * 100, 100 * 10]},
                             [DEEP_LAYER_PARAMS, *DEEP_LAYER_PARAMS], "fast"),
    "03.rgb_input_dim": (lambda: {"rgb_input_dim": 28 * 28}, [RGB_INPUT_DIM], "fast"),
    "03.n_params_by_hand": (lambda: {"n_params_by_hand": N_PARAMS_BY_HAND - 10},
                            [N_PARAMS_BY_HAND], "fast"),
    "03.param_bytes": (lambda: {"param_bytes": 8 * N_PARAMS_BY_HAND}, [PARAM_BYTES], "fast"),
    "03.model_params": (lambda: {"model": _model_with_a_bias_missing()}, [N_PARAMS_BY_HAND], "fast"),
    "03.n_weight_updates": (lambda: {"n_weight_updates": 4800 // 64, "BATCH_SIZE": 64,
                                     "SGD_EPOCHS": 3, "N_FIT": 4800},
                            [WEIGHT_UPDATES["fast"]], "fast"),
    "03.lr_preview": (lambda: {"lr_preview": _schedule_without_the_flat_start()},
                      LR_PREVIEW[2:], "fast"),
    "04.test_accuracy": (lambda: {"intro_test_accuracy": 0.3,
                                  "intro_model": _StubModel(3072, COLOR_PREDICTED)},
                         [6 / 8], "fast"),
}


def _answer_checks():
    """Every value check, and every param_count whose count is a by-hand answer."""
    return {c.id: c for m in ("01", "02", "03", "04") for c in load_rubric(m).checks
            if c.kind == "value" or c.answer_sha256 is not None}


def test_every_value_check_has_a_wrong_answer_case_here():
    missing = sorted(set(_answer_checks()) - set(WRONG))
    assert not missing, (f"add {missing} to WRONG: a wrong value and the expected value computed"
                         " from first principles, so that its message is tested for leaks")


def test_every_value_check_has_a_hint():
    assert [cid for cid, spec in _answer_checks().items() if not spec.hint.strip()] == []


@pytest.mark.parametrize("check_id", sorted(WRONG))
def test_a_wrong_answer_gets_a_hint_and_never_the_expected_value(check_id, tiny_cifar, monkeypatch):
    monkeypatch.setattr(helpers.data, "load_dataset", _fake_fashion(6000))
    make_objects, expected, mode = WRONG[check_id]
    spec = _answer_checks()[check_id]
    result = run_check(spec, make_objects(), Context(mode=mode, dataset="cifar10"))
    assert not result.passed, result.message
    assert result.message.endswith(spec.hint)
    leaks = sorted({s for value in expected for s in _spellings(value)
                    if _contains(result.message, s)})
    assert leaks == [], f"{check_id} prints the expected value ({leaks}): {result.message}"


def test_the_stub_cases_are_answers_the_checks_accept(tiny_cifar, monkeypatch):
    """The same checks pass on the right values, so the failures above are about the value."""
    monkeypatch.setattr(helpers.data, "load_dataset", _fake_fashion(6000))
    right = {
        "01.test_accuracy": {"test_accuracy": 5 / 8, "model": _StubModel(1024, GRAY_PREDICTED)},
        "01.colors_help": {"colors_help": True, "color_model": _StubModel(3072, COLOR_PREDICTED),
                           "model": _StubModel(1024, GRAY_PREDICTED)},
        "02.one_hot_row": {"one_hot_row": ONE_HOT_ROW},
        "02.deep_layer_params": {"deep_layer_params": DEEP_LAYER_PARAMS},
        "03.rgb_input_dim": {"rgb_input_dim": RGB_INPUT_DIM},
        "03.n_params_by_hand": {"n_params_by_hand": N_PARAMS_BY_HAND},
        "03.param_bytes": {"param_bytes": PARAM_BYTES},
        "03.n_weight_updates": {"n_weight_updates": WEIGHT_UPDATES["fast"], "BATCH_SIZE": 64,
                                "SGD_EPOCHS": 3, "N_FIT": 4800},
        "03.lr_preview": {"lr_preview": LR_PREVIEW},
        "04.test_accuracy": {"intro_test_accuracy": 6 / 8,
                             "intro_model": _StubModel(3072, COLOR_PREDICTED)},
    }
    checks = _answer_checks()
    for check_id, objects in right.items():
        result = run_check(checks[check_id], objects, Context(mode="fast", dataset="cifar10"))
        assert result.passed, (check_id, result.message)


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_the_one_hot_answer_is_the_same_in_both_modes(mode):
    spec = load_rubric("02").get("02.one_hot_row")
    assert spec.reference is None and spec.expected is None  # nothing read from the data
    assert run_check(spec, {"one_hot_row": np.eye(10)[ONE_HOT_LABEL]}, Context(mode=mode)).passed


# --- the student package ------------------------------------------------------------------

STUDENT_PACKAGE = ("grader", "helpers", "notebooks")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:[,_ ]\d{3})+|\d+)(?![\w]|\.\d)")


def _student_files():
    for top in STUDENT_PACKAGE:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path


def _one_hot_spellings() -> re.Pattern:
    zero, one = r"0(?:\.0*)?", r"1(?:\.0*)?"
    items = [one if v else zero for v in ONE_HOT_ROW]
    return re.compile(r"\[\s*" + r"\s*,\s*".join(items) + r"\s*\]")


def test_no_by_hand_answer_is_readable_in_the_student_package():
    """grader/, helpers/ and notebooks/ (code, rubrics, markdown) hold none of the answers.

    Whole number tokens only, in the spellings 180306, 180,306, 180_306 and 180 306, so
    that a longer number or a decimal that happens to contain the digits does not count.
    """
    found = []
    one_hot = _one_hot_spellings()
    wanted = set(BY_HAND_NUMBERS)
    for path in _student_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        where = path.relative_to(REPO_ROOT)
        for match in _NUMBER.finditer(text):
            number = int(re.sub(r"[,_ ]", "", match.group(1)))
            if number in wanted:
                found.append(f"{where}: {match.group(1)!r}")
        found += [f"{where}: one-hot row {m.group(0)!r}" for m in one_hot.finditer(text)]
    assert found == [], ("by-hand answers readable in the student package (store a digest,"
                         f" answer_sha256, instead): {found}")


def test_the_scan_finds_the_spellings_it_looks_for(tmp_path):
    text = "a 2,352 b 180306 c [0, 0, 0, 0, 0, 0, 1.0, 0, 0, 0] d 0.2352 e 123520 f 721_224"
    numbers = [int(re.sub(r"[,_ ]", "", m.group(1))) for m in _NUMBER.finditer(text)]
    assert {2352, 180306, 721224} <= set(numbers) and 123520 in numbers
    assert numbers.count(2352) == 1  # from "2,352", not from the decimal 0.2352
    assert _one_hot_spellings().search(text)
