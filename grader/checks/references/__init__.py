"""References the grader computes itself: expected values and function test cases.

A rubric ``value`` check with ``reference = "name"`` calls ``REFERENCES[name](ctx, *objects)``
(the objects after the subject, in rubric order) to get the expected value. A ``function`` check names a
:class:`FunctionCase`: the grader generates inputs, the student's function runs on them in
the kernel, and the output is compared here with the reference implementation's.

The registry and the generic references live in ``registry.py``; lesson-specific ones in
``lesson0N.py`` beside it, registered with :func:`reference`.
"""

# Lesson-specific references register themselves on import.
from grader.checks.references import lesson01, lesson02, lesson03, lesson04, plots  # noqa: F401
from grader.checks.references.registry import REFERENCES, FunctionCase, reference  # noqa: F401
