"""docs/syllabus.md maps every seed item to cells that exist, and leaves no seed out.

The table's rows are `| # | seed file | kind | what | notebook | section | cell ids | note |`;
the cell ids are the backticked words of their column. The checks:

* every notebook named in the table exists in `solutions/` and in `notebooks/`, and every
  cell id exists in both copies of that notebook;
* every seed file of the module map (`SEEDS`, from `../shared/seeds/README.md`) has rows;
* when the seeds themselves are present (`../shared/seeds/`), each seed has at least as many
  `exercise` rows as it has exercise markers (`exercise_markers` says how they are counted).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYLLABUS = ROOT / "docs" / "syllabus.md"
SEEDS_DIR = ROOT.parent / "shared" / "seeds"
#: The module map of ../shared/seeds/README.md: seed file -> module.
SEEDS = {
    "000_f9c9f71f4e4f3921.txt": "01",
    "001_4f8aae5f7694f3f6.txt": "02",
    "003_b428e802f6568b9b.txt": "02",
    "002_700f60bc7df121c3.txt": "03",
    "004_8e11240e9765e40a.txt": "04",
}
KINDS = {"objective", "question", "step", "exercise", "topic"}
HEADER = re.compile(r"^\|\s*#\s*\|\s*seed file\s*\|")
TICKED = re.compile(r"`([^`]+)`")

#: What counts as one exercise in a seed. The seeds mark exercises in a handful of fixed
#: ways, and we count the markers, not the prose around them:
#: ``CHALLENGE`` (seed 004's exercise boxes), ``**Exercise**`` (seed 000's bold lead-in),
#: a line starting ``# Exercise`` or ``## Exercise`` (seed 000's "# Exercise - ..." code
#: comment, seed 003's exercise heading), ``Task:`` (seed 002's red task lines),
#: ``Question:``/``Questions:`` (in-text questions of seeds 001 and 004) and ``Take Home
#: Exercise`` (seed 001). Numbered section headings such as "# 7. Exercise - ..." are not
#: counted: they title an exercise whose ``**Exercise**`` line is counted already. A marker
#: counts once per occurrence, so a seed with many questions under one ``Questions:`` counts
#: one; the table may list more rows than markers, never fewer.
MARKER = re.compile(r"CHALLENGE\b|\*\*Exercise\*\*|^#{1,2} *Exercise\b|\bTask:|\bQuestions?:"
                    r"|Take Home Exercise", re.MULTILINE)


def exercise_markers(text: str) -> int:
    return len(MARKER.findall(text))


def parse(text: str) -> list[dict]:
    """The rows of the syllabus table (the first table whose header starts `| # | seed file`)."""
    rows, inside = [], False
    for line in text.splitlines():
        if HEADER.match(line):
            inside = True
            continue
        if not inside:
            continue
        if not line.startswith("|"):
            break
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if set(cols[0]) <= {"-", ":", " "}:
            continue  # the separator row
        if len(cols) != 8:
            rows.append({"line": line, "error": f"{len(cols)} columns instead of 8"})
            continue
        number, seed, kind, what, notebook, section, cells, note = cols
        rows.append({"line": line, "seed": seed.strip("`"), "kind": kind, "what": what,
                     "notebook": notebook.strip("`"), "section": section,
                     "cells": TICKED.findall(cells)})
    return rows


def cell_ids(path: Path) -> set[str]:
    return {cell.get("id") for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]}


def problems(rows: list[dict], root: Path = ROOT, seeds_dir: Path | None = None) -> list[str]:
    """Everything wrong with the table, one message per problem (empty: all good)."""
    found, ids = [], {}
    if not rows:
        return ["no syllabus table found"]
    for row in rows:
        if "error" in row:
            found.append(f"{row['error']}: {row['line']}")
            continue
        if row["seed"] not in SEEDS:
            found.append(f"unknown seed file {row['seed']!r}: {row['line']}")
        if row["kind"] not in KINDS:
            found.append(f"unknown kind {row['kind']!r} (one of {sorted(KINDS)}): {row['line']}")
        if not row["what"] or not row["section"]:
            found.append(f"empty description or section: {row['line']}")
        if not row["cells"]:
            found.append(f"no cell ids: {row['line']}")
        for folder in ("solutions", "notebooks"):
            path = root / folder / row["notebook"]
            if not path.is_file():
                found.append(f"{folder}/{row['notebook']} does not exist: {row['line']}")
                continue
            known = ids.setdefault(path, cell_ids(path))
            for cell in row["cells"]:
                if cell not in known:
                    found.append(f"cell {cell!r} is not in {folder}/{row['notebook']}")
    listed = Counter(row.get("seed") for row in rows)
    for seed in SEEDS:
        if not listed[seed]:
            found.append(f"seed {seed} has no rows")
    if seeds_dir is not None:
        exercises = Counter(row.get("seed") for row in rows if row.get("kind") == "exercise")
        for seed in SEEDS:
            path = seeds_dir / seed
            if not path.is_file():
                found.append(f"seed {seed} is in the module map but not in {seeds_dir}")
                continue
            need = exercise_markers(path.read_text(encoding="utf-8", errors="replace"))
            if exercises[seed] < need:
                found.append(f"seed {seed} has {need} exercise markers but only"
                             f" {exercises[seed]} exercise rows")
    return found


def test_syllabus_rows_point_at_existing_cells_and_cover_every_seed():
    rows = parse(SYLLABUS.read_text(encoding="utf-8"))
    seeds = SEEDS_DIR if SEEDS_DIR.is_dir() else None
    assert problems(rows, seeds_dir=seeds) == []


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="the seed lessons are not next to this checkout")
def test_module_map_matches_the_seeds_readme():
    readme = (SEEDS_DIR / "README.md").read_text(encoding="utf-8")
    assert set(re.findall(r"`(\d{3}_[0-9a-f]{16}\.txt)`", readme)) == set(SEEDS)


def test_the_checker_catches_broken_rows(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "notebooks").mkdir()
    nb = {"cells": [{"id": "a1", "cell_type": "markdown", "source": "", "metadata": {}}]}
    for folder in ("solutions", "notebooks"):
        (tmp_path / folder / "01_x.ipynb").write_text(json.dumps(nb))
    good = [f"| {i} | `{seed}` | exercise | something | `01_x.ipynb` | 1. A | `a1` | |"
            for i, seed in enumerate(SEEDS, 1)]
    head = ("| # | seed file | kind | what | notebook | section | cell ids | note |\n"
            "|---|---|---|---|---|---|---|---|\n")
    assert problems(parse(head + "\n".join(good)), root=tmp_path) == []
    broken = good[:-1] + [good[-1].replace("`a1`", "`a2`").replace("01_x", "02_y"),
                          "| 9 | `000_f9c9f71f4e4f3921.txt` | exercise | x | `01_x.ipynb` | A | `zz` | |"]
    found = problems(parse(head + "\n".join(broken)), root=tmp_path)
    assert any("solutions/02_y.ipynb does not exist" in p for p in found)
    assert any("cell 'zz' is not in solutions/01_x.ipynb" in p for p in found)
    assert any("cell 'zz' is not in notebooks/01_x.ipynb" in p for p in found)
    dropped = problems(parse(head + "\n".join(good[1:])), root=tmp_path)
    assert dropped == ["seed 000_f9c9f71f4e4f3921.txt has no rows"]
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for seed in SEEDS:
        (seeds / seed).write_text("CHALLENGE one\nCHALLENGE two\n")
    short = problems(parse(head + "\n".join(good)), root=tmp_path, seeds_dir=seeds)
    assert len(short) == len(SEEDS) and all("2 exercise markers but only 1" in p for p in short)


def test_exercise_markers_count_each_marker_once():
    text = "# 7. Exercise - speed\n\n**Exercise**: try it\nTask: do this\nTask: and that\n" \
           "## Exercise: CIFAR\nQuestions:\n* a\n* b\nCHALLENGE Something\n"
    assert exercise_markers(text) == 6
