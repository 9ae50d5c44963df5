"""What a student uploaded to Gradescope, checked before any kernel starts.

:func:`find_notebook` returns the one notebook to grade, or a one-sentence reason the upload
cannot be graded that tells the student what to upload instead: nothing uploaded, no notebook,
several notebooks, a file that is not a readable notebook, or another lesson's notebook. The
lesson is read the way the grader reads it (:func:`grader.submission.validate.read_submission`:
the notebook's ``dlcourse.module`` metadata, else its file name); a notebook that names no
lesson and shares no cell id with this lesson's solution is not this lesson's either.
"""

from __future__ import annotations

from pathlib import Path

MAX_LISTED = 5
"""File names a message lists at most."""


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and ".ipynb_checkpoints" not in p.relative_to(folder).parts)


def _listed(paths: list[Path], folder: Path) -> str:
    names = [str(p.relative_to(folder)) for p in paths[:MAX_LISTED]]
    more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
    return ", ".join(names) + more


def _reason(error: str) -> str:
    """The grader's message without its closing "Fix: ..." sentence."""
    return error.split(" Fix:")[0].rstrip(" .")


def find_notebook(folder: Path, settings: dict,
                  solution_ids: set[str] | None = None) -> tuple[Path | None, str | None]:
    """The notebook in ``folder`` to grade, or ``(None, reason)``.

    Parameters
    ----------
    folder : Path
        ``/autograder/submission``.
    settings : dict
        ``settings.json`` of the zip (``module``, ``notebook``: the release file name).
    solution_ids : set of str, optional
        The cell ids of this lesson's solution, for a notebook whose metadata and file name
        name no lesson.
    """
    from grader.submission.validate import read_submission

    module, release = settings["module"], settings["notebook"]
    upload = f"your lesson {module} notebook ({release})"
    folder = Path(folder)
    files = _files(folder)
    notebooks = [p for p in files if p.suffix.lower() == ".ipynb"]
    if not files:
        return None, f"Your upload is empty: upload {upload} and submit again."
    if not notebooks:
        return None, (f"Your upload has no Jupyter notebook (found {_listed(files, folder)}):"
                      f" upload {upload}, the .ipynb file itself, and submit again.")
    if len(notebooks) > 1:
        return None, (f"Your upload has {len(notebooks)} notebooks"
                      f" ({_listed(notebooks, folder)}): upload only {upload} and submit again.")
    path = notebooks[0]
    name = str(path.relative_to(folder))
    sub = read_submission(path)
    if sub.nb is None and sub.module is None and sub.error and "which module" in sub.error:
        sub = read_submission(path, module=module)  # names no lesson: read it as this one
    if sub.nb is None:
        return None, (f"Your file {name} cannot be graded: {_reason(sub.error or 'unreadable')};"
                      f" download {upload} again from Jupyter or Colab (File > Download >"
                      " .ipynb) and submit that file.")
    if sub.module is not None and sub.module != module:
        return None, (f"This is the notebook of lesson {sub.module} ({name}), but this assignment"
                      f" grades lesson {module}: upload {upload} and submit again.")
    ids = {c.get("id") for c in sub.nb.cells} - {None}
    if solution_ids and ids and not ids & solution_ids:
        return None, (f"{name} is not the lesson {module} notebook (none of its cells come from"
                      f" it): upload {upload} and submit again.")
    return path, None
