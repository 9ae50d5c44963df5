"""The package layout: stage subpackages that import only downward, and no import cycle.

Every ``import`` under ``grader/`` counts, at module level or inside a function (a lazy
import is still a dependency). Importing ``grader.a.b`` is an edge to ``grader.a.b`` only:
the parent packages' ``__init__`` files run too, but they are kept light and import nothing
above their own stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

GRADER = Path(__file__).resolve().parents[1] / "grader"

# The stages, bottom to top: a module may import its own stage or one listed before it.
# ``grader/__init__.py`` and ``grader/__main__.py`` sit above all of them.
LEVELS = ("base", "data", "checks", "authoring", "kernel", "scoring", "submission", "pages",
          "classroom", "lms")
TOP = len(LEVELS)


def modules(root: Path = GRADER) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _resolve(name: str, known: dict) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = GRADER) -> dict[str, dict[str, int]]:
    """Module -> {imported grader module: first line}, every import in the file included."""
    known = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in known.items():
        package = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                           for alias in node.names]
            for target in targets:
                if target.split(".")[0] != root.name:
                    continue
                resolved = _resolve(target, known)
                if resolved and resolved != name:
                    edges.setdefault(resolved, node.lineno)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def level(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return TOP
    return LEVELS.index(parts[1]) if parts[1] in LEVELS else -1


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    return [f"{a} (level {LEVELS[level(a)] if level(a) < TOP else 'top'}) imports {b}"
            f" (level {LEVELS[level(b)] if level(b) < TOP else 'top'}) at line {line}"
            for a, edges in sorted(graph.items()) for b, line in sorted(edges.items())
            if level(b) > level(a)]


def test_no_import_cycle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)) + f" -> {cycle[-1]}"


def test_stages_import_only_downward():
    problems = upward_imports(import_graph())
    assert not problems, ("imports against the stage order " + " < ".join(LEVELS) + ":\n"
                          + "\n".join(problems))


def test_every_module_lives_in_a_declared_stage():
    stray = [name for name in modules() if level(name) < 0
             or (level(name) == TOP and name not in ("grader", "grader.__main__"))]
    assert not stray, f"modules outside the stages {LEVELS}: {stray}"


def test_at_least_three_stage_subpackages():
    packages = {p.parent.name for p in GRADER.glob("*/__init__.py")}
    assert packages == set(LEVELS), f"subpackages {sorted(packages)} != declared stages {LEVELS}"
    assert len(set(LEVELS) - {"base"}) >= 3


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks above would catch the old flat layout's circle (checks -> references ->
    checks) and a lazy import that points up."""
    pkg = tmp_path / "grader"
    (pkg / "base").mkdir(parents=True)
    (pkg / "checks").mkdir()
    for folder in (pkg, pkg / "base", pkg / "checks"):
        (folder / "__init__.py").write_text("")
    (pkg / "checks" / "kinds.py").write_text("def f():\n    from grader.checks import refs\n")
    (pkg / "checks" / "refs.py").write_text("from .kinds import f\n")
    (pkg / "base" / "errors.py").write_text("def g():\n    import grader.checks.kinds\n")
    graph = import_graph(pkg)
    assert find_cycle(graph) == ["grader.checks.kinds", "grader.checks.refs", "grader.checks.kinds"]
    assert upward_imports(graph) == [
        "grader.base.errors (level base) imports grader.checks.kinds (level checks) at line 2"]


MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 155  # "about 150": CanvasClient, one method per Canvas call, is 152
MAX_FUNCTION_LINES = 85  # "about 80": a docstring-heavy entry point may run a few lines over


def _over_limits(root: Path) -> list[str]:
    """Modules over :data:`MAX_MODULE_LINES`, classes over :data:`MAX_CLASS_LINES`, functions
    over :data:`MAX_FUNCTION_LINES` under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text, where = path.read_text(encoding="utf-8"), path.relative_to(root.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{where} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            kind = {ast.ClassDef: "class ", ast.FunctionDef: "", ast.AsyncFunctionDef: ""}.get(
                type(node))
            if kind is None:
                continue
            length = node.end_lineno - node.lineno + 1
            if length > (MAX_CLASS_LINES if kind else MAX_FUNCTION_LINES):
                found.append(f"{where}:{node.lineno} {kind}{node.name} ({length} lines)")
    return found


def test_no_module_class_or_function_in_the_grader_is_over_its_limit():
    """Modules at most 600 lines, classes about 150, functions about 80."""
    assert _over_limits(GRADER) == []


def test_the_size_check_sees_a_long_function_a_big_class_and_a_big_module(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "long.py").write_text("def f():\n" + "    x = 1\n" * 90)
    (pkg / "big.py").write_text("class C:\n" + "    x = 1\n" * 160 + "y = 2\n" * 500)
    assert _over_limits(pkg) == ["pkg/big.py (661 lines)", "pkg/big.py:1 class C (161 lines)",
                                 "pkg/long.py:1 f (91 lines)"]


def _reachable(graph: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_batch_never_reaches_a_course_platform():
    """Canvas and Gradescope live in ``grader.lms``; grading a class works without them,
    directly or through any module it imports."""
    graph = import_graph()
    for start in [m for m in graph if m.startswith("grader.classroom.")]:
        platforms = sorted(m for m in _reachable(graph, start) if m.startswith("grader.lms"))
        assert not platforms, f"{start} reaches {platforms}"


def test_the_kernel_side_never_imports_what_decides_the_grade():
    """What runs as the student (``grader.kernel``) imports nothing that scores."""
    graph = import_graph()
    for start in [m for m in graph if m.startswith("grader.kernel")]:
        scoring = sorted(m for m in _reachable(graph, start)
                         if m.startswith(("grader.scoring", "grader.checks.rubric")))
        assert not scoring, f"{start} reaches {scoring}"

