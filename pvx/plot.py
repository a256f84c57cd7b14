"""Interactive Plotly views of pvx results: layered projections, heatmaps, trajectories, trees.

Every figure draws what the analysis layer computed (DESIGN §5). Functions named for a view
(:func:`projection`, :func:`heatmap`, :func:`pair_trajectories`, :func:`scree`,
:func:`variance_heatmap`, :func:`dendrogram`, :func:`variant_lines`) take analysis results,
compute them once if lazy and draw them; they never call an analysis function, except
:func:`projection` for ``color="cluster"`` (one :func:`pvx.cluster.kmeans` call). Functions
named for an analysis (:func:`pca`, :func:`umap`, :func:`isomap`, :func:`cosine`, ...) take the
persona vectors, run that analysis once (everything they need in one ``dask.compute``) and
draw it; they are what ``da.pv.plot.<kind>(...)`` calls.

Figures with a ``layer`` dimension get one animation frame per layer, named by the layer label,
a layer slider and Play/Pause buttons. Frames carry only what changes between layers
(coordinates as float32, shared hover text stays in the base traces), so a 1000-persona,
42-layer projection stays a few MB. Every string taken from the data is HTML-escaped, because
Plotly renders hover text, legend entries and tick labels as HTML-like markup.

Plotly is imported inside the functions, so ``import pvx`` does not pay for it. Use
:func:`write_html` to export: it embeds plotly.js (or writes it once beside the pages) and
never points at a CDN, so the pages work offline.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors, cluster, decomposition, manifold, similarity
from pvx._colors import Coloring
from pvx._forward import forward

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "PlotAccessor",
    "cosine",
    "dendrogram",
    "explained_variance",
    "heatmap",
    "html_div",
    "isomap",
    "linkage",
    "pair_similarity",
    "pair_trajectories",
    "pca",
    "projection",
    "scree",
    "umap",
    "variance_heatmap",
    "variant_lines",
    "variant_similarity",
    "write_html",
]

_P, _Q = "persona", "persona_other"
_AXIS_NAMES = {"scores": "PC", "umap": "UMAP ", "isomap": "Isomap "}
_METHOD_TITLES = {"scores": "PCA", "umap": "UMAP", "isomap": "Isomap"}
_INK = "#444444"


# --------------------------------------------------------------------------- shared helpers


def _esc(value: Any) -> str:
    """Text from the data, escaped for Plotly's HTML-like labels (which decode ``&amp;``,
    ``&lt;`` and ``&gt;`` but show ``&quot;`` as written: quotes stay as they are)."""
    return html.escape(str(value), quote=False)


LABEL_LIMIT = 40


def _label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """``_esc`` shortened with an ellipsis, for legends and ticks; hover shows it whole."""
    text = str(value)
    return _esc(text if len(text) <= limit else text[: limit - 1] + "…")


def _computed(obj: Any) -> Any:
    """``obj`` with dask data computed (numpy-backed objects pass through)."""
    return obj.compute() if hasattr(obj, "compute") else obj


def _check_dims(arr: xr.DataArray | xr.Dataset, allowed: Sequence[str], *, func: str) -> None:
    extra = [d for d in arr.dims if d not in allowed]
    if extra:
        sel = ", ".join(f"{d}=..." for d in extra)
        raise ValueError(
            f"{func}() draws dims {list(allowed)!r}, but the result also has {extra!r}; select "
            f"one value of each first, e.g. result.sel({sel})"
        )


def _layer_labels(obj: xr.DataArray | xr.Dataset) -> list[Any]:
    """Layer labels of a layered result; ``[label]`` (or ``[None]``) without a layer dim."""
    if "layer" in obj.dims:
        return [v.item() if hasattr(v, "item") else v for v in obj["layer"].values]
    if "layer" in obj.coords:
        return [obj["layer"].item()]
    return [None]


def _layer_title(label: Any) -> str:
    return "" if label is None else f"layer {_esc(label)}"


def _variant_note(obj: xr.DataArray | xr.Dataset) -> str:
    if "variant" in obj.coords and obj["variant"].ndim == 0:
        return f" · {_esc(obj['variant'].item())}"
    return ""


def _persona_ids(obj: xr.DataArray | xr.Dataset) -> np.ndarray:
    if "id" in obj.coords:
        return np.asarray(obj["id"].values, dtype=object)
    return np.asarray([f"persona[{i}]" for i in range(obj.sizes[_P])], dtype=object)


def _animation(
    labels: Sequence[Any], *, redraw: bool = True, duration: int = 600
) -> dict[str, Any]:
    """Layout entries for a layer slider and Play/Pause buttons over frames named by label."""
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": redraw}}
    step_args["transition"] = {"duration": 0}
    steps = [
        {"method": "animate", "label": _esc(label), "args": [[str(label)], step_args]}
        for label in labels
    ]
    play = {
        "frame": {"duration": duration, "redraw": redraw},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    pause["transition"] = {"duration": 0}
    return {
        "sliders": [
            {
                "active": 0,
                "currentvalue": {"prefix": "layer "},
                "pad": {"t": 40, "b": 10},
                "len": 0.9,
                "x": 0.1,
                "y": 0,
                "steps": steps,
            }
        ],
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "showactive": False,
                "x": 0.1,
                "y": 0,
                "xanchor": "right",
                "yanchor": "top",
                "pad": {"t": 50, "r": 10},
                "buttons": [
                    {"label": "Play", "method": "animate", "args": [None, play]},
                    {"label": "Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
    }


def _by_id(values: xr.DataArray, ids: np.ndarray, *, what: str) -> xr.DataArray:
    """``values`` (dims ``persona`` and maybe ``layer``) reordered to the personas ``ids``."""
    if "id" not in values.coords:
        if values.sizes[_P] != len(ids):
            raise ValueError(
                f"{what} has {values.sizes[_P]} personas but the result has {len(ids)}; give "
                "one value per persona, or an array with an 'id' coordinate"
            )
        return values
    position = pd.Index(np.asarray(values["id"].values, dtype=object)).get_indexer(ids)
    if (position < 0).any():
        absent = [str(i) for i, p in zip(ids, position, strict=True) if p < 0][:5]
        raise ValueError(
            f"{what} has no value for persona id(s) {absent!r}; compute it on the same personas "
            "as the result (e.g. the same include_baseline=)"
        )
    return values.isel({_P: position})


def _per_layer(
    values: Any, ids: np.ndarray, layers: Sequence[Any], *, what: str
) -> np.ndarray | xr.DataArray:
    """Colour values as ``(persona,)`` or ``(layer, persona)``, matched to the result."""
    if not isinstance(values, xr.DataArray):
        arr = np.asarray(values)
        if arr.shape[-1] != len(ids) or arr.ndim not in (1, 2):
            raise ValueError(
                f"{what} needs one value per persona ({len(ids)}), or a (layer, persona) "
                f"array, got shape {arr.shape}"
            )
        if arr.ndim == 2 and arr.shape[0] != len(layers):
            raise ValueError(
                f"{what} has {arr.shape[0]} rows of layers but the result has {len(layers)}"
            )
        return arr
    values = _computed(values)
    if _P not in values.dims:
        raise ValueError(f"{what} needs a 'persona' dimension, got dims {values.dims!r}")
    _check_dims(values, ["layer", _P], func=what)
    values = _by_id(values, ids, what=what)
    if "layer" in values.dims:
        if layers == [None]:
            raise ValueError(f"{what} has a 'layer' dimension but the result has none")
        values = values.sel(layer=list(layers)).transpose("layer", _P)
    return values


def _coloring(
    arr: xr.DataArray,
    layers: list[Any],
    *,
    color: Hashable | None,
    groups: Any,
    color_values: Any,
    vectors: xr.DataArray | None,
    n_clusters: int | None,
    cluster_mode: str,
    max_categories: int,
) -> Coloring:
    options = {"color": color, "groups": groups, "color_values": color_values}
    given = [name for name, value in options.items() if value is not None]
    if len(given) > 1:
        raise ValueError(f"pass one of color=, groups= or color_values=, got {given!r}")
    ids = _persona_ids(arr)
    if groups is not None:
        vals = _per_layer(groups, ids, layers, what="groups")
        name = getattr(groups, "name", None)
        if name == "cluster":
            return _cluster_coloring(vals, max_categories)
        return _colors.categorical(
            np.asarray(vals), str(name or "group"), max_categories=max_categories
        )
    if color_values is not None:
        vals = _per_layer(color_values, ids, layers, what="color_values")
        return _colors.numeric(np.asarray(vals), str(getattr(color_values, "name", None) or ""))
    if color is None:
        return _colors.no_color(len(ids))
    if color in arr.coords and arr[color].dims == (_P,):
        return _colors.from_coord(arr[color], max_categories=max_categories)
    if color == "cluster":
        if vectors is None or n_clusters is None:
            raise ValueError(
                "color='cluster' runs pvx.cluster.kmeans, which needs the persona vectors and "
                "a number of clusters: pass vectors=da and n_clusters=k (or pass precomputed "
                "labels as groups=...)"
            )
        from pvx._validate import BASELINE_ID

        labels = cluster.kmeans(
            vectors,
            n_clusters,
            layer=None if layers == [None] else list(layers),
            mode=cluster_mode,
            include_baseline=BASELINE_ID in set(ids.tolist()),
        )
        return _cluster_coloring(_per_layer(labels, ids, layers, what="kmeans"), max_categories)
    attributes = [str(c) for c, v in arr.coords.items() if v.dims == (_P,) and c != "id"]
    raise KeyError(
        f"color={color!r} is not a persona attribute of the result; choose one of "
        f"{attributes!r}, 'cluster' (with n_clusters=), or pass groups=/color_values="
    )


def _cluster_coloring(labels: Any, max_categories: int) -> Coloring:
    arr = np.asarray(labels)
    order = sorted({int(v) for v in arr.ravel() if v >= 0})
    arr = np.array([None if v < 0 else int(v) for v in arr.ravel()], dtype=object).reshape(
        arr.shape
    )
    return _colors.categorical(
        arr,
        "cluster",
        max_categories=max(max_categories, len(order)),
        order=order,
        prefix="cluster ",
    )


def _hover_fields(arr: xr.DataArray, hover: Sequence[Hashable] | None) -> list[Hashable]:
    fields = list(hover or [])
    unknown = [f for f in fields if f not in arr.coords or arr[f].dims != (_P,)]
    if unknown:
        attributes = [str(c) for c, v in arr.coords.items() if v.dims == (_P,)]
        raise KeyError(
            f"hover={unknown!r} names no persona coordinate of the result; choose from "
            f"{attributes!r}"
        )
    return [f for f in fields if f not in ("id", "name")]


def _hover_text(arr: xr.DataArray, fields: Sequence[Hashable], coloring: Coloring) -> np.ndarray:
    """Escaped hover lines per persona, ``(n_layer_or_1, n_persona)``."""
    n = arr.sizes[_P]
    ids = _persona_ids(arr)
    names = arr["name"].values if "name" in arr.coords else [None] * n
    rows = []
    for i in range(n):
        head = f"<b>{_esc(names[i])}</b><br>" if names[i] is not None else ""
        lines = [f"{head}id: {_esc(ids[i])}"]
        for f in fields:
            value = _colors.format_value(arr[f].values[i])
            lines.append(f"{_esc(f)}: {_esc(value) if value is not None else 'missing'}")
        rows.append("<br>".join(lines))
    base = np.asarray(rows, dtype=object)
    if coloring.kind == "none" or (coloring.title in fields and not coloring.per_layer):
        return base[None, :]
    title = _esc(coloring.title)
    out = np.empty(coloring.labels.shape, dtype=object)
    for (row, i), label in np.ndenumerate(coloring.labels):
        shown = "missing" if label is None else _esc(label)
        out[row, i] = f"{base[i]}<br>{title}: {shown}"
    return out


def _trace_groups(coloring: Coloring) -> list[dict[str, Any]]:
    """The point traces: ``member`` is a ``(n_layer_or_1, n_persona)`` mask per trace."""
    missing = coloring.missing
    groups: list[dict[str, Any]] = []
    if coloring.kind == "categorical":
        for code, (name, color) in enumerate(
            zip(coloring.categories, coloring.colors, strict=True)
        ):
            groups.append(
                {
                    "name": _label(name),
                    "member": coloring.values == code,
                    "marker": {"color": color},
                }
            )
    elif coloring.kind == "none":
        groups.append(
            {"name": "personas", "member": ~missing, "marker": {"color": _colors.DEFAULT_COLOR}}
        )
    else:
        marker: dict[str, Any] = {
            "cmin": coloring.cmin,
            "cmax": coloring.cmax,
            "showscale": True,
            "colorbar": {"title": {"text": _label(coloring.title)}, "len": 0.75},
        }
        if coloring.kind == "numeric":
            marker["colorscale"] = _colors.NUMERIC_SCALE
        else:
            marker["colorscale"] = _colors.discrete_scale(coloring.colors)
            marker["colorbar"]["tickvals"] = list(range(len(coloring.categories)))
            marker["colorbar"]["ticktext"] = [_label(c) for c in coloring.categories]
        groups.append(
            {"name": _esc(coloring.title), "member": ~missing, "marker": marker, "scale": True}
        )
    if missing.any():
        groups.append(
            {"name": "missing", "member": missing, "marker": {"color": _colors.MISSING_COLOR}}
        )
    return groups


def _knn_edges(neighbors: xr.Dataset, ids: np.ndarray, layers: list[Any]) -> np.ndarray:
    """``(n_layer, 2, n_edges)`` positions (source, target) of each persona's k nearest."""
    nn = _computed(neighbors)
    if "neighbor_id" not in nn:
        raise ValueError(
            "neighbors= needs the Dataset of pvx.similarity.neighbors (with 'neighbor_id')"
        )
    _check_dims(nn, ["layer", _P, "rank"], func="projection(neighbors=...)")
    if "layer" in nn.dims:
        if layers == [None]:
            raise ValueError("neighbors= has a 'layer' dimension but the projection has none")
        nn = nn.sel(layer=list(layers))
    source = pd.Index(ids).get_indexer(np.asarray(nn["id"].values, dtype=object))
    target_ids = nn["neighbor_id"].transpose(..., _P, "rank").values
    target = pd.Index(ids).get_indexer(np.asarray(target_ids, dtype=object).ravel())
    if (source < 0).any() or (target < 0).any():
        raise ValueError(
            "neighbors= links personas that the projection does not show; compute both on the "
            "same personas (same include_baseline=)"
        )
    target = target.reshape(target_ids.shape)
    if target.ndim == 2:
        target = target[None]
    k = target.shape[-1]
    src = np.repeat(source, k)
    return np.stack(
        [np.broadcast_to(src, (target.shape[0], src.size)), target.reshape(target.shape[0], -1)],
        axis=1,
    )


def _segments(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Line coordinates ``(3 * n_edges, dims)`` for edges: start, end, NaN gap."""
    start, end = points[edges[0]], points[edges[1]]
    gap = np.full_like(start, np.nan)
    return np.stack([start, end, gap], axis=1).reshape(-1, points.shape[-1])


def _padded_range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [-1.0, 1.0]
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return [lo - pad, hi + pad]


# --------------------------------------------------------------------------- projection


def _scores(result: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray, xr.DataArray | None]:
    if isinstance(result, xr.Dataset):
        if "scores" not in result:
            raise ValueError(
                "projection() needs a DataArray with a 'component' dim (umap, isomap) or the "
                f"Dataset of pvx.decomposition.pca (with 'scores'); got variables "
                f"{list(result.data_vars)!r}"
            )
        ratio = result.get("explained_variance_ratio")
        return result["scores"], ratio
    if not isinstance(result, xr.DataArray):
        raise TypeError(f"projection() needs an xarray result, got {type(result).__name__}")
    return result, None


def projection(
    result: xr.DataArray | xr.Dataset,
    *,
    color: Hashable | None = None,
    groups: Any = None,
    color_values: Any = None,
    vectors: xr.DataArray | None = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    hover: Sequence[Hashable] | None = None,
    neighbors: xr.Dataset | None = None,
    components: Sequence[int] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """Scatter of a computed projection (PCA, UMAP, Isomap), one frame per layer.

    Only draws: recolouring an existing result (a new ``color``, ``hover`` or ``groups``) never
    refits it. 2-D uses WebGL (``Scattergl``); three components give a ``Scatter3d``.

    Parameters
    ----------
    result : xarray.DataArray or xarray.Dataset
        :func:`pvx.decomposition.pca` (its ``scores``), :func:`pvx.manifold.umap` or
        :func:`pvx.manifold.isomap`: dims ``(layer, persona, component)`` or
        ``(persona, component)``, with the persona coordinates (``id``, ``name``, attributes).
    color : hashable, optional
        A persona coordinate by name, drawn by its kind (``attrs["kind"]``): numeric as a
        colour scale with a colour bar fixed across layers, ordinal as an ordered scale whose
        ticks are the category names, categorical as one legend entry per category for the
        ``max_categories`` most frequent and ``Other``. ``"cluster"`` runs
        :func:`pvx.cluster.kmeans` once on ``vectors`` with ``n_clusters`` and ``cluster_mode``.
        Missing values (the baseline persona) are drawn in neutral grey.
    groups : array-like or xarray.DataArray, optional
        Explicit categories, one per persona, or per layer and persona (e.g. the labels of
        :func:`pvx.cluster.kmeans` with ``mode="per_layer"``). DataArrays are matched by ``id``.
    color_values : array-like or xarray.DataArray, optional
        Explicit numbers, one per persona (or per layer and persona).
    vectors : xarray.DataArray, optional
        The persona vectors, only for ``color="cluster"``.
    n_clusters : int, optional
        Number of k-means clusters for ``color="cluster"``.
    cluster_mode : {"mean_across_layers", "first_layer", "per_layer"}
        k-means mode for ``color="cluster"``.
    hover : sequence of hashable, optional
        Persona coordinates to show on hover, after id and name (the colour attribute is
        always shown).
    neighbors : xarray.Dataset, optional
        :func:`pvx.similarity.neighbors` of the same personas: each persona is linked to its
        k nearest neighbours (self excluded), per layer.
    components : sequence of int, optional
        Two or three component labels to draw (default ``(1, 2)``); three give a 3-D plot.
    axes : {"fixed", "per_layer"}
        Axis ranges fixed over all layers (default; movement between layers is comparable) or
        fitted to each layer.
    max_categories : int
        Legend entries for categorical colours before the rest become ``Other``.
    marker_size : float, optional
        Point size; by default smaller for more personas.
    title : str, optional
        Figure title (escaped); by default the method, variant and colour.

    Returns
    -------
    plotly.graph_objects.Figure
        Point traces (one per category, or one with a colour bar, plus ``missing``), an
        optional ``kNN`` line trace first; one frame per layer named ``str(layer)``, with a
        layer slider and Play/Pause.

    Raises
    ------
    ValueError
        Unexpected dims (e.g. several variants), wrong component count, or colour values that
        do not match the personas.
    KeyError
        Unknown colour attribute, hover field or component.

    Examples
    --------
    >>> import pvx.decomposition, pvx.plot, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> fig = pvx.plot.projection(pvx.decomposition.pca(da), color="region")
    >>> [f.name for f in fig.frames], [t.name for t in fig.data]
    (['0', '1', '2'], ['north', 'south'])
    """
    import plotly.graph_objects as go

    if isinstance(result, xr.Dataset):  # one compute for scores and ratios (one Gram pass)
        result = _computed(
            result[[v for v in ("scores", "explained_variance_ratio") if v in result]]
        )
    scores, ratio = _scores(result)
    scores = _computed(scores)
    if _P not in scores.dims or "component" not in scores.dims:
        raise ValueError(
            f"projection() needs dims ('persona', 'component') (and usually 'layer'), got "
            f"{scores.dims!r}"
        )
    _check_dims(scores, ["layer", _P, "component"], func="projection")
    if axes not in ("fixed", "per_layer"):
        raise ValueError(f"projection() got axes={axes!r}; choose 'fixed' or 'per_layer'")
    available = [int(c) for c in scores["component"].values]
    if len(available) < 2 and components is None:
        raise ValueError("projection() needs at least 2 components; compute n_components=2")
    comps = list(components) if components is not None else available[:2]
    if len(comps) not in (2, 3):
        raise ValueError(
            f"projection() draws 2 or 3 components, got components={comps!r}; pass e.g. (1, 2)"
        )
    unknown = [c for c in comps if c not in available]
    if unknown:
        raise KeyError(
            f"projection() got unknown component(s) {unknown!r}; the result has {available!r}"
        )
    layers = _layer_labels(scores)
    order = ["layer", _P, "component"] if "layer" in scores.dims else [_P, "component"]
    xyz = scores.sel(component=comps).transpose(*order).values.astype(np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    n = xyz.shape[1]
    three_d = len(comps) == 3
    coloring = _coloring(
        scores,
        layers,
        color=color,
        groups=groups,
        color_values=color_values,
        vectors=vectors,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        max_categories=max_categories,
    )
    text = _hover_text(scores, _hover_fields(scores, hover), coloring)
    plan = _trace_groups(coloring)
    edges = None
    if neighbors is not None:
        edges = _knn_edges(neighbors, _persona_ids(scores), layers)
    name = str(scores.name)
    prefix = _AXIS_NAMES.get(name, f"{_esc(name)} ")
    axis_titles = [f"{prefix}{c}" for c in comps]
    size = marker_size or (7 if n <= 200 else 5 if n <= 2000 else 3)
    kind = go.Scatter3d if three_d else go.Scattergl
    letters = ("x", "y", "z")[: len(comps)]
    coord_fmt = "<br>".join(f"{t} %{{{a}:.3f}}" for t, a in zip(axis_titles, letters, strict=True))

    def points(i: int, group: dict[str, Any]) -> dict[str, Any]:
        member = group["member"][coloring.layer(i)]
        trace: dict[str, Any] = {a: xyz[i, member, j] for j, a in enumerate(letters)}
        # Hover text stays in the base trace unless membership or labels change by layer.
        if coloring.per_layer:
            trace["hovertext"] = text[min(i, text.shape[0] - 1)][member]
            if group.get("scale"):
                trace["marker"] = {
                    **group["marker"],
                    "color": coloring.values[i][member].astype(np.float32),
                }
        return trace

    def edge_trace(i: int) -> dict[str, Any]:
        assert edges is not None
        seg = _segments(xyz[i], edges[min(i, edges.shape[0] - 1)])
        return {a: seg[:, j] for j, a in enumerate(letters)}

    data = []
    if edges is not None:
        data.append(
            kind(
                **edge_trace(0),
                mode="lines",
                name=f"{edges.shape[-1] // n} nearest neighbours",
                line={"color": "rgba(120,120,120,0.35)", "width": 1},
                hoverinfo="skip",
            )
        )
    for group in plan:
        member = group["member"][0]
        marker = dict(group["marker"])
        marker["size"] = size
        if group.get("scale"):
            marker["color"] = coloring.values[0][member].astype(np.float32)
        first = points(0, group)
        if "hovertext" not in first:
            first["hovertext"] = text[0][member]
        first.pop("marker", None)
        data.append(
            kind(
                **first,
                mode="markers",
                name=group["name"],
                marker=marker,
                hovertemplate=f"%{{hovertext}}<br>{coord_fmt}<extra></extra>",
                showlegend=not group.get("scale"),
            )
        )

    def ranges(i: int | slice) -> list[list[float]]:
        return [_padded_range(xyz[i, :, j]) for j in range(len(comps))]

    def axis_layout(i: int | slice, titles: list[str]) -> dict[str, Any]:
        spans = ranges(i)
        axes_ = {
            f"{a}axis": {"range": r, "title": {"text": t}}
            for a, r, t in zip(letters, spans, titles, strict=True)
        }
        return {"scene": axes_} if three_d else axes_

    def titles_for(i: int) -> list[str]:
        if ratio is None:
            return axis_titles
        r = ratio.isel(layer=i) if "layer" in ratio.dims else ratio
        return [
            f"{t} ({100 * float(r.sel(component=c)):.1f}%)"
            for t, c in zip(axis_titles, comps, strict=True)
        ]

    method = _METHOD_TITLES.get(name, _esc(name))
    colour_note = f" · colour: {_esc(coloring.title)}" if coloring.kind != "none" else ""
    heading = _esc(title) if title is not None else f"{method}{_variant_note(scores)}{colour_note}"
    layout: dict[str, Any] = {
        "title": {"text": heading},
        "legend": {"title": {"text": _label(coloring.title)}, "itemsizing": "constant"},
        "hovermode": "closest",
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
    }
    fixed = slice(None) if axes == "fixed" else 0
    layout.update(axis_layout(fixed, titles_for(0)))
    frames = []
    if "layer" in scores.dims:
        for i, label in enumerate(layers):
            frame_data = [edge_trace(i)] if edges is not None else []
            frame_data += [points(i, g) for g in plan]
            frame_layout: dict[str, Any] = {}
            if axes == "per_layer" or ratio is not None:
                frame_layout = axis_layout(fixed if axes == "fixed" else i, titles_for(i))
            frames.append(
                go.Frame(
                    name=str(label),
                    data=[kind(**d) for d in frame_data],
                    traces=list(range(len(frame_data))),
                    layout=frame_layout or None,
                )
            )
        layout.update(_animation(layers))
        layout["margin"]["b"] = 90
    elif layers != [None]:
        layout["title"]["text"] += f" · {_layer_title(layers[0])}"
    return go.Figure(data=data, layout=layout, frames=frames)


# --------------------------------------------------------------------------- heatmap


def _leaf_positions(order: Any, ids: np.ndarray, order_layer: Any) -> np.ndarray:
    """Row order as positions along ``persona``, from positions, ids or a linkage Dataset."""
    if isinstance(order, xr.Dataset):
        if "order" not in order:
            raise ValueError("order= needs the Dataset of pvx.cluster.linkage (with 'order')")
        tree = _computed(order)
        if "layer" in tree["order"].dims:
            label = tree["layer"].values[-1] if order_layer is None else order_layer
            tree = tree.sel(layer=label)
        _check_dims(tree["order"], ["leaf"], func="heatmap(order=...)")
        leaf_ids = tree["leaf_id"].values if "leaf_id" in tree else None
        if leaf_ids is not None:
            order = np.asarray(leaf_ids, dtype=object)
        else:
            order = tree["order"].values
    arr = np.asarray(order)
    if arr.dtype.kind in "iu":
        positions = arr.astype(np.int64)
    else:
        positions = pd.Index(ids).get_indexer(arr.astype(object))
    n = len(ids)
    if sorted(positions.tolist()) != list(range(n)):
        raise ValueError(
            f"order= must list each of the {n} personas once (positions or ids), e.g. the "
            "'order' of pvx.cluster.linkage computed on the same personas"
        )
    return positions


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


# --------------------------------------------------------------------------- lines by layer


def _pair_label(ps: xr.Dataset, i: int) -> str:
    def one(suffix: str) -> str:
        pid = ps[f"id{suffix}"].values[i]
        if f"name{suffix}" in ps.coords:
            return f"{_label(ps[f'name{suffix}'].values[i])} ({_label(pid)})"
        return _label(pid)

    return f"{one('')} – {one('_other')}"


def _band(go: Any, x: np.ndarray, low: np.ndarray, high: np.ndarray, name: str, color: str) -> Any:
    """One filled polygon between two curves (a single trace, whatever the number of pairs)."""
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([high, low[::-1]]).astype(np.float32),
        mode="lines",
        fill="toself",
        fillcolor=color,
        line={"width": 0},
        name=name,
        hoverinfo="skip",
    )


def _layer_axis(obj: xr.DataArray | xr.Dataset, func: str) -> np.ndarray:
    if "layer" not in obj.dims:
        raise ValueError(
            f"{func}() draws curves over layers, but the result has no 'layer' dimension "
            f"(dims {tuple(obj.dims)!r}); compute it with several layers"
        )
    return np.asarray(obj["layer"].values)


def pair_trajectories(
    ps: xr.Dataset,
    *,
    top: int | None = None,
    max_pairs: int = 10,
    title: str | None = None,
) -> go.Figure:
    """Cosine of chosen persona pairs across layers, against the all-pairs median and band.

    Parameters
    ----------
    ps : xarray.Dataset
        :func:`pvx.similarity.pair_similarity`: ``cosine`` ``(layer, pair)`` and the all-pairs
        ``median``, ``low`` and ``high`` ``(layer)``.
    top : int, optional
        Draw the ``top`` pairs whose cosine changes most across layers (largest max - min).
    max_pairs : int
        Without ``top``: draw every pair if there are at most this many, else the 5 that
        change most. Never one trace per pair for all pairs.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scatter`` traces: the quantile band (one filled trace), the median, then one line
        per drawn pair.

    Examples
    --------
    >>> import pvx.plot, pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> fig = pvx.plot.pair_trajectories(pvx.similarity.pair_similarity(da, [("p0", "p7")]))
    >>> [t.name for t in fig.data]
    ['5–95% of all pairs', 'median of all pairs', 'Ada (p0) – Bea (p7)']
    """
    import plotly.graph_objects as go

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
    band_name = f"{100 * q[0]:g}–{100 * q[1]:g}% of all pairs"
    data = [
        _band(go, x, ps["low"].values, ps["high"].values, band_name, "rgba(120,120,120,0.2)"),
        go.Scatter(
            x=x,
            y=ps["median"].values.astype(np.float32),
            mode="lines",
            name="median of all pairs",
            line={"color": _INK, "dash": "dash"},
            hovertemplate="layer %{x}<br>median %{y:.3f}<extra></extra>",
        ),
    ]
    for j, i in enumerate(chosen):
        label = _pair_label(ps, int(i))
        data.append(
            go.Scatter(
                x=x,
                y=cos[:, i].astype(np.float32),
                mode="lines+markers",
                name=label,
                line={"color": _colors.QUALITATIVE[j % len(_colors.QUALITATIVE)]},
                hovertemplate=f"{label}<br>layer %{{x}}<br>cosine %{{y:.3f}}<extra></extra>",
            )
        )
    heading = _esc(title) if title is not None else "Pair similarity across layers"
    layout = {
        "title": {"text": heading + _variant_note(ps)},
        "template": "plotly_white",
        "xaxis": {"title": {"text": "layer"}},
        "yaxis": {"title": {"text": "centered cosine"}},
        "hovermode": "closest",
    }
    return go.Figure(data=data, layout=layout)


def _ratio(evr: xr.DataArray | xr.Dataset, func: str) -> xr.DataArray:
    if isinstance(evr, xr.Dataset):
        if "explained_variance_ratio" not in evr:
            raise ValueError(
                f"{func}() needs explained-variance ratios: pvx.decomposition."
                "explained_variance, or the Dataset of pvx.decomposition.pca"
            )
        evr = evr["explained_variance_ratio"]
    if "component" not in evr.dims:
        raise ValueError(f"{func}() needs a 'component' dimension, got {evr.dims!r}")
    _check_dims(evr, ["layer", "component"], func=func)
    return _computed(evr)


def scree(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Scree curves: explained-variance ratio per component, one curve per layer.

    Parameters
    ----------
    evr : xarray.DataArray or xarray.Dataset
        :func:`pvx.decomposition.explained_variance` (or a :func:`pvx.decomposition.pca`
        Dataset): dims ``(layer, component)`` or ``(component,)``.
    cumulative : bool
        Draw the cumulative ratio instead.
    max_components : int, optional
        Draw only the first components.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Scatter`` per layer, coloured from early (dark) to late (light) layers.
    """
    import plotly.graph_objects as go

    ratio = _ratio(evr, "scree")
    if max_components is not None:
        ratio = ratio.isel(component=slice(0, max_components))
    if cumulative:
        ratio = ratio.cumsum("component")
    layers = _layer_labels(ratio)
    values = ratio.transpose(..., "component").values.reshape(len(layers), -1)
    comps = ratio["component"].values
    shades = _colors._viridis(len(layers))
    what = "cumulative ratio" if cumulative else "ratio"
    data = [
        go.Scatter(
            x=comps,
            y=values[i].astype(np.float32),
            mode="lines+markers",
            name=_layer_title(label) or "all",
            line={"color": shades[i]},
            marker={"size": 4},
            hovertemplate=f"{_layer_title(label)}<br>PC%{{x}}<br>{what} %{{y:.3f}}<extra></extra>",
        )
        for i, label in enumerate(layers)
    ]
    heading = _esc(title) if title is not None else "Explained variance by component"
    layout = {
        "title": {"text": heading + _variant_note(ratio)},
        "template": "plotly_white",
        "xaxis": {"title": {"text": "component"}},
        "yaxis": {
            "title": {"text": f"explained variance {what}"},
            "range": [0, 1.02] if cumulative else None,
        },
        "hovermode": "closest",
    }
    return go.Figure(data=data, layout=layout)


def variance_heatmap(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = 50,
    title: str | None = None,
) -> go.Figure:
    """Layer × component heatmap of explained-variance ratios.

    Parameters
    ----------
    evr : xarray.DataArray or xarray.Dataset
        As for :func:`scree`, with a ``layer`` dimension.
    cumulative : bool
        Show the cumulative ratio.
    max_components : int or None
        Show only the first components (default 50).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace: x = component, y = layer label.
    """
    import plotly.graph_objects as go

    ratio = _ratio(evr, "variance_heatmap")
    _layer_axis(ratio, "variance_heatmap")
    if max_components is not None:
        ratio = ratio.isel(component=slice(0, max_components))
    if cumulative:
        ratio = ratio.cumsum("component")
    what = "cumulative ratio" if cumulative else "ratio"
    trace = go.Heatmap(
        z=ratio.transpose("layer", "component").values.astype(np.float32),
        x=ratio["component"].values,
        y=[str(v) for v in ratio["layer"].values],
        colorscale=_colors.NUMERIC_SCALE,
        zmin=0,
        colorbar={"title": {"text": what}},
        hovertemplate=f"layer %{{y}}<br>PC%{{x}}<br>{what} %{{z:.3f}}<extra></extra>",
    )
    heading = _esc(title) if title is not None else "Explained variance by layer and component"
    layout = {
        "title": {"text": heading + _variant_note(ratio)},
        "template": "plotly_white",
        "xaxis": {"title": {"text": "component"}},
        "yaxis": {"title": {"text": "layer"}, "type": "category"},
    }
    return go.Figure(data=[trace], layout=layout)


# --------------------------------------------------------------------------- dendrogram


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


# --------------------------------------------------------------------------- variants


def variant_lines(
    vs: xr.Dataset,
    *,
    personas: Sequence[Hashable] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    title: str | None = None,
) -> go.Figure:
    """How the prompt variant moves personas, by layer.

    Draws, per layer, the median and a quantile band over personas of the centered cosine
    between each persona's two variants, the raw median, and the correlation between the two
    variants' cosine matrices, plus chosen personas.

    Parameters
    ----------
    vs : xarray.Dataset
        :func:`pvx.similarity.variant_similarity`: ``raw`` and ``centered``
        ``(layer, persona)``, ``matrix_correlation`` ``(layer)``.
    personas : sequence of hashable, optional
        Persona ids to draw individually.
    quantiles : (float, float)
        The band over personas.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scatter`` traces over layer labels.
    """
    import plotly.graph_objects as go

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
    data = [
        _band(
            go,
            x,
            low,
            high,
            f"{lo_pct}–{hi_pct}% of personas (centered)",
            "rgba(59,110,168,0.2)",
        ),
        go.Scatter(
            x=x,
            y=np.nanmedian(centered, axis=1).astype(np.float32),
            mode="lines+markers",
            name="median persona, centered",
            line={"color": _colors.DEFAULT_COLOR},
            hovertemplate="layer %{x}<br>median centered cosine %{y:.3f}<extra></extra>",
        ),
        go.Scatter(
            x=x,
            y=np.nanmedian(raw, axis=1).astype(np.float32),
            mode="lines",
            name="median persona, raw",
            line={"color": _colors.DEFAULT_COLOR, "dash": "dot"},
            hovertemplate="layer %{x}<br>median raw cosine %{y:.3f}<extra></extra>",
        ),
        go.Scatter(
            x=x,
            y=vs["matrix_correlation"].values.astype(np.float32),
            mode="lines+markers",
            name="cosine-matrix correlation",
            line={"color": "#EF553B"},
            hovertemplate="layer %{x}<br>matrix correlation %{y:.3f}<extra></extra>",
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
            label = f"{_label(names[i])} ({_label(ids[i])})"
            data.append(
                go.Scatter(
                    x=x,
                    y=centered[:, i].astype(np.float32),
                    mode="lines",
                    name=label,
                    line={"color": _colors.QUALITATIVE[(j + 2) % len(_colors.QUALITATIVE)]},
                    hovertemplate=f"{label}<br>layer %{{x}}<br>cosine %{{y:.3f}}<extra></extra>",
                )
            )
    a, b = vs.attrs.get("variant_a", "a"), vs.attrs.get("variant_b", "b")
    default = f"Variant similarity: {_esc(a)} vs {_esc(b)}"
    layout = {
        "title": {"text": _esc(title) if title is not None else default},
        "template": "plotly_white",
        "xaxis": {"title": {"text": "layer"}},
        "yaxis": {"title": {"text": "cosine / correlation"}},
        "hovermode": "closest",
    }
    return go.Figure(data=data, layout=layout)


# --------------------------------------------------------------------------- export


def write_html(
    fig: go.Figure,
    path: str | os.PathLike[str],
    *,
    plotlyjs: str = "embed",
    title: str | None = None,
    **kwargs: Any,
) -> Path:
    """Write a figure as a self-contained HTML page that works offline.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    path : str or path-like
        The ``.html`` file to write (parent directories are created).
    plotlyjs : {"embed", "directory"}
        ``"embed"`` puts plotly.js inside the page (one file, about 5 MB more);
        ``"directory"`` references ``plotly.min.js`` beside the page and writes that file
        once, so many pages in one folder share it. Never a CDN.
    title : str, optional
        The page's ``<title>`` (escaped); default: the figure title.
    **kwargs
        Passed to :meth:`plotly.graph_objects.Figure.write_html` (e.g. ``auto_play``).

    Returns
    -------
    pathlib.Path
        The written page.
    """
    if plotlyjs not in ("embed", "directory"):
        raise ValueError(
            f"write_html() got plotlyjs={plotlyjs!r}; choose 'embed' or 'directory' (pages "
            "never load plotly.js from a CDN, so they work offline)"
        )
    for key in ("include_plotlyjs", "include_mathjax", "file"):
        if key in kwargs:
            raise TypeError(f"write_html() sets {key} itself; use plotlyjs= instead")
    import plotly.io
    import plotly.offline

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"displaylogo": False, "responsive": True, **kwargs.pop("config", {})}
    kwargs.setdefault("auto_play", False)
    text = plotly.io.to_html(
        fig,
        include_plotlyjs=True if plotlyjs == "embed" else "plotly.min.js",
        include_mathjax=False,
        full_html=True,
        config=config,
        **kwargs,
    )
    text = _BDATA.sub(_unescape_bdata, text)
    if title is not None or fig.layout.title.text:
        page_title = _esc(title) if title is not None else str(fig.layout.title.text)
        text = text.replace("<head>", f"<head><title>{page_title}</title>", 1)
    path.write_text(text, encoding="utf-8")
    if plotlyjs == "directory":
        bundle = path.parent / "plotly.min.js"
        js = plotly.offline.get_plotlyjs().encode("utf-8")
        # written once per folder; rewritten only if another plotly version left its own
        if not bundle.exists() or bundle.stat().st_size != len(js):
            bundle.write_bytes(js)
    return path


def html_div(fig: go.Figure, *, div_id: str | None = None, **kwargs: Any) -> str:
    """The figure as an HTML ``<div>`` (no plotly.js), to compose pages of several figures.

    The page must load plotly.js itself (e.g. ``<script src="plotly.min.js">`` beside it, as
    :func:`write_html` with ``plotlyjs="directory"`` writes). Typed arrays stay compact, as in
    :func:`write_html`.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
        The figure.
    div_id : str, optional
        The ``id`` of the figure's ``<div>``.
    **kwargs
        Passed to :func:`plotly.io.to_html`.

    Returns
    -------
    str
        ``<div>...</div>`` with the figure's data and its ``Plotly.newPlot`` script.
    """
    import plotly.io

    config = {"displaylogo": False, "responsive": True, **kwargs.pop("config", {})}
    kwargs.setdefault("auto_play", False)
    div = plotly.io.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=config, **kwargs
    )
    return _BDATA.sub(_unescape_bdata, div)


# Plotly escapes "/" as "\u002f" (6 bytes) everywhere in the page's JSON, so it can never close
# the <script>. Inside base64 typed arrays ("bdata") that costs up to 40% more bytes; base64
# has no "<", so "/" is safe there and is restored.
_BDATA = re.compile(r'"bdata":"([A-Za-z0-9+=\\]*)"')


def _unescape_bdata(match: re.Match[str]) -> str:
    return '"bdata":"' + match.group(1).replace("\\u002f", "/") + '"'


# --------------------------------------------------------------------------- from vectors


def _compute_together(*objs: Any) -> tuple[Any, ...]:
    """Compute several lazy results in one pass (shared Gram matrices are built once)."""
    import dask

    return tuple(dask.compute(*objs))


def _layered_projection(
    method: str,
    da: xr.DataArray,
    analysis: dict[str, Any],
    *,
    color: Hashable | None,
    n_clusters: int | None,
    cluster_mode: str,
    k: int | None,
    components: Sequence[int] | None,
    kwargs: dict[str, Any],
) -> go.Figure:
    analysis = {key: value for key, value in analysis.items() if value is not None}
    comps = list(components) if components is not None else [1, 2]
    analysis.setdefault("n_components", max(comps))
    common = {key: analysis[key] for key in ("layer", "include_baseline") if key in analysis}
    funcs: dict[str, Callable[..., Any]] = {
        "pca": decomposition.pca,
        "umap": manifold.umap,
        "isomap": manifold.isomap,
    }
    lazy: list[Any] = [funcs[method](da, **analysis)]
    if color == "cluster":
        if n_clusters is None:
            raise ValueError(f"{method}(color='cluster') needs n_clusters=k")
        lazy.append(cluster.kmeans(da, n_clusters, mode=cluster_mode, **common))
    if k is not None:
        lazy.append(similarity.neighbors(da, k, **common))
    computed = list(_compute_together(*lazy))
    result = computed.pop(0)
    if color == "cluster":
        kwargs["groups"] = computed.pop(0)
        color = None
    if k is not None:
        kwargs["neighbors"] = computed.pop(0)
    return projection(result, color=color, components=comps, **kwargs)


def pca(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | None = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    normalize: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Layered PCA scatter: :func:`pvx.decomposition.pca`, then :func:`projection`.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors ``(persona, layer, hidden)``.
    layer : label, list of labels or None
        Layers to show (default all).
    components : sequence of int, optional
        Components to draw, ``(1, 2)`` by default; three give a 3-D plot.
    color : hashable, optional
        A persona attribute, or ``"cluster"`` (k-means with ``n_clusters`` and
        ``cluster_mode``, computed with the PCA in one pass).
    n_clusters : int, optional
        Clusters for ``color="cluster"``.
    cluster_mode : str
        k-means mode (see :func:`pvx.cluster.kmeans`).
    k : int, optional
        Overlay each persona's ``k`` nearest neighbours (:func:`pvx.similarity.neighbors`).
    normalize : bool
        Normalise the centered vectors first (see :func:`pvx.decomposition.pca`).
    include_baseline : bool
        Show the ``baseline_assistant`` persona (its attributes are missing: grey).
    **kwargs
        Passed to :func:`projection` (``hover``, ``axes``, ``groups``, ``title``, ...).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    return _layered_projection(
        "pca",
        da,
        {"layer": layer, "normalize": normalize, "include_baseline": include_baseline},
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        kwargs=kwargs,
    )


def umap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | None = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    n_neighbors: int | None = None,
    seed: int = 42,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Layered UMAP scatter: :func:`pvx.manifold.umap`, then :func:`projection`.

    Parameters are those of :func:`pca`, plus UMAP's ``n_neighbors`` and ``seed``.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    return _layered_projection(
        "umap",
        da,
        {
            "layer": layer,
            "n_neighbors": n_neighbors,
            "seed": seed,
            "include_baseline": include_baseline,
        },
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        kwargs=kwargs,
    )


def isomap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | None = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    n_neighbors: int = 8,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Layered Isomap scatter: :func:`pvx.manifold.isomap`, then :func:`projection`.

    Parameters are those of :func:`pca`, plus Isomap's ``n_neighbors``.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    return _layered_projection(
        "isomap",
        da,
        {"layer": layer, "n_neighbors": n_neighbors, "include_baseline": include_baseline},
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        kwargs=kwargs,
    )


def cosine(
    da: xr.DataArray,
    *,
    layer: Any = None,
    order: Any = None,
    order_layer: Any = None,
    method: str = "ward",
    center: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Similarity heatmap per layer: :func:`pvx.similarity.cosine`, then :func:`heatmap`.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show.
    order : "dendrogram", array-like or None
        ``"dendrogram"`` orders rows by the leaf order of :func:`pvx.cluster.linkage`
        (``method``) on ``order_layer`` (default: the last shown layer), computed with the
        cosine in one pass; or positions/ids as in :func:`heatmap`.
    order_layer : label, optional
        The layer whose dendrogram orders the rows.
    method : str
        Linkage method for ``order="dendrogram"``.
    center : bool
        Centered cosine (default).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    **kwargs
        Passed to :func:`heatmap`.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    sim = similarity.cosine(da, layer=layer, center=center, include_baseline=include_baseline)
    if isinstance(order, str) and order == "dendrogram":
        if order_layer is None:
            labels = np.atleast_1d(sim["layer"].values) if "layer" in sim.coords else [None]
            order_layer = labels[-1]
        tree = cluster.linkage(
            da,
            layer=order_layer,
            method=method,
            include_baseline=include_baseline,
        )
        sim, tree = _compute_together(sim, tree)
        return heatmap(sim, order=tree, **kwargs)
    if isinstance(order, str):
        raise ValueError(
            f"cosine() got order={order!r}; pass 'dendrogram', persona positions or ids"
        )
    return heatmap(sim, order=order, order_layer=order_layer, **kwargs)


def pair_similarity(
    da: xr.DataArray,
    pairs: Sequence[tuple[Hashable, Hashable]] | None = None,
    *,
    layer: Any = None,
    top: int | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Pair trajectories: :func:`pvx.similarity.pair_similarity`, then :func:`pair_trajectories`.

    With ``pairs=None`` every pair is computed and the ``top`` (default 5) that change most
    across layers are drawn.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    ps = similarity.pair_similarity(
        da, pairs, layer=layer, quantiles=quantiles, include_baseline=include_baseline
    )
    if pairs is None and top is None:
        top = 5
    return pair_trajectories(ps, top=top, **kwargs)


def variant_similarity(
    da: xr.DataArray,
    a: Hashable,
    b: Hashable,
    *,
    layer: Any = None,
    personas: Sequence[Hashable] | None = None,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Variant shift: :func:`pvx.similarity.variant_similarity`, then :func:`variant_lines`.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    vs = similarity.variant_similarity(da, a, b, layer=layer, include_baseline=include_baseline)
    return variant_lines(vs, personas=personas, **kwargs)


def explained_variance(
    da: xr.DataArray,
    *,
    layer: Any = None,
    heatmap: bool = False,
    cumulative: bool = False,
    normalize: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Scree: :func:`pvx.decomposition.explained_variance`, then :func:`scree` curves.

    ``heatmap=True`` draws the layer × component :func:`variance_heatmap` instead.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    evr = decomposition.explained_variance(
        da, layer=layer, normalize=normalize, include_baseline=include_baseline
    )
    draw = variance_heatmap if heatmap else scree
    return draw(evr, cumulative=cumulative, **kwargs)


def linkage(
    da: xr.DataArray,
    *,
    layer: Any = None,
    method: str = "ward",
    include_baseline: bool = False,
    **kwargs: Any,
) -> go.Figure:
    """Dendrogram: :func:`pvx.cluster.linkage`, then :func:`dendrogram` with the names of ``da``.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    tree = cluster.linkage(da, layer=layer, method=method, include_baseline=include_baseline)
    names = da["name"] if "name" in da.coords and "id" in da.coords else None
    return dendrogram(tree, names=names, **kwargs)


# --------------------------------------------------------------------------- accessor


class PlotAccessor:
    """Plotly views of a DataArray of persona vectors, as ``da.pv.plot.<analysis>(...)``.

    ``da.pv.plot.X(...)`` draws ``da.pv.X(...)``: each method runs that analysis once and
    returns a :class:`plotly.graph_objects.Figure` (``linkage`` draws a dendrogram,
    ``explained_variance`` scree curves or a heatmap). ``projection`` recolours a computed
    projection. See the function of the same name in :mod:`pvx.plot` for the options.
    """

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    projection = forward(projection, as_keyword="vectors")
    pca = forward(pca)
    umap = forward(umap)
    isomap = forward(isomap)
    cosine = forward(cosine)
    pair_similarity = forward(pair_similarity)
    variant_similarity = forward(variant_similarity)
    explained_variance = forward(explained_variance)
    linkage = forward(linkage)
