"""References the grader computes itself: expected values and function test cases.

A rubric ``value`` check with ``reference = "name"`` calls ``REFERENCES[name](ctx, *objects)``
(the objects after the subject, in rubric order) to get the expected value. A ``function`` check names a
:class:`FunctionCase`: the grader generates inputs, the student's function runs on them in
the kernel, and the output is compared here with the reference implementation's.

The registry lives in ``registry.py``; lesson-specific references in ``lesson0N.py`` beside
it, registered with :func:`reference`. A check that the student's kernel can decide in full
(:mod:`grader.checks.verdicts`: curves, predictions, values recomputed from a model) is its
verdict here too; the references of the others build on their verdicts and add re-runs.
"""

# Lesson-specific references register themselves on import.
from grader.checks.references import lesson01, lesson02, lesson03, lesson04  # noqa: F401
from grader.checks.references.registry import REFERENCES, FunctionCase, reference  # noqa: F401
from grader.checks.verdicts import VERDICTS

for _name, _verdict in VERDICTS.items():
    REFERENCES.setdefault(_name, _verdict)
