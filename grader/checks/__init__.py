"""Level 2, what a grade means: rubrics, the check kinds, per-lesson references and verdicts.

The student's self-check and the grader both run these checks. They are not all pure: the
checks read the datasets (through :mod:`helpers`, lazily), and the experiment checks
(:mod:`grader.checks.experiments`) train models again and time them. Threads and files that
outlive one check (the kernel data copy, the hold-out) belong to :mod:`grader.data`. Imports
:mod:`grader.base` and :mod:`grader.data` only.
"""
