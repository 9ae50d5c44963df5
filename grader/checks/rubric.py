"""Declarative rubrics: one TOML file per module under ``grader/checks/rubrics/``.

A rubric names the module's notebook and dataset and lists its checks::

    module = "01"
    notebook = "01_mlp_cifar10_gray.ipynb"
    dataset = "cifar10"

    [[checks]]
    id = "01.model_params"          # "<module>.<name>", also the self-check id
    kind = "param_count"            # param_count | design | accuracy | value | function | experiment | figure
    objects = ["model"]             # kernel names the check needs; the first is the subject
    points = 1
    expected = 140106
    description = "The 1024-128-64-10 MLP"

Kind-specific fields:

* ``param_count``: ``expected`` (trainable parameters) or, when the count is the answer of a
  by-hand exercise, ``answer_sha256`` (see below); optional ``units`` (Dense units in
  order), ``output_units``, ``output_activation``, ``input_shape``, ``hint``, and
  ``regularised = true`` when the model must carry dropout or a weight penalty (parameter
  counts cannot see either).
* ``design``: a model the student designed under constraints, judged by its structure, never
  by matching one architecture (what it achieves is a separate ``accuracy`` check on the
  grader's hold-out): ``max_params`` (the parameter budget, trainable or frozen, required), optional
  ``min_layers`` (a table from a layer class-name pattern to the least number of such layers,
  ``{"*Conv2D" = 2, "Random*" = 1}``; fnmatch patterns, matched in nested models too),
  ``input_shape``, ``output_units``, ``output_activation``, ``regularised`` and ``hint``.
* ``accuracy``: ``threshold = {full = 0.38, fast = 0.25}``; optional ``inputs`` (how the
  grader prepares the official test split: ``auto``, ``gray_flat``, ``flat``, ``image``);
  optional ``dataset`` overriding the module's.
* ``value``: exactly one of ``expected`` (a literal, for values that are no secret),
  ``answer_sha256`` (a by-hand answer, stored as a digest) or ``reference`` (a function in
  ``grader.checks.references`` computing the expected value from the other objects); optional
  ``tolerance`` (absolute; not with ``answer_sha256``) and ``hint``.
* ``function``: ``reference`` naming a function case in ``grader.checks.references``.
* ``experiment``: ``reference`` naming the check in ``grader.checks.references``; optional
  ``ahead_after``, the id of the lesson's cell after which the check's objects are exported
  once early, so that the re-runs of what the student chose run while the rest of the
  notebook runs (:mod:`grader.checks.speculation`).
* ``manual``: a written answer graded by hand. ``cell`` is the id of the Markdown exercise
  cell holding the answer, ``guide`` a short marking guide for the instructor (never shown to
  students); no ``objects``. Manual checks are kept apart in :attr:`Rubric.questions`:
  :attr:`Rubric.checks` holds the automatic ones, so the grading pipeline never sees them.
  The batch lists them in each row as "awaiting manual grading" (:mod:`grader.classroom.manual`).
* ``figure``: a matplotlib Figure (or Axes) the student drew; ``reference`` names a function
  in ``grader.checks.references`` called as ``reference(ctx, figure_data, *other_objects)``
  that compares the plotted data with what the grader trusts (an exported history, its own
  predictions of an exported model) and raises ``CheckFailed`` saying what differs, never
  the expected numbers. Before it runs, the kind requires plotted data and non-empty x and y
  labels on every axes that shows data. The export writes the figure as plain data
  (:mod:`grader.checks.figures`); optional ``hint``.
* ``experiment``: ``reference`` naming a function in ``grader.checks.references`` that checks the
  results of an experiment the exercise asked for (keys, types, ranges, consistency) and,
  when the grader scores, re-runs one or more of the reported configurations to confirm them
  (:mod:`grader.checks.experiments`). Its exercise cells must also have run without error.

``hint`` is one sentence on how to find the answer ("count height x width x channels"). A
failing ``value`` check says what is wrong and adds the hint; it never prints the expected
value, whatever its source, and a ``param_count`` with ``answer_sha256`` never prints the count.
``description`` says what is asked, never the answer (feedback pages and the class report
show it).

``answer_sha256`` keeps a by-hand answer out of the student package (students get
``grader/``): it is ``grader.checks.answers.digest(check_id, answer)``, the SHA-256 (hex) of
``"<check id>\n<canonical text>"``. The canonical text is defined by
:func:`grader.checks.answers.canonical`: ``true``/``false`` for booleans; a whole number (``int``,
a float within 1e-9 of a whole number, a NumPy scalar) as its plain decimal digits, so
``1234``, ``1234.0`` and ``np.int64(1234)`` agree; another finite float as ``repr(float(x))``;
a string as JSON of ``strip().lower()``; a list, tuple or array as ``[`` + entries joined by
``,`` + ``]`` (``[0, 1.0]`` -> ``[0,1]``). A numeric string from a student ("1234") is also
read as the number. A list of digests, one per entry salted with ``"<check id>[i]"``
(:func:`grader.checks.answers.position_digests`), lets the message name the wrong entries and the
expected length. Compute either with ``python -m grader digest CHECK_ID VALUE
[--per-position]``.

Loading validates everything and raises :class:`RubricError` naming file and check.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from grader.base.errors import RubricError
from grader.base.paths import MODULES, RUBRIC_DIR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KINDS = ("param_count", "design", "accuracy", "value", "function", "experiment", "figure", "manual")
INPUTS = ("auto", "gray_flat", "flat", "image")
MODES = ("full", "fast")

_COMMON = {"id", "kind", "objects", "points", "description"}
_ALLOWED = {
    "param_count": _COMMON | {"expected", "answer_sha256", "hint", "units", "output_units",
                              "output_activation", "input_shape", "regularised"},
    "design": _COMMON | {"max_params", "min_layers", "hint", "output_units", "output_activation",
                         "input_shape", "regularised"},
    "accuracy": _COMMON | {"threshold", "inputs", "dataset"},
    "value": _COMMON | {"expected", "answer_sha256", "reference", "tolerance", "hint"},
    "function": _COMMON | {"reference"},
    "experiment": _COMMON | {"reference", "ahead_after"},
    "figure": _COMMON | {"reference", "hint"},
    "manual": (_COMMON - {"objects"}) | {"cell", "guide"},
}


@dataclass(frozen=True)
class CheckSpec:
    """One rubric entry."""

    id: str
    kind: str
    objects: tuple[str, ...]
    points: float
    description: str = ""
    expected: Any = None
    answer_sha256: str | tuple[str, ...] | None = None
    hint: str = ""
    tolerance: float = 0.0
    reference: str | None = None
    threshold: dict[str, float] | None = None
    inputs: str = "auto"
    dataset: str | None = None
    units: tuple[int, ...] | None = None
    output_units: int | None = None
    output_activation: str | None = None
    input_shape: tuple[int, ...] | None = None
    regularised: bool = False
    max_params: int | None = None
    min_layers: tuple[tuple[str, int], ...] = ()
    cell: str | None = None
    guide: str = ""
    ahead_after: str | None = None

    @property
    def manual(self) -> bool:
        """True for a written answer graded by hand (``kind = "manual"``)."""
        return self.kind == "manual"

    @property
    def subject(self) -> str:
        """The kernel name the check is about (the first of ``objects``)."""
        return self.objects[0]

    @property
    def grade_id(self) -> str:
        """The nbgrader ``grade_id`` of the self-check cell (nbgrader allows no dots)."""
        return grade_id_for(self.id)


@dataclass(frozen=True)
class Rubric:
    """All checks of one module."""

    module: str
    notebook: str
    dataset: str
    checks: tuple[CheckSpec, ...]
    path: Path = field(compare=False)
    questions: tuple[CheckSpec, ...] = ()
    """Written answers graded by hand (``kind = "manual"``), in rubric order."""

    @property
    def max_score(self) -> float:
        """Points of the automatic checks (what :func:`grader.submission.grading.grade_submission` awards)."""
        return float(sum(c.points for c in self.checks))

    @property
    def manual_points(self) -> float:
        """Points of the written questions graded by hand."""
        return float(sum(q.points for q in self.questions))

    @property
    def total_points(self) -> float:
        """The module's maximum: automatic checks plus written questions."""
        return self.max_score + self.manual_points

    def question(self, question_id: str) -> CheckSpec:
        """The written question ``question_id`` (e.g. ``"04.curve_question"``)."""
        for spec in self.questions:
            if spec.id == question_id:
                return spec
        known = ", ".join(q.id for q in self.questions) or "none"
        raise RubricError(f"{self.path.name}: no written question {question_id!r}; known: {known}."
                          " Fix: use a question id from the rubric (scores.csv lists them)")

    def get(self, check_id: str) -> CheckSpec:
        for check in self.checks:
            if check.id == check_id:
                return check
        known = ", ".join(c.id for c in self.checks)
        raise RubricError(f"{self.path.name}: no check {check_id!r}; known checks: {known}")

    @property
    def scoring_datasets(self) -> tuple[str, ...]:
        """The datasets the grader scores on (the module's own and every ``accuracy`` check's),
        sorted: what the kernel copy must hold and a warm scorer loads ahead."""
        names = {self.dataset, *(c.dataset for c in self.checks if c.kind == "accuracy")}
        return tuple(sorted(n for n in names if n))

    @property
    def exported_objects(self) -> tuple[str, ...]:
        """Every kernel name any check needs, in first-use order."""
        seen: dict[str, None] = {}
        for check in self.checks:
            for name in check.objects:
                seen.setdefault(name, None)
        return tuple(seen)


def grade_id_for(check_id: str) -> str:
    """``"01.model_params"`` -> ``"check_01_model_params"`` (a valid nbgrader grade_id)."""
    return "check_" + check_id.replace(".", "_")


def _fail(path: Path, where: str, message: str) -> RubricError:
    return RubricError(f"{path}: {where}: {message}")


def _parse_check(path: Path, module: str, raw: dict, index: int) -> CheckSpec:
    where = f"check #{index + 1} ({raw.get('id', 'no id')})"
    if not isinstance(raw, dict):
        raise _fail(path, where, f"expected a table, got {type(raw).__name__}")
    for key in ("id", "kind", "points") + (() if raw.get("kind") == "manual" else ("objects",)):
        if key not in raw:
            raise _fail(path, where, f"missing required field {key!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise _fail(path, where, f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    unknown = set(raw) - _ALLOWED[kind]
    if unknown:
        raise _fail(path, where, f"unknown field(s) {sorted(unknown)} for kind {kind!r};"
                    f" allowed: {sorted(_ALLOWED[kind])}")
    check_id = raw["id"]
    if not isinstance(check_id, str) or not check_id.startswith(f"{module}."):
        raise _fail(path, where, f"expected an id of the form '{module}.<name>', got {check_id!r}")
    name = check_id.split(".", 1)[1]
    if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        raise _fail(path, where, "the part after the dot may hold letters, digits and _ only")
    objects = raw.get("objects", ["_"]) if kind == "manual" else raw["objects"]
    if (not isinstance(objects, list) or not objects
            or not all(isinstance(o, str) and o.isidentifier() for o in objects)):
        raise _fail(path, where, f"expected objects = a non-empty list of Python names, got {objects!r}")
    points = raw["points"]
    if not isinstance(points, (int, float)) or isinstance(points, bool) or points < 0:
        raise _fail(path, where, f"expected points >= 0, got {points!r}")
    kwargs: dict[str, Any] = {}
    if "answer_sha256" in raw:
        kwargs["answer_sha256"] = _parse_digests(path, where, raw["answer_sha256"])
    if "hint" in raw and not isinstance(raw["hint"], str):
        raise _fail(path, where, f"hint must be a string, got {raw['hint']!r}")
    if kind == "param_count":
        kwargs.update(_parse_param_count(path, where, raw, kwargs.get("answer_sha256")))
    elif kind == "design":
        kwargs.update(_parse_design(path, where, raw))
    elif kind == "accuracy":
        threshold = raw.get("threshold")
        if not isinstance(threshold, dict) or set(threshold) != set(MODES):
            raise _fail(path, where, "accuracy needs threshold = {full = <0..1>, fast = <0..1>}")
        if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in threshold.values()):
            raise _fail(path, where, f"thresholds must lie in [0, 1], got {threshold}")
        kwargs["threshold"] = {k: float(v) for k, v in threshold.items()}
        if raw.get("inputs", "auto") not in INPUTS:
            raise _fail(path, where, f"inputs must be one of {INPUTS}, got {raw.get('inputs')!r}")
    elif kind == "value":
        if sum(key in raw for key in ("expected", "answer_sha256", "reference")) != 1:
            raise _fail(path, where, "value needs exactly one of expected, answer_sha256 or"
                        " reference")
        if "answer_sha256" in raw and raw.get("tolerance", 0):
            raise _fail(path, where, "answer_sha256 compares exactly: remove the tolerance")
    elif kind == "manual":
        objects = []
        for key in ("cell", "guide"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise _fail(path, where, f"manual needs {key} = <text> (cell: the id of the"
                            " Markdown answer cell; guide: a short marking guide)")
    elif kind in ("function", "experiment", "figure"):
        if kind == "experiment" and "ahead_after" in raw and (
                not isinstance(raw["ahead_after"], str) or not raw["ahead_after"].strip()):
            raise _fail(path, where, "ahead_after must be the id of a cell of the lesson"
                        f" (a non-empty string), got {raw['ahead_after']!r}")
        if "reference" not in raw:
            raise _fail(path, where, f"{kind} needs reference = <name in grader.checks.references>")
    if "reference" in raw:
        from grader.checks.references import REFERENCES

        if raw["reference"] not in REFERENCES:
            raise _fail(path, where, f"reference {raw['reference']!r} is not defined in"
                        f" grader.checks.references; known: {sorted(REFERENCES)}")
    plain = {k: v for k, v in raw.items() if k not in {"objects", *kwargs}}
    plain.pop("id"), plain.pop("kind"), plain.pop("points")
    return CheckSpec(id=check_id, kind=kind, objects=tuple(objects), points=float(points),
                     **plain, **kwargs)


def _parse_param_count(path: Path, where: str, raw: dict, digest: Any) -> dict[str, Any]:
    """The expected count (or its digest) and the layer constraints of a ``param_count``."""
    if "answer_sha256" in raw:
        if "expected" in raw:
            raise _fail(path, where, "param_count takes expected or answer_sha256, not both")
        if not isinstance(digest, str):
            raise _fail(path, where, "param_count needs one answer_sha256 string")
    elif not isinstance(raw.get("expected"), int):
        raise _fail(path, where, "param_count needs expected = <integer parameter count>"
                    " (or answer_sha256)")
    if not isinstance(raw.get("regularised", False), bool):
        raise _fail(path, where, f"regularised must be true or false, got {raw['regularised']!r}")
    return {key: tuple(int(v) for v in raw[key]) for key in ("units", "input_shape") if key in raw}


def _parse_design(path: Path, where: str, raw: dict) -> dict[str, Any]:
    """The structural constraints of a ``design`` check, validated."""
    budget = raw.get("max_params")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise _fail(path, where, "design needs max_params = <the parameter budget,"
                    f" a positive integer>, got {budget!r}")
    layers = raw.get("min_layers", {})
    if not isinstance(layers, dict) or not all(
            isinstance(k, str) and k.strip() and isinstance(v, int) and not isinstance(v, bool)
            and v >= 1 for k, v in layers.items()):
        raise _fail(path, where, "min_layers must be a table of layer-name pattern = least"
                    f' count (>= 1), e.g. {{"*Conv2D" = 2}}, got {layers!r}')
    if not isinstance(raw.get("regularised", False), bool):
        raise _fail(path, where, f"regularised must be true or false, got {raw['regularised']!r}")
    found: dict[str, Any] = {"max_params": budget, "min_layers": tuple(layers.items())}
    if "input_shape" in raw:
        found["input_shape"] = tuple(int(v) for v in raw["input_shape"])
    return found


def _parse_digests(path: Path, where: str, raw: Any) -> str | tuple[str, ...]:
    def is_digest(text: Any) -> bool:
        return (isinstance(text, str) and len(text) == 64
                and all(ch in "0123456789abcdef" for ch in text))

    if is_digest(raw):
        return raw
    if isinstance(raw, list) and raw and all(is_digest(d) for d in raw):
        return tuple(raw)
    raise _fail(path, where, "answer_sha256 must be a 64-digit lowercase hex SHA-256 or a"
                " non-empty list of them; compute it with `python -m grader digest`")


def parse_rubric(path: Path) -> Rubric:
    """Read and validate one rubric file."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RubricError(f"{path}: cannot read the rubric: {exc}") from exc
    for key in ("module", "notebook", "dataset", "checks"):
        if key not in raw:
            raise RubricError(f"{path}: missing top-level field {key!r}")
    module = raw["module"]
    if module not in MODULES:
        raise RubricError(f"{path}: expected module in {MODULES}, got {module!r}")
    parsed = tuple(_parse_check(path, module, c, i) for i, c in enumerate(raw["checks"]))
    checks = tuple(c for c in parsed if not c.manual)
    questions = tuple(c for c in parsed if c.manual)
    ids = [c.id for c in parsed]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise RubricError(f"{path}: duplicate check ids {dupes}")
    return Rubric(module=module, notebook=raw["notebook"], dataset=raw["dataset"],
                  checks=checks, path=Path(path), questions=questions)


@cache
def load_rubric(module: str) -> Rubric:
    """The rubric of module ``"01"`` .. ``"04"`` from ``grader/checks/rubrics/<module>.toml``."""
    if module not in MODULES:
        raise RubricError(f"expected a module in {MODULES}, got {module!r}")
    path = RUBRIC_DIR / f"{module}.toml"
    if not path.exists():
        raise RubricError(f"no rubric for module {module}: expected {path}")
    return parse_rubric(path)


def find_check(check_id: str) -> tuple[Rubric, CheckSpec]:
    """Look a check up by its id, e.g. ``"02.model_params"``."""
    if not isinstance(check_id, str) or "." not in check_id:
        raise RubricError(f"expected a check id like '02.model_params', got {check_id!r}")
    rubric = load_rubric(check_id.split(".", 1)[0])
    return rubric, rubric.get(check_id)
