"""References for lesson 02 (values and function cases the grader computes itself).

Lesson 02 has none at present: Exercise 2.1 asks for the one-hot row of a label stated in
the exercise, so its answer is the same in every data mode and the rubric stores its
digest (``answer_sha256``) instead of recomputing it from the training data.
"""

from __future__ import annotations
