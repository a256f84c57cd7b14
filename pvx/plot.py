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
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors, cluster, decomposition, manifold, similarity
from pvx._colors import Coloring

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "PlotAccessor",
    "isomap",
    "pca",
    "projection",
    "umap",
    "write_html",
]

_P, _Q = "persona", "persona_other"
_AXIS_NAMES = {"scores": "PC", "umap": "UMAP ", "isomap": "Isomap "}
_METHOD_TITLES = {"scores": "PCA", "umap": "UMAP", "isomap": "Isomap"}
_INK = "#444444"


# --------------------------------------------------------------------------- shared helpers


def _esc(value: Any) -> str:
    """Text from the data, escaped for Plotly's HTML-like labels."""
    return html.escape(str(value), quote=True)


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
    arr = np.where(arr < 0, None, arr).astype(object)
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
                {"name": _esc(name), "member": coloring.values == code, "marker": {"color": color}}
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
            "colorbar": {"title": {"text": _esc(coloring.title)}, "len": 0.75},
        }
        if coloring.kind == "numeric":
            marker["colorscale"] = _colors.NUMERIC_SCALE
        else:
            marker["colorscale"] = _colors.discrete_scale(coloring.colors)
            marker["colorbar"]["tickvals"] = list(range(len(coloring.categories)))
            marker["colorbar"]["ticktext"] = [_esc(c) for c in coloring.categories]
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

    scores, ratio = _scores(result)
    scores = _computed(scores)
    ratio = _computed(ratio) if ratio is not None else None
    if _P not in scores.dims or "component" not in scores.dims:
        raise ValueError(
            f"projection() needs dims ('persona', 'component') (and usually 'layer'), got "
            f"{scores.dims!r}"
        )
    _check_dims(scores, ["layer", _P, "component"], func="projection")
    if axes not in ("fixed", "per_layer"):
        raise ValueError(f"projection() got axes={axes!r}; choose 'fixed' or 'per_layer'")
    available = [int(c) for c in scores["component"].values]
    comps = list(components) if components is not None else available[:2]
    if len(comps) not in (2, 3):
        raise ValueError(
            f"projection() draws 2 or 3 components, got components={comps!r}; pass e.g. (1, 2)"
        )
    if len(available) < 2 and components is None:
        raise ValueError("projection() needs at least 2 components; compute n_components=2")
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
        "legend": {"title": {"text": _esc(coloring.title)}, "itemsizing": "constant"},
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"displaylogo": False, "responsive": True, **kwargs.pop("config", {})}
    kwargs.setdefault("auto_play", False)
    fig.write_html(
        str(path),
        include_plotlyjs=True if plotlyjs == "embed" else "directory",
        include_mathjax=False,
        full_html=True,
        config=config,
        **kwargs,
    )
    if title is not None or fig.layout.title.text:
        page_title = _esc(title) if title is not None else str(fig.layout.title.text)
        text = path.read_text(encoding="utf-8")
        text = text.replace("<head>", f"<head><title>{page_title}</title>", 1)
        path.write_text(text, encoding="utf-8")
    return path


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
    funcs = {"pca": decomposition.pca, "umap": manifold.umap, "isomap": manifold.isomap}
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


# --------------------------------------------------------------------------- accessor


class PlotAccessor:
    """Plotly views of a DataArray of persona vectors, as ``da.pv.plot.<kind>(...)``.

    Each method runs the analysis once and returns a :class:`plotly.graph_objects.Figure`;
    see the function of the same name in :mod:`pvx.plot` for the options.
    """

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    def projection(self, result: xr.DataArray | xr.Dataset, **kwargs: Any) -> go.Figure:
        """Recolour a computed projection of this array (:func:`pvx.plot.projection`)."""
        return projection(result, vectors=self._da, **kwargs)

    def pca(self, **kwargs: Any) -> go.Figure:
        """Call :func:`pvx.plot.pca` on this array."""
        return pca(self._da, **kwargs)

    def umap(self, **kwargs: Any) -> go.Figure:
        """Call :func:`pvx.plot.umap` on this array."""
        return umap(self._da, **kwargs)

    def isomap(self, **kwargs: Any) -> go.Figure:
        """Call :func:`pvx.plot.isomap` on this array."""
        return isomap(self._da, **kwargs)
