"""Student ids: distinct names stay distinct, every id is a safe file name, duplicates never
take a real student's id."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import unicodedata
from pathlib import Path

import pytest

from grader.base.ids import MAX_ID_BYTES, MAX_ID_CHARS, safe_id
from grader.submission.validate import (
    DUPLICATE_MARK,
    display_path,
    student_id,
    unique_ids,
)

STEMS = {"01_mlp_cifar10_gray": "01", "02_dense_mnist_fashion": "02"}
NON_UTF8 = os.fsdecode(b"caf\xe9")  # a file name in Latin-1: holds a lone surrogate
# Characters no file system accepts somewhere (Windows' reserved set, controls, separators),
# plus what ids must never hold: white space, surrogates, the duplicate mark.
FORBIDDEN = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\s\ud800-\udfff+~]')
WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$", re.IGNORECASE)


def assert_safe(sid: str) -> None:
    """``sid`` is a safe, portable file name and valid UTF-8."""
    assert sid and not FORBIDDEN.search(sid), sid
    assert all(ch.isalnum() or ch in "._-" or unicodedata.category(ch).startswith("M")
               for ch in sid), sid
    assert sid.encode("utf-8").decode("utf-8") == sid  # no surrogates
    assert not sid.startswith(".") and not sid.endswith(".")
    assert not WINDOWS_DEVICES.match(sid.split(".", 1)[0]), sid
    assert len(sid) <= MAX_ID_CHARS and len(sid.encode("utf-8")) <= MAX_ID_BYTES
    assert unicodedata.normalize("NFC", sid) == sid
    assert safe_id(sid) == sid  # ids survive being made safe again (feedback, result keys)


@pytest.mark.parametrize("name", ["alice", "alice_01", "a.b-c", "josé", "Zoë-Ann", "नमस्ते", "李雷"])
def test_plain_names_keep_their_id(name):
    assert safe_id(name) == name


@pytest.mark.parametrize("pair", [
    ("a b", "a_b"),
    ("josé", "josè"),
    ("A/B", "A_B"),
    ("a b", "a  b"),
    (NON_UTF8, "caf"),
    (NON_UTF8, "caf_"),
    ("", "unknown"),
    ("x" * 300, "x" * 299 + "y"),
    ("bob+2", "bob_2"),
])
def test_names_that_differ_get_distinct_safe_ids(pair):
    first, second = (safe_id(name) for name in pair)
    assert first != second, pair
    for sid in (first, second):
        assert_safe(sid)
    assert [safe_id(name) for name in pair] == [first, second]  # deterministic


def test_a_changed_name_carries_the_hash_of_the_original():
    digest = hashlib.sha256(b"a b").hexdigest()[:8]
    assert safe_id("a b") == f"a_b-{digest}"
    assert safe_id("") == "unknown-" + hashlib.sha256(b"").hexdigest()[:8]
    raw = hashlib.sha256(b"caf\xe9").hexdigest()[:8]  # the file name's own bytes
    assert safe_id(NON_UTF8) == f"caf-{raw}"


def test_composed_and_decomposed_spellings_are_one_student():
    composed, decomposed = "jos\u00e9 ma", "jose\u0301 ma"
    assert composed != decomposed
    assert safe_id(composed) == safe_id(decomposed)
    assert safe_id("jose\u0301") == "jos\u00e9"


def test_long_names_are_capped_and_stay_distinct():
    ids = {safe_id("x" * 300), safe_id("x" * 301), safe_id("é" * 300), safe_id("\U0001d518" * 200)}
    assert len(ids) == 4
    for sid in ids:
        assert_safe(sid)


@pytest.mark.parametrize("name", ["con", "CON.txt", "nul", "com1", "lpt\u00b9.x", "aux"])
def test_windows_device_names_never_become_ids(name):
    assert_safe(safe_id(name))


def test_any_name_becomes_a_safe_deterministic_id():
    rng = random.Random(1)
    pool = "aZé_.- /\\+~:*?\"<>|\x00\x1f\u0301\u202e\u00a0\U0001F600\udce9\ud800नस्ते한ﬁ²Ⅻ"
    seen: dict[str, str] = {}
    for _ in range(3000):
        name = "".join(rng.choice(pool) for _ in range(rng.randint(0, 100)))
        sid = safe_id(name)
        assert_safe(sid)
        assert safe_id(name) == sid
        key = unicodedata.normalize("NFC", name)
        assert seen.setdefault(sid, key) == key, (name, sid)  # distinct names, distinct ids


def test_student_id_of_a_file_name_that_is_not_utf8():
    path = Path(os.fsdecode(b"inbox/caf\xe9_01_mlp_cifar10_gray.ipynb"))
    sid = student_id(path, STEMS)
    assert_safe(sid)
    assert sid != student_id(Path("inbox/caf_01_mlp_cifar10_gray.ipynb"), STEMS)
    assert sid != student_id(Path("inbox/caf\u00e9_01_mlp_cifar10_gray.ipynb"), STEMS)
    assert student_id(os.fsencode(path), STEMS) == sid


def test_display_path_is_printable_valid_utf8():
    path = Path(os.fsdecode(b"inbox/caf\xe9\n\x1b[31m\xe2\x80\xaeevil.ipynb"))
    shown = display_path(path)
    assert shown == "inbox/caf\\xe9\\n\\x1b[31m\\u202eevil.ipynb"
    assert shown.isprintable()
    json.dumps(shown, ensure_ascii=False).encode("utf-8")
    assert display_path(Path("class/josé/01_x.ipynb")) == "class/josé/01_x.ipynb"
    assert display_path(b"caf\xe9.ipynb") == "caf\\xe9.ipynb"


def ids(keys):
    return [sid for sid, _ in unique_ids(keys)]


def test_a_duplicate_upload_never_takes_a_real_students_id():
    out = unique_ids([("bob", "02"), ("bob", "02"), ("bob_2", "02")])
    assert [sid for sid, _ in out] == ["bob", f"bob{DUPLICATE_MARK}2", "bob_2"]
    assert out[0][1] is None and out[2][1] is None
    note = out[1][1]
    assert "2 submissions of module 02" in note and "bob" in note and "bob+2" in note
    assert safe_id("bob+2") != safe_id("bob_2")  # their result and feedback files differ too


def test_three_uploads_are_numbered_in_order():
    out = unique_ids([("bob", "01")] * 3)
    assert [sid for sid, _ in out] == ["bob", "bob+2", "bob+3"]
    assert all("3 submissions of module 01" in note for _, note in out[1:])
    assert out == unique_ids([("bob", "01")] * 3)  # resume relies on the same ids


def test_different_modules_are_not_duplicates():
    assert ids([("bob", "01"), ("bob", "02"), ("bob", None), ("ann", "01")]) == [
        "bob", "bob", "bob", "ann"]


def test_an_input_id_holding_the_mark_is_never_duplicated():
    keys = [("bob", "02"), ("bob", "02"), ("bob+2", "02")]
    out = ids(keys)
    assert out == ["bob", "bob+3", "bob+2"]
    assert len(set(zip(out, [m for _, m in keys], strict=True))) == len(keys)
