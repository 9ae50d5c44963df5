"""Cell conventions shared by release, grading and the nbgrader round trip.

Every cell of a solution notebook carries nbgrader schema-3 metadata:

* **exercise** cells (``solution: true``) hold the answer between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; release replaces that block with a stub. Written (Markdown) answers
  are also ``grade: true`` with 0 points, as nbgrader requires of Markdown answer cells.
* **self-check** cells (``grade: true, locked: true``) call ``check("0N.<name>", ...)``;
  their ``grade_id`` is ``check_0N_<name>`` and their ``points`` come from the rubric.
* every other cell is **locked** (instructions, setup, demonstrations): the grader restores
  it from the solution by cell id, so edits to it change nothing.

The papermill-style ``parameters`` cell is a locked cell tagged ``parameters``.
``normalize`` fills this metadata in for authors; ``validate`` insists on it.
"""

from __future__ import annotations

import re

import nbformat

from grader.base.errors import NotebookFormatError
from grader.checks.rubric import Rubric, grade_id_for

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: What a labelled placeholder tells the student (see :func:`code_stub`).
STUB_INSTRUCTION = "replace this line with your code"
MARKDOWN_STUB = "YOUR ANSWER HERE"
PARAMETERS_TAG = "parameters"

_EXERCISE_LABEL = re.compile(r"\*\*Exercise (\d+\.\w+)")
_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.[A-Za-z0-9_]+)["']""")
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_KEEP_METADATA = ("nbgrader", "tags", "deletable")


def code_stub(label: str | None = None) -> str:
    """The placeholder of a code exercise cell.

    With the exercise's number (``"2.1"``) its ``raise`` line says which exercise it is and
    what to do; without one it is the plain nbgrader stub :data:`CODE_STUB`.
    """
    if not label:
        return CODE_STUB
    return f'# YOUR CODE HERE\nraise NotImplementedError("Exercise {label}: {STUB_INSTRUCTION}")'


def is_stub_line(line: str) -> bool:
    """Whether a line is the ``raise`` line of a placeholder, labelled or not."""
    text = line.strip()
    return text == CODE_STUB.splitlines()[-1] or (
        text.startswith('raise NotImplementedError("Exercise ')
        and text.endswith(f': {STUB_INSTRUCTION}")'))


def exercise_labels(nb) -> dict[str, str]:
    """Cell id -> exercise number of every code exercise cell.

    The number is the last ``**Exercise N.x**`` named in a Markdown instruction cell before it.
    """
    labels: dict[str, str] = {}
    last = None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and role(cell) != "exercise":
            found = _EXERCISE_LABEL.findall(cell.source)
            last = found[-1] if found else last
        elif cell.cell_type == "code" and role(cell) == "exercise" and last:
            labels[cell.get("id")] = last
    return labels


_EXERCISE_HEADING = re.compile(r"\*\*Exercise\s+(\d[\w.]*\w|\d)")
"""A bold exercise label, as :func:`exercise_labels` reads it (there with a dotted number only);
the last one in a cell names the exercise, so a sentence that mentions another exercise
("the split Exercise 4.12 uses") never renames the cells below it."""


def _text(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _nbgrader_meta(cell) -> dict:
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    meta = meta.get("nbgrader") if isinstance(meta, dict) else None
    return meta if isinstance(meta, dict) else {}


def cell_names(nb) -> dict[str, str]:
    """Cell id and grade id -> the name a student reads: ``"Exercise 2.4"``.

    An exercise cell takes the name of the last bold ``**Exercise N.M**`` in the nearest
    Markdown cell above it that has one (the label the placeholder names, too); when one
    heading covers several exercise cells, the later ones are ``"Exercise N.M, cell 2"``...;
    an exercise with no such heading is ``"exercise cell K"`` (K counts the notebook's
    exercise cells). Every other cell is ``"cell P (after Exercise N.M)"`` or ``"cell P
    (before the first exercise)"`` (P is its position, counting from 1), so no message a
    student reads names an internal id.
    """
    cells = nb.get("cells", []) if isinstance(nb, dict) else []
    cells = cells if isinstance(cells, list) else []
    names: dict[str, str] = {}
    heading, used, count, last = None, 0, 0, None
    for position, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            continue
        meta = _nbgrader_meta(cell)
        if meta.get("solution") is True:
            count += 1
            used += 1
            if heading is None:
                name = f"exercise cell {count}"
            else:
                name = heading if used == 1 else f"{heading}, cell {used}"
            last = name
        else:
            name = f"cell {position} ({f'after {last}' if last else 'before the first exercise'})"
            if cell.get("cell_type") == "markdown":
                found = _EXERCISE_HEADING.findall(_text(cell))
                if found:
                    heading, used = f"Exercise {found[-1]}", 0
        for key in (cell.get("id"), meta.get("grade_id")):
            if isinstance(key, str) and key and key not in names:
                names[key] = name
    return names


def cell_name(names: dict[str, str], key: str | None) -> str:
    """``names[key]``, or a neutral ``"a cell"`` for an id the names do not know."""
    return names.get(key or "", "a cell")


def checks_called(source: str) -> list[str]:
    """The check ids a cell calls, in order."""
    return _CHECK_CALL.findall(source)


def role(cell) -> str:
    """``"exercise"``, ``"check"`` or ``"locked"`` from the cell's nbgrader metadata."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution"):
        return "exercise"
    if meta.get("grade"):
        return "check"
    return "locked"


def is_parameters(cell) -> bool:
    return PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])


def normalize(nb, rubric: Rubric):
    """Fill in cell ids and nbgrader metadata following the conventions above (in place)."""
    used: set[str] = set()
    for index, cell in enumerate(nb.cells):
        cid = cell.get("id")
        if not cid or not _CELL_ID.match(cid) or cid in used:
            cid = f"m{rubric.module}-{index:03d}"
        cell["id"] = cid
        used.add(cid)
        meta = cell.setdefault("metadata", {})
        old = meta.get("nbgrader", {})
        source = cell.source
        calls = checks_called(source) if cell.cell_type == "code" else []
        if BEGIN in source or old.get("solution"):
            nb_meta = {"grade": False, "grade_id": old.get("grade_id") or f"ex_{cid}",
                       "locked": False, "schema_version": 3, "solution": True}
            if cell.cell_type == "markdown":
                # nbgrader requires a written answer to be a (manually graded) grade cell;
                # our rubric grades the numbers behind it, so it carries no points here.
                nb_meta.update(grade=True, points=0)
        elif calls:
            points = sum(rubric.get(c).points for c in calls)
            nb_meta = {"grade": True, "grade_id": grade_id_for(calls[0]), "locked": True,
                       "points": points, "schema_version": 3, "solution": False}
        else:
            nb_meta = {"grade": False, "grade_id": old.get("grade_id") or f"locked_{cid}",
                       "locked": True, "schema_version": 3, "solution": False}
        meta["nbgrader"] = nb_meta
    nb.metadata.setdefault("dlcourse", {})["module"] = rubric.module
    return nb


def validate(nb, rubric: Rubric, name: str) -> None:
    """Raise :class:`NotebookFormatError` listing every convention the notebook breaks."""
    problems: list[str] = []
    if nb.metadata.get("dlcourse", {}).get("module") != rubric.module:
        problems.append(f"notebook metadata dlcourse.module should be {rubric.module!r}")
    seen_ids: set[str] = set()
    seen_grade_ids: set[str] = set()
    checked: set[str] = set()
    parameters = 0
    for index, cell in enumerate(nb.cells):
        where = f"cell {index} ({cell.get('id', 'no id')})"
        cid = cell.get("id")
        if not cid or cid in seen_ids:
            problems.append(f"{where}: missing or duplicate cell id")
        seen_ids.add(cid)
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            problems.append(f"{where}: no nbgrader metadata (run `python -m grader normalize`)")
            continue
        gid = meta.get("grade_id")
        if not gid or gid in seen_grade_ids:
            problems.append(f"{where}: missing or duplicate grade_id {gid!r}")
        seen_grade_ids.add(gid)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{where}: has outputs; save the notebook without outputs")
        kind = role(cell)
        if kind == "exercise" and cell.cell_type == "code" and (BEGIN in cell.source) != (
                END in cell.source):
            problems.append(f"{where}: unbalanced {BEGIN!r} / {END!r} markers")
        if kind != "exercise" and BEGIN in cell.source:
            problems.append(f"{where}: solution markers in a cell not marked as an exercise")
        if kind == "check":
            calls = checks_called(cell.source)
            if not calls:
                problems.append(f"{where}: graded cell calls no check(\"{rubric.module}.<id>\")")
            for c in calls:
                try:
                    rubric.get(c)
                except Exception as exc:  # noqa: BLE001 - reported as a problem
                    problems.append(f"{where}: {exc}")
                checked.add(c)
        if is_parameters(cell):
            parameters += 1
    by_id = {cell.get("id"): cell for cell in nb.cells}
    for question in rubric.questions:
        cell = by_id.get(question.cell)
        if cell is None or cell.cell_type != "markdown" or role(cell) != "exercise":
            found = "no such cell" if cell is None else f"a {cell.cell_type} {role(cell)} cell"
            problems.append(f"written question {question.id}: expected a Markdown exercise cell"
                            f" with id {question.cell!r}, found {found}; fix the rubric's cell ="
                            " or the notebook")
    missing = [c.id for c in rubric.checks if c.id not in checked]
    if missing:
        problems.append(f"rubric checks with no self-check cell: {missing}")
    if parameters != 1:
        problems.append(f"expected exactly one cell tagged 'parameters', found {parameters}")
    if problems:
        raise NotebookFormatError(f"{name}:\n  " + "\n  ".join(problems))


def _strip_block(source: str, stub: str = CODE_STUB) -> str:
    lines = source.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + line for line in stub.splitlines())
            continue
        if stripped == END:
            inside = False
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def student_cell(cell, label: str | None = None):
    """The released form of one solution cell (a new object; the input is unchanged).

    ``label`` is the exercise number its placeholder names (see :func:`code_stub`).
    """
    new = nbformat.from_dict(dict(cell))
    new["metadata"] = {k: cell.metadata[k] for k in _KEEP_METADATA if k in cell.metadata}
    if role(cell) == "exercise":
        if cell.cell_type == "code":
            stub = code_stub(label)
            new.source = _strip_block(cell.source, stub) if BEGIN in cell.source else stub
        else:
            new.source = MARKDOWN_STUB
    elif cell.cell_type == "code":
        new.metadata["deletable"] = False
    if cell.cell_type == "code":
        new["outputs"] = []
        new["execution_count"] = None
    return new
