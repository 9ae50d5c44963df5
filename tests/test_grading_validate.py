"""Reading submissions: broken files become error rows; student and module from the path."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import helpers_notebooks as fx
import nbformat
import pytest

import grader.submission.validate as validate
from grader.submission.grading import grade_submission
from grader.submission.options import GradingOptions
from grader.submission.validate import (
    MAX_JSON_DEPTH,
    display_path,
    module_from_name,
    read_submission,
    student_id,
)

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
    ("inbox/Eve Smith (1).ipynb",
     "Eve_Smith_1-" + hashlib.sha256(b"Eve Smith (1)").hexdigest()[:8]),  # never the real Eve_Smith_1
    ("inbox/Eve_Smith_1.ipynb", "Eve_Smith_1"),
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
    row = grade_submission(path, GradingOptions.resolve(fast=True, rubric=rubric, solution=solution))
    assert row.error is not None and phrase in row.error, row.error
    assert row.student == "alice" and row.module == "01"
    assert row.score == 0 and row.max_score == 7
    assert [c.points for c in row.checks] == [0] * 5 and "Fix:" in row.error


def test_when_module_unknown_then_error_row(tmp_path):
    nb = nbformat.v4.new_notebook()
    path = tmp_path / "alice.ipynb"
    nbformat.write(nb, str(path))
    row = grade_submission(path, GradingOptions.resolve(fast=True))
    assert row.error is not None and "which module" in row.error and row.module is None


def test_module_comes_from_notebook_metadata_first(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["dlcourse"] = {"module": "02"}
    path = tmp_path / "01_mlp_cifar10_gray.ipynb"
    nbformat.write(nb, str(path))
    sub = read_submission(path)
    assert sub.error is None and sub.module == "02"
    assert any("file name suggests module 01" in n for n in sub.notes)


MISSING = Path("/nonexistent/folder/alice_01_mlp_cifar10_gray.ipynb")  # proves data= is used


def notebook_bytes(**metadata) -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nb.metadata.update(metadata)
    return nbformat.writes(nb).encode()


def nested_metadata_notebook(depth: int) -> bytes:
    """A notebook whose one cell has ``depth`` levels of dicts in its metadata."""
    meta = '{"a": ' * depth + "{}" + "}" * depth
    return ('{"cells": [{"cell_type": "code", "execution_count": null, "id": "c1", "metadata": '
            + meta + ', "outputs": [], "source": "x = 1"}], "metadata": {}, "nbformat": 4,'
            ' "nbformat_minor": 5}').encode()


def test_read_submission_with_data_never_opens_the_path():
    sub = read_submission(MISSING, data=notebook_bytes(dlcourse={"module": "02"}))
    assert sub.error is None, sub.error
    assert sub.nb is not None and sub.nb.cells[0].source == "x = 1"
    assert sub.student == "alice" and sub.module == "02"


def test_data_size_limit_uses_the_length_of_data(monkeypatch):
    monkeypatch.setattr(validate, "MAX_SUBMISSION_BYTES", 100)
    sub = read_submission(MISSING, data=notebook_bytes())
    assert sub.error is not None and "MB" in sub.error and "Fix:" in sub.error


def test_a_200000_deep_json_array_is_an_error_row():
    data = b'{"cells": ' + b"[" * 200_000 + b"]" * 200_000 + b', "nbformat": 4}'
    sub = read_submission(MISSING, data=data)
    assert sub.nb is None and sub.error is not None
    assert "nests more than" in sub.error and "expected a Jupyter notebook" in sub.error
    assert "Fix:" in sub.error and sub.student == "alice"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 500, 5_000])
def test_deeply_nested_cell_metadata_is_an_error_row_not_a_crash(depth):
    sub = read_submission(MISSING, data=nested_metadata_notebook(depth))
    assert sub.nb is None and sub.error is not None and "nests more than" in sub.error


def test_metadata_nested_as_deep_as_allowed_parses_and_can_be_written_back():
    depth = MAX_JSON_DEPTH - 5  # notebook -> cells -> cell -> metadata take 4 levels
    sub = read_submission(MISSING, module="01", data=nested_metadata_notebook(depth))
    assert sub.error is None, sub.error
    json.loads(nbformat.writes(sub.nb))  # what grading does with it next must not recurse out


@pytest.mark.parametrize("data, phrase", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not text"),
    (b'{"cells": [], "nbformat": 4, "name": "caf\xe9"}', "not text"),
    (b'{"cells": [' + b"1" * 5000 + b'], "nbformat": 4}', "not valid JSON"),
    (b'{"\\ud800": 1}', "not a Jupyter notebook"),
    (b'{"cells": 5, "nbformat": 4, "metadata": {}, "nbformat_minor": 5}', "notebook format"),
    (b'{"cells": [1], "nbformat": 4, "metadata": {}, "nbformat_minor": 5}', "notebook format"),
    (b'{"cells": [], "nbformat": [[[4]]]}', "version 4"),
])
def test_broken_data_is_an_error_row_with_a_fix(data, phrase):
    sub = read_submission(MISSING, data=data)
    assert sub.nb is None and sub.error is not None and phrase in sub.error, sub.error
    assert "Fix:" in sub.error and "expected" in sub.error
    sub.error.encode("utf-8")  # printable in JSON and HTML: no lone surrogates


def test_a_folder_named_like_a_notebook_is_an_error_row(tmp_path):
    path = tmp_path / "alice_01_mlp_cifar10_gray.ipynb"
    path.mkdir()
    sub = read_submission(path)
    assert sub.nb is None and "cannot read the submission" in sub.error and "Fix:" in sub.error


def test_a_file_name_that_is_not_utf8_gets_a_row_with_a_safe_id(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9_01_mlp_cifar10_gray.ipynb")
    try:
        fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:  # e.g. macOS refuses names that are not UTF-8
        pytest.skip(f"this file system refuses non-UTF-8 names: {exc}")
    with os.fdopen(fd, "wb") as handle:
        handle.write(notebook_bytes(dlcourse={"module": "01"}))
    path = Path(os.fsdecode(raw))
    sub = read_submission(path)
    assert sub.error is None, sub.error
    assert sub.module == "01" and sub.student.startswith("caf-")
    sub.student.encode("utf-8")
    assert sub.student.isprintable() and all(ch.isalnum() or ch in "._-" for ch in sub.student)
    shown = display_path(sub.path)
    assert shown.endswith("caf\\xe9_01_mlp_cifar10_gray.ipynb") and shown.encode("utf-8")
