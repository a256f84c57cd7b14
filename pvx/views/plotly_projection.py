"""Plotly: layered projections (PCA, UMAP, Isomap coordinates), one frame per layer."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx.views._common import (
    _AXIS_NAMES,
    _METHOD_TITLES,
    _P,
    _animation,
    _check_dims,
    _coloring,
    _computed,
    _esc,
    _hover_fields,
    _hover_text,
    _knn_edges,
    _label,
    _layer_labels,
    _layer_title,
    _padded_range,
    _persona_ids,
    _scores,
    _segments,
    _trace_groups,
    _variant_note,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
