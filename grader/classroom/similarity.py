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
    """Two submissions of the same module whose code overlaps at least ``threshold``."""

    module: str | None
    student_a: str
    student_b: str
    similarity: float
    shared: int
    fingerprints_a: int
    fingerprints_b: int

    def to_dict(self) -> dict:
        return {"module": self.module, "student_a": self.student_a, "student_b": self.student_b,
                "similarity": round(self.similarity, 4), "shared": self.shared,
                "fingerprints_a": self.fingerprints_a, "fingerprints_b": self.fingerprints_b}


# ----------------------------------------------------------------------------------------
# Extracting the student's own code
# ----------------------------------------------------------------------------------------


def _source(cell) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _is_exercise(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("solution"))


def _template_lines(template: dict | None) -> dict[str, set[str]]:
    """Per exercise cell id, the stripped lines the released notebook already holds."""
    if not template:
        return {}
    lines: dict[str, set[str]] = {}
    for cell in template.get("cells", []):
        if _is_exercise(cell) and cell.get("id"):
            lines[cell["id"]] = {ln.strip() for ln in _source(cell).splitlines() if ln.strip()}
    return lines


def exercise_code(notebook: dict, template: dict | None = None) -> str:
    """The student's own code: exercise cells without the lines the template gave them.

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
    for cell in notebook.get("cells", []):
        if not _is_exercise(cell):
            continue
        skip = given.get(cell.get("id", ""), set()) | stub
        kept = [ln for ln in _source(cell).splitlines()
                if ln.strip() and ln.strip() not in skip and not is_stub_line(ln)
                and not ln.lstrip().startswith(("%", "!"))]
        if kept:
            parts.append(_dedent_block(kept))
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
        In (0, 1]: share of the smaller fingerprint set found in the other.
    templates : dict, optional
        Per module, template code whose fingerprints never count (the released stubs).

    Returns
    -------
    list of SimilarPair
        Most similar first.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"expected a threshold in (0, 1], got {threshold}")
    templates = templates or {}
    by_module: dict[str | None, list[tuple[str, set[int]]]] = {}
    for code in codes:
        exclude = fingerprints(templates.get(code.module, ""), k=k, window=window)
        prints = fingerprints(code.source, k=k, window=window, exclude=exclude)
        by_module.setdefault(code.module, []).append((code.student, prints))
    pairs: list[SimilarPair] = []
    for module, entries in by_module.items():
        counts = Counter(h for _, prints in entries for h in prints)
        limit = max(COMMON_MIN_COUNT, COMMON_FRACTION * len(entries))
        common = {h for h, n in counts.items() if n > limit}
        kept = [(student, prints - common) for student, prints in entries]
        for (sa, fa), (sb, fb) in combinations(kept, 2):
            if min(len(fa), len(fb)) < MIN_FINGERPRINTS:
                continue
            shared = len(fa & fb)
            score = shared / min(len(fa), len(fb))
            if score >= threshold:
                a, b = sorted((sa, sb))
                pairs.append(SimilarPair(module, a, b, score, shared, len(fa), len(fb)))
    pairs.sort(key=lambda p: (-p.similarity, str(p.module), p.student_a, p.student_b))
    return pairs


def read_notebook_json(source: Path | bytes) -> dict | None:
    """The notebook as JSON (from a path or the bytes already read), or ``None`` when it is
    not a readable notebook (whatever the reason: bad bytes, bad JSON, absurd nesting)."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError, OSError, ValueError ...
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cells"), list) else None
