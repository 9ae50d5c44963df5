"""The nbclient client a grading kernel runs under: an output budget, and output the kernel's
flood made ZeroMQ drop recovered by reconnecting and fencing.

Lost output: ZeroMQ ends the output connection for good when the kernel sends a message
larger than :data:`grader.kernel.sandbox.MAX_MESSAGE_BYTES` (and drops messages when the
kernel sends faster than the grader reads). The client then reconnects, and ends a cell whose
``idle`` status was lost with a *fence*: a ``kernel_info_request`` on the shell channel, which
the kernel handles only after the cell, so its status on the output channel proves the cell's
output is over. A flood therefore costs the time the kernel takes to send it, never a
time-out per later cell. The output budget is :class:`grader.kernel.output_budget.OutputBudget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from queue import Empty

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete

from grader.kernel.limits import Limits
from grader.kernel.output_budget import OutputBudget, payload_bytes

FENCE_AFTER_S = 0.5
"""Seconds after a cell's reply before the grader asks the kernel for a fence."""
FENCE_EVERY_S = 2.0


class GradingClient(OutputBudget, NotebookClient):
    """An nbclient client that caps outputs, recovers dropped output and remembers which cells
    it interrupted (see the module docstring)."""

    def __init__(self, nb, *, limits: Limits, **kw):
        super().__init__(nb, **kw)
        self.limits = limits
        self.cell_bytes: dict[int, int] = {}
        self.total_bytes = 0
        self.dropped_bytes = 0
        self.reconnects = 0
        self.truncated = False
        self.interrupted_cells: set[int] = set()
        self.current_index: int | None = None
        self.interrupt_time: float | None = None
        self.fences: set[str] = set()
        self.messages_seen = 0
        self.monitors: dict = {}

    def watch_channels(self) -> None:
        """Start watching the output and shell connections for ZeroMQ dropping them."""
        self.monitors = {name: drop_monitor(self, name) for name in ("iopub", "shell")}

    async def _reconnect_if_dropped(self, name: str) -> bool:
        """Reconnect channel ``name`` when ZeroMQ dropped it (True when it did)."""
        monitors = getattr(self, "monitors", {})
        if not await dropped(monitors.get(name)):
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
        monitors[name] = drop_monitor(self, name)
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
                return lost_reply(msg_id, cell)

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
            await output_end(self, task_poll_output_msg, deadline)
            task_poll_kernel_alive.cancel()
            return msg

    async def _async_handle_timeout(self, timeout, cell=None):
        if self.current_index is not None:
            self.interrupted_cells.add(self.current_index)
        if self.interrupt_time is None:
            self.interrupt_time = time.monotonic()
        return await super()._async_handle_timeout(timeout, cell)


def lost_reply(msg_id: str, cell) -> dict:
    """The cell ran, but its reply (an error with a huge message) never arrived."""
    from grader.kernel.sandbox import MAX_MESSAGE_BYTES

    text = (f"the cell's result was larger than {MAX_MESSAGE_BYTES // 2**20} MB and was"
            " dropped unseen, so the grader counts the cell as failed")
    cell.outputs.append(nbformat.v4.new_output(
        "error", ename="OutputTooLarge", evalue=text, traceback=[]))
    return {"parent_header": {"msg_id": msg_id}, "header": {}, "metadata": {},
            "content": {"status": "error", "ename": "OutputTooLarge", "evalue": text,
                        "traceback": []}}


async def output_end(client: GradingClient, task, deadline: float | None) -> None:
    """Wait for the cell's output to end after its reply: its idle status or a fence.

    Waits while output keeps arriving (a flood is still being sent) up to the cell's
    own deadline, and at most ``iopub_timeout`` seconds of silence.
    """
    now = time.monotonic()
    quiet_until = now + client.iopub_timeout
    limit = max(deadline or now, now) + client.iopub_timeout
    next_fence = now + FENCE_AFTER_S
    seen, reconnects = client.messages_seen, client.reconnects
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        now = time.monotonic()
        if client.messages_seen != seen:
            seen = client.messages_seen
            quiet_until = now + client.iopub_timeout
        if now >= next_fence or client.reconnects != reconnects:
            reconnects = client.reconnects
            client.send_fence()
            next_fence = now + FENCE_EVERY_S
        if now >= min(quiet_until, limit):
            client.log.warning("Timeout waiting for IOPub output")
            task.cancel()
            break
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()


def drop_monitor(client, name: str = "iopub"):
    """A monitor of a channel's connection: ZeroMQ drops it for good when the kernel sends a
    message over the grader's size limit (:data:`grader.kernel.sandbox.MAX_MESSAGE_BYTES`)."""
    import zmq

    try:
        socket = getattr(client.kc, f"{name}_channel").socket
        return socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    except (AttributeError, zmq.ZMQError):
        return None


async def dropped(monitor) -> bool:
    """True when output was lost since the last call (a message too large was refused)."""
    if monitor is None:
        return False
    found = False
    while await monitor.poll(0):
        await monitor.recv_multipart()
        found = True
    return found
