"""References for lesson 04 (values and function cases the grader computes itself)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from grader.references import FunctionCase, reference

#: How many random images the grader gives ``prepare_dataset``.
PREPARE_SAMPLES = 50
NUM_CLASSES = 10


def _prepare_inputs(rng: np.random.Generator) -> dict[str, Any]:
    """Random uint8 images (all different) and CIFAR-style labels of shape ``(n, 1)``."""
    images = rng.integers(0, 256, size=(PREPARE_SAMPLES, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=(PREPARE_SAMPLES, 1)).astype(np.uint8)
    return {"images": images, "labels": labels}


def _prepare_reference(images: np.ndarray, labels: np.ndarray):
    """One correct answer: scale, one-hot, 80/20 split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    x = np.asarray(images).astype(np.float32) / np.float32(255.0)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(labels).reshape(-1).astype(np.int64)]
    return tuple(train_test_split(x, y, test_size=0.2, random_state=0))


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


PREPARE_DATASET = reference("lesson04_prepare_dataset")(
    FunctionCase(
        make_inputs=_prepare_inputs,
        reference=_prepare_reference,
        compare=_compare_prepare,
        describe=_describe_prepare,
    )
)
