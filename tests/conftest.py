"""Shared fixtures. Tests read the real datasets through DLCOURSE_DATA_DIR."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")

pytest_plugins = ["shared_batches"]
"""Gradings several test files read (tests/shared_batches.py): graded once per session."""


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
    from grader.kernel.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem is not None:
        message = f"these tests need bubblewrap: {problem} (CI installs it)"
        if os.environ.get("DLCOURSE_REQUIRE_SANDBOX") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _longest_files_first(items: list) -> None:
    """Files with ``slow`` tests first, then files with ``notebook`` tests, then the rest, each
    file's own order kept: under xdist both workers start on the long runs (a 20-minute test
    dispatched last would run alone at the end) and the many short tests fill the tail."""
    by_file: dict = {}
    for item in items:
        by_file.setdefault(item.path, []).append(item)

    def weight(path) -> int:
        marks = {m.name for item in by_file[path] for m in item.iter_markers()}
        return 2 if "slow" in marks else 1 if "notebook" in marks else 0

    items[:] = [item for path in sorted(by_file, key=weight, reverse=True) for item in by_file[path]]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Order the files (:func:`_longest_files_first`), then refuse to run when
    ``--dist loadgroup`` cannot keep a group on one worker.

    Tests marked ``xdist_group`` share a module fixture and run in order (a Canvas push, then
    a second push). pytest-xdist marks them by appending ``@group`` to the node id; pytest 9.2
    computes node ids differently and the mark is silently lost, so such tests would be spread
    over both workers and fail for the wrong reason. (xdist shows the refusal as an
    INTERNALERROR naming a test id; the exit status is non-zero either way.)
    """
    _longest_files_first(items)
    if not getattr(config.option, "loadgroup", False):
        return
    lost = [item.nodeid for item in items
            if item.get_closest_marker("xdist_group") and "@" not in item.nodeid]
    if lost:
        raise pytest.UsageError(
            f"--dist loadgroup is not effective with pytest {pytest.__version__}: "
            f"{len(lost)} grouped tests (e.g. {lost[0]}) have no @group node id. Expected "
            "pytest < 9.2 (pyproject.toml pins it); reinstall with scripts/setup.sh test")
