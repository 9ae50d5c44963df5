"""Vet a saved Keras model's configuration before the grader loads it.

A ``.keras`` archive is a zip holding ``config.json`` (the model's architecture), ``metadata.json``
and the weights. ``keras.saving.load_model`` builds every layer from ``config.json`` and allocates its
weights *before* reading the weights file, so a 40 kB archive whose config declares ``Dense(1_000_000)``
makes the grader allocate gigabytes. The functions here read ``config.json`` with :mod:`zipfile` and
:mod:`json` only (no TensorFlow or Keras import), walk every layer, check each declared width and
shape, estimate the number of parameters, and return a sentence a student can act on when the model
is not one the grader should load.

The estimate is deliberately conservative: when a layer's input width is not recorded in its
``build_config`` it is taken to be the largest size declared anywhere in the model, so the estimate
can exceed the real count but should not fall short of it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_CONFIG_NODES",
    "MAX_JSON_DEPTH",
    "ModelBounds",
    "estimate_params",
    "vet_model_config",
]

MAX_JSON_DEPTH = 200
"""Deepest nesting of JSON arrays/objects accepted in ``config.json``."""

_FIX = "build the model the exercise asks for and save it again with model.save(...)"

# Keys of a layer's ``config`` whose value is a single whole number (a width). Keys in
# _NULLABLE_WIDTHS may also be null.
_WIDTH_KEYS = (
    "units",
    "filters",
    "output_dim",
    "input_dim",
    "num_heads",
    "key_dim",
    "value_dim",
    "depth_multiplier",
    "num_tokens",
    "num_bins",
    "max_tokens",
)
_NULLABLE_WIDTHS = frozenset({"value_dim", "num_tokens", "num_bins", "max_tokens"})
# Keys whose value is a whole number or a list of whole numbers (one per spatial axis).
_TUPLE_KEYS = ("kernel_size", "pool_size", "strides", "dilation_rate")
_NULLABLE_TUPLES = frozenset({"pool_size", "strides"})
# Keys holding a tensor shape (lists of whole numbers or null), anywhere in the config.
_SHAPE_KEYS = frozenset(
    {
        "batch_shape",
        "batch_input_shape",
        "input_shape",
        "build_input_shape",
        "target_shape",
        "shape",
        "output_shape",
        "query_shape",
        "key_shape",
        "value_shape",
    }
)
# Keys of a layer's ``config`` that hold nested layers (containers, wrappers, RNN cells).
_NESTED_LAYER_KEYS = frozenset({"layers", "layer", "backward_layer", "forward_layer", "cell", "cells"})
# A layer config holding any of these is a layer even where no container puts it.
_PARAM_KEYS = frozenset(
    {"units", "filters", "output_dim", "input_dim", "num_heads", "key_dim", "depth_multiplier", "kernel_size"}
)

MAX_CONFIG_NODES = 1_000_000
"""Most JSON values (numbers, strings, lists, objects) a config may hold (a real one: a few thousand)."""



@dataclass(frozen=True)
class ModelBounds:
    """Limits on a saved model the grader agrees to load.

    Attributes
    ----------
    max_params : int
        Largest estimated total number of parameters (weights and biases, trainable or not).
    max_units : int
        Largest single declared width: ``units``, ``filters``, ``output_dim``, ``input_dim``,
        ``num_heads``, ``key_dim``, each entry of ``kernel_size`` / ``pool_size`` / ``strides``.
        Tensor shape dimensions (``batch_shape``, ``input_shape``, ``target_shape``...) may be as
        large as ``max(max_params, max_units)``, so flattened images (``32*32*3 = 3072``) pass.
    max_layers : int
        Largest number of layers, counting nested models, wrapped layers and input layers.
    """

    max_params: int = 20_000_000
    max_units: int = 65_536
    max_layers: int = 1_000


@dataclass
class _Layer:
    """One layer config found in the model config (internal)."""

    node: dict[str, Any]
    class_name: str
    config: dict[str, Any]

    @property
    def name(self) -> str:
        name = self.config.get("name")
        return _short(name) if isinstance(name, str) else "?"


class _Refusal(Exception):
    """Raised inside the walk to stop with a student-facing reason."""


# ----------------------------------------------------------------------------------------------
# Walking the config


def _short(value: Any, limit: int = 60) -> str:
    """``repr``-like text of a value from the config, cut to ``limit`` characters."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "..."
        return text
    if isinstance(value, (list, dict)):
        text = json.dumps(value)[: limit + 1] if _small(value) else f"a {type(value).__name__}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _small(value: Any, budget: int = 50) -> bool:
    """Whether a list/dict has at most ``budget`` nodes (so it is cheap to print)."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return True


def _is_object(node: Any) -> bool:
    """Whether ``node`` is a serialized Keras object: ``{"class_name": str, "config": dict}``."""
    return (
        isinstance(node, dict)
        and isinstance(node.get("class_name"), str)
        and isinstance(node.get("config"), dict)
    )


def _walk(config: Any) -> Iterator[tuple[Any, Any, int, bool]]:
    """Yield ``(key, node, depth, layer_position)`` for every node of a JSON-like tree.

    Iterative (no recursion); visits each container once even if the tree shares or cycles.
    ``layer_position`` is true for the root and for the items a layer's config holds under a
    nested-layer key (``layers``, ``layer``, ``cell``...). The ``config`` dict of a layer is not
    yielded itself: its entries are, one level deeper.
    """
    seen: set[int] = set()
    stack: list[tuple[Any, Any, int, bool]] = [(None, config, 0, True)]
    while stack:
        key, node, depth, layer_position = stack.pop()
        yield key, node, depth, layer_position
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            stack.extend((key, item, depth + 1, layer_position) for item in reversed(node))
            continue
        is_layer = _is_object(node) and bool(layer_position or _PARAM_KEYS & node["config"].keys())
        for k, v in reversed(list(node.items())):
            if is_layer and k == "config":
                if id(v) in seen:
                    continue
                seen.add(id(v))
                stack.extend(
                    (ik, iv, depth + 2, ik in _NESTED_LAYER_KEYS) for ik, iv in reversed(list(v.items()))
                )
            else:
                stack.append((k, v, depth + 1, False))


def _collect(config: dict[str, Any], bounds: ModelBounds) -> list[_Layer]:
    """Walk the whole config: check every width and shape, return the layers found.

    Raises
    ------
    _Refusal
        With the reason when a value is malformed, too large, or the config too deep / too big.
    """
    layers: list[_Layer] = []
    shape_bound = max(bounds.max_params, bounds.max_units)
    for count, (key, node, depth, layer_position) in enumerate(_walk(config)):
        if count > MAX_CONFIG_NODES:
            raise _Refusal(
                f"the saved model's configuration holds more than {MAX_CONFIG_NODES:,} values, but a"
                f" Keras model configuration holds a few thousand: {_FIX}"
            )
        if depth > MAX_JSON_DEPTH:
            raise _Refusal(
                f"the saved model's configuration nests more than {MAX_JSON_DEPTH} levels deep, but a"
                f" Keras model configuration is only a few levels deep: {_FIX}"
            )
        if key in _SHAPE_KEYS and not isinstance(node, dict):
            _check_shape(key, node, shape_bound, owner=None)
        if not _is_object(node):
            continue
        inner = node["config"]
        if not (layer_position or _PARAM_KEYS & inner.keys()):
            continue
        layer = _Layer(node=node, class_name=node["class_name"], config=inner)
        layers.append(layer)
        if len(layers) > bounds.max_layers:
            raise _Refusal(
                f"the saved model has more than {bounds.max_layers:,} layers (counting nested models,"
                f" wrapped layers and input layers); the grader loads models with at most"
                f" {bounds.max_layers:,} layers: {_FIX}"
            )
        _check_layer(layer, bounds, shape_bound)
    return layers


def _describe(layer: _Layer) -> str:
    return f"layer '{layer.name}' ({_short(layer.class_name, 40)})"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", float: "float", str: "string", list: "list", dict: "dict"}.get(
        type(value), type(value).__name__
    )


def _check_int(layer: _Layer | None, key: str, value: Any, bound: int, what: str) -> None:
    """Refuse unless ``value`` is an ``int`` (not ``bool``) in ``[0, bound]``."""
    where = _describe(layer) if layer is not None else "the saved model"
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(_short(value)) if isinstance(value, str) else _short(value)
        raise _Refusal(
            f"{where} declares {key}={shown} (a {_type_name(value)}), but {key} must be a whole number"
            f" (int) from 0 to {bound:,}: pass an int (e.g. 64, not 64.0 or '64') and save the model"
            " again with model.save(...)"
        )
    if value < 0 or value > bound:
        size = (
            f"{value:,}"
            if value.bit_length() <= 64
            else f"a number with about {int(value.bit_length() * 0.30103) + 1:,} digits"
        )
        raise _Refusal(
            f"{where} declares {key}={size}, but the grader accepts {what} from 0 to {bound:,}: {_FIX}"
        )


def _check_shape(key: str, value: Any, bound: int, owner: _Layer | None) -> None:
    """Refuse unless ``value`` is null, a whole number, or (nested) lists/dicts of those."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            continue
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if _is_object(item) or "class_name" in item:  # a serialized object, e.g. Lambda's function
                continue
            stack.extend(item.values())
        else:
            _check_int(owner, key, item, bound, "tensor dimensions")


def _check_layer(layer: _Layer, bounds: ModelBounds, shape_bound: int) -> None:
    """Check the widths and shapes one layer declares."""
    cfg = layer.config
    for key in _WIDTH_KEYS:
        if key in cfg and not (cfg[key] is None and key in _NULLABLE_WIDTHS):
            _check_int(layer, key, cfg[key], bounds.max_units, "widths")
    for key in _TUPLE_KEYS:
        if key not in cfg or (cfg[key] is None and key in _NULLABLE_TUPLES):
            continue
        value = cfg[key]
        entries = value if isinstance(value, list) else [value]
        if not entries or len(entries) > 3:
            raise _Refusal(
                f"{_describe(layer)} declares {key}={_short(value)}, but {key} must be a whole number"
                f" or a list of 1 to 3 whole numbers, e.g. (3, 3): {_FIX}"
            )
        for entry in entries:
            _check_int(layer, key, entry, bounds.max_units, f"{key} entries")
    for key, value in cfg.items():
        if key in _SHAPE_KEYS and not isinstance(value, dict):
            _check_shape(key, value, shape_bound, layer)
    build = layer.node.get("build_config")
    if build is not None and not isinstance(build, dict):
        raise _Refusal(f"{_describe(layer)} has a build_config that is not a JSON object: {_FIX}")
    if isinstance(build, dict):
        _check_shape("build_config", build, shape_bound, layer)


# ----------------------------------------------------------------------------------------------
# Parameter estimate


def _shapes_in(value: Any) -> list[list[int | None]]:
    """Every innermost shape (a list of ints / nulls) found in ``value``."""
    found: list[list[int | None]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not _is_object(item):
                stack.extend(item.values())
        elif isinstance(item, list):
            if item and all(x is None or _is_int(x) for x in item):
                found.append(item)
            else:
                stack.extend(x for x in item if isinstance(x, (list, dict)))
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prod(dims: list[Any]) -> int:
    return math.prod(d for d in dims if _is_int(d) and d > 0)


def _global_guess(config: Any) -> int:
    """Upper-bound guess of any layer's input width: the largest size declared in the model.

    The largest product of the known dimensions of any shape in the config (input shapes, build
    shapes, traced tensor shapes, reshape targets), or any declared width, whichever is larger.
    """
    guess = 1
    for key, node, _depth, _layer in _walk(config):
        if key in _SHAPE_KEYS or key == "build_config":
            for shape in _shapes_in(node) if isinstance(node, (list, dict)) else []:
                guess = max(guess, _prod(shape))
        elif key in _WIDTH_KEYS and _is_int(node):
            guess = max(guess, node)
    return guess


def _input_dim(layer: _Layer, guess: int, channels_first: bool = False) -> tuple[int, bool]:
    """The layer's input width (last axis, or axis 1 when channels-first) and whether it is known.

    Taken from ``build_config`` (what Keras builds the weights from); when several input shapes
    are recorded the largest width is used; when none is recorded, ``guess``.
    """
    build = layer.node.get("build_config")
    widths = []
    for shape in _shapes_in(build) if isinstance(build, dict) else []:
        dim = shape[1] if channels_first and len(shape) > 1 else shape[-1]
        if _is_int(dim):
            widths.append(dim)
    if widths:
        return max(widths), True
    return guess, False


def _kernel_volume(layer: _Layer) -> int:
    kernel = layer.config.get("kernel_size")
    if isinstance(kernel, list):
        return _prod(kernel) or 1
    if _is_int(kernel):
        rank = 3 if "3D" in layer.class_name else 2 if "2D" in layer.class_name else 1
        return max(kernel, 1) ** rank
    return 1


def _int_or(value: Any, default: int = 0) -> int:
    return value if _is_int(value) and value >= 0 else default


def _layer_params(layer: _Layer, guess: int) -> int:
    """Rough parameter count of one layer (0 for containers and layers without weights)."""
    cfg = layer.config
    cls = layer.class_name
    if "kernel_size" in cfg and ("filters" in cfg or "depth_multiplier" in cfg):
        k = _kernel_volume(layer)
        cin, _ = _input_dim(layer, guess, channels_first=cfg.get("data_format") == "channels_first")
        f = _int_or(cfg.get("filters"))
        dm = _int_or(cfg.get("depth_multiplier"))
        if "LSTM" in cls:
            return 4 * (k * cin * f + k * f * f + f)
        if f and dm:  # separable: depthwise then pointwise
            return k * cin * dm + cin * dm * f + f
        if f:
            return k * cin * f + f
        return k * cin * dm + cin * dm
    if _is_int(cfg.get("num_heads")) and _is_int(cfg.get("key_dim")):
        d, _ = _input_dim(layer, guess)
        h, kd = cfg["num_heads"], cfg["key_dim"]
        vd = _int_or(cfg.get("value_dim"), kd)
        out = cfg.get("output_shape")
        d_out = _prod(out) if isinstance(out, list) else _int_or(out, d)
        return (d + 1) * h * (2 * kd + vd) + (h * vd + 1) * max(d_out, 1)
    if _is_int(cfg.get("units")):
        u = cfg["units"]
        d, _ = _input_dim(layer, guess)
        if "LSTM" in cls:
            return 4 * (d * u + u * u + u)
        if "GRU" in cls:
            return 3 * (d * u + u * u + 2 * u)
        if "RNN" in cls:
            return d * u + u * u + u
        return d * u + u
    if _is_int(cfg.get("input_dim")) and _is_int(cfg.get("output_dim")):
        return cfg["input_dim"] * cfg["output_dim"]
    if "equation" in cfg and isinstance(cfg.get("output_shape"), (list, int)):
        d, _ = _input_dim(layer, guess)
        out = cfg["output_shape"]
        width = (_prod(out) if isinstance(out, list) else _int_or(out)) or 1
        return d * width + width
    if cls.endswith("Normalization") and cls != "UnitNormalization":
        return 4 * _norm_channels(layer, guess)
    if cls == "PReLU":
        build = layer.node.get("build_config")
        shapes = _shapes_in(build) if isinstance(build, dict) else []
        return max((_prod(s[1:]) for s in shapes), default=guess)
    return 0


def _norm_channels(layer: _Layer, guess: int) -> int:
    """Size of the normalized axes of a normalization layer (``guess`` if not recorded)."""
    build = layer.node.get("build_config")
    shapes = _shapes_in(build) if isinstance(build, dict) else []
    if not shapes:
        return guess
    axis = layer.config.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    best = 0
    for shape in shapes:
        try:
            dims = [shape[a] for a in axes if _is_int(a)] if axes else []
        except IndexError:
            dims = []
        if not dims or not all(_is_int(d) for d in dims):
            best = max(best, _prod(shape[1:]))  # unknown axes: every non-batch axis
        else:
            best = max(best, _prod(dims))
    return best or guess


def _estimate(config: dict[str, Any], layers: list[_Layer]) -> tuple[int, _Layer | None, int]:
    guess = _global_guess(config)
    total, top, top_params = 0, None, -1
    for layer in layers:
        params = _layer_params(layer, guess)
        total += params
        if params > top_params:
            top, top_params = layer, params
    return total, top, top_params


def estimate_params(config: dict) -> int:
    """Estimate how many parameters loading a Keras model config would allocate.

    Parameters
    ----------
    config : dict
        Parsed ``config.json`` of a Keras 3 ``.keras`` archive (or any layer config).

    Returns
    -------
    int
        Rough total over every layer, nested ones included: ``in*units + units`` for Dense-like
        layers (4x / 3x with recurrent weights for LSTM / GRU), ``prod(kernel_size)*in*filters +
        filters`` for convolutions, ``input_dim*output_dim`` for Embedding, ``4*channels`` for
        normalization layers, 0 for layers without weights. ``in`` is the last dimension of the
        layer's ``build_config`` input shape; when that is missing, the largest size declared
        anywhere in the model (largest shape product or width), so the estimate errs high.
        Malformed values count as 0 here; :func:`vet_model_config` refuses them.
    """
    if not isinstance(config, dict):
        return 0
    layers = [
        _Layer(node=node, class_name=node["class_name"], config=node["config"])
        for _key, node, _depth, layer_position in _walk(config)
        if _is_object(node) and (layer_position or _PARAM_KEYS & node["config"].keys())
    ]
    return _estimate(config, layers)[0]


# ----------------------------------------------------------------------------------------------
# Public checks


def _layer_summary(layer: _Layer) -> str:
    cfg = layer.config
    cls = _short(layer.class_name, 40)
    if _is_int(cfg.get("units")):
        return f"{cls}({cfg['units']:,})"
    if _is_int(cfg.get("filters")):
        kernel = cfg.get("kernel_size")
        kernel_text = (
            f", kernel_size={tuple(kernel)}" if isinstance(kernel, list) and len(kernel) <= 3 else ""
        )
        return f"{cls}({cfg['filters']:,}{kernel_text})"
    if _is_int(cfg.get("input_dim")) and _is_int(cfg.get("output_dim")):
        return f"{cls}({cfg['input_dim']:,}, {cfg['output_dim']:,})"
    return cls


def vet_model_config(config: dict, bounds: ModelBounds) -> str | None:
    """Check a parsed Keras model config against ``bounds`` without building anything.

    Parameters
    ----------
    config : dict
        Parsed ``config.json`` of a ``.keras`` archive.
    bounds : ModelBounds
        Limits to enforce.

    Returns
    -------
    str or None
        None when the model may be loaded; otherwise one sentence for the student saying what
        was expected, what the saved model declares, and how to fix it.
    """
    if not _is_object(config):
        return (
            "the saved model's config.json is not a Keras model configuration (expected a JSON"
            " object with 'class_name' and 'config'): save the model with model.save('name.keras')"
        )
    try:
        layers = _collect(config, bounds)
        total, top, top_params = _estimate(config, layers)
    except _Refusal as refusal:
        return str(refusal)
    except Exception as exc:  # noqa: BLE001 - fail closed on anything unexpected
        return f"the saved model's configuration could not be checked ({type(exc).__name__}); {_FIX}"
    if total > bounds.max_params:
        where = ""
        if top is not None:
            d, known = _input_dim(top, _global_guess(config))
            inputs = f" on {d:,} inputs" if known else ""
            where = f" (layer '{top.name}': {_layer_summary(top)}{inputs}, about {top_params:,})"
        return (
            f"the saved model declares about {total:,} parameters{where}; the grader loads models"
            f" up to {bounds.max_params:,} parameters: {_FIX}"
        )
    return None
