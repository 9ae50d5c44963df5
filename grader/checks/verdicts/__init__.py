"""Verdicts the self-check reaches in the student's kernel, without a reference or an answer.

Each lesson module registers, under the name of the rubric's ``reference``, what can be
decided from the student's own objects: values recomputed from their model or data
(accuracies, predictions, confusion matrices), structural checks (labels still match their
images after a split, the loss fits the labels), internal consistency of experiment tables
(each reported value is the best of its own history), and a function's outputs on fixed
inputs compared with salted digests of the reference's outputs (``digests.json``, written by
``python -m grader.checks.references.digests``). The student edition ships this package; the
grader's references import it and add their re-runs.
"""

from grader.checks.verdicts import curves, lesson01, lesson02, lesson03, lesson04  # noqa: F401
from grader.checks.verdicts.registry import VERDICTS, FunctionCase, verdict  # noqa: F401
