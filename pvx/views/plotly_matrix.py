"""Plotly: persona x persona heatmaps and dendrograms, one frame per layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx import _colors
from pvx.views import charts
from pvx.views._common import (
    _INK,
    _animation,
    _category_axis,
    _esc,
    _label,
    _layer_title,
)
from pvx.views.plotly_panels import panel_per_variant

if TYPE_CHECKING:
    import plotly.graph_objects as go


# Above this many cells (every layer), precision='auto' stores whole hundredths in int8.
COMPACT_CELLS = 2_500_000


@panel_per_variant(share_y=False)
def heatmap(
    sim: xr.DataArray,
    *,
    order: Any = None,
    order_layer: Any = None,
    labels: str = "id",
    text_threshold: int = 25,
    max_rows: int | None = 800,
    precision: str = "auto",
    width: int | None = None,
    height: int | None = None,
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
        × 100); ``auto`` uses it above 2.5 million cells, unless a cosine is missing
        (NaN, which int8 cannot hold).
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace; frames named by layer label with a slider. A result with a
        ``variant`` dimension gets one panel per variant (each ordered by its own ``order``,
        if that has a ``variant`` dimension too), moved by one slider.

    Examples
    --------
    >>> import pvx.cluster, pvx.plot, pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> fig = pvx.plot.heatmap(pvx.similarity.cosine(da), order=pvx.cluster.linkage(da))
    >>> fig.data[0].type, len(fig.frames)
    ('heatmap', 3)
    """
    import plotly.graph_objects as go

    if precision not in ("auto", "float32", "int8"):
        raise ValueError(
            f"heatmap() got precision={precision!r}; choose 'auto', 'float32' or 'int8'"
        )
    prepared = charts.matrix(
        sim, order=order, order_layer=order_layer, labels=labels, max_rows=max_rows, title=title
    )
    z, layers = prepared.z, prepared.layers
    ticks, tick_axis = _category_axis(prepared.ticks)
    rows = len(ticks)
    cells = rows * rows * len(layers)
    missing = bool(np.isnan(z).any())  # int8 has no NaN: a missing cosine would read 0
    if missing and precision == "int8":
        raise ValueError(
            "heatmap(precision='int8') cannot show missing cosines (NaN); use 'float32' or 'auto'"
        )
    small = precision == "float32" or (precision == "auto" and (cells <= COMPACT_CELLS or missing))
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
    heading = _esc(prepared.title)
    show_ticks = rows <= 60
    if not show_ticks:  # no tick labels drawn: none written
        tick_axis = {"type": "category"}
    layout: dict[str, Any] = {
        "title": {"text": heading},
        "template": "plotly_white",
        "xaxis": {
            **tick_axis,
            "showticklabels": show_ticks,
            "tickangle": -45,
            "showgrid": False,
        },
        "yaxis": {
            **tick_axis,
            "showticklabels": show_ticks,
            "autorange": "reversed",
            "scaleanchor": "x",
            "showgrid": False,
        },
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
        "width": width,
        "height": height,
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


@panel_per_variant
def dendrogram(
    tree: xr.Dataset,
    *,
    names: Any = None,
    max_labels: int = 80,
    width: int | None = None,
    height: int | None = None,
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
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        A line trace (the tree) and a marker trace (the leaves, with hover); frames named by
        layer label, all on one height range; one panel per variant if the linkage has a
        ``variant`` dimension, moved by one slider.
    """
    import plotly.graph_objects as go

    prepared = charts.tree(tree, names=names, title=title)
    ids, name_of, layers, drawn = prepared.ids, prepared.names, prepared.layers, prepared.lines
    hover = np.asarray(
        [
            (f"<b>{_esc(name_of[i])}</b><br>" if i in name_of else "") + f"id: {_esc(i)}"
            for i in ids
        ],
        dtype=object,
    )
    tick = np.asarray([_label(name_of.get(i, i)) for i in ids], dtype=object)
    top, n, leaf_x = prepared.top, len(ids), prepared.leaf_x

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
    layout: dict[str, Any] = {
        "title": {"text": _esc(prepared.title)},
        "width": width,
        "height": height,
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
