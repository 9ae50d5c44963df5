"""The documentation names only what exists: repository paths and grader commands.

A guide that sends a maintainer to a moved file, or an instructor to a sub-command that was
renamed, fails here instead of in front of them. Checked in ``README.md`` and ``docs/*.md``:

* every inline code span or Markdown link that names a path in this repository (it starts with
  one of the repository's top-level folders, or is one of its top-level files) exists; ``0N``
  stands for a lesson number and ``*`` is a glob, either must match at least one file;
* every ``python -m grader COMMAND [ACTION]`` (inline or in a fenced block) names a command the
  CLI's parser has, and an action of it where the command takes one.
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
