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
  :class:`_GradingClient`) counts against one ``notebook_output_bytes`` budget per notebook,
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
from queue import Empty

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, DeadKernelError

from grader.base.processes import folder_mb, kill_tree, tree_rss_mb
from grader.submission.cgroups import group_memory_mb, hit_memory_limit

TRUNCATED = "\n... [output truncated by the grader: {n:,} more bytes not shown]\n"


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
        (:mod:`grader.submission.score_process`).
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
    else of the grader's environment (see :func:`grader.submission.sandbox.kernel_environment`).
    """
    from grader.submission.sandbox import kernel_environment

    return kernel_environment(fast=fast, data_dir=data_dir, threads=threads, sandboxed=False,
                              home=home)


def _short_traceback(content: dict, lines: int = 8) -> str:
    import re

    strip = re.compile(r"\x1b\[[0-9;]*m")
    head = f"{content.get('ename', 'Error')}: {str(content.get('evalue', ''))[:500]}"
    tb = [strip.sub("", t) for t in content.get("traceback", [])]
    tail = "\n".join("\n".join(tb).splitlines()[-lines:])
    return head + ("\n" + tail[-2000:] if tail else "")


FENCE_AFTER_S = 0.5
"""Seconds after a cell's reply before the grader asks the kernel for a fence (see below)."""
FENCE_EVERY_S = 2.0
MAX_ERROR_CHARS = 2000


def payload_bytes(value, limit: int = 1 << 62) -> int:
    """Size of a decoded message part (its strings and byte buffers), counted as it arrives.

    Stops counting once ``limit`` is passed, so a message of a million tiny parts costs no
    more than needed to tell it is too big.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            total += len(item)
        elif isinstance(item, dict):
            total += 8 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += 8 * len(item)
            stack.extend(item)
        else:
            total += 8
    return total


class _GradingClient(NotebookClient):
    """An nbclient client that caps outputs and remembers which cells it interrupted.

    Output budget: every message the kernel sends on its output channel (stream text,
    display data and its updates, results, errors with their tracebacks, ``clear_output``,
    comm messages), whichever cell it claims to belong to, is measured as it arrives and
    counted against one budget per notebook, ``Limits.notebook_output_bytes``; what would go
    past it is not stored (comm messages never are). Stream text is also cut per cell.

    Lost output: ZeroMQ ends the output connection for good when the kernel sends a message
    larger than :data:`grader.submission.sandbox.MAX_MESSAGE_BYTES` (and drops messages when
    the kernel sends faster than the grader reads). The client then reconnects, and ends a
    cell whose ``idle`` status was lost with a *fence*: a ``kernel_info_request`` on the
    shell channel, which the kernel handles only after the cell, so its status on the output
    channel proves the cell's output is over. A flood therefore costs the time the kernel
    takes to send it, never a time-out per later cell.
    """

    def __init__(self, nb, *, limits: Limits, **kw):
        super().__init__(nb, **kw)
        self.limits = limits
        self.cell_bytes: dict[int, int] = {}
        self.total_bytes = 0
        self.arrived_bytes = 0
        self.dropped_bytes = 0
        self.reconnects = 0
        self.truncated = False
        self.interrupted_cells: set[int] = set()
        self.current_index: int | None = None
        self.interrupt_time: float | None = None
        self.fences: set[str] = set()
        self.messages_seen = 0
        self.monitors: dict = {}

    # -- output budget -----------------------------------------------------------------
    def _room(self) -> int:
        return self.limits.notebook_output_bytes - self.total_bytes

    def _drop(self, outs, size: int) -> None:
        self.truncated = True
        self.dropped_bytes += size
        self._mark_truncated(outs)

    def process_message(self, msg, cell, cell_index):  # noqa: D401 - nbclient hook
        kind = msg.get("msg_type")
        content = msg.get("content")
        if not isinstance(content, dict) or not isinstance(kind, str):
            return None
        if kind == "status":
            return super().process_message(msg, cell, cell_index)
        size = payload_bytes(content) + payload_bytes(msg.get("buffers") or [])
        if kind.startswith("comm"):  # widgets are not rendered: counted, never stored
            if size > self._room():
                self._drop(cell.outputs, size)
            else:
                self.total_bytes += size
            return None
        if kind == "execute_input":
            if isinstance(content.get("execution_count"), int):
                cell["execution_count"] = content["execution_count"]
            return None
        if kind == "stream":
            return self._stream(cell.outputs, msg, cell_index)
        if kind == "error":
            return self._error(cell.outputs, msg, cell_index, size)
        transient = content.get("transient")
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        if display_id is not None and not isinstance(display_id, str):
            display_id = str(display_id)[:100]
        content["transient"] = {"display_id": display_id} if display_id else {}
        copies = (1 if kind != "update_display_data" else 0) + self._display_targets(display_id)
        cost = size * max(1, copies)
        if cost > self._room():
            self._drop(cell.outputs, cost)
            return None
        self.total_bytes += cost
        return super().process_message(msg, cell, cell_index)

    def _display_targets(self, display_id: str | None) -> int:
        if not display_id or display_id not in self._display_id_map:
            return 0
        return sum(len(v) for v in self._display_id_map[display_id].values())

    def _stream(self, outs, msg, cell_index):
        content = msg["content"]
        text = content.get("text", "")
        text = text if isinstance(text, str) else str(text)[:MAX_ERROR_CHARS]
        size = len(text.encode("utf-8", "replace"))
        used = self.cell_bytes.get(cell_index, 0)
        self.cell_bytes[cell_index] = used + size
        room = min(self.limits.output_bytes - used, self._room())
        if room <= 0:
            self._drop(outs, size)
            return None
        if size > room:
            content["text"] = text.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            self.total_bytes += room
            out = super().output(outs, msg, None, cell_index)
            self._drop(outs, size - room)
            return out
        content["text"] = text
        self.total_bytes += size
        return super().output(outs, msg, None, cell_index)

    def _error(self, outs, msg, cell_index, size):
        """Errors are always kept (their cell failed), shortened; past the budget the newest
        replaces the cell's previous error instead of adding to it."""
        content = msg["content"]
        content["ename"] = str(content.get("ename", "Error"))[:200]
        content["evalue"] = str(content.get("evalue", ""))[:MAX_ERROR_CHARS]
        raw = content.get("traceback")
        tb = [str(line)[:MAX_ERROR_CHARS] for line in (raw if isinstance(raw, list) else [])[:10_000]]
        content["traceback"] = tb[:5] + ["..."] + tb[-5:] if len(tb) > 10 else tb
        kept = payload_bytes(content)
        if size > kept:
            self.truncated = True
            self.dropped_bytes += size - kept
        if kept > self._room():
            previous = [i for i, o in enumerate(outs) if o.get("output_type") == "error"]
            if previous:
                del outs[previous[-1]]
            self.truncated = True
        self.total_bytes += kept
        return super().output(outs, msg, None, cell_index)

    @staticmethod
    def _mark_truncated(outs) -> None:
        marker = "... [output truncated by the grader]\n"
        if outs and outs[-1].get("output_type") == "stream" and outs[-1].get("text") == marker:
            return
        outs.append(nbformat.v4.new_output("stream", name="stdout", text=marker))

    # -- lost messages: reconnect and fence --------------------------------------------
    def watch_channels(self) -> None:
        """Start watching the output and shell connections for ZeroMQ dropping them."""
        self.monitors = {name: _drop_monitor(self, name) for name in ("iopub", "shell")}

    async def _reconnect_if_dropped(self, name: str) -> bool:
        """Reconnect channel ``name`` when ZeroMQ dropped it (True when it did)."""
        monitors = getattr(self, "monitors", {})
        if not await _dropped(monitors.get(name)):
            return False
        if not await self.km.is_alive():
            return False  # the kernel died: its sockets closed, nothing was refused
        self.truncated = True
        self.reconnects += 1
        channel = getattr(self.kc, f"{name}_channel")
        with contextlib.suppress(Exception):  # the old socket is closed below anyway
            channel.socket.disable_monitor()
        if monitors.get(name) is not None:
            monitors[name].close(linger=0)
        channel.close()
        setattr(self.kc, f"_{name}_channel", None)  # jupyter_client connects anew on next use
        monitors[name] = _drop_monitor(self, name)
        return True

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):  # noqa: D102
        self.fences = set()  # only this cell's fences can end it
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    def send_fence(self) -> None:
        self.fences.add(self.kc.kernel_info())

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):  # noqa: D102
        while True:
            if await self._reconnect_if_dropped("iopub"):
                self._mark_truncated(cell.outputs)
                self.send_fence()
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=0.2)
            except Empty:
                continue
            self.messages_seen += 1
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent in self.fences:
                return  # the kernel is past the cell: its idle status was lost
            if parent != parent_msg_id:
                if msg.get("msg_type") != "status":  # a late or stray message: counted
                    size = payload_bytes(msg.get("content")) + payload_bytes(msg.get("buffers") or [])
                    if size > self._room():
                        self.truncated = True
                        self.dropped_bytes += size
                    else:
                        self.total_bytes += size
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                return

    async def _next_reply(self, msg_id: str, cell, deadline: float | None):
        """The cell's execute reply; a stand-in when ZeroMQ dropped it (too large) and a
        fence proved the kernel is past the cell; ``Empty`` at the deadline."""
        reply_lost = False
        while True:
            if await self._reconnect_if_dropped("shell"):
                reply_lost = True
                self.send_fence()
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                raise Empty
            try:
                msg = await self.kc.shell_channel.get_msg(timeout=left)
            except Empty:
                continue
            parent = msg.get("parent_header", {}).get("msg_id")
            if parent == msg_id:
                return msg
            if parent in self.fences and reply_lost:
                return self._lost_reply(msg_id, cell)

    def _lost_reply(self, msg_id: str, cell) -> dict:
        """The cell ran, but its reply (an error with a huge message) never arrived."""
        from grader.submission.sandbox import MAX_MESSAGE_BYTES

        text = (f"the cell's result was larger than {MAX_MESSAGE_BYTES // 2**20} MB and was"
                " dropped unseen, so the grader counts the cell as failed")
        cell.outputs.append(nbformat.v4.new_output(
            "error", ename="OutputTooLarge", evalue=text, traceback=[]))
        return {"parent_header": {"msg_id": msg_id}, "header": {}, "metadata": {},
                "content": {"status": "error", "ename": "OutputTooLarge", "evalue": text,
                            "traceback": []}}

    async def _async_poll_for_reply(self, msg_id, cell, timeout, task_poll_output_msg,
                                    task_poll_kernel_alive):  # noqa: D102 - nbclient hook
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                msg = await self._next_reply(msg_id, cell, deadline)
            except Empty:
                task_poll_kernel_alive.cancel()
                await self._async_check_alive()
                reply = await self._async_handle_timeout(timeout, cell)
                if reply is not None:
                    reply["parent_header"] = {"msg_id": msg_id}
                    msg = reply
                else:
                    deadline = time.monotonic() + timeout  # as nbclient: wait again
                    continue
            await self._output_end(task_poll_output_msg, deadline)
            task_poll_kernel_alive.cancel()
            return msg

    async def _output_end(self, task, deadline: float | None) -> None:
        """Wait for the cell's output to end after its reply: its idle status or a fence.

        Waits while output keeps arriving (a flood is still being sent) up to the cell's
        own deadline, and at most ``iopub_timeout`` seconds of silence.
        """
        now = time.monotonic()
        quiet_until = now + self.iopub_timeout
        limit = max(deadline or now, now) + self.iopub_timeout
        next_fence = now + FENCE_AFTER_S
        seen, reconnects = self.messages_seen, self.reconnects
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            now = time.monotonic()
            if self.messages_seen != seen:
                seen = self.messages_seen
                quiet_until = now + self.iopub_timeout
            if now >= next_fence or self.reconnects != reconnects:
                reconnects = self.reconnects
                self.send_fence()
                next_fence = now + FENCE_EVERY_S
            if now >= min(quiet_until, limit):
                self.log.warning("Timeout waiting for IOPub output")
                task.cancel()
                break
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()

    async def _async_handle_timeout(self, timeout, cell=None):
        if self.current_index is not None:
            self.interrupted_cells.add(self.current_index)
        if self.interrupt_time is None:
            self.interrupt_time = time.monotonic()
        return await super()._async_handle_timeout(timeout, cell)


def _drop_monitor(client, name: str = "iopub"):
    """A monitor of a channel's connection: ZeroMQ drops it for good when the kernel sends a
    message over the grader's size limit (:data:`grader.submission.sandbox.MAX_MESSAGE_BYTES`)."""
    import zmq

    try:
        socket = getattr(client.kc, f"{name}_channel").socket
        return socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    except (AttributeError, zmq.ZMQError):
        return None


async def _dropped(monitor) -> bool:
    """True when output was lost since the last call (a message too large was refused)."""
    if monitor is None:
        return False
    found = False
    while await monitor.poll(0):
        await monitor.recv_multipart()
        found = True
    return found


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
    client: _GradingClient | None = None
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


async def _run_cells(client: _GradingClient, code_cells, state: _RunState,
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


async def _run_midway(client: _GradingClient, nb, index: int, after: Midway) -> None:
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


async def _run_extra(client: _GradingClient, nb, source: str):
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


async def _run_epilogue(client: _GradingClient, nb, source: str,
                        result: ExecutionResult) -> None:
    """Run the export cell after the notebook, in the same kernel (not kept in ``nb``)."""
    cell, interrupted = await _run_extra(client, nb, source)
    result.epilogue_ran = True
    errors = [o for o in cell.outputs if o.get("output_type") == "error"]
    if interrupted:
        result.epilogue_error = "the export ran past its time limit"
    elif errors:
        result.epilogue_error = _short_traceback(errors[-1])


def _after_death(client: _GradingClient, code_cells, state: _RunState,
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
    client = state.client = _GradingClient(
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
        How the kernel is started (:mod:`grader.submission.sandbox`: sandboxed or not, over ``ipc``, with
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

    from grader.submission.sandbox import make_kernel_manager

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
