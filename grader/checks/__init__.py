"""Level 1, what a grade means: rubrics, the check kinds, per-lesson references, the hold-out.

Pure functions from objects to scored results; the student's self-check and the grader
both run them. Imports :mod:`grader.base` and, for the datasets and the course's own
preprocessing (lazily, inside the functions that need them), :mod:`helpers`.
"""
