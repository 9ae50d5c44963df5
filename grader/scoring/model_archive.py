"""Read a saved ``.keras`` archive's ``config.json`` within bounds, then vet the model it holds.

The archive is hostile input: its member count, unpacked size, config size and JSON nesting
are bounded before anything is parsed, and every failure becomes a refusal phrased for the
student. The model itself is vetted by :func:`grader.scoring.vetting.vet_model_config`.
"""

from __future__ import annotations

import itertools
import json
import re
import zipfile
from pathlib import Path
from typing import Any

from grader.scoring.vetting import _FIX, MAX_JSON_DEPTH, ModelBounds, _short, vet_model_config

__all__ = ["MAX_ARCHIVE_UNCOMPRESSED_BYTES", "MAX_CONFIG_BYTES", "vet_keras_archive"]

MAX_CONFIG_BYTES = 20 * 1024 * 1024
"""Largest uncompressed ``config.json`` accepted (bytes)."""

MAX_ARCHIVE_UNCOMPRESSED_BYTES = 1_200_000_000
"""Largest total uncompressed size of all archive members accepted (bytes)."""

MAX_ARCHIVE_MEMBERS = 10_000
"""Most members a model archive may hold (a real one holds three)."""

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON ``text``, found without parsing it."""
    brackets = _BRACKET.findall(_JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def _read_config(path: Path) -> dict[str, Any] | str:
    """Parsed ``config.json`` of the archive at ``path``, or the reason it cannot be read."""
    name = f"'{_short(Path(path).name)}'"
    expected = "expected a .keras zip archive written by model.save('name.keras')"
    try:
        if not Path(path).is_file():
            return f"{name} is not a file ({expected}): save the model with model.save('name.keras')"
        if not zipfile.is_zipfile(path):
            return (
                f"{name} is not a Keras model archive ({expected}, found a file that is not a zip):"
                " save the model with model.save('name.keras')"
            )
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS:
                return f"{name} holds {len(members):,} files, but a Keras model archive holds a few: {_FIX}"
            total = sum(member.file_size for member in members)
            if total > MAX_ARCHIVE_UNCOMPRESSED_BYTES:
                return (
                    f"{name} unpacks to {total:,} bytes, more than the {MAX_ARCHIVE_UNCOMPRESSED_BYTES:,}"
                    f" the grader accepts: {_FIX}"
                )
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                return (
                    f"{name} is a zip file without config.json ({expected}): save the model with"
                    " model.save('name.keras'), not model.save_weights or a zip of your own"
                )
            if info.file_size > MAX_CONFIG_BYTES:
                return (
                    f"{name}'s config.json is {info.file_size:,} bytes, more than the"
                    f" {MAX_CONFIG_BYTES:,} the grader accepts (a model's config is a few kB): {_FIX}"
                )
            with archive.open(info) as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            return (
                f"{name}'s config.json unpacks to more than {MAX_CONFIG_BYTES:,} bytes (a model's"
                f" config is a few kB): {_FIX}"
            )
        text = raw.decode("utf-8")
        depth = _json_depth(text)
        if depth > MAX_JSON_DEPTH:
            return (
                f"{name}'s config.json nests {depth:,} levels deep, but the grader accepts at most"
                f" {MAX_JSON_DEPTH} (a Keras model config nests about 10): {_FIX}"
            )
        config = json.loads(text)
    except RecursionError:
        return f"{name}'s config.json nests too deeply to read: {_FIX}"
    except UnicodeDecodeError:
        return f"{name}'s config.json is not UTF-8 text: {_FIX}"
    except json.JSONDecodeError as exc:
        return f"{name}'s config.json is not valid JSON ({exc.msg} at line {exc.lineno}): {_FIX}"
    except ValueError as exc:  # e.g. an integer with thousands of digits
        return f"{name}'s config.json holds a value that cannot be read ({_short(str(exc), 120)}): {_FIX}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        return f"{name} is a damaged or unsupported zip archive ({_short(str(exc), 120)}): {_FIX}"
    except Exception as exc:  # noqa: BLE001 - hostile input: every failure is a refusal
        return f"{name} could not be read as a Keras model archive ({type(exc).__name__}): {_FIX}"
    return config


def vet_keras_archive(path: Path, bounds: ModelBounds) -> str | None:
    """Check a ``.keras`` archive from its ``config.json`` alone, before Keras loads it.

    Parameters
    ----------
    path : Path
        The archive written by ``model.save("name.keras")``.
    bounds : ModelBounds
        Limits to enforce.

    Returns
    -------
    str or None
        None when the model may be loaded; otherwise the reason to refuse it, phrased for the
        student (not a zip, no or oversized ``config.json``, too large when unpacked, nested too
        deeply, invalid JSON, or a model beyond ``bounds``; see :func:`vet_model_config`).
    """
    config = _read_config(path)
    if isinstance(config, str):
        return config
    return vet_model_config(config, bounds)
