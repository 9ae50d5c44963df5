"""Rebuild a submission on the solution's skeleton, the way nbgrader overwrites locked cells.

Rules (only exercise cells belong to the student):

* The result has the solution's cells in the solution's order.
* Every protected cell (self-check, setup, instructions, parameters: every cell that is
  not an exercise) is the released version of the solution's cell, whatever the student
  did to it. Edited protected cells and deleted protected cells are reported as notes; a
  cell that differs only in the repository it names (the student edition's Colab badge and
  install cell) is not an edit.
* Each exercise cell takes the source of the student's cell with the same nbgrader
  ``grade_id`` (falling back to the same cell id). When that ``grade_id`` occurs more than
  once (a cell copied and pasted in Jupyter keeps its metadata), the last copy is graded,
  with a note. A missing exercise cell gets the released stub and a note.
* Cells the student added are dropped, with a note: code outside exercise cells is never
  run, so answers must stay inside the exercise cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nbformat

from grader.authoring.cells import cell_name, cell_names, role
from grader.authoring.edition import same_apart_from_repository
from grader.authoring.release import student_notebook


@dataclass
class Restored:
    """The notebook to execute and what restoring changed."""

    nb: nbformat.NotebookNode
    notes: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    missing_exercises: list[str] = field(default_factory=list)


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _tags(cell) -> list:
    meta = cell.get("metadata")
    tags = meta.get("tags") if isinstance(meta, dict) else None
    return tags if isinstance(tags, list) else []


def _label(cell) -> str:
    return _grade_id(cell) or cell.get("id") or "?"


def restore(submission, solution) -> Restored:
    """The submission rebuilt on the solution's skeleton (see the module docstring).

    Parameters
    ----------
    submission : NotebookNode
        The student's notebook (nbformat v4). Not modified.
    solution : NotebookNode
        The module's solution notebook (with nbgrader metadata on every cell).

    Returns
    -------
    Restored
    """
    template = student_notebook(solution)
    names = cell_names(solution)
    copies: dict[str, list] = {}
    by_id: dict[str, object] = {}
    for cell in submission.cells:
        gid = _grade_id(cell)
        if gid:
            copies.setdefault(gid, []).append(cell)
        cid = cell.get("id")
        if cid and cid not in by_id:
            by_id[cid] = cell
    used: set[int] = set()
    duplicated: list[str] = []
    out = Restored(nb=template)
    for sol_cell, new in zip(solution.cells, template.cells, strict=True):
        gid = _grade_id(sol_cell)
        exercise = role(sol_cell) == "exercise"
        found = copies.get(gid, []) if gid else []
        # an exercise is graded from its last copy; a protected cell is restored anyway
        theirs = (found[-1] if exercise else found[0]) if found else None
        if theirs is None:
            theirs = by_id.get(sol_cell.get("id"))
        if theirs is not None:
            used.add(id(theirs))
        if exercise:
            if len(found) > 1:
                duplicated.append(f"{cell_name(names, gid)} ({len(found)} copies)")
                used.update(id(c) for c in found)
            if theirs is None:
                out.missing_exercises.append(gid or sol_cell.get("id"))
            else:
                new.source = _source(theirs)
            continue
        if theirs is None:
            out.deleted.append(_label(sol_cell))
        elif not same_apart_from_repository(_source(theirs), new.source):
            # the student edition's badge and install cell name its own repository
            out.edited.append(_label(sol_cell))
    added = [(n, c) for n, c in enumerate(submission.cells, 1)
             if id(c) not in used and "injected-parameters" not in _tags(c)]
    out.dropped = [_label(c) for _, c in added]
    _notes(out, names, duplicated, [f"cell {n} of your notebook" for n, _ in added])
    return out


def _notes(out: Restored, names: dict[str, str], duplicated: list[str], added: list[str]) -> None:
    """The notes a student reads: cells named as in the notebook, never by internal id."""
    def named(ids: list[str]) -> str:
        return ", ".join(cell_name(names, i) for i in ids)

    if duplicated:
        out.notes.append(f"exercise cell(s) found more than once (copied and pasted?):"
                         f" {', '.join(duplicated)}; the last copy of each was graded")
    if out.edited:
        out.notes.append(f"restored {len(out.edited)} edited protected cell(s) from the"
                         f" course notebook: {named(out.edited)}; only exercise cells are"
                         " graded as you wrote them")
    if out.deleted:
        out.notes.append(f"restored {len(out.deleted)} deleted protected cell(s):"
                         f" {named(out.deleted)}")
    if out.missing_exercises:
        out.notes.append(f"exercise cell(s) missing from the submission, graded as blank:"
                         f" {named(out.missing_exercises)}")
    if added:
        out.notes.append(f"ignored {len(added)} cell(s) you added"
                         f" ({', '.join(added[:10])}{' ...' if len(added) > 10 else ''});"
                         " put answers inside the exercise cells")
