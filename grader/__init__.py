"""dlcourse grader: release student notebooks, self-checks, and grading outside the kernel.

Students only need :func:`check`. Instructors use the command line::

    python -m grader release            # regenerate notebooks/ from solutions/
    python -m grader grade SUBMISSION... --out DIR
"""

import sys

__all__ = ["check"]

if "ipykernel" not in sys.modules:  # the grader's own processes, never a student's kernel
    # jsonschema (imported by nbformat) builds its optional "iri" format checker from
    # rfc3987_syntax's grammar when that package is installed: about 1 s at every start of the
    # CLI, each worker and each scoring process. No notebook schema uses that format.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]


def __getattr__(name: str):
    """``grader.check`` is imported when first used, so importing any part of the grader
    (the pages, the gradebook) does not load the check logic with it."""
    if name == "check":
        from grader.authoring.selfcheck import check

        return check
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
