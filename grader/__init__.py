"""dlcourse grader: release student notebooks, self-checks, and grading outside the kernel.

Students only need :func:`check`. Instructors use the command line::

    python -m grader release            # regenerate notebooks/ from solutions/
    python -m grader grade SUBMISSION... --out DIR
"""

from grader.authoring.selfcheck import check

__all__ = ["check"]
