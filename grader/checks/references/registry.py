"""The reference registry (:data:`REFERENCES`, :func:`reference`). Apart from the package
``__init__`` (which imports the lessons) so a lesson module can register without importing
the package that imports it. :class:`FunctionCase` lives with the in-kernel verdicts
(:mod:`grader.checks.verdicts.registry`), which the student edition ships; it is re-exported
here.
"""

from __future__ import annotations

from typing import Any

from grader.checks.verdicts.registry import FunctionCase, registrar  # noqa: F401 - FunctionCase re-exported

REFERENCES: dict[str, Any] = {}
reference = registrar(REFERENCES, "reference")
"""Register a value reference or a :class:`FunctionCase` under ``name``."""
