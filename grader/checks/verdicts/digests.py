"""Salted digests of the reference's outputs on fixed inputs (``digests.json``).

The student edition holds no reference implementation, so a function exercise is checked
there by running the student's function on the inputs stored in ``digests.json`` and
comparing the digest of each output (binned at a relative resolution of 1e-5, so that float32
and float64 arithmetic agree) with the digest of the reference's output,
salted with the check id and the input's position. The file is written by
``python -m grader.checks.references.digests`` from the references; a test checks that
writing it again gives the same file. Only non-integer outputs are stored this way: a small
whole-number answer is checked by its method, never by a digest a loop could invert.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from grader.checks import answers

DIGESTS_FILE = Path(__file__).resolve().with_name("digests.json")
RESOLUTION = 1e-5
"""The relative resolution an output is compared at: its natural logarithm is divided by this
and rounded to a whole number before it is digested (decimal digits would not do: an exact
decimal answer such as 0.0614125 sits on a digit's rounding edge)."""


def binned(value: Any, offset: float = 0.0) -> int | str:
    """The bin of a positive ``value``: ``round(ln(value) / RESOLUTION + offset)``, where the
    output's ``offset`` (0 or 0.5, chosen when the digests were written) keeps its answer
    away from a bin's edge. Any other number becomes its own text, which no stored digest matches unless
    the answer is that number."""
    number = float(np.asarray(value, dtype=float).reshape(()))
    if not math.isfinite(number):
        raise answers.NotAnAnswer(f"{number} is not a finite number")
    if number <= 0:
        return repr(number)
    return round(math.log(number) / RESOLUTION + offset)


def output_digest(check_id: str, index: int, value: Any, offset: float = 0.0) -> str:
    """The digest of output ``index`` of check ``check_id``: salted with both."""
    return answers.digest(f"{check_id}|{index}", binned(value, offset))


@cache
def stored(check_id: str) -> dict:
    """The entry of ``check_id`` in ``digests.json``: ``inputs`` (if any) and ``digests``."""
    data = json.loads(DIGESTS_FILE.read_text(encoding="utf-8"))
    if check_id not in data["checks"]:
        raise KeyError(f"no digests for {check_id!r} in {DIGESTS_FILE.name}")
    return data["checks"][check_id]


def agrees(check_id: str, index: int, value: Any) -> bool:
    """Whether ``value`` has the stored digest of output ``index``."""
    entry = stored(check_id)
    try:
        found = output_digest(check_id, index, value, entry["offsets"][index])
        return found == entry["digests"][index]
    except (TypeError, ValueError, answers.NotAnAnswer):
        return False


@dataclass(frozen=True)
class Digested:
    """An expected list known only by its entries' digests (a ``value`` check's reference)."""

    check_id: str

    def problem(self, name: str, found: Any) -> str | None:
        """What is wrong with ``found``, naming the wrong entries, never their values."""
        want = len(stored(self.check_id)["digests"])
        if isinstance(found, (str, bytes)) or not hasattr(found, "__len__"):
            return f"`{name}` should be a list of {want} numbers, found {type(found).__name__}"
        if len(found) != want:
            return f"`{name}` should hold {want} values, found {len(found)}"
        wrong = [i for i, value in enumerate(list(found)) if not agrees(self.check_id, i, value)]
        if not wrong:
            return None
        shown = ", ".join(f"`{name}[{i}]`" for i in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        return f"{shown}{more} {'is' if len(wrong) == 1 else 'are'} not right"
