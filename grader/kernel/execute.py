"""Run a notebook in a fresh, limited kernel and describe what happened (nbmake style).

:func:`execute_notebook` never raises for what the notebook does: cell errors, time-outs,
a kernel that dies or blows its memory budget all end up in the returned
:class:`ExecutionResult`. Exceptions mean a grader problem (no kernel could be started).

Limits (see :class:`Limits`):

* per-cell and per-notebook time: a cell that overruns is interrupted (``KeyboardInterrupt``
  in the kernel) and the notebook continues; if the kernel ignores the interrupt for
  ``kill_grace_s`` it is killed. Cells left when the notebook budget is spent are skipped.
* memory: a watchdog samples the resident memory of the kernel and its children every
  ``poll_s`` and kills the kernel above ``memory_mb`` (an address-space limit would break
  TensorFlow, which reserves far more virtual memory than it uses).
* output: stream text beyond ``output_bytes`` per cell is cut, as nbgrader's
  ``LimitOutput`` does, and every message on the output channel (any kind, see
  :mod:`grader.kernel.output_budget`) counts against one ``notebook_output_bytes`` budget per notebook,
  measured as it arrives; what goes past it is dropped, never stored, so a cell printing or
  displaying gigabytes never holds them in the grader. Error tracebacks are shortened too.
  Messages larger than ZeroMQ's cap are dropped by ZeroMQ; the client reconnects and ends the
  cell with a fence, so a flood costs the time the kernel takes to send it.

After the notebook, an optional *epilogue* (the export cell) runs in the same kernel with
its own time limit; its source is produced by a callback so that files it needs can be
written after the student's code ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient.exceptions import DeadKernelError

from grader.base.processes import folder_mb, kill_tree, tree_rss_mb
from grader.kernel.cgroups import group_memory_mb, hit_memory_limit
from grader.kernel.client import GradingClient
from grader.kernel.limits import Limits

TRUNCATED = "\n... [output truncated by the grader: {n:,} more bytes not shown]\n"


@dataclass
class ExecutionResult:
    """What happened when a notebook ran. Student failures live here, never in exceptions.

    ``cell_errors`` maps cell id -> ``"Name: message"`` plus the last traceback lines;
    ``timed_out`` lists cells interrupted by the cell or notebook limit; ``not_run`` lists
    code cells never started (after the notebook budget or a dead kernel); ``ok`` holds the
    code cells that finished without error. ``durations`` has ``kernel_start``,
    ``execute``, ``slowest_cell`` (the longest single code cell) and ``export`` in seconds.
    """

    nb: nbformat.NotebookNode
    cell_errors: dict[str, str] = field(default_factory=dict)
    timed_out: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    notebook_timed_out: bool = False
    kernel_died: bool = False
    death_reason: str | None = None
    output_truncated: bool = False
    output_dropped_bytes: int = 0
    output_reconnects: int = 0
    died_during_export: bool = False
    epilogue_ran: bool = False
    epilogue_error: str | None = None
    peak_memory_mb: float = 0.0
    durations: dict[str, float] = field(default_factory=dict)


def kernel_env(*, fast: bool, data_dir: str | None = None, threads: int | None = None,
               home: Path | None = None) -> dict[str, str]:
    """Environment for an unsandboxed grading kernel, built from an allow-list.

    The mode, the data folder and thread pool sizes (``threads`` sets ``OMP_NUM_THREADS``,
    ``TF_NUM_INTRAOP_THREADS`` and ``TF_NUM_INTEROP_THREADS`` = ``min(threads, 2)``); nothing
    else of the grader's environment (see :func:`grader.kernel.sandbox.kernel_environment`).
    """
    from grader.kernel.sandbox import kernel_environment

    return kernel_environment(fast=fast, data_dir=data_dir, threads=threads, sandboxed=False,
                              home=home)


def _short_traceback(content: dict, lines: int = 8) -> str:
    import re

    strip = re.compile(r"\x1b\[[0-9;]*m")
    head = f"{content.get('ename', 'Error')}: {str(content.get('evalue', ''))[:500]}"
    tb = [strip.sub("", t) for t in content.get("traceback", [])]
    tail = "\n".join("\n".join(tb).splitlines()[-lines:])
    return head + ("\n" + tail[-2000:] if tail else "")


def _exit_status(client) -> str:
    """How the kernel process ended, e.g. 'exit code 1' or 'killed by SIGKILL'."""
    import signal

    process = getattr(getattr(client.km, "provisioner", None), "process", None)
    code = process.poll() if process is not None else None
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class _RunState:
    """What the parts of one run share: the time budgets, the cells the budget cut short,
    the watchdog's stop signal and the phase (``notebook`` or ``export``)."""

    limits: Limits
    client: GradingClient | None = None
    budget_end: float = field(default_factory=lambda: time.monotonic() + 1e9)
    """When the current phase's time is spent (set when the first cell starts)."""
    hard_deadline: float = float("inf")
    """When the watchdog stops the kernel whatever it does."""
    budget_limited: set[int] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    memory_group: Path | None = None
    """The kernel's memory cgroup (counts shared memory and tmpfs files too), if it has one."""
    phase: str = "notebook"
    started: float = 0.0
    """``perf_counter`` when the current phase started."""
    midway: dict[str, Midway] = field(default_factory=dict)
    """Cell id -> what runs right after that cell (each at most once)."""

    def cell_timeout(self, cell) -> int:
        """nbclient's ``timeout_func``: the cell's limit, cut to what is left of the budget."""
        remaining = self.budget_end - time.monotonic()
        if remaining < self.limits.cell_timeout_s and self.client.current_index is not None:
            self.budget_limited.add(self.client.current_index)
        return max(1, math.ceil(min(self.limits.cell_timeout_s, remaining)))

    def start_phase(self, phase: str, seconds: float) -> None:
        self.phase = phase
        self.started = time.perf_counter()
        self.budget_end = time.monotonic() + seconds
        self.hard_deadline = self.budget_end + self.limits.kill_grace_s + 5


def _over_limit(pid: int, state: _RunState, result: ExecutionResult, watched,
                check_disk: bool) -> str | None:
    """Why the kernel must be stopped now (disk, memory, an ignored interrupt, the notebook's
    time), or ``None``. Records the peak memory."""
    limits = state.limits
    if check_disk:
        used = sum(folder_mb(folder) for folder in watched if folder is not None)
        if used > limits.disk_mb:
            shown = "more than 20,000 files" if used == float("inf") else f"{used:,.0f} MB of files"
            return (f"the notebook wrote {shown} to its folder (limit:"
                    f" {limits.disk_mb:,} MB), so the kernel was stopped")
    rss = max(tree_rss_mb(pid), group_memory_mb(state.memory_group))
    result.peak_memory_mb = max(result.peak_memory_mb, rss)
    if rss > limits.memory_mb or hit_memory_limit(state.memory_group):
        return (f"the kernel used {rss:,.0f} MB (its processes and the shared memory and"
                f" in-memory files it holds), more than the {limits.memory_mb:,} MB limit,"
                " and was stopped")
    now = time.monotonic()
    interrupted = state.client.interrupt_time
    if interrupted is not None and now - interrupted > limits.kill_grace_s:
        return (f"a cell ran past its time limit and ignored the"
                f" interrupt for {limits.kill_grace_s:g} s, so the"
                " kernel was stopped")
    if now > state.hard_deadline:
        return "the notebook ran past its time limit and was stopped"
    return None


async def _watchdog(pid: int, state: _RunState, result: ExecutionResult, watched) -> None:
    """Sample the kernel every ``poll_s`` (its files every 2 s); stop it over a limit."""
    next_disk_check = 0.0
    while not state.stop.is_set():
        check_disk = time.monotonic() >= next_disk_check
        if check_disk:
            next_disk_check = time.monotonic() + 2.0
        reason = _over_limit(pid, state, result, watched, check_disk)
        if reason is not None:
            result.death_reason = reason
            kill_tree(pid)
            return
        try:
            await asyncio.wait_for(state.stop.wait(), state.limits.poll_s)
        except asyncio.TimeoutError:
            pass


def _cell_id(index: int, cell) -> str:
    return cell.get("id") or str(index)


async def _run_cells(client: GradingClient, code_cells, state: _RunState,
                     result: ExecutionResult) -> None:
    """Run the code cells in order within the notebook's budget; record each one's fate."""
    for pos, (index, cell) in enumerate(code_cells):
        cid = _cell_id(index, cell)
        if time.monotonic() >= state.budget_end:
            result.notebook_timed_out = True
            result.not_run.extend(_cell_id(i, c) for i, c in code_cells[pos:])
            break
        client.current_index = index
        client.interrupt_time = None
        cell_start = time.perf_counter()
        await client.async_execute_cell(cell, index, execution_count=pos + 1)
        result.durations["slowest_cell"] = max(result.durations.get("slowest_cell", 0.0),
                                               time.perf_counter() - cell_start)
        client.interrupt_time = None
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if index in client.interrupted_cells:
            result.timed_out.append(cid)
            if index in state.budget_limited:
                state.budget_end = time.monotonic()  # the notebook's budget is spent
        if errors:
            result.cell_errors[cid] = _short_traceback(errors[-1])
        elif cell.source.strip():
            result.ok.append(cid)
        after = state.midway.pop(cell.get("id"), None) if cell.get("id") else None
        if after is not None:
            await _run_midway(client, client.nb, index, after)
    result.durations["execute"] = time.perf_counter() - state.started


@dataclass(frozen=True)
class Midway:
    """Grader code run in the kernel right after one cell (the early export of
    :func:`grader.submission.pipeline.execute`), and what the grader does once it ran."""

    source: Callable[[], str]
    done: Callable[[], None]


async def _run_midway(client: GradingClient, nb, index: int, after: Midway) -> None:
    """Run ``after`` behind cell ``index``, like the export cell: not kept in ``nb``, no
    history. What it does is only ever a speculation: its errors are ignored, ``done`` runs
    in any case; a kernel that dies here died after cell ``index``."""
    try:
        await _run_extra(client, nb, after.source())
    except DeadKernelError:
        client.current_index = index
        raise
    with contextlib.suppress(Exception):
        after.done()


async def _run_extra(client: GradingClient, nb, source: str):
    """Execute ``source`` in the kernel as a cell appended to ``nb`` and removed again;
    returns the cell (its outputs) and whether it ran past its time limit."""
    cell = nbformat.v4.new_code_cell(source)
    client.current_index = len(nb.cells)
    client.interrupt_time = None
    nb.cells.append(cell)  # nbclient writes the cell back by index
    try:
        await client.async_execute_cell(cell, len(nb.cells) - 1, store_history=False)
    finally:
        nb.cells.pop()
    return cell, len(nb.cells) in client.interrupted_cells


async def _run_epilogue(client: GradingClient, nb, source: str,
                        result: ExecutionResult) -> None:
    """Run the export cell after the notebook, in the same kernel (not kept in ``nb``)."""
    cell, interrupted = await _run_extra(client, nb, source)
    result.epilogue_ran = True
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    if interrupted:
        result.epilogue_error = "the export ran past its time limit"
    elif errors:
        result.epilogue_error = _short_traceback(errors[-1])


def _after_death(client: GradingClient, code_cells, state: _RunState,
                 result: ExecutionResult) -> None:
    """Record a dead kernel: why, the cell it died in, the cells never run."""
    result.kernel_died = True
    if result.death_reason is None and hit_memory_limit(state.memory_group):
        result.death_reason = (f"the kernel was stopped by the operating system at its memory"
                               f" ceiling: it used more than the {state.limits.memory_mb:,} MB"
                               " limit (its processes and the shared memory and in-memory"
                               " files it holds)")
    if result.death_reason is None:
        result.death_reason = ("the kernel died (the process exited: a crash, os._exit"
                               " or the operating system stopping it for memory;"
                               f" {_exit_status(client)})")
    if state.phase == "export":
        result.died_during_export = True
        result.epilogue_error = f"the kernel died during the export: {result.death_reason}"
        result.durations["export"] = time.perf_counter() - state.started
        return
    done = set(result.ok) | set(result.cell_errors)
    current = client.current_index
    for i, c in code_cells:
        cid = _cell_id(i, c)
        if i == current:
            result.cell_errors.setdefault(cid, f"KernelDied: {result.death_reason}")
        elif cid not in done and i > (current if current is not None else -1):
            result.not_run.append(cid)
    result.durations.setdefault("execute", time.perf_counter() - state.started)


async def _run(nb, workdir: Path, limits: Limits, env: dict[str, str],
               epilogue: Callable[[], str] | None, result: ExecutionResult, km,
               log=None, midway: Mapping[str, Midway] | None = None) -> None:
    state = _RunState(limits, midway=dict(midway or {}),
                      memory_group=getattr(km, "memory_group", None))
    client = state.client = GradingClient(
        nb, km=km, limits=limits, timeout_func=state.cell_timeout, interrupt_on_timeout=True,
        allow_errors=True, kernel_name="python3", record_timing=False,
        iopub_timeout=10, shutdown_kernel="immediate", store_widget_state=False,
        startup_timeout=math.ceil(limits.kernel_start_timeout_s),
        resources={"metadata": {"path": str(workdir)}},
    )
    # what the kernel can write to on disk: its working folder and its socket folder
    watched = {Path(workdir), Path(km.connection_file).parent if km.connection_file else None}
    t0 = time.perf_counter()
    streams = {} if log is None else {"stdout": log, "stderr": log}
    async with client.async_setup_kernel(env=env, cwd=str(workdir), **streams):
        result.durations["kernel_start"] = time.perf_counter() - t0
        pid = client.km.provisioner.pid
        dog = asyncio.ensure_future(_watchdog(pid, state, result, watched))
        client.watch_channels()
        code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        try:
            state.start_phase("notebook", limits.notebook_timeout_s)
            await _run_cells(client, code_cells, state, result)
            if epilogue is not None:
                state.start_phase("export", limits.export_timeout_s)
                await _run_epilogue(client, nb, epilogue(), result)
                result.durations["export"] = time.perf_counter() - state.started
        except DeadKernelError:
            _after_death(client, code_cells, state, result)
        finally:
            state.stop.set()
            await dog
            result.output_truncated = client.truncated
            result.output_dropped_bytes = client.dropped_bytes
            result.output_reconnects = client.reconnects
            kill_tree(pid)  # before anything the kernel wrote is read: no process of it is left


def execute_notebook(nb, *, workdir: Path, limits: Limits | None = None,
                     env: dict[str, str] | None = None,
                     epilogue: Callable[[], str] | None = None, km=None,
                     log: Path | None = None,
                     midway: Mapping[str, Midway] | None = None) -> ExecutionResult:
    """Execute ``nb`` (in place) in a fresh kernel whose working folder is ``workdir``.

    Parameters
    ----------
    nb : NotebookNode
        The notebook to run; outputs are written into it (capped).
    workdir : Path
        The kernel's working directory (the grader's scratch folder for this submission).
    limits : Limits
        Time, memory and output limits.
    env : dict, optional
        The kernel's environment (see :func:`kernel_env`); defaults to an unsandboxed one.
    epilogue : callable, optional
        Called after the last cell, while the kernel still runs; returns code to execute in
        the same kernel (the export cell). Skipped when the kernel died.
    km : jupyter_client kernel manager, optional
        How the kernel is started (:mod:`grader.kernel.sandbox`: sandboxed or not, over ``ipc``, with
        a cap on message size); by default an unsandboxed kernel over ``ipc``.
    log : Path, optional
        File the kernel process's own stdout and stderr are appended to (TensorFlow's start-up
        lines and the like; cell outputs go to the notebook as usual). Default: inherited.
    midway : mapping, optional
        Cell id -> :class:`Midway`: grader code run right after the first cell with that id
        (the early export), its errors ignored.

    Returns
    -------
    ExecutionResult
    """
    import shutil
    import tempfile

    from grader.kernel.sandbox import make_kernel_manager

    result = ExecutionResult(nb=nb)
    limits = Limits() if limits is None else limits
    sockets = None
    if km is None:
        sockets = tempfile.mkdtemp(prefix="dlk-")
        km = make_kernel_manager(Path(sockets))
    env = kernel_env(fast=False, home=Path(workdir)) if env is None else env
    handle = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed below
    try:
        _run_in_loop(_run(nb, Path(workdir), limits, env, epilogue, result, km, handle, midway))
    finally:
        if handle is not None:
            handle.close()
        if sockets is not None:
            shutil.rmtree(sockets, ignore_errors=True)
    return result


def _run_in_loop(coro) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    box: list[BaseException] = []

    def target() -> None:  # called from inside an event loop (Jupyter, some schedulers)
        try:
            asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if box:
        raise box[0]
