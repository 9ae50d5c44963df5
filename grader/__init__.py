"""dlcourse grader: release student notebooks, self-checks, and grading outside the kernel.

Students only need :func:`check`. Instructors use the command line::

    python -m grader release            # regenerate notebooks/ from solutions/
    python -m grader grade SUBMISSION... --out DIR
"""


__all__ = ["check"]


def __getattr__(name: str):
    """``grader.check`` is imported when first used, so importing any part of the grader
    (the pages, the gradebook) does not load the check logic with it."""
    if name == "check":
        from grader.authoring.selfcheck import check

        return check
    raise AttributeError(f"module 'grader' has no attribute {name!r}")
