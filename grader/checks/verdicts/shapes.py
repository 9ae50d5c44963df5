"""What an experiment's results must look like: numbers of the right kind and range, the
requested keys, per-epoch histories. The in-kernel verdicts and the grader's experiment
checks (:mod:`grader.checks.experiments`, which re-exports these) share them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from grader.checks.context import CheckFailed


def number(value: Any, where: str) -> float:
    """``value`` as a finite float, or :class:`CheckFailed` naming ``where``."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise CheckFailed(f"{where} should be a number, found {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{where} should be a number, found {type(value).__name__}") from None
    if not math.isfinite(result):
        raise CheckFailed(f"{where} is {result}: the run diverged or the value was not computed")
    return result


def fraction(value: Any, where: str) -> float:
    """An accuracy or share: a finite number in [0, 1]."""
    result = number(value, where)
    if not 0.0 <= result <= 1.0:
        raise CheckFailed(f"{where} should lie between 0 and 1 (an accuracy or a share),"
                          f" found {result:.4g}")
    return result


def positive(value: Any, where: str, *, upper: float = math.inf) -> float:
    """A positive finite number below ``upper`` (seconds, counts)."""
    result = number(value, where)
    if not 0.0 < result < upper:
        limit = "" if math.isinf(upper) else f" and below {upper:g}"
        raise CheckFailed(f"{where} should be above 0{limit}, found {result:.4g}")
    return result


def same_key(found: Any, wanted: Any) -> bool:
    """Whether a student's dict key means ``wanted`` (numbers compare numerically)."""
    if isinstance(wanted, str):
        return isinstance(found, str) and found.strip().lower() == wanted.lower()
    try:
        return math.isclose(float(found), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _show_key(key: Any) -> str:
    return repr(key) if isinstance(key, str) else f"{float(key):g}"


def keyed(mapping: Any, name: str, expected: Sequence[Any]) -> dict[Any, Any]:
    """``mapping`` re-keyed by ``expected`` (numbers match numerically: 1e-3 == "0.001").

    Raises :class:`CheckFailed` when ``mapping`` is not a dict or its keys are not exactly
    ``expected``.
    """
    if not isinstance(mapping, Mapping):
        raise CheckFailed(f"`{name}` should be a dict, found {type(mapping).__name__}")
    result: dict[Any, Any] = {}
    extra = []
    for key, value in mapping.items():
        match = next((want for want in expected if same_key(key, want)), None)
        if match is None or match in result:
            extra.append(key)
        else:
            result[match] = value
    missing = [want for want in expected if want not in result]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(_show_key(k) for k in missing))
        if extra:
            parts.append("unexpected " + ", ".join(repr(k) for k in extra[:5]))
        want = ", ".join(_show_key(k) for k in expected)
        raise CheckFailed(f"`{name}` should have exactly one entry per value in [{want}]:"
                          f" {'; '.join(parts)}")
    return result


def history(value: Any, where: str, *, epochs: int,
            metrics: Iterable[str] = ("val_accuracy",)) -> dict[str, list[float]]:
    """A Keras ``history.history`` dict: each metric a list of ``epochs`` numbers.

    Accuracies must lie in [0, 1]; losses must be numbers (a diverged run's ``nan`` loss is
    allowed: that is a real outcome).
    """
    if not isinstance(value, Mapping):
        raise CheckFailed(f"{where} should be a history dict (`history.history`), found"
                          f" {type(value).__name__}")
    result = {}
    for metric in metrics:
        if metric not in value:
            raise CheckFailed(f"{where} has no {metric!r} entry: store `history.history` of a"
                              " run that was validated")
        series = value[metric]
        if not isinstance(series, (list, tuple)) or len(series) != epochs:
            found = len(series) if isinstance(series, (list, tuple)) else type(series).__name__
            raise CheckFailed(f"{where}[{metric!r}] should hold one value per epoch ({epochs}),"
                              f" found {found}")
        if "accuracy" in metric:
            result[metric] = [fraction(v, f"{where}[{metric!r}]") for v in series]
        else:
            try:
                result[metric] = [float(v) for v in series]
            except (TypeError, ValueError):
                raise CheckFailed(f"{where}[{metric!r}] should hold numbers") from None
    return result


def read_compile(ctx: Any, model: Any, name: str, *, loaded: str,
                 missing: str) -> dict[str, Any] | str:
    """What ``model.compile`` set (:func:`helpers.training.compile_summary`).

    A model the grader loaded (``ctx.verify``) has no compile settings: ``loaded`` (what the
    grader checks instead) is returned. A model in the kernel that is not compiled fails
    with ``missing``.
    """
    from grader.checks.context import require_model
    from helpers.training import compile_summary

    settings = compile_summary(require_model(model, name))
    if settings is None:
        if ctx.verify:
            return loaded
        raise CheckFailed(missing)
    return settings
