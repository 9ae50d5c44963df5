"""The output budget of a grading kernel: what the kernel sends is measured as it arrives.

Every message the kernel sends on its output channel (stream text, display data and its
updates, results, errors with their tracebacks, ``clear_output``, comm messages), whichever
cell it claims to belong to, is counted against one budget per notebook,
``Limits.notebook_output_bytes``; what would go past it is not stored (comm messages never
are). Stream text is also cut per cell (``Limits.output_bytes``), as nbgrader's
``LimitOutput`` does, and error tracebacks are shortened.
"""

from __future__ import annotations

import nbformat

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


class OutputBudget:
    """The output-budget half of :class:`grader.kernel.client.GradingClient` (a mixin placed
    before ``NotebookClient``, whose ``process_message`` and ``output`` it wraps).

    Expects ``limits``, ``cell_bytes``, ``total_bytes``, ``dropped_bytes`` and ``truncated``,
    which the client's ``__init__`` sets.
    """

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
