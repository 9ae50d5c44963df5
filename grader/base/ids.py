"""Student ids: a student's name made safe for file names (:func:`safe_id`).

Feedback is written to ``feedback/<id>.html`` and results to ``results/<id>__<module>.json``,
so every stage that names a student's file uses this one rule
(:mod:`grader.submission.validate` finds the name; this module only makes it safe):

* the name is Unicode NFC-normalised first, so the composed and the decomposed spelling of
  ``josé`` (as macOS and Windows may store it) are the same student;
* letters and digits of any script (``str.isalnum``), combining marks (so names in scripts
  such as Devanagari keep their vowel signs), ``.``, ``_`` and ``-`` are kept; every run of
  other characters (space, ``/``, ``+``, ``~``, control characters, bytes that are not UTF-8)
  becomes one ``_``; leading and trailing ``.``/``_`` are dropped;
* when anything was replaced, dropped or cut, ``-`` and 8 hex digits of the SHA-256 of the
  (normalised) name are appended, so ``a b`` -> ``a_b-<hash>`` never equals the real
  ``a_b``; an empty name becomes ``unknown-<hash>``; Windows device names (``con``,
  ``nul``, ``com1``...) get the suffix too;
* ids are at most 80 characters and 160 UTF-8 bytes, and ``safe_id(safe_id(x)) ==
  safe_id(x)``.
"""

from __future__ import annotations

import hashlib
import unicodedata

MAX_ID_CHARS = 80
MAX_ID_BYTES = 160

_HASH_CHARS = 8
_KEEP = frozenset("._-")
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in (*"0123456789", "\u00b9", "\u00b2", "\u00b3")])


def text_bytes(text: str) -> bytes:
    """``text`` as the bytes it came from: file-name bytes that are not UTF-8 come back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (e.g. from JSON)
        return text.encode("utf-8", "surrogatepass")


def _short_hash(text: str) -> str:
    return hashlib.sha256(text_bytes(text)).hexdigest()[:_HASH_CHARS]


def _id_char_ok(ch: str) -> bool:
    return ch.isalnum() or ch in _KEEP or unicodedata.category(ch).startswith("M")


def _fits(text: str) -> bool:
    return len(text) <= MAX_ID_CHARS and len(text.encode("utf-8")) <= MAX_ID_BYTES


def safe_id(text: str) -> str:
    """``text`` as a student id that is a safe file name on Linux, macOS and Windows.

    The rule (see the module docstring): NFC-normalise; keep letters and digits of any
    script, combining marks, ``.``, ``_``, ``-``; every run of other characters becomes
    ``_``; drop leading/trailing ``.``/``_``; when anything was changed (or the result is
    empty, too long or a Windows device name) append ``-`` and 8 hex digits of the SHA-256
    of the normalised text, so distinct names stay distinct ids.

    Examples
    --------
    >>> safe_id("alice_01"), safe_id("a.b-c"), safe_id("jos\u00e9")
    ('alice_01', 'a.b-c', 'jos\u00e9')
    >>> safe_id("a b") == safe_id("a_b")
    False

    The result is never empty, holds no surrogate (it is valid UTF-8), has at most
    :data:`MAX_ID_CHARS` characters and :data:`MAX_ID_BYTES` UTF-8 bytes, and
    ``safe_id(safe_id(x)) == safe_id(x)``.
    """
    text = unicodedata.normalize("NFC", str(text))
    parts: list[str] = []
    for ch in text:
        if _id_char_ok(ch):
            parts.append(ch)
        elif not parts or parts[-1] != "\x00":
            parts.append("\x00")  # one placeholder per run, so "_" stays a kept character
    cleaned = "".join(parts).replace("\x00", "_").strip("._")
    changed = cleaned != text
    if not cleaned:
        return f"unknown-{_short_hash(text)}"
    if cleaned.split(".", 1)[0].upper() in _WINDOWS_DEVICES:  # "con", "CON.txt"
        cleaned, changed = cleaned.replace(".", "_", 1), True
    if not changed and _fits(cleaned):
        return cleaned
    suffix = "-" + _short_hash(text)
    cleaned = cleaned[:MAX_ID_CHARS]
    while not _fits(cleaned + suffix):
        # a cut NFC string is NFC again in practice; normalising keeps it so for sure
        cleaned = unicodedata.normalize("NFC", cleaned[:-1]).rstrip("._")
    return (cleaned or "unknown") + suffix
