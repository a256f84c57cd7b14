"""Plotly: persona x persona heatmaps and dendrograms, one frame per layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx import _colors
from pvx.views._common import (
    _INK,
    _P,
    _Q,
    _animation,
    _check_dims,
    _computed,
    _esc,
    _label,
    _layer_labels,
    _layer_title,
    _leaf_positions,
    _persona_ids,
    _variant_note,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


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


def heatmap(
    sim: xr.DataArray,
    *,
    order: Any = None,
    order_layer: Any = None,
    labels: str = "id",
    text_threshold: int = 25,
    max_rows: int | None = 800,
    precision: str = "auto",
    title: str | None = None,
) -> go.Figure:
    """Persona × persona similarity heatmap, one frame per layer.

    Rows keep one order on every layer (so they stay put while the slider moves). The file
    stays small for many personas: values are stored as float32, or as whole hundredths
    (int8) when the matrices are large, cell text is only drawn for a few personas, and above
    ``max_rows`` neighbouring rows are averaged into blocks (a screen shows no more rows).

    Parameters
    ----------
    sim : xarray.DataArray
        :func:`pvx.similarity.cosine`: dims ``(layer, persona, persona_other)`` or
        ``(persona, persona_other)``.
    order : array-like or xarray.Dataset, optional
        Row order: positions along ``persona``, persona ids, or the Dataset of
        :func:`pvx.cluster.linkage` (its dendrogram leaf order).
    order_layer : label, optional
        With a layered linkage, the layer whose leaf order is used (default the last).
    labels : {"id", "name"}
        Row and column labels: the ids, or ``name (id)``.
    text_threshold : int
        Print each cell's value when there are at most this many rows.
    max_rows : int or None
        Average neighbouring rows (and columns) into at most this many blocks; ``None``
        keeps every persona.
    precision : {"auto", "float32", "int8"}
        Storage of the values: ``int8`` keeps hundredths of the cosine (hover shows cosine
        × 100); ``auto`` uses it above 2.5 million cells.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace; frames named by layer label with a slider.

    Examples
    --------
    >>> import pvx.cluster, pvx.plot, pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> fig = pvx.plot.heatmap(pvx.similarity.cosine(da), order=pvx.cluster.linkage(da))
    >>> fig.data[0].type, len(fig.frames)
    ('heatmap', 3)
    """
    import plotly.graph_objects as go

    if not isinstance(sim, xr.DataArray) or _P not in sim.dims or _Q not in sim.dims:
        raise ValueError(
            "heatmap() needs the DataArray of pvx.similarity.cosine, with dims "
            f"('persona', 'persona_other'), got {getattr(sim, 'dims', type(sim).__name__)!r}"
        )
    _check_dims(sim, ["layer", _P, _Q], func="heatmap")
    if labels not in ("id", "name"):
        raise ValueError(f"heatmap() got labels={labels!r}; choose 'id' or 'name'")
    if precision not in ("auto", "float32", "int8"):
        raise ValueError(
            f"heatmap() got precision={precision!r}; choose 'auto', 'float32' or 'int8'"
        )
    layers = _layer_labels(sim)
    ids = _persona_ids(sim)
    order_ = _leaf_positions(order, ids, order_layer) if order is not None else np.arange(len(ids))
    stacked = sim.transpose("layer", _P, _Q) if "layer" in sim.dims else sim.expand_dims("layer")
    shown = ids[order_]
    if labels == "name" and "name" in sim.coords:
        names = np.asarray(sim["name"].values, dtype=object)[order_]
        shown = np.asarray([f"{n} ({i})" for n, i in zip(names, shown, strict=True)])
    blocks = _blocks(len(ids), max_rows)

    def drawn(i: int) -> np.ndarray:
        # one layer at a time: a lazy similarity (e.g. from results.zarr) is never all loaded
        z = np.asarray(stacked.isel(layer=i).values)[np.ix_(order_, order_)]
        return _block_means(z, blocks) if len(blocks) < len(ids) else z

    z = np.stack([drawn(i) for i in range(stacked.sizes["layer"])])
    if len(blocks) < len(ids):
        ticks = [
            _label(shown[b[0]])
            if len(b) == 1
            else f"{_label(shown[b[0]])} … {_label(shown[b[-1]])}"
            for b in blocks
        ]
    else:
        ticks = [_label(s) for s in shown]
    rows = len(ticks)
    cells = rows * rows * len(layers)
    small = precision == "float32" or (precision == "auto" and cells <= 2_500_000)
    if small:
        values = np.round(z, 4).astype(np.float32)
        zrange, value_fmt = (-1.0, 1.0), "cosine %{z:.3f}"
        bar: dict[str, Any] = {"title": {"text": "cosine"}}
    else:
        # Whole hundredths: one byte per cell, a quarter of float32 in the page.
        values = np.round(np.clip(z, -1, 1) * 100).astype(np.int8)
        zrange, value_fmt = (-100.0, 100.0), "cosine ×100: %{z}"
        bar = {
            "title": {"text": "cosine"},
            "tickvals": [-100, -50, 0, 50, 100],
            "ticktext": ["-1", "-0.5", "0", "0.5", "1"],
        }
    trace: dict[str, Any] = {
        "z": values[0],
        "x": ticks,
        "y": ticks,
        "zmin": zrange[0],
        "zmax": zrange[1],
        "colorscale": "RdBu",
        "reversescale": True,
        "colorbar": bar,
        "hovertemplate": f"%{{y}}<br>%{{x}}<br>{value_fmt}<extra></extra>",
        "xgap": 0,
        "ygap": 0,
    }
    if rows <= text_threshold:
        # computed in the browser from z: no per-cell strings in the file
        trace["texttemplate"] = "%{z:.2f}" if small else "%{z}"
        trace["textfont"] = {"size": 10}
    heading = _esc(title) if title is not None else _esc(sim.attrs.get("long_name", "cosine"))
    heading += _variant_note(sim)
    show_ticks = rows <= 60
    layout: dict[str, Any] = {
        "title": {"text": heading},
        "template": "plotly_white",
        "xaxis": {
            "showticklabels": show_ticks,
            "type": "category",
            "tickangle": -45,
            "showgrid": False,
        },
        "yaxis": {
            "showticklabels": show_ticks,
            "type": "category",
            "autorange": "reversed",
            "scaleanchor": "x",
            "showgrid": False,
        },
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
    }
    frames = []
    if "layer" in sim.dims:
        frames = [
            go.Frame(name=str(label), data=[go.Heatmap(z=values[i])], traces=[0])
            for i, label in enumerate(layers)
        ]
        layout.update(_animation(layers))
        layout["margin"]["b"] = 90
    elif layers != [None]:
        layout["title"]["text"] += f" · {_layer_title(layers[0])}"
    return go.Figure(data=[go.Heatmap(**trace)], layout=layout, frames=frames)


def _tree_lines(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Line coordinates of a linkage matrix's dendrogram, NaN-separated, and its leaf order."""
    import scipy.cluster.hierarchy

    tree = scipy.cluster.hierarchy.dendrogram(z, no_plot=True, color_threshold=-1)
    icoord, dcoord = np.asarray(tree["icoord"]), np.asarray(tree["dcoord"])
    gap = np.full((len(icoord), 1), np.nan)
    x = np.hstack([icoord, gap]).ravel().astype(np.float32)
    y = np.hstack([dcoord, gap]).ravel().astype(np.float32)
    return x, y, list(tree["leaves"])


def dendrogram(
    tree: xr.Dataset,
    *,
    names: Any = None,
    max_labels: int = 80,
    title: str | None = None,
) -> go.Figure:
    """Dendrogram of a hierarchical clustering, one frame per layer with a shared height axis.

    Parameters
    ----------
    tree : xarray.Dataset
        :func:`pvx.cluster.linkage`: ``linkage`` ``(layer, merge, field)`` (or without
        ``layer``) and ``leaf_id``.
    names : xarray.DataArray or mapping, optional
        Display names by persona id (e.g. ``da["name"]`` with its ``id`` coordinate), shown
        with the ids on hover and as leaf labels.
    max_labels : int
        Label the leaves on the axis when there are at most this many.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        A line trace (the tree) and a marker trace (the leaves, with hover); frames named by
        layer label, all on one height range.
    """
    import plotly.graph_objects as go

    if not isinstance(tree, xr.Dataset) or not {"linkage", "leaf_id"} <= set(tree):
        raise ValueError(
            "dendrogram() needs the Dataset of pvx.cluster.linkage (with 'linkage' and 'leaf_id')"
        )
    _check_dims(tree, ["layer", "merge", "field", "leaf"], func="dendrogram")
    tree = _computed(tree)
    layers = _layer_labels(tree)
    linkage_ = tree["linkage"].transpose(..., "merge", "field").values.reshape(len(layers), -1, 4)
    # leaf_id is in leaf order; position 0..n-1 along persona is recovered from 'order'
    by_position: dict[int, Any] = {}
    for order_row, id_row in zip(
        tree["order"].values.reshape(len(layers), -1),
        tree["leaf_id"].values.reshape(len(layers), -1),
        strict=True,
    ):
        by_position.update(zip(order_row.tolist(), id_row.tolist(), strict=True))
    ids = np.asarray([by_position[i] for i in range(len(by_position))], dtype=object)
    name_of: dict[Any, Any] = {}
    if isinstance(names, xr.DataArray):
        name_of = dict(zip(names["id"].values.tolist(), names.values.tolist(), strict=True))
    elif names is not None:
        name_of = dict(names)
    hover = np.asarray(
        [
            (f"<b>{_esc(name_of[i])}</b><br>" if i in name_of else "") + f"id: {_esc(i)}"
            for i in ids
        ],
        dtype=object,
    )
    tick = np.asarray([_label(name_of.get(i, i)) for i in ids], dtype=object)
    drawn = [_tree_lines(z) for z in linkage_]
    top = max(float(np.nanmax(y)) for _, y, _ in drawn) * 1.05 or 1.0
    n = len(ids)
    leaf_x = (5 + 10 * np.arange(n)).astype(np.float32)

    def traces(i: int) -> list[dict[str, Any]]:
        x, y, leaves = drawn[i]
        return [
            {"x": x, "y": y},
            {"x": leaf_x, "y": np.zeros(n, np.float32), "hovertext": hover[leaves]},
        ]

    def axis(i: int) -> dict[str, Any]:
        leaves = drawn[i][2]
        return {
            "xaxis": {
                "tickvals": leaf_x if n <= max_labels else [],
                "ticktext": tick[leaves] if n <= max_labels else [],
                "range": [0, 10 * n],
                "showgrid": False,
                "zeroline": False,
            }
        }

    first = traces(0)
    data = [
        go.Scatter(
            **first[0],
            mode="lines",
            line={"color": _INK, "width": 1},
            hoverinfo="skip",
            name="merges",
        ),
        go.Scatter(
            **first[1],
            mode="markers",
            marker={"size": 5, "color": _colors.DEFAULT_COLOR},
            hovertemplate="%{hovertext}<extra></extra>",
            name="personas",
        ),
    ]
    method = tree.attrs.get("method", "")
    heading = _esc(title) if title is not None else f"Dendrogram ({_esc(method)} linkage)"
    layout: dict[str, Any] = {
        "title": {"text": heading + _variant_note(tree)},
        "template": "plotly_white",
        "showlegend": False,
        "yaxis": {"title": {"text": "merge distance"}, "range": [0, top]},
        "margin": {"l": 60, "r": 20, "t": 60, "b": 120},
        **axis(0),
    }
    layout["xaxis"]["tickangle"] = -60
    frames = []
    if "layer" in tree.dims:
        frames = [
            go.Frame(
                name=str(label),
                data=[go.Scatter(**t) for t in traces(i)],
                traces=[0, 1],
                layout=axis(i),
            )
            for i, label in enumerate(layers)
        ]
        layout.update(_animation(layers))
        layout["margin"]["b"] = 160
    elif layers != [None]:
        layout["title"]["text"] += f" · {_layer_title(layers[0])}"
    return go.Figure(data=data, layout=layout, frames=frames)
