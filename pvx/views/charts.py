"""What the line, matrix and tree views show, prepared once for every back end.

A :class:`LineChart` (curves and bands along layers or components), a :class:`Matrix` (cosine
matrices in one row order) and a :class:`Tree` (dendrogram lines) hold plain numbers and raw
text; the Plotly modules and :mod:`pvx.views.holoviews` only draw them (escaping text where
their renderer needs it), so both back ends show the same data.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors
from pvx.views._common import (
    _INK,
    _P,
    _Q,
    _check_dims,
    _computed,
    _layer_labels,
    _leaf_positions,
    _persona_ids,
    _ratio,
)


@dataclass
class Series:
    """One named curve; with ``low`` it is a filled band from ``low`` to ``y``."""

    name: str
    y: np.ndarray
    color: str
    dash: str | None = None
    markers: bool = False
    low: np.ndarray | None = None


@dataclass
class LineChart:
    x: np.ndarray
    series: list[Series]
    title: str
    x_title: str
    y_title: str
    y_range: tuple[float, float] | None = None
    hover_value: str = "value"  # what the y value is called on hover
    x_prefix: str = ""  # shown before x on hover ("PC" for components)
    notes: list[str] = field(default_factory=list)


def _layer_axis(obj: xr.DataArray | xr.Dataset, func: str) -> np.ndarray:
    if "layer" not in obj.dims:
        raise ValueError(
            f"{func}() draws curves over layers, but the result has no 'layer' dimension "
            f"(dims {tuple(obj.dims)!r}); compute it with several layers"
        )
    return np.asarray(obj["layer"].values)


def variant_suffix(obj: xr.DataArray | xr.Dataset) -> str:
    if "variant" in obj.coords and obj["variant"].ndim == 0:
        return f" · {obj['variant'].item()}"
    return ""


def pair_label(ps: xr.Dataset, i: int) -> str:
    def one(suffix: str) -> str:
        pid = ps[f"id{suffix}"].values[i]
        if f"name{suffix}" in ps.coords:
            return f"{ps[f'name{suffix}'].values[i]} ({pid})"
        return str(pid)

    return f"{one('')} – {one('_other')}"


def pair_chart(ps: xr.Dataset, *, top: int | None, max_pairs: int, title: str | None) -> LineChart:
    """Chosen pairs' cosine across layers against the all-pairs median and quantile band."""
    if not isinstance(ps, xr.Dataset) or not {"cosine", "median", "low", "high"} <= set(ps):
        raise ValueError(
            "pair_trajectories() needs the Dataset of pvx.similarity.pair_similarity (with "
            "'cosine', 'median', 'low', 'high')"
        )
    _check_dims(ps, ["layer", "pair"], func="pair_trajectories")
    ps = _computed(ps)
    x = _layer_axis(ps, "pair_trajectories")
    cos = ps["cosine"].transpose("layer", "pair").values
    n_pairs = cos.shape[1]
    if top is None and n_pairs <= max_pairs:
        chosen = np.arange(n_pairs)
    else:
        k = min(top if top is not None else 5, n_pairs)
        change = np.nanmax(cos, axis=0) - np.nanmin(cos, axis=0)
        chosen = np.argsort(-change, kind="stable")[:k]
    q = ps.attrs.get("quantiles", [0.05, 0.95])
    series = [
        Series(
            f"{100 * q[0]:g}–{100 * q[1]:g}% of all pairs",
            ps["high"].values,
            "rgba(120,120,120,0.2)",
            low=ps["low"].values,
        ),
        Series("median of all pairs", ps["median"].values, _INK, dash="dash"),
    ]
    for j, i in enumerate(chosen):
        color = _colors.QUALITATIVE[j % len(_colors.QUALITATIVE)]
        series.append(Series(pair_label(ps, int(i)), cos[:, i], color, markers=True))
    return LineChart(
        x=x,
        series=series,
        title=(title if title is not None else "Pair similarity across layers")
        + variant_suffix(ps),
        x_title="layer",
        y_title="centered cosine",
        hover_value="cosine",
    )


def variant_chart(
    vs: xr.Dataset,
    *,
    personas: Sequence[Hashable] | None,
    quantiles: tuple[float, float],
    title: str | None,
) -> LineChart:
    """How the prompt variant moves personas, by layer (see ``variant_lines``)."""
    if not isinstance(vs, xr.Dataset) or not {"raw", "centered", "matrix_correlation"} <= set(vs):
        raise ValueError(
            "variant_lines() needs the Dataset of pvx.similarity.variant_similarity (with "
            "'raw', 'centered' and 'matrix_correlation')"
        )
    _check_dims(vs, ["layer", _P], func="variant_lines")
    vs = _computed(vs)
    x = _layer_axis(vs, "variant_lines")
    centered = vs["centered"].transpose("layer", _P).values
    raw = vs["raw"].transpose("layer", _P).values
    low, high = np.nanquantile(centered, quantiles, axis=1)
    lo_pct, hi_pct = (f"{100 * q:g}" for q in quantiles)
    series = [
        Series(f"{lo_pct}–{hi_pct}% of personas (centered)", high, "rgba(59,110,168,0.2)", low=low),
        Series(
            "median persona, centered",
            np.nanmedian(centered, axis=1),
            _colors.DEFAULT_COLOR,
            markers=True,
        ),
        Series("median persona, raw", np.nanmedian(raw, axis=1), _colors.DEFAULT_COLOR, "dot"),
        Series(
            "cosine-matrix correlation",
            vs["matrix_correlation"].values,
            "#EF553B",
            markers=True,
        ),
    ]
    if personas:
        ids = _persona_ids(vs)
        positions = pd.Index(ids).get_indexer(list(personas))
        if (positions < 0).any():
            absent = [p for p, i in zip(personas, positions, strict=True) if i < 0]
            raise KeyError(f"variant_lines() got unknown persona id(s) {absent!r}")
        names = vs["name"].values if "name" in vs.coords else ids
        for j, i in enumerate(positions):
            color = _colors.QUALITATIVE[(j + 2) % len(_colors.QUALITATIVE)]
            series.append(Series(f"{names[i]} ({ids[i]})", centered[:, i], color))
    a, b = vs.attrs.get("variant_a", "a"), vs.attrs.get("variant_b", "b")
    return LineChart(
        x=x,
        series=series,
        title=title if title is not None else f"Variant similarity: {a} vs {b}",
        x_title="layer",
        y_title="cosine / correlation",
    )


def variance_ratios(
    evr: xr.DataArray | xr.Dataset, *, cumulative: bool, max_components: int | None, func: str
) -> xr.DataArray:
    """Explained-variance ratios ``(layer, component)`` (or ``(component,)``) to draw."""
    ratio = _ratio(evr, func)
    if max_components is not None:
        ratio = ratio.isel(component=slice(0, max_components))
    if cumulative:
        ratio = ratio.cumsum("component").rename("cumulative_explained_variance_ratio")
    return ratio


def scree_chart(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool,
    max_components: int | None,
    title: str | None,
) -> LineChart:
    """Explained-variance ratio per component, one curve per layer (dark to light)."""
    ratio = variance_ratios(evr, cumulative=cumulative, max_components=max_components, func="scree")
    layers = _layer_labels(ratio)
    values = ratio.transpose(..., "component").values.reshape(len(layers), -1)
    shades = _colors._viridis(len(layers))
    what = "cumulative ratio" if cumulative else "ratio"
    series = [
        Series("all" if label is None else f"layer {label}", values[i], shades[i], markers=True)
        for i, label in enumerate(layers)
    ]
    return LineChart(
        x=ratio["component"].values,
        series=series,
        title=(title if title is not None else "Explained variance by component")
        + variant_suffix(ratio),
        x_title="component",
        y_title=f"explained variance {what}",
        y_range=(0.0, 1.02) if cumulative else None,
        hover_value=what,
        x_prefix="PC",
    )


# --------------------------------------------------------------------------- matrices, trees


@dataclass
class Matrix:
    """A persona × persona matrix per layer in display order, maybe averaged into blocks."""

    z: np.ndarray  # (layer, row, col)
    ticks: list[str]  # raw row labels ("a … b" for a block)
    layers: list[Any]
    title: str


def _blocks(n: int, max_rows: int | None) -> list[np.ndarray]:
    if max_rows is None or n <= max_rows:
        return [np.array([i]) for i in range(n)]
    return np.array_split(np.arange(n), max_rows)


def _block_means(z: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """Mean of each (row block, column block) over the last two axes."""
    starts = np.array([b[0] for b in blocks])
    sizes = np.array([len(b) for b in blocks], dtype=np.float64)
    summed = np.add.reduceat(np.add.reduceat(z, starts, axis=-1), starts, axis=-2)
    return summed / np.outer(sizes, sizes)


def matrix(
    sim: xr.DataArray,
    *,
    order: Any,
    order_layer: Any,
    labels: str,
    max_rows: int | None,
    title: str | None,
) -> Matrix:
    """The cosine matrices of ``sim`` in one row order on every layer (see ``heatmap``)."""
    if not isinstance(sim, xr.DataArray) or _P not in sim.dims or _Q not in sim.dims:
        raise ValueError(
            "heatmap() needs the DataArray of pvx.similarity.cosine, with dims "
            f"('persona', 'persona_other'), got {getattr(sim, 'dims', type(sim).__name__)!r}"
        )
    _check_dims(sim, ["layer", _P, _Q], func="heatmap")
    if labels not in ("id", "name"):
        raise ValueError(f"heatmap() got labels={labels!r}; choose 'id' or 'name'")
    ids = _persona_ids(sim)
    order_ = _leaf_positions(order, ids, order_layer) if order is not None else np.arange(len(ids))
    stacked = sim.transpose("layer", _P, _Q) if "layer" in sim.dims else sim.expand_dims("layer")
    shown = [str(i) for i in ids[order_]]
    if labels == "name" and "name" in sim.coords:
        names = np.asarray(sim["name"].values, dtype=object)[order_]
        shown = [f"{n} ({i})" for n, i in zip(names, shown, strict=True)]
    blocks = _blocks(len(ids), max_rows)

    def drawn(i: int) -> np.ndarray:
        # one layer at a time: a lazy similarity (e.g. from results.zarr) is never all loaded
        z = np.asarray(stacked.isel(layer=i).values)[np.ix_(order_, order_)]
        return _block_means(z, blocks) if len(blocks) < len(ids) else z

    # layers in two threads: reading, reordering and averaging a layer release the GIL
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        z = np.stack(list(pool.map(drawn, range(stacked.sizes["layer"]))))
    ticks = [shown[b[0]] if len(b) == 1 else f"{shown[b[0]]} … {shown[b[-1]]}" for b in blocks]
    heading = title if title is not None else str(sim.attrs.get("long_name", "cosine"))
    return Matrix(z=z, ticks=ticks, layers=_layer_labels(sim), title=heading + variant_suffix(sim))


@dataclass
class Tree:
    """A dendrogram per layer: NaN-separated line coordinates and leaf order, on one axis."""

    lines: list[tuple[np.ndarray, np.ndarray, list[int]]]  # (x, y, leaves) per layer
    ids: np.ndarray  # persona ids by position
    names: dict[Any, Any]  # display name by id (where known)
    top: float  # shared height range
    leaf_x: np.ndarray
    layers: list[Any]
    title: str


def _tree_lines(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Line coordinates of a linkage matrix's dendrogram, NaN-separated, and its leaf order:
    the links of ``scipy.cluster.hierarchy.dendrogram(z)`` (leaves at 5, 15, 25, ...; each
    link joins its children's midpoints at its height), one per merge. SciPy's own walks
    the tree in Python, 90 ms per 1,000 leaves: a report of 42 layers x 2 variants spent 7 s
    there."""
    import scipy.cluster.hierarchy

    n = len(z) + 1
    leaves = scipy.cluster.hierarchy.leaves_list(z)  # SciPy's dendrogram order
    children = z[:, :2].astype(np.intp)
    x = np.empty(2 * n - 1)
    x[leaves] = 5.0 + 10.0 * np.arange(n)
    for merge, (left, right) in enumerate(children.tolist()):  # children merge first
        x[n + merge] = (x[left] + x[right]) / 2
    height = np.concatenate([np.zeros(n), z[:, 2]])
    link_x = x[children][:, [0, 0, 1, 1]]
    link_y = np.column_stack([height[children[:, 0]], z[:, 2], z[:, 2], height[children[:, 1]]])
    gap = np.full((n - 1, 1), np.nan)
    xs = np.hstack([link_x, gap]).ravel().astype(np.float32)
    ys = np.hstack([link_y, gap]).ravel().astype(np.float32)
    return xs, ys, leaves.tolist()


def tree(linkage: xr.Dataset, *, names: Any, title: str | None) -> Tree:
    """Dendrogram lines of :func:`pvx.cluster.linkage` per layer (see ``dendrogram``)."""
    if not isinstance(linkage, xr.Dataset) or not {"linkage", "leaf_id"} <= set(linkage):
        raise ValueError(
            "dendrogram() needs the Dataset of pvx.cluster.linkage (with 'linkage' and 'leaf_id')"
        )
    _check_dims(linkage, ["layer", "merge", "field", "leaf"], func="dendrogram")
    linkage = _computed(linkage)
    layers = _layer_labels(linkage)
    z = linkage["linkage"].transpose(..., "merge", "field").values.reshape(len(layers), -1, 4)
    # leaf_id is in leaf order; position 0..n-1 along persona is recovered from 'order'
    by_position: dict[int, Any] = {}
    for order_row, id_row in zip(
        linkage["order"].values.reshape(len(layers), -1),
        linkage["leaf_id"].values.reshape(len(layers), -1),
        strict=True,
    ):
        by_position.update(zip(order_row.tolist(), id_row.tolist(), strict=True))
    ids = np.asarray([by_position[i] for i in range(len(by_position))], dtype=object)
    name_of: dict[Any, Any] = {}
    if isinstance(names, xr.DataArray):
        name_of = dict(zip(names["id"].values.tolist(), names.values.tolist(), strict=True))
    elif names is not None:
        name_of = dict(names)
    lines = [_tree_lines(one) for one in z]
    method = linkage.attrs.get("method", "")
    heading = title if title is not None else f"Dendrogram ({method} linkage)"
    return Tree(
        lines=lines,
        ids=ids,
        names=name_of,
        top=max(float(np.nanmax(y)) for _, y, _ in lines) * 1.05 or 1.0,
        leaf_x=(5 + 10 * np.arange(len(ids))).astype(np.float32),
        layers=layers,
        title=heading + variant_suffix(linkage),
    )


# --------------------------------------------------------------------------- probes


def _translucent(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def probe_chart(result: xr.Dataset, *, title: str | None) -> LineChart:
    """Probe score per layer, one line per attribute, over its shuffled-label band (mean ±
    2 standard deviations over permutations), from :func:`pvx.attributes.probe`."""
    if not isinstance(result, xr.Dataset) or not {"score", "baseline"} <= set(result):
        raise ValueError("probe_lines() needs the Dataset of pvx.attributes.probe")
    result = _computed(result)
    if "attribute" not in result.dims:
        result = result.expand_dims("attribute")
    _check_dims(result["score"], ["attribute", "layer"], func="probe_lines")
    x = _layer_axis(result, "probe_lines")
    series = []
    for i, name in enumerate(result["attribute"].values):
        row = result.sel(attribute=name)
        color = _colors.QUALITATIVE[i % len(_colors.QUALITATIVE)]
        spread = 2 * np.nan_to_num(row["baseline_std"].values)
        baseline = row["baseline"].values
        if not np.isnan(baseline).all():  # permutations=0: no shuffles, no band
            series.append(
                Series(
                    f"{name}: shuffled labels",
                    baseline + spread,
                    _translucent(color, 0.15),
                    low=baseline - spread,
                )
            )
        metric = str(row["metric"].item()).replace("_", " ") if "metric" in row.coords else ""
        series.append(
            Series(
                f"{name} ({metric})" if metric else str(name),
                row["score"].values,
                color,
                markers=True,
            )
        )
    return LineChart(
        x=x,
        series=series,
        title=(title if title is not None else "Linear probes by layer") + variant_suffix(result),
        x_title="layer",
        y_title="cross-validated score (balanced accuracy or R²)",
        hover_value="score",
    )


def gain_grid(result: xr.Dataset) -> xr.DataArray:
    """The probes' gain over the shuffled-label baseline, ``(attribute, layer)``."""
    if not isinstance(result, xr.Dataset) or "gain" not in result:
        raise ValueError("probe_heatmap() needs the Dataset of pvx.attributes.probe")
    gain = _computed(result["gain"])
    if "attribute" not in gain.dims:
        gain = gain.expand_dims("attribute")
    _check_dims(gain, ["attribute", "layer"], func="probe_heatmap")
    _layer_axis(gain, "probe_heatmap")
    return gain.transpose("attribute", "layer")


def association_grid(v: xr.DataArray) -> xr.DataArray:
    """Cramér's V ``(attribute, attribute_other)`` from :func:`pvx.attributes.association`."""
    if not isinstance(v, xr.DataArray) or set(v.dims) != {"attribute", "attribute_other"}:
        raise ValueError(
            "association_heatmap() needs the DataArray of pvx.attributes.association, with "
            f"dims ('attribute', 'attribute_other'), got {getattr(v, 'dims', type(v).__name__)!r}"
        )
    return _computed(v).transpose("attribute", "attribute_other")
