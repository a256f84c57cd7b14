"""Colours for persona attributes, by kind: numeric scales, ordered scales, categorical legends.

A :class:`Coloring` says how each persona is coloured on each layer, independently of the
plotting library: numeric values (a colour scale whose range is fixed over all layers), ordinal
codes (an ordered, discrete scale whose ticks are the category names) or categorical codes (one
legend entry per frequent category, ``Other`` for the rest). Missing values (e.g. the baseline
persona's attributes) are flagged, and drawn in a neutral grey by the views.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "MISSING_COLOR",
    "NUMERIC_SCALE",
    "OTHER_COLOR",
    "Coloring",
    "categorical",
    "from_coord",
    "kind_of",
    "no_color",
    "numeric",
    "ordinal",
]

MISSING_COLOR = "#c8c8c8"  # light neutral grey: "no value", never confused with a category
OTHER_COLOR = "#7f7f7f"  # darker grey: the pooled rare categories
DEFAULT_COLOR = "#3b6ea8"
NUMERIC_SCALE = "Viridis"
OTHER = "Other"
# Plotly's default qualitative palette then Dark24, without their greys (grey means Other or
# missing here).
QUALITATIVE = (
    "#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880",
    "#FF97FF", "#FECB52", "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100",
    "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32",
    "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63",
    "#AF0038",
)  # fmt: skip
# Viridis, sampled at 9 points (plotly's own stops), so ordinal colours need no plotting import.
_VIRIDIS = (
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
)  # fmt: skip


@dataclass(frozen=True)
class Coloring:
    """How personas are coloured, per layer.

    Attributes
    ----------
    kind : {"none", "numeric", "ordinal", "categorical"}
        How ``values`` are read.
    title : str
        The colour bar or legend title (raw, not escaped).
    values : numpy.ndarray
        ``(n_layer_or_1, n_persona)``: float values (numeric), float codes into
        ``categories`` (ordinal, NaN missing) or integer codes into ``categories``
        (categorical, -1 missing). A first axis of length 1 applies to every layer.
    labels : numpy.ndarray
        ``(n_layer_or_1, n_persona)`` object array: the value as shown in hover, ``None``
        where missing.
    categories : tuple of str
        Ordinal levels (lowest first) or legend entries (``Other`` last when present).
    colors : tuple of str
        One colour per category (ordinal and categorical).
    cmin, cmax : float or None
        The fixed colour range of numeric values over all layers.
    """

    kind: str
    title: str
    values: np.ndarray
    labels: np.ndarray
    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    cmin: float | None = None
    cmax: float | None = None

    @property
    def per_layer(self) -> bool:
        """Whether colours change from layer to layer."""
        return self.values.shape[0] > 1

    @property
    def missing_label(self) -> str:
        """The legend and hover name of personas without a value: ``missing``, unless a
        category is so named (two entries of one name would read as one)."""
        label = "missing"
        while label in self.categories:
            label += " (no value)"
        return label

    @property
    def missing(self) -> np.ndarray:
        """``(n_layer_or_1, n_persona)`` mask of personas without a value."""
        if self.kind == "categorical":
            return self.values < 0
        if self.kind == "none":
            return np.zeros(self.values.shape, dtype=bool)
        return np.isnan(self.values)

    def layer(self, i: int) -> int:
        """Row of ``values`` that applies to layer position ``i``."""
        return i if self.per_layer else 0


def _as_2d(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(
            f"colour values need one value per persona (optionally per layer and persona), got "
            f"an array of shape {arr.shape}"
        )
    return arr


def _isna(arr: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(arr), dtype=bool)


def format_value(value: Any) -> str | None:
    """A persona attribute value as text for hover and legends (``None`` when missing: as
    everywhere in pvx, ``""`` is missing too)."""
    if value is None or (isinstance(value, str) and not value):
        return None
    if np.ndim(value) == 0 and bool(pd.isna(value)):
        return None
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.4g}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, tuple | list | np.ndarray):
        return ", ".join(str(v) for v in value)
    return str(value)


def _labels(arr: np.ndarray) -> np.ndarray:
    """:func:`format_value` of every element, each distinct value formatted once (a page
    colours 1000 personas x 42 layers x variants; formatting each took seconds)."""
    out = np.empty(arr.shape, dtype=object)
    if arr.dtype.kind in "biufUS":
        uniques, inverse = np.unique(arr, return_inverse=True)
        texts = np.array([format_value(u) for u in uniques], dtype=object)
        out[...] = texts[inverse.reshape(arr.shape)]
        return out
    # objects: keyed by type too, as True == 1 == 1.0 are one dict key but other labels
    memo: dict[Any, str | None] = {}
    for index, value in np.ndenumerate(arr):
        key = (type(value), value)
        try:
            if key not in memo:
                memo[key] = format_value(value)
            text = memo[key]
        except TypeError:  # unhashable (lists, arrays)
            text = format_value(value)
        out[index] = text
    return out


def kind_of(coord: xr.DataArray) -> str:
    """The attribute kind of a persona coordinate: its ``attrs["kind"]``, else from the dtype.

    Without a declared kind, booleans and strings are categorical and other numbers numeric.
    """
    kind = coord.attrs.get("kind")
    if kind in ("numeric", "ordinal", "categorical"):
        return str(kind)
    if coord.dtype.kind in "iuf":
        return "numeric"
    return "categorical"


def no_color(n_persona: int) -> Coloring:
    """Every persona in one colour."""
    return Coloring(
        "none", "", np.zeros((1, n_persona)), np.full((1, n_persona), None, dtype=object)
    )


def numeric(values: Any, title: str) -> Coloring:
    """A continuous colour scale; its range covers every layer, so it stays fixed."""
    raw = _as_2d(values)
    try:
        arr = np.where(_isna(raw), np.nan, raw).astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"colouring by {title!r} as numbers needs numeric values, got dtype {raw.dtype}; "
            "colour it as a category (groups=...) instead"
        ) from None
    finite = arr[np.isfinite(arr)]
    arr[~np.isfinite(arr)] = np.nan
    cmin, cmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if cmin == cmax:
        cmin, cmax = cmin - 0.5, cmax + 0.5
    return Coloring("numeric", title, arr, _labels(raw), cmin=cmin, cmax=cmax)


def _viridis(n: int) -> tuple[str, ...]:
    stops = np.asarray(_VIRIDIS, dtype=np.float64)
    where = np.linspace(0, len(stops) - 1, max(n, 1))
    out = []
    for t in where[:n]:
        lo = int(np.floor(t))
        hi = min(lo + 1, len(stops) - 1)
        rgb = stops[lo] + (t - lo) * (stops[hi] - stops[lo])
        out.append("#{:02x}{:02x}{:02x}".format(*np.round(rgb).astype(int)))
    return tuple(out)


def ordinal(values: Any, order: Sequence[Any], title: str) -> Coloring:
    """An ordered, discrete colour scale over ``order`` (lowest first).

    Values outside ``order`` are appended after it (sorted), so undeclared levels still show,
    with a warning: they rank above the highest level only because they are unknown.
    """
    raw = _as_2d(values)
    labels = _labels(raw)
    levels = [v for v in map(format_value, order) if v is not None]
    extra = sorted({v for v in labels.ravel() if v is not None} - set(levels))
    if extra:
        warnings.warn(
            f"values {extra[:5]!r} of ordinal attribute {title!r} are not in its order "
            f"{levels!r}; they are drawn after its highest level. Add them to attrs['order'] "
            "or mark them missing",
            UserWarning,
            stacklevel=3,
        )
    levels += extra
    position = {v: i for i, v in enumerate(levels)}
    codes = np.array(
        [np.nan if v is None else position[v] for v in labels.ravel()], dtype=np.float64
    ).reshape(labels.shape)
    return Coloring(
        "ordinal",
        title,
        codes,
        labels,
        categories=tuple(levels),
        colors=_viridis(len(levels)),
        cmin=-0.5,
        cmax=len(levels) - 0.5,
    )


def categorical(
    values: Any,
    title: str,
    *,
    max_categories: int = 10,
    order: Sequence[Any] | None = None,
    prefix: str = "",
) -> Coloring:
    """One legend entry per category: the ``max_categories`` most frequent, then ``Other``.

    Categories are ranked by frequency over all layers (ties: order of first appearance),
    unless ``order`` gives them. ``prefix`` is prepended to the shown names (``"cluster "``).
    """
    if max_categories < 1:
        raise ValueError(f"max_categories must be at least 1, got {max_categories!r}")
    raw = _as_2d(values)
    labels = _labels(raw)
    flat = [v for v in labels.ravel() if v is not None]
    if order is not None:
        ranked = [v for v in map(format_value, order) if v is not None]
        ranked += [v for v in dict.fromkeys(flat) if v not in set(ranked)]
    else:
        counts = pd.Series(flat, dtype=object).value_counts(sort=False)
        first = {v: i for i, v in reversed(list(enumerate(flat)))}
        ranked = sorted(first, key=lambda v: (-int(counts[v]), first[v]))
    kept = ranked[:max_categories]
    has_other = len(ranked) > max_categories
    position = {v: i for i, v in enumerate(kept)}
    other = len(kept)
    codes = np.array(
        [-1 if v is None else position.get(v, other) for v in labels.ravel()], dtype=np.int64
    ).reshape(labels.shape)
    names = tuple(f"{prefix}{v}" for v in kept)
    if has_other:
        pooled = OTHER  # a category of that name would share the pooled entry's legend name
        while pooled in names:
            pooled += " (rest)"
        names += (pooled,)
    colors = tuple(QUALITATIVE[i % len(QUALITATIVE)] for i in range(len(kept)))
    if has_other:
        colors += (OTHER_COLOR,)
    shown = np.array(
        [None if v is None else f"{prefix}{v}" for v in labels.ravel()], dtype=object
    ).reshape(labels.shape)
    return Coloring("categorical", title, codes, shown, categories=names, colors=colors)


def from_coord(coord: xr.DataArray, *, max_categories: int = 10) -> Coloring:
    """The colouring of a persona attribute coordinate, by its kind (see :func:`kind_of`)."""
    title = str(coord.name)
    kind = kind_of(coord)
    if kind == "numeric":
        return numeric(coord.values, title)
    if kind == "ordinal":
        return ordinal(coord.values, coord.attrs.get("order", []), title)
    return categorical(coord.values, title, max_categories=max_categories)


def discrete_scale(colors: Sequence[str]) -> list[list[Any]]:
    """A colour scale with one flat band per colour (codes ``0..n-1`` on ``[-0.5, n-0.5]``)."""
    n = len(colors)
    scale: list[list[Any]] = []
    for i, c in enumerate(colors):
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale
