"""Export the rubric's objects from the student's kernel, then load them in the grader.

The export cell (:func:`export_source`) runs in the student's kernel after the notebook.
It knows only the object *names* the rubric needs, where to write, and for function checks
the path of an ``.npz`` of inputs the grader generated with a fresh random seed after the
student's code ran. It never holds expected answers, thresholds or reference outputs.

Per name it writes one of (file names are chosen by the grader, not by the kernel):

* ``<name>.keras``: a Keras model (``model.save``),
* ``<name>.json``: ``{"value": ...}`` for None, bool, int, float, str and small lists/dicts
  of those (``{"ellipsis": true}`` for a ``...`` placeholder; a Keras ``History`` as its
  ``.history`` dict),
* ``<name>.npy``: a numeric array (no object arrays),
* ``<name>.figure.json``: a matplotlib Figure or Axes as plain data
  (:func:`grader.checks.figures.describe_figure`; the kernel imports that module from the
  course package, which the sandbox mounts read-only),
* ``<name>.out.npz`` / ``.out.npy`` / ``.out.json``: a function's output on the inputs,
* ``<name>.status.json``: ``{"status": "missing" | "unsupported" | "error", "detail": ...}``.

:func:`load_artifacts` reads them back in the grader process with
``keras.saving.load_model(safe_mode=True, compile=False)`` after checking the archive's
config names only Keras classes, ``np.load(allow_pickle=False)`` and ``json``; a figure
file is read within :data:`grader.checks.figures.MAX_FIGURE_BYTES` and validated into
:class:`grader.checks.figures.FigureData`. The kernel
is untrusted: a file it did not write, or wrote wrongly, is simply a failed check.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grader.checks.figures import MAX_FIGURE_BYTES, FigureData
from grader.checks.kinds import FunctionOutput
from grader.checks.rubric import Rubric

MAX_MODEL_BYTES = 300 * 1024 * 1024
MAX_VALUE_BYTES = 20 * 1024 * 1024
_ALLOWED_MODULE_PREFIXES = ("keras",)

_KERNEL_CODE = r'''
def __dlcourse_export(names, functions, folder):
    import json as _json
    import os as _os
    import traceback as _tb

    import numpy as _np

    _os.makedirs(folder, exist_ok=True)

    _g = globals()
    try:
        import keras as _keras
        _Model = _keras.Model
    except Exception:  # keras missing: no model can be exported
        _Model = ()

    def _status(name, status, detail=""):
        with open(_os.path.join(folder, name + ".status.json"), "w") as f:
            _json.dump({"status": status, "detail": str(detail)[:1000]}, f)

    def _plain(value, depth=0):
        if depth > 3:
            raise TypeError("nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, _np.generic):
            return value.item()
        if isinstance(value, (list, tuple)) and len(value) <= 10000:
            return [_plain(v, depth + 1) for v in value]
        if isinstance(value, dict) and len(value) <= 1000:
            if all(isinstance(k, str) for k in value):
                return {k: _plain(v, depth + 1) for k, v in value.items()}
            # numeric keys (e.g. {learning_rate: accuracy}) travel as a list of pairs
            return {"__dlcourse_items__": [[_plain(k, depth + 1), _plain(v, depth + 1)]
                                           for k, v in value.items()]}
        raise TypeError(type(value).__name__)

    def _save_value(value, stem):
        if value is Ellipsis:
            with open(stem + ".json", "w") as f:
                _json.dump({"ellipsis": True}, f)
            return
        if isinstance(value, _np.ndarray):
            if value.dtype.hasobject:
                raise TypeError("an array of Python objects")
            _np.save(stem + ".npy", value, allow_pickle=False)
            return
        try:
            plain = _plain(value)
        except TypeError:
            arr = _np.asarray(value)
            if arr.dtype.hasobject:
                raise
            _np.save(stem + ".npy", arr, allow_pickle=False)
            return
        with open(stem + ".json", "w") as f:
            _json.dump({"value": plain}, f)

    # Values and models first, functions last: a student function that hangs must not
    # keep the other objects from being exported.
    for name in sorted(names, key=lambda n: n in functions):
        stem = _os.path.join(folder, name)
        if name not in _g:
            _status(name, "missing")
            continue
        obj = _g[name]
        try:
            if name in functions:
                if not callable(obj):
                    _status(name, "unsupported", "not a function: " + type(obj).__name__)
                    continue
                with _np.load(functions[name], allow_pickle=False) as data:
                    inputs = {k: (v.item() if v.ndim == 0 else v) for k, v in data.items()}
                try:
                    out = obj(**inputs)
                except BaseException as exc:
                    _status(name, "raised", type(exc).__name__ + ": " + str(exc))
                    continue
                if isinstance(out, tuple):
                    arrays = {"out_%d" % i: _np.asarray(v) for i, v in enumerate(out)}
                    if any(a.dtype.hasobject for a in arrays.values()):
                        raise TypeError("a tuple holding non-numeric values")
                    _np.savez(stem + ".out.npz", **arrays)
                else:
                    _save_value(out, stem + ".out")
            elif _Model and isinstance(obj, _Model):
                obj.save(stem + ".keras")
            elif (type(obj).__module__ or "").startswith("matplotlib.") and (
                    hasattr(obj, "get_axes") or hasattr(obj, "get_xlabel")):
                from grader.checks.figures import describe_figure

                with open(stem + ".figure.json", "w") as f:
                    _json.dump(describe_figure(obj), f)
            elif type(obj).__name__ == "History" and isinstance(getattr(obj, "history", None), dict):
                _save_value(obj.history, stem)  # a Keras History travels as its dict of lists
            else:
                _save_value(obj, stem)
        except Exception as exc:
            _status(name, "unsupported", type(exc).__name__ + ": " + str(exc))
        except BaseException:
            _status(name, "error", _tb.format_exc(limit=2))
            raise


__dlcourse_export({names!r}, {functions!r}, {folder!r})
del __dlcourse_export
'''


def function_subjects(rubric: Rubric) -> dict[str, str]:
    """Kernel name -> reference case name, for every ``function`` check."""
    return {c.subject: c.reference for c in rubric.checks if c.kind == "function"}


def write_function_inputs(rubric: Rubric, folder: Path) -> dict[str, dict[str, Any]]:
    """Generate fresh inputs for each function check and write them as ``.npz`` files.

    The seed comes from :mod:`secrets`, so a student cannot know the inputs in advance.
    Returns the inputs the grader keeps for scoring (its own copy, not the file).
    """
    from grader.checks.references import REFERENCES

    inputs: dict[str, dict[str, Any]] = {}
    for subject, ref in function_subjects(rubric).items():
        case = REFERENCES[ref]
        values = case.make_inputs(np.random.default_rng(secrets.randbits(64)))
        np.savez(folder / f"{subject}.in.npz", **{k: np.asarray(v) for k, v in values.items()})
        inputs[subject] = values
    return inputs


def export_source(rubric: Rubric, folder: Path, inputs_folder: Path | None = None) -> str:
    """The export cell's code: object names and file locations only.

    ``folder`` is where the kernel writes (it creates it); ``inputs_folder`` holds the inputs
    of :func:`write_function_inputs` (default ``folder``; the sandbox mounts it read-only).
    """
    inputs_folder = folder if inputs_folder is None else inputs_folder
    functions = {s: str(inputs_folder / f"{s}.in.npz") for s in function_subjects(rubric)}
    return names_export_source(list(rubric.exported_objects), folder, functions)


def names_export_source(names: Sequence[str], folder: Path,
                        functions: dict[str, str] | None = None) -> str:
    """The export code for ``names`` (``functions``: name -> inputs file, none by default);
    :func:`export_source` for the whole rubric, the early export for a few values."""
    return _KERNEL_CODE.replace("{names!r}", repr(list(names))) \
        .replace("{functions!r}", repr(functions or {})).replace("{folder!r}", repr(str(folder)))


def _walk_modules(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "module" and isinstance(value, str):
                found.add(value)
            else:
                _walk_modules(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_modules(value, found)


def check_keras_archive(path: Path) -> str | None:
    """``None`` when ``path`` looks like a plain Keras archive, else the reason it is refused.

    Refuses oversized files and configs naming classes outside Keras (custom or Lambda
    layers cannot be loaded safely, so the grader does not try).
    """
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        return f"the saved model is {size / 1e6:.0f} MB (limit {MAX_MODEL_BYTES / 1e6:.0f} MB)"
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > MAX_VALUE_BYTES:
                return "the model configuration is too large"
            total = sum(i.file_size for i in zf.infolist())
            if total > 4 * MAX_MODEL_BYTES:
                return "the saved model unpacks to too many bytes"
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        return f"not a Keras model archive ({exc})"
    modules: set[str] = set()
    _walk_modules(config, modules)
    foreign = sorted(m for m in modules
                     if not any(m == p or m.startswith(p + ".") for p in _ALLOWED_MODULE_PREFIXES))
    if foreign:
        return (f"the model uses classes from {', '.join(foreign)}; graded models may only use"
                " built-in Keras layers (no custom classes or Lambda layers)")
    return None


ACTIVATION_SPELLINGS = {"softmax_v2": "softmax", "softmax": "softmax", "relu": "relu",
                        "sigmoid": "sigmoid", "tanh": "tanh", "elu": "elu", "selu": "selu",
                        "gelu": "gelu", "softplus": "softplus", "swish": "silu", "silu": "silu",
                        "leaky_relu": "leaky_relu", "relu6": "relu6", "log_softmax": "log_softmax"}
"""TensorFlow functions a student may pass as a Keras activation (``tf.nn.softmax`` is named
``softmax_v2``): Keras saves them as plain functions it cannot load again, so the grader
reads them as the Keras activation of the same meaning."""


def _plain_activations(node: Any) -> tuple[Any, bool]:
    """``node`` with TensorFlow activation functions replaced by Keras activation names."""
    if isinstance(node, dict):
        if (node.get("module") == "builtins" and node.get("class_name") == "function"
                and node.get("config") in ACTIVATION_SPELLINGS):
            return ACTIVATION_SPELLINGS[node["config"]], True
        changed = False
        out = {}
        for key, value in node.items():
            out[key], hit = _plain_activations(value)
            changed |= hit
        return out, changed
    if isinstance(node, list):
        pairs = [_plain_activations(v) for v in node]
        return [v for v, _ in pairs], any(hit for _, hit in pairs)
    return node, False


def _normalise_archive(path: Path) -> None:
    """Rewrite ``path`` (the grader's own copy) with :func:`_plain_activations` applied."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.getinfo("config.json").file_size > MAX_VALUE_BYTES:
                return
            config, changed = _plain_activations(json.loads(zf.read("config.json")))
            if not changed:
                return
            members = [(info, zf.read(info.filename)) for info in zf.infolist()]
    except Exception:  # noqa: BLE001 - vetting reports what is wrong with the archive
        return
    tmp = path.with_name(path.name + ".normalised")
    with zipfile.ZipFile(tmp, "w") as out:
        for info, data in members:
            out.writestr(info, json.dumps(config).encode() if info.filename == "config.json"
                         else data)
    os.replace(tmp, path)


def _load_model(path: Path, bounds=None):
    from grader.scoring.model_archive import vet_keras_archive
    from grader.scoring.vetting import ModelBounds

    _normalise_archive(path)
    problem = check_keras_archive(path) or vet_keras_archive(path, bounds or ModelBounds())
    if problem:
        raise ValueError(problem)
    import keras

    return keras.saving.load_model(str(path), safe_mode=True, compile=False)


def _load_json(path: Path) -> Any:
    if path.stat().st_size > MAX_VALUE_BYTES:
        raise ValueError("the exported value is too large")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("malformed export file")
    if data.get("ellipsis") is True:
        return Ellipsis
    return _decode(data.get("value"))


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (a plain value: 0)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _decode(value: Any) -> Any:
    """Undo the export's encoding of dicts with non-string keys."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        items = value.get("__dlcourse_items__")
        if len(value) == 1 and isinstance(items, list):
            return {_hashable(_decode(k)): _decode(v) for k, v in items}
        return {k: _decode(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _load_npy(path: Path) -> np.ndarray:
    if path.stat().st_size > MAX_VALUE_BYTES * 10:
        raise ValueError("the exported array is too large")
    return np.load(path, allow_pickle=False)


def _load_tuple(path: Path) -> tuple:
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(data.files, key=lambda k: int(k.split("_")[1]))
        return tuple(data[k] for k in keys)


ARTIFACT_SUFFIXES = (".keras", ".npy", ".json", ".figure.json", ".out.npz", ".out.npy",
                     ".out.json", ".status.json")


def _load_figure(path: Path) -> FigureData:
    """An exported figure, validated; :class:`ValueError` says what is wrong with the file."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FIGURE_BYTES + 1)
    return FigureData.from_json(data)


class Refused(ValueError):
    """A file the kernel wrote that the grader will not read (a link, a special file, too
    large); the message says which and why."""


_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _read_regular(folder_fd: int, filename: str, limit: int, name: str) -> bytes | None:
    """The bytes of ``filename`` in the kernel's folder, ``None`` when absent.

    Opened without following links and without blocking, read only when it is a regular
    file within ``limit`` bytes; anything else raises :class:`Refused` naming ``name``."""
    import stat

    try:
        fd = os.open(filename, _OPEN_FLAGS, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link
        raise Refused(f"`{name}` was exported as a link or special file ({exc.strerror}), not"
                      " a regular file: refused") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise Refused(f"`{name}` was exported as a special file (a FIFO, a device or a"
                          " folder), not a regular file: refused")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"`{name}` was exported as a file over {limit / 1e6:.0f} MB"
                      f"{' (a figure is a few kB)' if filename.endswith('.figure.json') else ''}:"
                      " refused")
    return data


def collect_artifacts(rubric: Rubric, source: Path, dest: Path) -> dict[str, str]:
    """Copy what the export cell wrote from the kernel's folder into the grader's own.

    Only the file names the export writes are looked at, each opened without following links
    and without blocking, and copied only when it is a regular file within the size limit: a
    FIFO, a device, a symbolic link or a folder planted by the kernel is refused, never opened
    for reading. ``dest`` is created here, so everything loaded afterwards is a file the
    grader wrote. Returns kernel name -> why its export was refused.
    """
    dest.mkdir(mode=0o700)
    problems: dict[str, str] = {}
    try:
        folder_fd = os.open(source, _OPEN_FLAGS | os.O_DIRECTORY)
    except OSError:
        return problems  # no export folder: every name is reported missing when loading
    try:
        for name in rubric.exported_objects:
            for suffix in ARTIFACT_SUFFIXES:
                limit = {".keras": MAX_MODEL_BYTES, ".figure.json": MAX_FIGURE_BYTES}.get(
                    suffix, MAX_VALUE_BYTES * 10)
                try:
                    data = _read_regular(folder_fd, name + suffix, limit, name)
                except Refused as exc:
                    problems[name] = str(exc)
                    continue
                if data is None:
                    continue
                target = os.open(dest / (name + suffix), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(target, "wb") as out:
                    out.write(data)
    finally:
        os.close(folder_fd)
    return problems


EARLY_MAX_BYTES = 256 * 1024
"""The largest value the early export may hand over (a table of results is a few kB)."""


def read_early_values(source: Path, names: Sequence[str]) -> dict[str, Any]:
    """The plain values (``<name>.json``) an early export wrote, read in the grader.

    Only for planning re-runs ahead (:mod:`grader.checks.speculation`), never for scoring:
    a name that is absent, refused (a link, a special file, over :data:`EARLY_MAX_BYTES`),
    unreadable or nested more than 6 deep (the export writes at most 4) is simply left out."""
    values: dict[str, Any] = {}
    try:
        folder_fd = os.open(source, _OPEN_FLAGS | os.O_DIRECTORY)
    except OSError:
        return values
    try:
        for name in names:
            try:
                data = _read_regular(folder_fd, name + ".json", EARLY_MAX_BYTES, name)
                if data is None:
                    continue
                found = json.loads(data.decode("utf-8"))
                if isinstance(found, dict) and "value" in found and _depth(found["value"]) <= 6:
                    values[name] = _decode(found["value"])
            except (Refused, ValueError, RecursionError, UnicodeDecodeError):
                continue
    finally:
        os.close(folder_fd)
    return values


def load_artifacts(rubric: Rubric, folder: Path, function_inputs: dict[str, dict[str, Any]],
                   bounds=None) -> tuple[dict[str, Any], dict[str, str]]:
    """Load what the export cell wrote (from a folder the grader filled, see above).

    ``bounds`` (:class:`grader.scoring.vetting.ModelBounds`) limits the models loaded: an archive
    whose configuration declares more is refused before Keras builds it.

    Returns
    -------
    objects : dict
        Kernel name -> loaded object (model, value, array, or :class:`FunctionOutput` built
        with the grader's own copy of the inputs). Names that could not be loaded are absent.
    problems : dict
        Kernel name -> why it is absent (missing in the kernel, unsupported type, ...).
    """
    objects: dict[str, Any] = {}
    problems: dict[str, str] = {}
    functions = function_subjects(rubric)
    for name in rubric.exported_objects:
        stem = folder / name
        try:
            if name in functions:
                status = _read_status(stem)
                if status and status[0] == "raised":
                    objects[name] = FunctionOutput(inputs=function_inputs[name], error=status[1])
                    continue
                if status:
                    problems[name] = _describe_status(name, status)
                    continue
                if stem.with_suffix(".out.npz").exists():
                    output = _load_tuple(stem.with_suffix(".out.npz"))
                elif stem.with_suffix(".out.npy").exists():
                    output = _load_npy(stem.with_suffix(".out.npy"))
                elif stem.with_suffix(".out.json").exists():
                    output = _load_json(stem.with_suffix(".out.json"))
                else:
                    problems[name] = f"`{name}` was not exported (the export did not finish)"
                    continue
                objects[name] = FunctionOutput(inputs=function_inputs[name], output=output)
            elif (folder / f"{name}.figure.json").exists():
                try:
                    objects[name] = _load_figure(folder / f"{name}.figure.json")
                except ValueError as exc:
                    problems[name] = (f"`{name}` was exported as a figure the grader cannot"
                                      f" read: {str(exc)[:300]}")
            elif (folder / f"{name}.keras").exists():
                objects[name] = _load_model(folder / f"{name}.keras", bounds)
            elif (folder / f"{name}.npy").exists():
                objects[name] = _load_npy(folder / f"{name}.npy")
            elif (folder / f"{name}.json").exists():
                objects[name] = _load_json(folder / f"{name}.json")
            else:
                status = _read_status(stem)
                problems[name] = (_describe_status(name, status) if status else
                                  f"`{name}` was not exported (the export did not finish)")
        except Exception as exc:  # noqa: BLE001 - any unreadable artifact is a student finding
            problems[name] = f"`{name}` could not be loaded by the grader: {str(exc)[:300]}"
    return objects, problems


def _read_status(stem: Path) -> tuple[str, str] | None:
    path = stem.parent / f"{stem.name}.status.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:100_000])
        return str(data.get("status")), str(data.get("detail", ""))[:1000]
    except (ValueError, AttributeError):
        return "error", "unreadable status"


def _describe_status(name: str, status: tuple[str, str]) -> str:
    kind, detail = status
    if kind == "missing":
        return f"`{name}` is not defined: run the exercise cell that defines it"
    if kind == "unsupported":
        return (f"`{name}` could not be exported ({detail}); expected a Keras model, a matplotlib"
                " Figure, a number, a string, a list or a NumPy array")
    return f"`{name}` could not be exported: {detail}"
