"""Figures as plain data: what a ``figure`` check reads from a student's matplotlib plot.

:func:`describe_figure` runs wherever the Figure lives (the student's kernel, for the export
and for the self-check) and turns it into a small dict of lists, strings and numbers:
per axes its title, axis labels, legend texts, lines (x and y data), images (2-D arrays,
e.g. a confusion matrix drawn with ``imshow``, ``matshow`` or seaborn's ``heatmap``) and
bars. :class:`FigureData` is built from such a dict and validates it strictly, because in
the grader the dict comes from a file the untrusted kernel wrote: every key, type, size and
number is checked, and anything unexpected raises :class:`ValueError` naming what was
expected and what was found.

Limits (more is cut off by :func:`describe_figure` and refused by :class:`FigureData`):
:data:`MAX_AXES` axes, :data:`MAX_LINES` lines, :data:`MAX_IMAGES` images and
:data:`MAX_BAR_GROUPS` bar groups per axes, :data:`MAX_POINTS` points per line or bar group,
images of at most :data:`MAX_IMAGE_SIDE` x :data:`MAX_IMAGE_SIDE` values, texts of
:data:`MAX_TEXT` characters. The exported file may hold at most :data:`MAX_FIGURE_BYTES`.

matplotlib is not imported here: figures are duck-typed, so the grader reads the data
without it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 1
MAX_AXES = 8
MAX_LINES = 20
MAX_IMAGES = 4
MAX_BAR_GROUPS = 20
MAX_POINTS = 10_000
MAX_IMAGE_SIDE = 100
MAX_TEXT = 200
MAX_LEGEND = 50
MAX_FIGURE_BYTES = 8 * 1024 * 1024

# ----------------------------------------------------------------------------------------
# From a live matplotlib Figure to a dict
# ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT]


def _numbers(values: Any, limit: int = MAX_POINTS) -> list[float | None]:
    """Numbers as floats, NaN and infinities as ``None`` (a gap in the plot), at most ``limit``."""
    try:
        array = np.ma.filled(np.ma.asarray(values, dtype=float), np.nan).ravel()[:limit]
    except (TypeError, ValueError):
        return []
    return [float(v) if math.isfinite(v) else None for v in array.tolist()]


def _image(array: Any) -> list[list[float | None]] | None:
    """A 2-D array of at most MAX_IMAGE_SIDE x MAX_IMAGE_SIDE numbers, else ``None``."""
    try:
        values = np.ma.filled(np.ma.asarray(array, dtype=float), np.nan)
    except (TypeError, ValueError):
        return None
    if values.ndim != 2 or not 0 < values.shape[0] <= MAX_IMAGE_SIDE \
            or not 0 < values.shape[1] <= MAX_IMAGE_SIDE:
        return None
    return [[float(v) if math.isfinite(v) else None for v in row] for row in values.tolist()]


def _mesh_array(mesh: Any) -> Any:
    """The 2-D data of a QuadMesh (``pcolormesh``, seaborn's ``heatmap``), else ``None``."""
    array = mesh.get_array()
    if array is None:
        return None
    array = np.ma.asarray(array)
    if array.ndim == 1 and hasattr(mesh, "get_coordinates"):
        rows, cols = (n - 1 for n in mesh.get_coordinates().shape[:2])
        if rows * cols != array.size:
            return None
        array = array.reshape(rows, cols)
    return array


def _figure_of(obj: Any) -> Any:
    if hasattr(obj, "get_axes") and hasattr(obj, "savefig"):
        return obj
    if hasattr(obj, "get_xlabel") and hasattr(getattr(obj, "figure", None), "get_axes"):
        return obj.figure
    raise TypeError(f"expected a matplotlib Figure or Axes, found {type(obj).__name__}")


def _describe_axes(ax: Any) -> dict[str, Any]:
    legend = ax.get_legend()
    legend_texts = [] if legend is None else [_text(t.get_text()) for t in legend.get_texts()]
    lines = []
    for line in list(ax.get_lines())[:MAX_LINES]:
        label = str(line.get_label())
        lines.append({"label": "" if label.startswith("_") else _text(label),
                      "x": _numbers(line.get_xdata()), "y": _numbers(line.get_ydata())})
    images = []
    for image in list(ax.get_images()):
        images.append(_image(image.get_array()))
    for collection in list(getattr(ax, "collections", [])):
        if type(collection).__name__ == "QuadMesh":
            images.append(_image(_mesh_array(collection)))
    images = [im for im in images if im is not None][:MAX_IMAGES]
    bars = []
    for container in list(getattr(ax, "containers", [])):
        patches = getattr(container, "patches", None)
        if type(container).__name__ != "BarContainer" or patches is None:
            continue
        horizontal = getattr(container, "orientation", "vertical") == "horizontal"
        values = [p.get_width() if horizontal else p.get_height() for p in patches]
        label = str(container.get_label() or "")
        bars.append({"label": "" if label.startswith("_") else _text(label),
                     "heights": _numbers(values)})
    return {"title": _text(ax.get_title()), "xlabel": _text(ax.get_xlabel()),
            "ylabel": _text(ax.get_ylabel()), "legend": legend_texts[:MAX_LEGEND],
            "lines": lines, "images": images, "bars": bars[:MAX_BAR_GROUPS]}


def describe_figure(fig: Any) -> dict[str, Any]:
    """A matplotlib Figure (or an Axes: its figure) as plain data, within the limits above.

    Parameters
    ----------
    fig : matplotlib.figure.Figure or matplotlib.axes.Axes
        Duck-typed: anything with ``get_axes()`` and ``savefig``, or an Axes.

    Returns
    -------
    dict
        ``{"format": 1, "axes": [{"title", "xlabel", "ylabel", "legend", "lines", "images",
        "bars"}, ...]}``; a line is ``{"label", "x", "y"}``, a bar group ``{"label",
        "heights"}``, an image a list of rows. Numbers are floats, ``None`` where the plot
        has NaN or an infinity.
    """
    figure = _figure_of(fig)
    axes = list(figure.get_axes())
    return {"format": FORMAT, "axes": [_describe_axes(ax) for ax in axes[:MAX_AXES]]}


# ----------------------------------------------------------------------------------------
# From a dict (maybe forged) to validated data
# ----------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _expect_keys(value: Any, keys: set[str], where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object with keys {sorted(keys)}, found {_kind(value)}")
    if set(value) != keys:
        missing, extra = sorted(keys - set(value)), sorted(set(value) - keys)
        parts = ([f"missing {missing}"] if missing else []) + \
                ([f"unexpected {[str(k)[:40] for k in extra[:5]]}"] if extra else [])
        raise ValueError(f"{where}: expected the keys {sorted(keys)}, found {', '.join(parts)}")
    return value


def _expect_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string, found {_kind(value)}")
    if len(value) > MAX_TEXT:
        raise ValueError(f"{where}: expected at most {MAX_TEXT} characters, found {len(value):,}")
    return value


def _expect_list(value: Any, limit: int, where: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected a list, found {_kind(value)}")
    if len(value) > limit:
        raise ValueError(f"{where}: expected at most {limit:,} entries, found {len(value):,}")
    return value


def _expect_numbers(value: Any, limit: int, where: str) -> np.ndarray:
    """A list of finite numbers or ``None`` (a gap) -> float array with NaN for the gaps."""
    items = _expect_list(value, limit, where)
    out = np.empty(len(items), dtype=float)
    for i, item in enumerate(items):
        if item is None:
            out[i] = np.nan
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            try:
                number = float(item)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise ValueError(f"{where}[{i}]: expected a finite number or null, found"
                                 f" {str(item)[:20]}")
            out[i] = number
        else:
            raise ValueError(f"{where}[{i}]: expected a number or null, found {_kind(item)}")
    return out


@dataclass(frozen=True)
class LineData:
    """One plotted line; NaN marks a gap."""

    label: str
    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class BarData:
    """One bar group (a ``bar``/``barh``/``hist`` call): the bars' heights (widths for barh)."""

    label: str
    heights: np.ndarray


@dataclass(frozen=True)
class AxesData:
    """One axes of a figure."""

    title: str
    xlabel: str
    ylabel: str
    legend: tuple[str, ...]
    lines: tuple[LineData, ...]
    images: tuple[np.ndarray, ...]
    bars: tuple[BarData, ...]

    @property
    def has_data(self) -> bool:
        """True when the axes shows lines, images or bars (a colorbar's axes does not)."""
        return bool(self.lines or self.images or self.bars)


@dataclass(frozen=True)
class FigureData:
    """A validated description of a figure (see :func:`describe_figure` for the format)."""

    axes: tuple[AxesData, ...]

    @classmethod
    def from_dict(cls, raw: Any) -> FigureData:
        """Validate ``raw`` strictly; :class:`ValueError` says what was expected and found."""
        top = _expect_keys(raw, {"format", "axes"}, "the figure")
        if top["format"] != FORMAT or isinstance(top["format"], bool):
            raise ValueError(f"the figure: expected format {FORMAT}, found {top['format']!r:.40}")
        axes = []
        for a, ax in enumerate(_expect_list(top["axes"], MAX_AXES, "the figure's axes")):
            where = f"axes {a}"
            ax = _expect_keys(ax, {"title", "xlabel", "ylabel", "legend", "lines", "images",
                                   "bars"}, where)
            legend = tuple(_expect_text(t, f"{where} legend[{i}]") for i, t in
                           enumerate(_expect_list(ax["legend"], MAX_LEGEND, f"{where} legend")))
            lines = []
            for i, line in enumerate(_expect_list(ax["lines"], MAX_LINES, f"{where} lines")):
                line = _expect_keys(line, {"label", "x", "y"}, f"{where} line {i}")
                x = _expect_numbers(line["x"], MAX_POINTS, f"{where} line {i} x")
                y = _expect_numbers(line["y"], MAX_POINTS, f"{where} line {i} y")
                if len(x) != len(y):
                    raise ValueError(f"{where} line {i}: expected as many x as y values, found"
                                     f" {len(x):,} and {len(y):,}")
                lines.append(LineData(_expect_text(line["label"], f"{where} line {i} label"), x, y))
            images = []
            for i, image in enumerate(_expect_list(ax["images"], MAX_IMAGES, f"{where} images")):
                rows = _expect_list(image, MAX_IMAGE_SIDE, f"{where} image {i}")
                array = [_expect_numbers(r, MAX_IMAGE_SIDE, f"{where} image {i} row {j}")
                         for j, r in enumerate(rows)]
                if not array or len({len(r) for r in array}) != 1 or not len(array[0]):
                    raise ValueError(f"{where} image {i}: expected a non-empty rectangular table"
                                     f" of rows, found row lengths {sorted({len(r) for r in array})[:5]}")
                images.append(np.vstack(array))
            bars = []
            for i, group in enumerate(_expect_list(ax["bars"], MAX_BAR_GROUPS, f"{where} bars")):
                group = _expect_keys(group, {"label", "heights"}, f"{where} bar group {i}")
                bars.append(BarData(_expect_text(group["label"], f"{where} bar group {i} label"),
                                    _expect_numbers(group["heights"], MAX_POINTS,
                                                    f"{where} bar group {i} heights")))
            axes.append(AxesData(
                title=_expect_text(ax["title"], f"{where} title"),
                xlabel=_expect_text(ax["xlabel"], f"{where} xlabel"),
                ylabel=_expect_text(ax["ylabel"], f"{where} ylabel"),
                legend=legend, lines=tuple(lines), images=tuple(images), bars=tuple(bars)))
        return cls(axes=tuple(axes))

    @classmethod
    def from_json(cls, data: bytes | str) -> FigureData:
        """Parse and validate an exported ``.figure.json`` (at most :data:`MAX_FIGURE_BYTES`)."""
        if len(data) > MAX_FIGURE_BYTES:
            raise ValueError(f"the figure file holds {len(data):,} bytes; expected at most"
                             f" {MAX_FIGURE_BYTES:,}")
        try:
            raw = json.loads(data)
        except RecursionError:
            raise ValueError("the figure file is nested too deeply to be a figure") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"the figure file is not valid JSON ({str(exc)[:80]})") from None
        return cls.from_dict(raw)

    @classmethod
    def of(cls, fig: Any) -> FigureData:
        """:func:`describe_figure` of a live Figure or Axes, validated."""
        return cls.from_dict(describe_figure(fig))

    @property
    def lines(self) -> list[tuple[int, LineData]]:
        """Every line with the index of its axes."""
        return [(a, line) for a, ax in enumerate(self.axes) for line in ax.lines]

    @property
    def images(self) -> list[tuple[int, np.ndarray]]:
        """Every image with the index of its axes."""
        return [(a, image) for a, ax in enumerate(self.axes) for image in ax.images]
