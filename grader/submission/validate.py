"""Read one submitted file and work out whose it is and which module it answers.

A broken file is data, not an exception: :func:`read_submission` returns a
:class:`Submission` whose ``error`` says what was expected, what was found and what to do.

Student id convention
---------------------
The student's *name* comes from ONE source the instructor chooses (``grade --ids``), never
from a name a student picks inside her own folder (:func:`submission_name`):

* ``folder``: the first folder under the SUBMISSION argument (``SUBMISSION/<student>/...``);
  nbgrader's ``submitted/<student>/<assignment>/<file>.ipynb`` -> ``<student>`` (when
  ``submitted`` is the SUBMISSION argument or lies above it). A file directly in the
  SUBMISSION folder is an error.
* ``file``: the file name: ``<student>_<release name>.ipynb`` (also ``-``, space or ``.``
  before the release name) -> ``<student>``, any other ``<name>.ipynb`` -> ``<name>``; a file
  named exactly like a release (no student part) is an error. For loose files such as an
  LMS's download of all submissions.
* ``auto`` (default): ``folder`` for a file inside a folder under the SUBMISSION argument,
  ``file`` for a loose file at its top (a file named exactly like a release then takes the
  name of the folder the instructor put it in). Files named one by one on the command line
  count as lying under their deepest common folder, so ``class/*/*.ipynb`` is the folder
  layout and ``inbox/*.ipynb`` the loose one.

So ``mallory/victim.ipynb`` is always mallory's. The name is kept as the instructor gave it
(Unicode NFC; unprintable characters and bytes that are not UTF-8 escaped), for matching LMS
rosters; the *id* is the name made safe for file names by
:func:`grader.base.ids.safe_id` (the rule is there), because feedback is written to
``feedback/<student>.html`` and results to ``results/<student>__<module>.json``.

Two submissions of the same student and module are a collision: the batch grades neither and
gives the student one error row naming both files (``grader.classroom.batch.plan_tasks``).
:func:`unique_ids` (``bob+2``; ``+`` never appears in an id from :func:`safe_id`) remains for
callers that want to keep both.

Two ids that differ only in letter case (``Bob``/``bob``) are different ids; on a
case-insensitive file system (macOS, Windows) their feedback file names still collide.

Module convention
-----------------
The notebook metadata ``dlcourse.module`` (written by release) wins; without it, the file
name: a ``0N_`` prefix, or a rubric's notebook name inside the file name.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.base.ids import safe_id, text_bytes
from grader.base.paths import MODULES

_MODULE_PREFIX = re.compile(r"^(0[1-9])_")
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024
MAX_JSON_DEPTH = 100
"""Deepest nesting of JSON arrays/objects accepted in a notebook. Real notebooks nest about
ten levels; nbformat, jsonschema and ``json`` recurse once per level, so a notebook nested
hundreds of levels deep would crash them later instead of failing here with a message."""
DUPLICATE_MARK = "+"
"""Joins a student id and a number for a second upload (``bob+2``). :func:`safe_id` never
keeps a ``+``, so ``bob+2`` cannot be a real student's id (a real ``bob_2`` stays ``bob_2``)."""

@dataclass
class Submission:
    """A submitted file after reading: the notebook, or the reason it cannot be graded."""

    path: Path
    student: str
    module: str | None
    nb: nbformat.NotebookNode | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def course_release_stems() -> dict[str, str]:
    """Stem of each module's release notebook -> module, for the rubrics that exist."""
    from grader.checks.rubric import load_rubric

    stems = {}
    for module in MODULES:
        try:
            stems[Path(load_rubric(module).notebook).stem] = module
        except Exception:  # noqa: BLE001 - a module without a rubric has no release name
            continue
    return stems


def display_path(path: str | os.PathLike | bytes) -> str:
    """``path`` as printable, valid UTF-8 text for messages, reports and JSON.

    Bytes of a file name that are not UTF-8 (lone surrogates in a ``Path``) and characters
    that are not printable (control characters, bidi overrides) become ``\\xNN`` /
    ``\\uNNNN`` escapes; everything else is shown as is.
    """
    try:
        raw = os.fsencode(path) if isinstance(path, bytes) else text_bytes(os.fspath(path))
    except TypeError:
        raw = text_bytes(str(path))
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def unique_ids(keys: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Give every submission its own id, also when a student uploaded a module twice.

    Parameters
    ----------
    keys : list of (student_id, module)
        One per submission, in a stable order (sorted by path): ids are deterministic for
        the same order, which resuming a batch relies on.

    Returns
    -------
    list of (id, note)
        The first submission of each (student, module) keeps its id and note ``None``; each
        later one becomes ``f"{student}{DUPLICATE_MARK}{n}"`` (n = 2, 3, ...) with a note
        saying how many submissions of that module were found for the student and which id
        this one got (the caller may prepend the file name). ``+`` never comes out of
        :func:`safe_id`, so a real student ``bob_2`` keeps ``bob_2``; should an input id
        already hold ``bob+2``, the next free number is used, so no two outputs of one
        module are equal.

    Examples
    --------
    >>> [i for i, _ in unique_ids([("bob", "02"), ("bob", "02"), ("bob_2", "02")])]
    ['bob', 'bob+2', 'bob_2']
    """
    keys = [(student, module) for student, module in keys]
    counts: dict[tuple[str, str | None], int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    taken = set(counts)
    seen: dict[tuple[str, str | None], int] = {}
    out: list[tuple[str, str | None]] = []
    for student, module in keys:
        n = seen.get((student, module), 0) + 1
        seen[(student, module)] = n
        if n == 1:
            out.append((student, None))
            continue
        candidate = f"{student}{DUPLICATE_MARK}{n}"
        while (candidate, module) in taken:
            n += 1
            seen[(student, module)] = n
            candidate = f"{student}{DUPLICATE_MARK}{n}"
        taken.add((candidate, module))
        out.append((candidate, f"{counts[(student, module)]} submissions of module"
                               f" {module or 'unknown'} were found for {student}; this one is"
                               f" graded as {candidate}"))
    return out


def _file_name_student(path: Path, stems: dict[str, str]) -> str | None:
    """The student part of a file name (``alice_01_x.ipynb`` -> ``alice``, ``alice.ipynb``
    -> ``alice``), or None when the name is exactly a release name (``01_x.ipynb``)."""
    stem = path.stem
    if stem in stems or _MODULE_PREFIX.match(stem):
        return None
    for release in sorted(stems, key=len, reverse=True):
        for sep in ("_", "-", " ", "."):
            if stem.endswith(sep + release):
                return stem[: -len(release) - 1]
    return stem


def _raw_student(path: Path, stems: dict[str, str]) -> str:
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "submitted":
        return parts[-3]
    name = _file_name_student(path, stems)
    if name is None:
        parent = path.parent.name
        return parent if parent and parent not in (".", "/") else path.stem
    return name


def student_id(path: Path, release_stems: dict[str, str] | None = None) -> str:
    """The student id a path alone suggests (a single file graded on its own).

    nbgrader's ``submitted/<student>/...``, else the file-name pattern, else (a file named
    like a release) its folder. Batches use :func:`submission_name` instead, which knows the
    SUBMISSION argument. Any path works, also one whose name is not UTF-8
    (``Path(os.fsdecode(b"caf\\xe9.ipynb"))``): the id comes from :func:`safe_id` and is
    always a safe, valid UTF-8 file name.
    """
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    stems = course_release_stems() if release_stems is None else release_stems
    return safe_id(_raw_student(path, stems))


ID_MODES = ("auto", "folder", "file")
"""Where a batch takes student names from (``grade --ids``; see the module docstring)."""


def shown_name(raw: str) -> str:
    """A name as the instructor gave it, for rosters and tables: NFC, printable, valid UTF-8."""
    return unicodedata.normalize("NFC", display_path(raw))


def _nbgrader_student(path: Path, rel: tuple[str, ...]) -> str | None:
    """``<student>`` of ``submitted/<student>/<assignment>/<file>`` when ``submitted`` is the
    SUBMISSION argument, lies above it or is the first folder under it (so a student cannot
    build the layout inside her own folder)."""
    parts = path.parts
    first_under_root = len(parts) - len(rel)
    if len(parts) >= 4 and parts[-4] == "submitted" and len(parts) - 4 <= first_under_root:
        return parts[-3]
    return None


def submission_name(path: Path, rel: tuple[str, ...], mode: str = "auto",
                    release_stems: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """The student name of one submission in a batch: ``(name, None)`` or ``(None, error)``.

    Parameters
    ----------
    path : Path
        The file.
    rel : tuple of str
        Its path parts below the SUBMISSION argument it was found under (``("ada",
        "01_x.ipynb")``; ``("01_x.ipynb",)`` for a loose file at the top).
    mode : {"auto", "folder", "file"}
        The instructor's choice (see the module docstring).

    The name is returned raw (as on disk); make it an id with :func:`safe_id` and show it
    with :func:`shown_name`.
    """
    if mode not in ID_MODES:
        raise ValueError(f"expected an id mode in {ID_MODES}, got {mode!r}")
    stems = course_release_stems() if release_stems is None else release_stems
    shown = display_path(Path(*rel)) if rel else display_path(path.name)
    if mode in ("auto", "folder"):
        nbgrader = _nbgrader_student(path, rel)
        if nbgrader is not None:
            return nbgrader, None
        if len(rel) >= 2:
            return rel[0], None
        if mode == "folder":
            return None, (f"{shown} lies directly in the SUBMISSION folder; expected"
                          " <student>/<notebook>.ipynb (--ids folder takes the student from"
                          " the folder). Fix: move it into its student's folder, or grade"
                          " loose files with --ids file")
    name = _file_name_student(path, stems)
    if name is not None:
        return name, None
    if mode == "auto":
        parent = path.parent.name
        return (parent, None) if parent and parent not in (".", "/") else (path.stem, None)
    return None, (f"{shown} is named like the released notebook, so its name holds no student;"
                  " expected <student>_<release name>.ipynb (--ids file takes the student from"
                  " the file name). Fix: rename it, or put it in its student's folder and grade"
                  " with --ids folder")


def module_from_name(path: Path, release_stems: dict[str, str] | None = None) -> str | None:
    """The module a file name points to, or None."""
    stems = course_release_stems() if release_stems is None else release_stems
    name = Path(path).stem
    for release, module in sorted(stems.items(), key=lambda kv: -len(kv[0])):
        if release in name:
            return module
    match = _MODULE_PREFIX.match(name)
    if match and match.group(1) in MODULES:
        return match.group(1)
    return None


_FIX = "Fix: submit the .ipynb file saved from Jupyter or Colab (File > Download > .ipynb)."


def _short(value: object, limit: int = 60) -> str:
    """A short, printable description of a JSON value for a message (never recursive)."""
    if isinstance(value, dict):
        return f"a JSON object with {len(value)} keys"
    if isinstance(value, list):
        return f"a JSON array of {len(value)} items"
    text = repr(value[: limit + 1]) if isinstance(value, str) else ascii(value)
    text = display_path(text)  # repr keeps printable non-ASCII letters, escapes the rest
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException) -> str:
    """The first line of an exception message, short and printable; never raises."""
    try:
        # jsonschema's ``message`` is one line; its str() pretty-prints the whole notebook
        text = str(getattr(exc, "message", None) or exc).strip()
    except Exception:  # noqa: BLE001 - e.g. a message whose repr recurses too deep
        text = ""
    line = text.splitlines()[0] if text else type(exc).__name__
    return display_path(line[:200])


def _json_depth(value: object, limit: int) -> int:
    """How deeply ``value`` nests arrays/objects, counted without recursion; stops past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def read_bytes(path: Path) -> tuple[bytes | None, str | None]:
    """The file's bytes (at most one more than the size limit), or an error message.

    Opened without blocking and read only when it is a regular file, so a FIFO or a device
    named like a notebook is an error, never a hang.
    """
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        with os.fdopen(os.open(path, flags), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(0, "not a regular file (a folder, a FIFO or a device)")
            if info.st_size > MAX_SUBMISSION_BYTES:
                return None, _too_big(info.st_size)
            return handle.read(MAX_SUBMISSION_BYTES + 1), None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = getattr(exc, "strerror", None) or _first_line(exc)
        return None, (f"cannot read the submission ({reason}); expected a readable .ipynb file."
                      " Fix: check that the file exists and can be read, then grade again.")


def _too_big(size: int) -> str:
    return (f"the submitted file is {size / 1e6:.0f} MB; expected a notebook under"
            f" {MAX_SUBMISSION_BYTES / 1e6:.0f} MB. Fix: clear the outputs"
            " (Edit > Clear all outputs) and save again.")


def _parse_notebook(data: bytes) -> tuple[nbformat.NotebookNode | None, str | None]:
    """``data`` as a validated version-4 notebook, or the reason it is not one. Never raises."""
    if len(data) == 0:
        return None, f"the submitted file is empty (0 bytes); expected a Jupyter notebook. {_FIX}"
    if len(data) > MAX_SUBMISSION_BYTES:
        return None, _too_big(len(data))
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (some Windows editors) is harmless
    except UnicodeDecodeError as exc:
        return None, (f"the submitted file is not text (not UTF-8: byte {exc.start} is"
                      f" 0x{data[exc.start]:02x}); expected a Jupyter notebook. {_FIX}")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, (f"the submitted file is not valid JSON (line {exc.lineno}, column"
                      f" {exc.colno}: {exc.msg}); expected a Jupyter notebook. {_FIX}")
    except RecursionError:
        return None, _too_deep(f"more than {MAX_JSON_DEPTH}")
    except MemoryError:
        return None, (f"the submitted file ({len(data) / 1e6:.0f} MB) is too large to read into"
                      f" memory; expected a notebook of a few MB. Fix: clear the outputs"
                      " (Edit > Clear all outputs) and save again.")
    except (ValueError, TypeError) as exc:  # e.g. an integer of more than 4300 digits
        return None, (f"the submitted file is not valid JSON ({_first_line(exc)}); expected a"
                      f" Jupyter notebook. {_FIX}")
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        if isinstance(raw, dict):
            found = "keys " + ", ".join(_short(key, 40) for key in sorted(raw)[:5])
            found = found if raw else "an empty JSON object"
        else:
            found = _short(raw)
        return None, (f"the submitted file is JSON but not a Jupyter notebook (found {found};"
                      f" expected 'cells' and 'nbformat'). {_FIX}")
    version = raw.get("nbformat")
    if version != 4 or isinstance(version, bool):
        return None, (f"expected a notebook in format version 4, found version {_short(version)}."
                      " Fix: open and save it in a current Jupyter.")
    if _json_depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, _too_deep(f"more than {MAX_JSON_DEPTH}")
    try:
        # schema first (its messages name the bad field), then what nbformat.reads does
        # after json.loads (NotebookNode, multi-line strings joined, transient keys dropped)
        nbformat.validate(raw)
        nb = nbformat.v4.to_notebook_json(raw)
    except Exception as exc:  # noqa: BLE001 - nbformat/jsonschema raise many types (RecursionError,
        # MemoryError, ValueError, TypeError, ValidationError...): all mean "not a notebook"
        return None, (f"the notebook does not follow the notebook format ({_first_line(exc)});"
                      f" expected cells, metadata and outputs as Jupyter writes them. {_FIX}")
    return nb, None


def _too_deep(depth: str) -> str:
    return (f"the submitted file nests {depth} levels of JSON arrays/objects; expected a Jupyter"
            f" notebook, which nests at most {MAX_JSON_DEPTH} (this is not a notebook Jupyter"
            " wrote, or its metadata was edited by a tool). Fix: start from the released"
            " notebook, copy your code into it and save it from Jupyter or Colab.")


def read_submission(path: Path, *, module: str | None = None, release_name: str | None = None,
                    data: bytes | None = None) -> Submission:
    """Read ``path`` as a notebook and identify student and module.

    Parameters
    ----------
    path : Path
        The submitted ``.ipynb`` (any name, also one that is not UTF-8).
    module : str, optional
        Force the module (e.g. when a fixture rubric is used); otherwise it comes from the
        notebook metadata or the file name.
    release_name : str, optional
        The notebook file name of a forced module's rubric (used for the student id).
    data : bytes, optional
        The file's content, already read (e.g. once for both fingerprint and grading). Then
        ``path`` only names the submission: it is never opened or stat-ed.

    Returns
    -------
    Submission
        ``error`` is set (and ``nb`` is None) when the file cannot be graded: unreadable,
        empty, too large, not UTF-8, not JSON, nested too deeply, not a version-4 notebook.
        Nothing in the file makes this function raise.

    Raises
    ------
    TypeError
        When ``data`` is given but is not bytes-like (a programming error, not a bad file).
    """
    path = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    stems = course_release_stems()
    if release_name is not None and module is not None:
        stems[Path(release_name).stem] = module
    sub = Submission(path=path, student=student_id(path, stems), module=module)
    if data is None:
        data, sub.error = read_bytes(path)
        if sub.error is not None:
            return sub
    elif not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"read_submission: expected data to be bytes, got {type(data).__name__}")
        data = bytes(data)
    nb, sub.error = _parse_notebook(data)
    if nb is None:
        return sub
    sub.nb = nb
    if module is None:
        meta = nb.metadata.get("dlcourse", {})
        meta_module = meta.get("module") if isinstance(meta, dict) else None
        meta_module = meta_module if isinstance(meta_module, str) else None
        name_module = module_from_name(path, stems)
        if meta_module in MODULES:
            sub.module = meta_module
            if name_module and name_module != meta_module:
                sub.notes.append(f"the file name suggests module {name_module} but the notebook"
                                 f" says {meta_module}; graded as module {meta_module}")
        elif name_module:
            sub.module = name_module
        else:
            sub.error = ("cannot tell which module this notebook answers: expected notebook"
                         " metadata dlcourse.module or a file name starting with 01_..04_."
                         " Fix: start from the released notebook and keep its file name.")
            sub.nb = None
    return sub
