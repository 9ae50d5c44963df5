"""Flag pairs of submissions whose own code is suspiciously alike.

Only what students wrote counts: the sources of the exercise cells (nbgrader
``solution: true``), minus the released stub and template lines of the same cell. Each
student's code is tokenised with :mod:`tokenize`; names the student binds (variables,
functions, arguments) become ``V``, numbers ``N`` and strings ``S``, comments and layout
vanish, while library names (``keras``, ``Dense``, ``fit``) stay, so renaming or
reformatting does not hide a copy but two students calling the same API differently still
differ. Fingerprints are chosen by winnowing (Schleimer, Wilkerson and Aiken, 2003):
the minimum hash in every window of ``window`` consecutive ``k``-gram hashes, which
guarantees that any shared run of ``k + window - 1`` tokens is detected.

The score of a pair is the share of the smaller fingerprint set found in the other one.
Fingerprints shared by more than half of the class and by more than ten submissions (the
"obvious" answer) are ignored, as MOSS's ``-m`` option does. A flag is a prompt to look, not a verdict.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import keyword
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from grader.authoring.cells import is_stub_line

DEFAULT_THRESHOLD = 0.8
DEFAULT_K = 6
DEFAULT_WINDOW = 4
MIN_FINGERPRINTS = 8
COMMON_FRACTION = 0.5
COMMON_MIN_COUNT = 10

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}
_FALLBACK_TOKEN = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\"[^\"]*\"|'[^']*'|==|!=|<=|>=|\*\*|//|\S")
_BIND_FALLBACK = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*=[^=]", re.MULTILINE)
_DEF_FALLBACK = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)")


@dataclass(frozen=True)
class StudentCode:
    """The code one student wrote for one module."""

    student: str
    module: str | None
    source: str


@dataclass(frozen=True)
class SimilarPair:
    """Two submissions of the same module whose code overlaps at least ``threshold``.

    ``a_in_b`` is the share of A's fingerprints found in B's code, ``b_in_a`` the other way
    round. ``kind`` is ``"copy"`` when both reach the threshold (the two codes are largely
    the same), ``"contained"`` when only one does: the smaller code is (mostly) inside the
    larger one, e.g. a partial notebook next to a finished one, which is not the same as
    copying the whole. ``similarity`` is the larger of the two shares.
    """

    module: str | None
    student_a: str
    student_b: str
    similarity: float
    shared: int
    fingerprints_a: int
    fingerprints_b: int
    a_in_b: float = 0.0
    b_in_a: float = 0.0
    kind: str = "copy"

    def to_dict(self) -> dict:
        return {"module": self.module, "student_a": self.student_a, "student_b": self.student_b,
                "similarity": round(self.similarity, 4), "kind": self.kind,
                "a_in_b": round(self.a_in_b, 4), "b_in_a": round(self.b_in_a, 4),
                "shared": self.shared,
                "fingerprints_a": self.fingerprints_a, "fingerprints_b": self.fingerprints_b}

    @classmethod
    def from_dict(cls, entry: dict) -> SimilarPair:
        """The pair :meth:`to_dict` wrote (counts missing in older files read as 0)."""
        return cls(module=entry.get("module"), student_a=entry["student_a"],
                   student_b=entry["student_b"], similarity=float(entry["similarity"]),
                   shared=int(entry.get("shared") or 0),
                   fingerprints_a=int(entry.get("fingerprints_a") or 0),
                   fingerprints_b=int(entry.get("fingerprints_b") or 0),
                   a_in_b=float(entry.get("a_in_b") or 0.0), b_in_a=float(entry.get("b_in_a") or 0.0),
                   kind=entry.get("kind") or "copy")

    def describe(self) -> str:
        """One line saying which code is inside which."""
        if self.kind == "copy":
            return (f"largely the same code ({self.a_in_b * 100:.0f}% of {self.student_a}'s is"
                    f" in {self.student_b}'s, {self.b_in_a * 100:.0f}% the other way)")
        small, big, share, back = ((self.student_a, self.student_b, self.a_in_b, self.b_in_a)
                                   if self.a_in_b >= self.b_in_a else
                                   (self.student_b, self.student_a, self.b_in_a, self.a_in_b))
        return (f"{share * 100:.0f}% of {small}'s code is contained in {big}'s; only"
                f" {back * 100:.0f}% of {big}'s is in {small}'s")


# ----------------------------------------------------------------------------------------
# Extracting the student's own code
# ----------------------------------------------------------------------------------------


MAX_EXERCISES = 200
"""Distinct exercise cells read per submission (by grade id); more are ignored."""
MAX_CELL_CHARS = 20_000
"""Characters of one exercise cell read; an exercise answer is a few hundred."""
MAX_CODE_CHARS = 200_000
"""Characters of exercise code read per submission in all: the cost of similarity is bounded
whatever a notebook holds (a 50 MB file of 80,000 pasted copies reads like a normal one)."""


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _cells(notebook) -> list[dict]:
    """The notebook's cells that are JSON objects (anything else in ``cells`` is ignored)."""
    cells = _dict(notebook).get("cells")
    return [c for c in cells if isinstance(c, dict)] if isinstance(cells, list) else []


def _nbgrader(cell: dict) -> dict:
    return _dict(_dict(cell.get("metadata")).get("nbgrader"))


def _source(cell: dict, limit: int = MAX_CELL_CHARS) -> str:
    """The cell's source as text (at most ``limit`` characters); a source of the wrong type
    (a number, a list holding numbers) keeps only its strings."""
    text = cell.get("source", "")
    if isinstance(text, list):
        parts, size = [], 0
        for part in text:
            if isinstance(part, str):
                parts.append(part)
                size += len(part)
                if size >= limit:
                    break
        text = "".join(parts)
    return text[:limit] if isinstance(text, str) else ""


def _is_exercise(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and _nbgrader(cell).get("solution") is True


def _exercise_key(cell: dict, index: int) -> str:
    """What identifies an exercise cell: its grade id, else its cell id, else its position."""
    for value in (_nbgrader(cell).get("grade_id"), cell.get("id")):
        if isinstance(value, str) and value:
            return value
    return f"#{index}"


def _template_lines(template: dict | None) -> dict[str, set[str]]:
    """Per exercise cell id, the stripped lines the released notebook already holds."""
    lines: dict[str, set[str]] = {}
    for index, cell in enumerate(_cells(template)):
        if _is_exercise(cell):
            cid = cell.get("id") if isinstance(cell.get("id"), str) else _exercise_key(cell, index)
            lines[cid] = {ln.strip() for ln in _source(cell).splitlines() if ln.strip()}
    return lines


def graded_exercise_cells(notebook: dict) -> list[dict]:
    """The exercise cells similarity reads: for each grade id the last copy (the one graded,
    as :mod:`grader.submission.restore` does), at most :data:`MAX_EXERCISES` of them."""
    last: dict[str, dict] = {}
    for index, cell in enumerate(_cells(notebook)):
        if _is_exercise(cell):
            key = _exercise_key(cell, index)
            if key in last or len(last) < MAX_EXERCISES:
                last.pop(key, None)
                last[key] = cell
    return list(last.values())


def exercise_code(notebook: dict, template: dict | None = None) -> str:
    """The student's own code: exercise cells without the lines the template gave them.

    At most :data:`MAX_CELL_CHARS` per cell and :data:`MAX_CODE_CHARS` in all are read, and
    an exercise pasted several times counts once (its last copy), so the cost is bounded
    whatever the notebook holds. Cells, sources and metadata of the wrong JSON type are
    skipped, never an error.

    Parameters
    ----------
    notebook : dict
        The submission as parsed JSON (or an ``nbformat`` node).
    template : dict, optional
        The released student notebook of the module; lines of its exercise cell with the
        same id (the stub, pre-filled scaffolding) are removed. Without it, only the
        standard stub lines are removed.
    """
    given = _template_lines(template)
    stub = {"# YOUR CODE HERE", "raise NotImplementedError()", "raise NotImplementedError"}
    parts: list[str] = []
    budget = MAX_CODE_CHARS
    for cell in graded_exercise_cells(notebook):
        if budget <= 0:
            break
        cid = cell.get("id") if isinstance(cell.get("id"), str) else ""
        skip = given.get(cid, set()) | stub
        kept = [ln for ln in _source(cell, min(budget, MAX_CELL_CHARS)).splitlines()
                if ln.strip() and ln.strip() not in skip and not is_stub_line(ln)
                and not ln.lstrip().startswith(("%", "!"))]
        if kept:
            block = _dedent_block(kept)
            budget -= len(block)
            parts.append(block)
    return "\n".join(parts)


def _dedent_block(lines: list[str]) -> str:
    width = min(len(ln) - len(ln.lstrip()) for ln in lines)
    return "\n".join(ln[width:] for ln in lines)


# ----------------------------------------------------------------------------------------
# Tokens and fingerprints
# ----------------------------------------------------------------------------------------


def bound_names(source: str) -> set[str]:
    """Names the code binds itself: assignment targets, functions, classes, arguments, imports-as."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        names = set()
        for match in _BIND_FALLBACK.finditer(source):
            names.update(n.strip() for n in match.group(1).split(","))
        names.update(_DEF_FALLBACK.findall(source))
        return names
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias) and node.asname:
            names.add(node.asname)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def normalized_tokens(source: str) -> list[str]:
    """Tokens with the student's own names, numbers and strings replaced by placeholders."""
    own = bound_names(source)
    raw: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type not in _SKIP:
                raw.append((tok.type, tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        raw = [(_fallback_type(text), text) for text in _FALLBACK_TOKEN.findall(source)
               if not text.startswith("#")]
    out: list[str] = []
    for kind, text in raw:
        if kind == tokenize.NAME and not keyword.iskeyword(text):
            out.append("V" if text in own else text)
        elif kind == tokenize.NUMBER:
            out.append("N")
        elif kind == tokenize.STRING or kind == getattr(tokenize, "FSTRING_START", -1):
            out.append("S")
        elif kind in (getattr(tokenize, "FSTRING_MIDDLE", -1), getattr(tokenize, "FSTRING_END", -1)):
            continue
        else:
            out.append(text)
    # A trailing comma before a closing bracket is layout, not code (black adds them).
    return [t for i, t in enumerate(out) if not (t == "," and i + 1 < len(out)
                                                   and out[i + 1] in ")]}")]


def _fallback_type(text: str) -> int:
    if text[0].isalpha() or text[0] == "_":
        return tokenize.NAME
    if text[0].isdigit():
        return tokenize.NUMBER
    if text[0] in "\"'":
        return tokenize.STRING
    return tokenize.OP


def _hash(gram: Sequence[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(gram).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def winnow(tokens: Sequence[str], *, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW) -> set[int]:
    """Winnowing fingerprints of a token sequence.

    Parameters
    ----------
    tokens : sequence of str
        Normalised tokens.
    k : int
        Length of the hashed token k-grams (the noise threshold).
    window : int
        Number of consecutive k-gram hashes from which the minimum is kept; any shared
        run of ``k + window - 1`` tokens yields a shared fingerprint.
    """
    if k < 1 or window < 1:
        raise ValueError(f"expected k >= 1 and window >= 1, got k={k}, window={window}")
    hashes = [_hash(tokens[i:i + k]) for i in range(len(tokens) - k + 1)]
    if not hashes:
        return set()
    if len(hashes) <= window:
        return {min(hashes)}
    chosen: set[int] = set()
    for start in range(len(hashes) - window + 1):
        chosen.add(min(hashes[start:start + window]))
    return chosen


def fingerprints(source: str, *, k: int = DEFAULT_K, window: int = DEFAULT_WINDOW,
                 exclude: Iterable[int] = ()) -> set[int]:
    """Winnowed fingerprints of ``source`` without those in ``exclude`` (template code)."""
    return winnow(normalized_tokens(source), k=k, window=window) - set(exclude)


# ----------------------------------------------------------------------------------------
# The class
# ----------------------------------------------------------------------------------------


def similar_pairs(codes: Sequence[StudentCode], *, threshold: float = DEFAULT_THRESHOLD,
                  k: int = DEFAULT_K, window: int = DEFAULT_WINDOW,
                  templates: dict[str | None, str] | None = None) -> list[SimilarPair]:
    """Pairs of students of the same module whose code overlaps at least ``threshold``.

    Parameters
    ----------
    codes : sequence of StudentCode
        One entry per submission (see :func:`exercise_code`).
    threshold : float
        In (0, 1]: share of one submission's fingerprints found in the other (in either
        direction; :class:`SimilarPair` tells which).
    templates : dict, optional
        Per module, template code whose fingerprints never count (the released stubs).

    Returns
    -------
    list of SimilarPair
        Most similar first.
    """
    templates = templates or {}
    prints = []
    for code in codes:
        exclude = fingerprints(templates.get(code.module, ""), k=k, window=window)
        prints.append((code.student, code.module,
                       fingerprints(code.source, k=k, window=window, exclude=exclude)))
    return pairs_from_fingerprints(prints, threshold=threshold)


def pairs_from_fingerprints(entries: Sequence[tuple[str, str | None, set[int]]], *,
                            threshold: float = DEFAULT_THRESHOLD) -> list[SimilarPair]:
    """:func:`similar_pairs` from ``(student, module, fingerprints)`` already computed."""
    if not 0 < threshold <= 1:
        raise ValueError(f"expected a threshold in (0, 1], got {threshold}")
    by_module: dict[str | None, list[tuple[str, set[int]]]] = {}
    for student, module, prints in entries:
        by_module.setdefault(module, []).append((student, prints))
    pairs: list[SimilarPair] = []
    for module, group in by_module.items():
        counts = Counter(h for _, prints in group for h in prints)
        limit = max(COMMON_MIN_COUNT, COMMON_FRACTION * len(group))
        common = {h for h, n in counts.items() if n > limit}
        kept = sorted(((student, prints - common) for student, prints in group), key=lambda e: e[0])
        for (sa, fa), (sb, fb) in combinations(kept, 2):
            if min(len(fa), len(fb)) < MIN_FINGERPRINTS:
                continue
            shared = len(fa & fb)
            a_in_b, b_in_a = shared / len(fa), shared / len(fb)
            score = max(a_in_b, b_in_a)
            if score >= threshold:
                kind = "copy" if min(a_in_b, b_in_a) >= threshold else "contained"
                pairs.append(SimilarPair(module, sa, sb, score, shared, len(fa), len(fb),
                                         a_in_b, b_in_a, kind))
    pairs.sort(key=lambda p: (p.kind != "copy", -p.similarity, str(p.module), p.student_a,
                              p.student_b))
    return pairs


CACHE_VERSION = 1


def source_digest(data: bytes, template_id: str) -> str:
    """Cache key of one submission's fingerprints: its bytes, its template, the parameters."""
    params = f"{CACHE_VERSION}/{DEFAULT_K}/{DEFAULT_WINDOW}/{MAX_EXERCISES}/{MAX_CELL_CHARS}/{MAX_CODE_CHARS}"
    digest = hashlib.sha256(params.encode() + b"\0" + template_id.encode() + b"\0")
    digest.update(data)
    return digest.hexdigest()


def _cache_signature(key: bytes, entries: dict) -> str:
    import hmac

    body = json.dumps(entries, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def load_cache(path: Path, key: bytes) -> dict[str, set[int]]:
    """Fingerprints per :func:`source_digest` from a cache this grader signed; ``{}`` when the
    file is missing, unreadable, of another version or not signed with ``key``."""
    import hmac

    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        entries, signature = record["entries"], record["hmac"]
        if record.get("version") != CACHE_VERSION or not isinstance(entries, dict):
            return {}
        if not hmac.compare_digest(str(signature), _cache_signature(key, entries)):
            return {}
        return {str(d): {int(h) for h in prints} for d, prints in entries.items()
                if isinstance(prints, list)}
    except Exception:  # noqa: BLE001 - a bad cache only means recomputing
        return {}


def save_cache(path: Path, key: bytes, entries: dict[str, list[int]]) -> None:
    """Write the signed cache atomically (only this batch's submissions are kept)."""
    import os
    import tempfile

    record = {"version": CACHE_VERSION, "entries": entries, "hmac": _cache_signature(key, entries)}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".similarity-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_notebook_json(source: Path | bytes) -> dict | None:
    """The notebook as JSON (from a path or the bytes already read), or ``None`` when it is
    not a readable notebook (whatever the reason: bad bytes, bad JSON, absurd nesting)."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError, OSError, ValueError ...
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cells"), list) else None
