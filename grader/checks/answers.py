"""Salted digests of by-hand answers, so rubrics can check them without spelling them out.

Students receive ``grader/`` (the self-check reads the rubrics), so a rubric that stored
``expected = <the answer>`` would hand the answer to anyone who opens the file. For the
values a student must work out by hand, the rubric stores ``answer_sha256`` instead: the
SHA-256 of the check id and a canonical text of the answer (see :func:`canonical`). The
self-check and the grader both encode the student's value the same way and compare digests.

This keeps answers out of plain sight; it is not encryption. A small whole number can be
recovered by hashing candidates, so a determined student can still find it; the point is
that reading the package, or a failing self-check, does not show it.

Maintainers compute a digest with ``python -m grader digest CHECK_ID VALUE`` (VALUE is a
Python literal, e.g. ``1234`` or ``"[1, 2, 3]"``).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

#: A float this close (relative) to a whole number is read as that whole number.
INTEGRAL_TOLERANCE = 1e-9


class NotAnAnswer(TypeError):
    """The value has no canonical text (e.g. a dict, a model, a NaN)."""


def canonical(value: Any) -> str:
    """The canonical text of an answer; equal answers of different types give the same text.

    * ``True``/``False`` (Python or NumPy) -> ``true``/``false``; booleans never equal numbers;
    * a real number (``int``, ``float``, NumPy scalar, 0-d array) whose value is whole, within
      a relative ``1e-9``, -> its decimal digits with a ``-`` sign if negative and no
      separators: ``1234``, ``1234.0``, ``np.int64(1234)`` and ``np.float32(1234)`` all give
      ``1234``; another finite number -> ``repr(float(value))``; NaN and infinities have none;
    * a string -> its JSON text after ``strip().lower()`` (quoted, so never equal to a number);
    * a list, tuple or NumPy array -> ``[`` + the entries' texts joined by ``,`` + ``]``,
      recursively, so ``[0, 1.0]`` and ``np.array([0., 1.])`` both give ``[0,1]``;
    * ``None`` -> ``null``. Anything else raises :class:`NotAnAnswer`.
    """
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if bool(value) else "false"
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return canonical(value.item())
        return canonical(value.tolist())
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number):
            raise NotAnAnswer(f"{number} is not a finite number")
        whole = round(number)
        if abs(number - whole) <= INTEGRAL_TOLERANCE * max(1.0, abs(number)):
            return str(int(whole))
        return repr(number)
    if isinstance(value, str):
        return json.dumps(value.strip().lower())
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    raise NotAnAnswer(f"a {type(value).__name__} has no canonical answer text")


def digest(check_id: str, value: Any) -> str:
    """SHA-256 (hex) of ``check_id``, a newline and :func:`canonical` of ``value``."""
    text = f"{check_id}\n{canonical(value)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def position_digests(check_id: str, values: Any) -> list[str]:
    """One digest per entry of a list answer, salted with ``CHECK_ID[i]``.

    A rubric stores these (``answer_sha256 = [...]``) when telling a student which entries
    are wrong teaches something; the list's length is then visible, the entries are not.
    """
    return [digest(f"{check_id}[{i}]", v) for i, v in enumerate(list(values))]


def candidates(value: Any) -> list[Any]:
    """The readings of a student's value: itself, and a number if it is a numeric string."""
    found = [value]
    if isinstance(value, str):
        try:
            number = float(value.replace(",", "").replace("_", ""))
        except ValueError:
            return found
        if math.isfinite(number):
            found.append(number)
    return found


def matches(check_id: str, value: Any, answer: str) -> bool:
    """Whether ``value`` (in any reading of :func:`candidates`) has the digest ``answer``."""
    for reading in candidates(value):
        try:
            if digest(check_id, reading) == answer:
                return True
        except NotAnAnswer:
            continue
    return False
