"""Reading submissions: broken files become error rows; student and module from the path."""

from __future__ import annotations

import json
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

from grader.grading import grade_submission
from grader.validate import module_from_name, read_submission, student_id

STEMS = {"01_mlp_cifar10_gray": "01", "02_dense_mnist_fashion": "02"}


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    rubric = fx.build_rubric(tmp_path_factory.mktemp("rubric"))
    return rubric, fx.build_solution(rubric)


@pytest.mark.parametrize("path, expected", [
    ("course/submitted/bob/ps1/01_mlp_cifar10_gray.ipynb", "bob"),
    ("submitted/carol.s/assignment/whatever.ipynb", "carol.s"),
    ("alice.ipynb", "alice"),
    ("class/alice/01_mlp_cifar10_gray.ipynb", "alice"),
    ("inbox/alice_01_mlp_cifar10_gray.ipynb", "alice"),
    ("inbox/dave-02_dense_mnist_fashion.ipynb", "dave"),
    ("inbox/Eve Smith (1).ipynb", "Eve_Smith_1"),
    ("inbox/../../etc.ipynb", "etc"),
])
def test_student_id_follows_the_documented_convention(path, expected):
    assert student_id(Path(path), STEMS) == expected


def test_module_from_file_name():
    assert module_from_name(Path("x/alice_02_dense_mnist_fashion.ipynb"), STEMS) == "02"
    assert module_from_name(Path("x/03_anything.ipynb"), STEMS) == "03"
    assert module_from_name(Path("x/alice.ipynb"), STEMS) is None


BROKEN = {
    "empty": (b"", "empty"),
    "invalid-json": (b'{"cells": [', "not valid JSON"),
    "non-notebook": (b'{"hello": "world"}', "not a Jupyter notebook"),
    "json-list": (b"[1, 2, 3]", "not a Jupyter notebook"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not text"),
    "nbformat-3": (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [],
                               "cells": [], "metadata": {}}).encode(), "version 4"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_when_file_is_broken_then_error_row_not_exception(module, tmp_path, name):
    content, phrase = BROKEN[name]
    path = tmp_path / "alice.ipynb"
    path.write_bytes(content)
    rubric, solution = module
    row = grade_submission(path, fast=True, rubric=rubric, solution=solution)
    assert row.error is not None and phrase in row.error, row.error
    assert row.student == "alice" and row.module == "01"
    assert row.score == 0 and row.max_score == 7
    assert [c.points for c in row.checks] == [0] * 5 and "Fix:" in row.error


def test_when_module_unknown_then_error_row(tmp_path):
    nb = nbformat.v4.new_notebook()
    path = tmp_path / "alice.ipynb"
    nbformat.write(nb, str(path))
    row = grade_submission(path, fast=True)
    assert row.error is not None and "which module" in row.error and row.module is None


def test_module_comes_from_notebook_metadata_first(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["dlcourse"] = {"module": "02"}
    path = tmp_path / "01_mlp_cifar10_gray.ipynb"
    nbformat.write(nb, str(path))
    sub = read_submission(path)
    assert sub.error is None and sub.module == "02"
    assert any("file name suggests module 01" in n for n in sub.notes)
