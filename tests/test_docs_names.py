"""The documentation names only what exists: repository paths and grader commands.

A guide that sends a maintainer to a moved file, or an instructor to a sub-command that was
renamed, fails here instead of in front of them. Checked in ``README.md`` and ``docs/*.md``:

* every inline code span or Markdown link that names a path in this repository (it starts with
  one of the repository's top-level folders, or is one of its top-level files) exists; ``0N``
  stands for a lesson number and ``*`` is a glob, either must match at least one file;
* every ``python -m grader COMMAND [ACTION]`` (inline or in a fenced block) names a command the
  CLI's parser has, and an action of it where the command takes one;
* every relative Markdown link (``grading.md#parallel-grading``, ``../README.md``) leads to a file
  that exists and, with an anchor into a Markdown file, to a heading of that file;
* ``docs/README.md``, the index of the guides, links every other guide in ``docs/``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from grader.__main__ import build_parser
from grader.base.paths import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
TOP_DIRS = ("grader", "helpers", "tests", "bench", "scripts", "docs", "notebooks", "solutions",
            "examples", ".ci")
TOP_FILES = ("pyproject.toml", "environment.yml", "README.md")
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
#: Paths the docs name that exist only in what a command writes, not in this repository.
GENERATED = {"grader/selfcheck.json": "written into the student edition by release --student-edition"}
COMMAND = re.compile(r"python -m grader((?:\s+[a-z][a-z-]*)+)")
RELATIVE_LINK = re.compile(r"\]\(([^)\s]*)\)")
HEADING = re.compile(r"^#{1,6} (.+)$")
FENCE = re.compile(r"^(```|~~~)")


def _path_like(token: str) -> str | None:
    """The repository path ``token`` names, or None when it names none."""
    token = token.strip().rstrip(".,:;")
    if token.startswith("./"):
        token = token[2:]
    if any(ch in token for ch in " <>$=(){}|") or "..." in token:
        return None  # a placeholder, a command line or an expression, not a path
    head = token.split("/", 1)[0]
    if (head in TOP_DIRS and "/" in token) or token in TOP_FILES:
        return token
    return None


def _exists(path: str) -> bool:
    pattern = path.rstrip("/").replace("0N", "0[1-4]")
    if any(ch in pattern for ch in "*?["):
        return any(REPO_ROOT.glob(pattern))
    return (REPO_ROOT / pattern).exists()


def _named_paths(text: str) -> set[str]:
    found = {p for m in SPAN.finditer(text) if (p := _path_like(m.group(1)))}
    found |= {p for m in LINK.finditer(text)
              if not m.group(1).startswith(("http:", "https:", "mailto:"))
              and (p := _path_like(m.group(1)))}
    return found


def _commands(parser: argparse.ArgumentParser) -> dict[str, set[str] | None]:
    """Each command of the CLI -> its actions (None when it takes no action word)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    table: dict[str, set[str] | None] = {}
    for name, command in sub.choices.items():
        first = next((a for a in command._actions if not a.option_strings), None)
        # an action word is a sub-parser (gradescope build) or a first positional with
        # choices (canvas pull, manual export)
        table[name] = set(first.choices) if first is not None and first.choices else None
    return table


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_repository_path_a_doc_names_exists(doc: Path) -> None:
    named = _named_paths(doc.read_text(encoding="utf-8"))
    missing = sorted(p for p in named if p not in GENERATED and not _exists(p))
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def _wrong_commands(text: str, table: dict[str, set[str] | None]) -> list[str]:
    wrong = []
    for match in COMMAND.finditer(text):
        words = match.group(1).split()
        command = words[0]
        if command not in table:
            wrong.append(f"python -m grader {command}: no such command")
        elif table[command] is not None and len(words) > 1 and words[1] not in table[command]:
            wrong.append(f"python -m grader {command} {words[1]}: no such action "
                         f"(has {sorted(table[command])})")
    return sorted(set(wrong))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_grader_command_a_doc_names_exists(doc: Path) -> None:
    wrong = _wrong_commands(doc.read_text(encoding="utf-8"), _commands(build_parser()))
    assert not wrong, f"{doc.name}: " + "; ".join(wrong)


def test_the_checks_can_fail() -> None:
    """A made-up path and command are caught (the checks are not vacuous)."""
    assert _named_paths("see `grader/no_such_module.py` and [x](docs/nowhere.md)") == {
        "grader/no_such_module.py", "docs/nowhere.md"}
    assert not _exists("grader/no_such_module.py")
    assert _exists("grader/checks/rubrics/0N.toml") and _exists("solutions/*.ipynb")
    assert _path_like("OUT/feedback/<student>.html") is None
    table = _commands(build_parser())
    assert "grade" in table and table["gradescope"] and "build" in table["gradescope"]
    assert _wrong_commands("run `python -m grader nosuch` or\n    python -m grader canvas fetch DIR",
                           table) == ["python -m grader canvas fetch: no such action (has "
                                      f"{sorted(table['canvas'])})",
                                      "python -m grader nosuch: no such command"]


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of ``text`` (fenced code is not a heading)."""
    anchors, fenced = set(), False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := HEADING.match(line)):
            title = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def _broken_links(doc: Path, text: str) -> list[str]:
    broken = []
    for match in RELATIVE_LINK.finditer(text):
        target = match.group(1)
        if target.startswith(("http:", "https:", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such heading")
    return sorted(set(broken))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = _broken_links(doc, doc.read_text(encoding="utf-8"))
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def test_the_index_links_every_guide() -> None:
    index = REPO_ROOT / "docs" / "README.md"
    linked = {(index.parent / m.group(1).partition("#")[0]).resolve()
              for m in RELATIVE_LINK.finditer(index.read_text(encoding="utf-8"))}
    guides = {p.resolve() for p in index.parent.glob("*.md") if p != index}
    assert guides <= linked, f"docs/README.md does not link {sorted(p.name for p in guides - linked)}"


def test_the_link_checks_can_fail(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n```\n# not a heading\n```\n## The `x` part: y\n")
    doc = tmp_path / "b.md"
    text = ("[ok](a.md#the-x-part-y) [ok](a.md) [ok](#here) [gone](c.md) [bad](a.md#not-a-heading)"
            " [web](https://example.org/x#y)\n# Here\n")
    doc.write_text(text)
    assert _broken_links(doc, text) == ["a.md#not-a-heading: no such heading", "c.md: no such file"]
