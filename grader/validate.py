"""Read one submitted file and work out whose it is and which module it answers.

A broken file is data, not an exception: :func:`read_submission` returns a
:class:`Submission` whose ``error`` says what was expected, what was found and what to do.

Student id convention
---------------------
The student id comes from the path, so instructors can grade whatever layout they
collected:

1. nbgrader's layout ``.../submitted/<student>/<assignment>/<file>.ipynb`` -> ``<student>``.
2. Otherwise the file stem, with a trailing module notebook name removed:
   ``alice.ipynb`` -> ``alice``; ``alice_01_mlp_cifar10_gray.ipynb`` -> ``alice``.
3. When the file name is exactly a release name (``alice/01_mlp_cifar10_gray.ipynb``), the
   parent folder -> ``alice``.

Ids are made safe for file names (letters, digits, ``.``, ``_``, ``-``; anything else
becomes ``_``), because feedback is written to ``feedback/<student>.html``.

Module convention
-----------------
The notebook metadata ``dlcourse.module`` (written by release) wins; without it, the file
name: a ``0N_`` prefix, or a rubric's notebook name inside the file name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from grader.paths import MODULES

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MODULE_PREFIX = re.compile(r"^(0[1-9])_")
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024


@dataclass
class Submission:
    """A submitted file after reading: the notebook, or the reason it cannot be graded."""

    path: Path
    student: str
    module: str | None
    nb: nbformat.NotebookNode | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _release_stems() -> dict[str, str]:
    """Stem of each module's release notebook -> module, for the rubrics that exist."""
    from grader.rubric import load_rubric

    stems = {}
    for module in MODULES:
        try:
            stems[Path(load_rubric(module).notebook).stem] = module
        except Exception:  # noqa: BLE001 - a module without a rubric has no release name
            continue
    return stems


def safe_id(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name (never empty)."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or "unknown"


def student_id(path: Path, release_stems: dict[str, str] | None = None) -> str:
    """The student id for a submission path, following the module docstring's convention."""
    path = Path(path)
    stems = _release_stems() if release_stems is None else release_stems
    parts = path.parts
    if len(parts) >= 4 and parts[-4] == "submitted":
        return safe_id(parts[-3])
    stem = path.stem
    if stem in stems or _MODULE_PREFIX.match(stem):
        parent = path.parent.name
        if parent and parent not in (".", "/"):
            return safe_id(parent)
        return safe_id(stem)
    for release in sorted(stems, key=len, reverse=True):
        for sep in ("_", "-", " ", "."):
            if stem.endswith(sep + release):
                return safe_id(stem[: -len(release) - 1])
    return safe_id(stem)


def module_from_name(path: Path, release_stems: dict[str, str] | None = None) -> str | None:
    """The module a file name points to, or None."""
    stems = _release_stems() if release_stems is None else release_stems
    name = Path(path).stem
    for release, module in sorted(stems.items(), key=lambda kv: -len(kv[0])):
        if release in name:
            return module
    match = _MODULE_PREFIX.match(name)
    if match and match.group(1) in MODULES:
        return match.group(1)
    return None


def read_submission(path: Path, *, module: str | None = None,
                    release_name: str | None = None) -> Submission:
    """Read ``path`` as a notebook and identify student and module.

    Parameters
    ----------
    path : Path
        The submitted ``.ipynb``.
    module : str, optional
        Force the module (e.g. when a fixture rubric is used); otherwise it comes from the
        notebook metadata or the file name.
    release_name : str, optional
        The notebook file name of a forced module's rubric (used for the student id).

    Returns
    -------
    Submission
        ``error`` is set (and ``nb`` is None) when the file cannot be graded.
    """
    path = Path(path)
    stems = _release_stems()
    if release_name is not None and module is not None:
        stems[Path(release_name).stem] = module
    sub = Submission(path=path, student=student_id(path, stems), module=module)
    fix = "Fix: submit the .ipynb file saved from Jupyter or Colab (File > Download > .ipynb)."
    try:
        size = path.stat().st_size
    except OSError as exc:
        sub.error = f"cannot read the submission: {exc.strerror or exc}"
        return sub
    if size == 0:
        sub.error = f"the submitted file is empty (0 bytes); expected a Jupyter notebook. {fix}"
        return sub
    if size > MAX_SUBMISSION_BYTES:
        sub.error = (f"the submitted file is {size / 1e6:.0f} MB; expected a notebook under"
                     f" {MAX_SUBMISSION_BYTES / 1e6:.0f} MB. Fix: clear the outputs"
                     " (Edit > Clear all outputs) and save again.")
        return sub
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        sub.error = f"the submitted file is not text (not UTF-8); expected a Jupyter notebook. {fix}"
        return sub
    except json.JSONDecodeError as exc:
        sub.error = (f"the submitted file is not valid JSON (line {exc.lineno}, column"
                     f" {exc.colno}: {exc.msg}); expected a Jupyter notebook. {fix}")
        return sub
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        found = type(raw).__name__ if not isinstance(raw, dict) else f"keys {sorted(raw)[:5]}"
        sub.error = (f"the submitted file is JSON but not a Jupyter notebook (found {found};"
                     f" expected 'cells' and 'nbformat'). {fix}")
        return sub
    if raw.get("nbformat") != 4:
        sub.error = (f"expected a notebook in format version 4, found version"
                     f" {raw.get('nbformat')!r}. Fix: open and save it in a current Jupyter.")
        return sub
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many types; all mean "broken"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        sub.error = f"the notebook does not follow the notebook format ({first}). {fix}"
        return sub
    sub.nb = nb
    if module is None:
        meta = nb.metadata.get("dlcourse", {})
        meta_module = meta.get("module") if isinstance(meta, dict) else None
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
