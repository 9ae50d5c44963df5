"""References for lesson 04 (values and function cases the grader computes itself)."""

from __future__ import annotations
