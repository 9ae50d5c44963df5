"""Discussions of written questions: kept for instructors, handed to students after the deadline.

A solution notebook may follow a written question with a locked Markdown cell tagged
``discussion`` that discusses the question (in lesson 04, "Discussion of 4.B" .. "4.F"). What
students get before the deadline, ``notebooks/`` and the student edition, keeps the cell (its
id and place are what the grader restores) but shows only its heading and a line saying the
discussion comes later. After the deadline, ``python -m grader release --discussions MODULE
DIR`` (``release.write_discussions``) writes every discussion of the module, each under the
question it discusses, to one Markdown file in ``DIR`` for the instructor to hand out.
"""

from __future__ import annotations

from grader.authoring.cells import role
from grader.base.errors import NotebookFormatError

DISCUSSION_TAG = "discussion"
HANDED_OUT_LATER = "*Your instructor hands this discussion out after the deadline.*"


def is_discussion(cell) -> bool:
    """Whether a cell is tagged as a discussion."""
    return DISCUSSION_TAG in cell.get("metadata", {}).get("tags", [])


def _heading(source: str) -> str:
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    return first if first.startswith("#") else "### Discussion"


def _checked(cell, where: str):
    if cell.cell_type != "markdown" or role(cell) != "locked":
        raise NotebookFormatError(
            f"{where}: cell {cell.get('id')} is tagged {DISCUSSION_TAG!r} but is a"
            f" {cell.cell_type} {role(cell)} cell; expected a locked Markdown cell (remove the"
            " tag, or make the cell locked Markdown)")
    return cell


def hide_discussions(nb, where: str = "notebook") -> int:
    """Replace the text of every discussion cell of a released notebook, in place.

    Each keeps its heading and gets :data:`HANDED_OUT_LATER`; returns how many were hidden.
    """
    hidden = 0
    for cell in nb.cells:
        if is_discussion(cell):
            _checked(cell, where)
            cell.source = f"{_heading(cell.source)}\n\n{HANDED_OUT_LATER}"
            hidden += 1
    return hidden


def _question_before(cells, index: int) -> str:
    """The last written question or exercise statement before ``cells[index]``."""
    for cell in reversed(cells[:index]):
        if is_discussion(cell):
            break
        if cell.cell_type == "markdown" and role(cell) == "locked" and (
                "**Written question" in cell.source or "**Exercise" in cell.source):
            return cell.source.strip()
    return ""


def discussions_markdown(solution, title: str) -> tuple[str, int]:
    """The hand-out of one solution notebook's discussions, and how many it holds."""
    parts = [f"# {title}: discussions of the written questions", ""]
    count = 0
    for index, cell in enumerate(solution.cells):
        if not is_discussion(cell):
            continue
        _checked(cell, title)
        question = _question_before(solution.cells, index)
        if question:
            parts += ["\n".join(f"> {line}".rstrip() for line in question.splitlines()), ""]
        parts += [cell.source.strip(), ""]
        count += 1
    return "\n".join(parts), count
