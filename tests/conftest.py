"""Shared fixtures. Tests read the real datasets through DLCOURSE_DATA_DIR."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def data_dir() -> str:
    folder = os.environ.get("DLCOURSE_DATA_DIR")
    if not folder:
        pytest.fail(
            "DLCOURSE_DATA_DIR is not set: point it at a folder holding mnist.npz,"
            " fashion_mnist.npz and cifar10.npz (CI uses ../shared/data)."
        )
    return folder


@pytest.fixture(scope="session")
def bwrap_required() -> None:
    """Tests that need the bubblewrap sandbox: skipped without it, failed in CI
    (``DLCOURSE_REQUIRE_SANDBOX=1``, where ``.ci/run`` installs it)."""
    from grader.submission.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem is not None:
        message = f"these tests need bubblewrap: {problem} (CI installs it)"
        if os.environ.get("DLCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail(message)
        pytest.skip(message)
