"""References for lesson 02 (values and function cases the grader computes itself)."""

from __future__ import annotations
