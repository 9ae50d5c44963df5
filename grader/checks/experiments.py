"""Checking experiment results: the shape the exercise asked for, consistency, a re-run.

A rubric ``experiment`` check names a function in :mod:`grader.checks.references` that receives the
context and the exported objects and raises :class:`grader.checks.context.CheckFailed` with a
message the student can act on. The functions here are its building blocks:

* **shape**: the requested keys (:func:`keyed`), numbers of the right kind and range
  (:func:`fraction`, :func:`positive`), per-epoch histories of the right length
  (:func:`history`);
* **consistency** between the objects (the best value reported is the best of its history);
* **confirmation**: when the grader scores (``ctx.verify``), it re-runs one or more
  configurations itself, chosen among *all* the reported ones with the grader's private key
  (:func:`choose_many`), and compares each (:func:`rerun_accuracy`, :func:`rerun_timing`, :func:`rerun_timed`,
  :func:`verdict`); :func:`confirm` and :func:`confirm_accuracy` are these steps in one call,
  the way every experiment check ends. Values of the right shape that no training produced lose the points.
  Which configurations were re-run, and their numbers, go to ``grades.json`` (the check's
  ``details``) only: the message a student reads names none of them, so a student who sees
  one grade cannot learn which values the grader trusts.

The student's self-check (``ctx.verify`` false) checks shape and consistency only: it runs
in the student's kernel and must stay quick.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from grader.checks.context import CheckFailed, Context
from grader.checks.verdicts.shapes import (  # noqa: F401 - re-exported for the references
    fraction,
    history,
    keyed,
    number,
    positive,
    same_key,
)


def choose(ctx: Context, options: Sequence[Any], salt: str) -> Any:
    """One of ``options``, chosen with the grader's private per-submission key.

    A student cannot tell in advance which configuration the grader re-runs, so every
    reported value must be real; the same submission always gets the same choice.
    """
    if not options:
        raise ValueError("expected at least one option to choose from")
    digest = hashlib.sha256(f"{ctx.choice_key}|{salt}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def choose_many(ctx: Context, options: Sequence[Any], salt: str, count: int) -> list[Any]:
    """``count`` distinct ``options`` (all when there are fewer, none for 0), chosen privately.

    Every option is equally likely to be among the chosen ones, whatever its value: the
    options are ranked by a keyed digest of their position and the first ``count`` kept (in
    the order of ``options``). The same submission always gets the same choice.
    """
    if count < 1:
        return []
    if not options:
        raise ValueError("expected at least one option to choose from")
    rank = sorted(range(len(options)), key=lambda i: hashlib.sha256(
        f"{ctx.choice_key}|{salt}|{i}".encode()).digest())
    return [options[i] for i in sorted(rank[:count])]


#: What the student reads when a re-run disagrees (the configuration stays unnamed).
MISMATCH = ("a re-run of one or more of your reported configurations did not match: the"
            " grader trained them again on the same data and the results differ by more than"
            " training noise explains")


def rerun_accuracy(what: str, reported: float, rerun: float, tolerance: float) -> dict:
    """One accuracy re-run, as ``grades.json`` records it (``agrees`` within ``tolerance``)."""
    return {"configuration": what, "reported": round(float(reported), 4),
            "rerun": round(float(rerun), 4), "tolerance": tolerance,
            "agrees": bool(abs(reported - rerun) <= tolerance)}


def rerun_checked(ctx: Context, what: str, reported: float, tolerance: float,
                  run: Callable[[int], float], salt: str) -> dict:
    """Re-run one configuration (``run(seed)``) and compare; a second seed when they differ.

    A configuration can scatter over seeds more than the calibration saw (a run that
    diverges now and then): a disagreement is confirmed by a second re-run with another
    seed, and the value agrees if either re-run does. Honest values pay nothing; an invented
    value costs the grader one more run.
    """
    first = float(run(seed_for(ctx, salt)))
    record = rerun_accuracy(what, reported, first, tolerance)
    if not record["agrees"]:
        record = rerun_accuracy(what, reported, float(run(seed_for(ctx, f"{salt}|again"))),
                                tolerance)
        record["first_rerun"] = round(first, 4)
    return record


#: A timing the grader took while the student's kernel ran beside it (a re-run done ahead,
#: :mod:`grader.checks.speculation`) is slower than one taken alone, and a hostile kernel can
#: make its wall seconds as slow as it likes (busy processes). The CPU seconds the grader's
#: process used cannot be inflated that way: beside an honest training kernel, busy loops and
#: memory-bandwidth hogs they stayed within 1.58 x the wall seconds of the same timing taken
#: alone (bench/results/timing_contention.md, 2 cores). So CPU / CPU_BOUND is below the
#: wall time the grader would have measured alone, with a margin over the largest inflation
#: seen (1.58 -> 2.5, leaving room for a machine whose cores share a core's units).
CPU_BOUND = 2.5


class Timing(float):
    """A timing re-run's median wall seconds per epoch that also carries the CPU seconds per
    epoch of the grader's process (all threads), and ``beside``: taken while the student's
    kernel ran (a re-run done ahead). It is a float (the wall seconds) wherever a number is
    expected."""

    cpu: float
    beside: bool

    def __new__(cls, seconds: float, cpu: float, beside: bool = False) -> Timing:
        made = super().__new__(cls, seconds)
        made.cpu, made.beside = float(cpu), bool(beside)
        return made

    def __getnewargs__(self) -> tuple[float, float, bool]:
        return float(self), self.cpu, self.beside

    def taken_beside(self) -> Timing:
        """The same timing, marked as taken while the kernel ran."""
        return Timing(float(self), self.cpu, beside=True)


def rerun_timing(what: str, reported: float, measured: float, factor: float) -> dict:
    """One timing re-run: the student's seconds within ``factor`` of the grader's.

    A timing taken beside the kernel (:class:`Timing` with ``beside``) agrees only within
    narrower bounds that the kernel cannot widen: at least its wall seconds / ``factor`` (a
    kernel only makes them larger, so this is stricter than alone), and at most ``factor``
    times the smaller of its wall seconds and its CPU seconds / :data:`CPU_BOUND`.
    """
    beside = isinstance(measured, Timing) and measured.beside
    wall = float(measured)
    upper = min(wall, measured.cpu / CPU_BOUND) if beside else wall  # type: ignore[union-attr]
    record = {"configuration": what, "reported_seconds": round(float(reported), 4),
              "rerun_seconds": round(wall, 4), "factor": factor,
              "agrees": bool(wall > 0 and wall / factor <= reported <= factor * upper)}
    if beside:
        record["rerun_cpu_seconds"] = round(measured.cpu, 4)  # type: ignore[union-attr]
        record["beside_kernel"] = True
    return record


def rerun_timed(what: str, reported: float, factor: float, time_once: Callable[[], float],
                first: float | None = None) -> dict:
    """One timing re-run (``first``, else ``time_once()``), timed again when it disagrees.

    A re-run's seconds depend on what else the machine does at that moment (another
    kernel, a load spike): a disagreement is confirmed by a second timing, and the value
    agrees if either timing does. An invented time far off (90 s for a 1 s epoch) still fails.
    A timing taken beside the kernel that disagrees (its bounds are narrower) is not one of
    the two: the value then gets both timings taken alone, as if nothing had run ahead.
    """
    measured = time_once() if first is None else first
    beside = None
    if isinstance(measured, Timing) and measured.beside:
        beside = rerun_timing(what, reported, measured, factor)
        if beside["agrees"]:
            return beside
        measured = time_once()
    record = rerun_timing(what, reported, measured, factor)
    if not record["agrees"]:
        record = rerun_timing(what, reported, time_once(), factor)
        record["first_rerun_seconds"] = round(float(measured), 4)
    if beside is not None:
        record["beside_rerun_seconds"] = beside["rerun_seconds"]
    return record


def verdict(message: str, reruns: Sequence[dict], advice: str) -> tuple[str, dict]:
    """The check's outcome from its re-runs: the student's message names none of them.

    Raises :class:`CheckFailed` (``details`` listing every re-run, for the instructor) when
    any re-run disagrees; otherwise returns ``(message, details)``.
    """
    details = {"reruns": list(reruns)}
    if not all(r["agrees"] for r in reruns):
        raise CheckFailed(f"{MISMATCH}. {advice}", details=details)
    count = len({r["configuration"] for r in reruns})  # a row re-run and re-timed is one
    return (f"{message}; the grader re-ran {count} of your configurations and they match",
            details)


def confirm(ctx: Context, message: str, *, options: Sequence[Any], count: int, salt: str,
            rerun: Callable[[Any, str], dict | list[dict]], advice: str, first: Sequence[Any] = (),
            salt_by_position: bool = False) -> str | tuple[str, dict]:
    """The last steps every experiment check shares: verify, choose, re-run, confirm.

    In the student's self-check (``ctx.verify`` false) the shape and consistency checks that
    ran before are all there is: ``message`` is returned as is. When the grader scores,
    ``first`` (always re-run) and ``count`` of ``options`` chosen with the private key
    (:func:`choose_many` with ``salt``) are re-run in that order: ``rerun(option, run_salt)``
    returns one record (:func:`rerun_checked`, :func:`rerun_timed`) or a list of them, where
    ``run_salt`` is ``"salt|<option>"`` (numbers as ``{:g}``), or ``"salt|<position>"`` among
    the re-run ones with ``salt_by_position``. The outcome is :func:`verdict`'s.
    """
    if not ctx.verify:
        return message
    chosen = [*first, *choose_many(ctx, options, salt, count)]
    reruns: list[dict] = []
    for index, option in enumerate(chosen):
        tag = index if salt_by_position else salt_label(option)
        done = rerun(option, f"{salt}|{tag}")
        reruns.extend(done if isinstance(done, list) else [done])
    return verdict(message, reruns, advice)


def confirm_accuracy(ctx: Context, message: str, *, options: Sequence[Any], count: int,
                     salt: str, describe: Callable[[Any], str], reported: Mapping[Any, float],
                     tolerance: float | Mapping[Any, float], run: Callable[[Any, int], float],
                     advice: str) -> str | tuple[str, dict]:
    """:func:`confirm` for the common case: each chosen option's ``reported[option]`` against
    the grader's ``run(option, seed)`` within ``tolerance`` (one number, or one per option),
    through :func:`rerun_checked` (a second seed when they disagree)."""
    def one(option: Any, run_salt: str) -> dict:
        allowed = tolerance[option] if isinstance(tolerance, Mapping) else tolerance
        return rerun_checked(ctx, describe(option), reported[option], allowed,
                             lambda seed: run(option, seed), run_salt)

    return confirm(ctx, message, options=options, count=count, salt=salt, rerun=one,
                   advice=advice)


def salt_label(option: Any) -> str:
    """How an option is named in a re-run's salt (numbers as ``{:g}``: ``1e-05``, ``0.2``)."""
    if isinstance(option, float):
        return f"{option:g}"
    return f"{option}"


def seed_for(ctx: Context, salt: str) -> int:
    """A reproducible seed for a re-run (same submission, same seed)."""
    digest = hashlib.sha256(f"{ctx.choice_key}|seed|{salt}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


_WARM: list[bool] = []


def warm_up_training() -> None:
    """Pay TensorFlow's once-per-process start-up (its first fit, convolution and prediction)
    on a tiny model of random numbers, before any submission is scored (a warm scoring
    process does this while the first kernel still runs)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=32)
    model = keras.Sequential([keras.Input(shape=(8, 8, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)
    model(x, training=False)
    keras.backend.clear_session()
    _WARM.append(True)  # the process's first fit is done: train_and_validate needs no other


def train_and_validate(build: Callable[[], Any], x_fit: np.ndarray, y_fit: np.ndarray,
                       x_val: np.ndarray, y_val: np.ndarray, *, epochs: int, batch_size: int,
                       seed: int, optimizer: Callable[[], Any] | str = "adam",
                       loss: str = "sparse_categorical_crossentropy",
                       validation_batch_size: int | None = None,
                       cpu_seconds: list[float] | None = None) -> tuple[dict, list[float]]:
    """Train a fresh model the way the lessons do; return its history and seconds per epoch.

    Runs in the grader's scoring process, on the grader's own copy of the data. When
    ``cpu_seconds`` is a list, the CPU time the whole process used in each epoch (all of
    TensorFlow's threads) is appended to it.
    """
    import keras

    if not _WARM:  # the first fit in a process pays TensorFlow's start-up: keep it untimed
        warm = build()
        warm.compile(optimizer="adam", loss=loss)
        warm.fit(x_fit[:64], y_fit[:64], epochs=1, batch_size=batch_size, verbose=0)
        _WARM.append(True)
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(optimizer=optimizer() if callable(optimizer) else optimizer, loss=loss,
                  metrics=["accuracy"])
    seconds: list[float] = []

    class _Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._cpu = time.process_time()
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self._start)
            if cpu_seconds is not None:
                cpu_seconds.append(time.process_time() - self._cpu)

    run = model.fit(x_fit, y_fit, validation_data=(x_val, y_val), epochs=epochs,
                    batch_size=batch_size, validation_batch_size=validation_batch_size,
                    callbacks=[_Timer()], verbose=0)
    return {k: [float(v) for v in vals] for k, vals in run.history.items()}, seconds
