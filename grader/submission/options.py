"""How a batch grades: one frozen, picklable options object, resolved once per batch.

:func:`grader.classroom.batch.grade_class` resolves the options once (mode limits, sandbox,
data folder) and hands the same object to every local worker process and Dask task;
:func:`grader.submission.grading.grade_submission` reads them and resolves nothing again.
A Dask worker is another machine: :meth:`GradingOptions.on_this_host` checks its sandbox and
finds its data folder there, once per task.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from grader.data.holdout import HoldoutPlan
from grader.kernel.limits import Limits, mode_limits
from grader.kernel.modes import SandboxMode, sandbox_mode


@dataclass(frozen=True)
class GradingOptions:
    """Everything that decides how every submission of a batch is graded.

    Attributes
    ----------
    fast : bool
        Fast mode (small data, few epochs, the rubric's ``fast`` thresholds).
    seed : int, optional
        ``SEED`` injected into every notebook; ``None`` keeps each lesson's own.
    limits : Limits
        Time, memory and output limits of each kernel and of scoring.
    sandbox : {"bwrap", "uid", "none"}
        The resolved sandbox (:func:`grader.kernel.sandbox_choice.resolve_sandbox`).
    sandbox_warning : str, optional
        The no-sandbox warning of that setting (first note of every row).
    data_dir : str, optional
        The course datasets folder for scoring; ``None`` only on a Dask client without one
        (each worker finds its own, :meth:`on_this_host`).
    threads : int, optional
        Thread pool size of each kernel and scoring process.
    rubric, solution : optional
        A custom module's rubric and solution notebook (``--rubric``/``--solution``): every
        submission is graded against them, whatever module it says it is.
    imports : tuple of str
        Modules imported before grading (they register a custom rubric's references).
    log_path : str, optional
        File the kernels' and scoring processes' own output is appended to.
    holdout : HoldoutPlan, optional
        The batch's hold-out plan (with the kernel copy written once for every submission).
    """

    fast: bool
    seed: int | None = None
    limits: Limits = Limits()
    sandbox: str = "bwrap"
    sandbox_warning: str | None = None
    data_dir: str | None = None
    threads: int | None = None
    rubric: Any = None
    solution: Any = None
    imports: tuple[str, ...] = ()
    log_path: str | None = None
    holdout: HoldoutPlan | None = None

    @property
    def mode(self) -> str:
        """``"fast"`` or ``"full"``."""
        return "fast" if self.fast else "full"

    @property
    def sandbox_mode(self) -> SandboxMode:
        """The resolved sandbox's mode object (:mod:`grader.kernel.modes`)."""
        return sandbox_mode(self.sandbox)

    @classmethod
    def resolve(cls, *, fast: bool, seed: int | None = None, limits: Limits | None = None,
                sandbox: str = "auto", data_dir: str | None = None,
                provide_data: bool = True, **rest: Any) -> GradingOptions:
        """Options with the mode's limits, the sandbox that works here and the data folder.

        ``data_dir`` defaults to ``$DLCOURSE_DATA_DIR``; with ``provide_data`` the grader's
        own cache is filled when there is none (:func:`grader.data.provide.provide_datasets`).

        Raises
        ------
        GraderError
            ``sandbox`` is unknown or ``bwrap`` does not work here; the datasets cannot be had.
        """
        from grader.data.provide import provide_datasets
        from grader.kernel.sandbox_choice import resolve_sandbox

        setting = resolve_sandbox(sandbox)
        data_dir = data_dir if data_dir is not None else os.environ.get("DLCOURSE_DATA_DIR")
        holdout = rest.get("holdout")
        if holdout is not None and holdout.source_dir is not None and data_dir is None:
            data_dir = holdout.source_dir
        if provide_data:
            data_dir = provide_datasets(data_dir)
        return cls(fast=fast, seed=seed, limits=limits or mode_limits(fast=fast),
                   sandbox=setting.mode, sandbox_warning=setting.warning, data_dir=data_dir,
                   **rest)

    def on_this_host(self) -> GradingOptions:
        """The options checked on the machine that grades (a Dask worker): its sandbox must
        work (``bwrap`` asked for and missing is an error) and its data folder is found
        (``$DLCOURSE_DATA_DIR``, else the grader's cache) when the batch had none."""
        from grader.data.provide import provide_datasets
        from grader.kernel.sandbox_choice import resolve_sandbox

        setting = resolve_sandbox(self.sandbox)
        data_dir = self.data_dir if self.data_dir is not None else os.environ.get("DLCOURSE_DATA_DIR")
        if self.holdout is not None and self.holdout.source_dir is not None and data_dir is None:
            data_dir = self.holdout.source_dir
        return replace(self, sandbox=setting.mode, sandbox_warning=setting.warning,
                       data_dir=provide_datasets(data_dir))
