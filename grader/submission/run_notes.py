"""What a row says about how the notebook ran: errors, time-outs, cut output, a dead kernel.

Cells are named as students read them (``names`` from
:func:`grader.authoring.cells.cell_names`), never by internal id.
"""

from __future__ import annotations

from grader.authoring.cells import cell_name, cell_names
from grader.kernel.execute import ExecutionResult

MAX_ERROR_NOTES = 8


def tail(text: str, lines: int = 4) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-lines:])


def output_note(execution: ExecutionResult) -> str:
    """What the row and the feedback say about output the grader did not keep."""
    from grader.kernel.sandbox import MAX_MESSAGE_BYTES

    note = "some output was cut: the grader keeps only the first part of long outputs"
    dropped = execution.output_dropped_bytes
    if dropped >= 1_000_000:
        note += f" ({dropped / 1e6:,.0f} MB more output was dropped)"
    elif dropped > 0:
        note += f" ({dropped:,} bytes more output were dropped)"
    if execution.output_reconnects:
        note += (f"; messages larger than {MAX_MESSAGE_BYTES // 2**20} MB were dropped unseen"
                 " (print less, or save large results to a file)")
    return note


def execution_notes(execution: ExecutionResult, nb, names: dict[str, str] | None = None) -> list[str]:
    """Notes on errors, time-outs and cells not run."""
    names = names if names is not None else cell_names(nb)
    notes: list[str] = []
    errors = list(execution.cell_errors.items())
    for cid, text in errors[:MAX_ERROR_NOTES]:
        first = text.splitlines()[0]
        notes.append(f"{cell_name(names, cid)} raised {first}\n{tail(text)}")
    if len(errors) > MAX_ERROR_NOTES:
        notes.append(f"... and {len(errors) - MAX_ERROR_NOTES} more cells raised errors")
    if execution.timed_out:
        notes.append("interrupted at the time limit: "
                     f"{', '.join(cell_name(names, c) for c in execution.timed_out)}")
    if execution.notebook_timed_out:
        notes.append("the notebook reached its total time limit")
    if execution.not_run:
        notes.append(f"{len(execution.not_run)} cell(s) were not run: "
                     f"{', '.join(cell_name(names, c) for c in execution.not_run[:10])}"
                     f"{' ...' if len(execution.not_run) > 10 else ''}")
    if execution.output_truncated:
        notes.append(output_note(execution))
    if execution.epilogue_error:
        notes.append(f"exporting your objects failed: {tail(execution.epilogue_error)}")
    return notes


def died_error(execution: ExecutionResult, names: dict[str, str]) -> str:
    """The row's error when the kernel died before the export."""
    where = next((cid for cid, text in execution.cell_errors.items()
                  if text.startswith("KernelDied")), None)
    return (f"{execution.death_reason}"
            f"{f' while running {cell_name(names, where)}' if where else ''}; nothing could be"
            " exported, so no check was scored. Fix: run the notebook top to bottom"
            " in a fresh kernel and make sure it finishes (watch memory use and"
            " infinite loops).")
