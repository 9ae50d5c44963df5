"""What one graded notebook may use: time per cell and notebook, memory, output, disk."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Resource limits for one graded notebook (defaults suit fast-mode grading).

    Attributes
    ----------
    cell_timeout_s : float
        Seconds one cell may run before it is interrupted.
    notebook_timeout_s : float
        Seconds for all cells together; later cells are skipped once it is spent.
    export_timeout_s : float
        Seconds for the export cell (it calls student functions, so it is limited too).
    memory_mb : int
        Resident memory of the kernel process tree above which the kernel is killed.
    output_bytes : int
        Stream output kept per cell.
    notebook_output_bytes : int
        Output kept for the whole notebook (all output types).
    kill_grace_s : float
        Seconds a kernel may ignore an interrupt before it is killed.
    poll_s : float
        How often the watchdog samples memory and time.
    kernel_start_timeout_s : float
        Seconds a fresh kernel may take to start and answer. Not the student's time: on a
        busy machine (many kernels importing TensorFlow at once) a start can take minutes.
    score_timeout_s, score_memory_mb : float, int
        Limits of the grader's child process that loads and scores the exported objects
        (:mod:`grader.scoring.score_process`).
    disk_mb : int
        Files the notebook may keep in its working folder (checked every 2 s; more than
        20,000 files count as too much too). Above it the kernel is stopped.
    """

    cell_timeout_s: float = 600.0
    notebook_timeout_s: float = 1800.0
    export_timeout_s: float = 300.0
    memory_mb: int = 6000
    output_bytes: int = 100_000
    notebook_output_bytes: int = 2_000_000
    kill_grace_s: float = 10.0
    poll_s: float = 0.2
    kernel_start_timeout_s: float = 300.0
    score_timeout_s: float = 600.0
    score_memory_mb: int = 4000
    disk_mb: int = 2000

    def __post_init__(self) -> None:
        for name in ("cell_timeout_s", "notebook_timeout_s", "export_timeout_s", "memory_mb",
                     "output_bytes", "notebook_output_bytes", "kill_grace_s", "poll_s",
                     "kernel_start_timeout_s", "score_timeout_s", "score_memory_mb", "disk_mb"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"expected Limits.{name} > 0, got {value!r}")


# Full mode trains on the whole training split. bench/calibrate.py graded every solution in
# full mode over 3 seeds (bench/results/calibration.md, two one-thread runs at a time on a
# shared 2-core machine): slowest cell 1,250 s and slowest notebook 2,065 s, both lesson 04's
# (the old 600 s / 1,800 s limits would have stopped it). The defaults leave at least 1.7x.
FULL_CELL_TIMEOUT_S = 2400.0
FULL_NOTEBOOK_TIMEOUT_S = 3600.0


def mode_limits(*, fast: bool, **overrides: float | None) -> Limits:
    """The default :class:`Limits` of a grading mode, with ``overrides`` that are not None.

    Fast mode keeps the dataclass defaults (600 s per cell, 1,800 s per notebook); full mode
    allows :data:`FULL_CELL_TIMEOUT_S` per cell and :data:`FULL_NOTEBOOK_TIMEOUT_S` per notebook.
    """
    values: dict[str, float] = {} if fast else {"cell_timeout_s": FULL_CELL_TIMEOUT_S,
                                                "notebook_timeout_s": FULL_NOTEBOOK_TIMEOUT_S}
    values.update({name: value for name, value in overrides.items() if value is not None})
    return Limits(**values)
