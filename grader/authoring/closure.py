"""What ``from grader import check`` needs: the self-check's import closure, derived from the code.

Two places ship the self-check without the rest of the grader: the student edition
(:mod:`grader.authoring.edition`) copies these files, and every grading kernel sees only
these files of the grader (:mod:`grader.kernel.kernel_view`). Both use
:func:`selfcheck_files`, so a module the self-check starts importing flows into both, and
nothing else of the grader (scoring code, rubrics, references, keys) does.

The closure follows the ``grader`` imports a module runs when it is imported (module level,
including ``if``/``try`` blocks), not those inside functions: a function that imports scoring
code (the references, when they exist) is one the self-check calls only where they exist.
"""

from __future__ import annotations

import ast
from pathlib import Path

from grader.base.errors import GraderError
from grader.base.paths import PACKAGE_DIR

ROOTS = ("grader/__init__.py", "grader/authoring/selfcheck.py")
"""Where the closure starts: the package itself and the module defining ``check``."""
NEVER = ("grader/checks/references", "grader/checks/rubrics", "grader/base/keys.py",
         "grader/submission", "grader/classroom", "grader/pages")
"""Parts of the grader the closure must never reach (it fails loudly if it does)."""
DATA_SUFFIXES = (".json",)
"""Data files that sit beside a module of the closure (not in a subfolder) and ship with it:
the modules read them (``checks/verdicts/digests.json``, the salted digests of the verdicts)."""


def _module_file(dotted: str, package_dir: Path) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "grader":
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _top_level_imports(tree: ast.Module, package: str) -> list[str]:
    """Dotted names imported when the module runs (not inside functions or classes)."""
    found: list[str] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    todo += child.body if isinstance(child, ast.ExceptHandler) else [child]
    return found


def selfcheck_files(package_dir: Path = PACKAGE_DIR) -> tuple[str, ...]:
    """Paths (``grader/...``) of every grader file the self-check imports, with the
    ``__init__.py`` of each package on the way.

    Raises
    ------
    GraderError
        The closure reaches a part of :data:`NEVER` (scoring code or answers would ship).
    """
    package_dir = Path(package_dir)
    root = package_dir.parent
    seen: set[Path] = set()
    todo = [root / rel for rel in ROOTS]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(root)
        for parent in rel.parents:  # the packages on the way run their __init__ first
            init = root / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                todo.append(init)
        is_package = path.name == "__init__.py"
        dotted = ".".join(rel.with_suffix("").parts[: -1 if is_package else None])
        package = dotted if is_package else dotted.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name in _top_level_imports(tree, package):
            found = _module_file(name, package_dir)
            if found is not None:
                todo.append(found)
    folders = {path.parent for path in seen}
    data = {item for folder in folders for item in folder.iterdir()
            if item.is_file() and item.suffix in DATA_SUFFIXES}
    files = sorted(p.relative_to(root).as_posix() for p in seen | data)
    bad = [f for f in files if f.startswith(NEVER)]
    if bad:
        raise GraderError(f"the self-check imports {', '.join(bad)}: scoring code or answers"
                          " would reach students and kernels. Fix: import it inside the function"
                          " that needs it, where the self-check can do without it")
    return tuple(files)
