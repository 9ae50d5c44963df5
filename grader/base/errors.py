"""The grader's one base exception.

Student mistakes are data (a failed check, an ``error`` in a grade row); these exceptions
are for problems an instructor or maintainer must fix: a broken rubric, a missing
solution notebook, an out-of-date release.
"""


class GraderError(Exception):
    """Base class for errors the grader reports to the person running it."""


class RubricError(GraderError):
    """A rubric file is malformed: the message names the file and the check."""


class NotebookFormatError(GraderError):
    """A solution notebook breaks the cell conventions (metadata, markers, ids)."""

