"""Plotly: layered projections (PCA, UMAP, Isomap coordinates), one frame per layer."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx.views._common import (
    _AXIS_NAMES,
    _METHOD_TITLES,
    _P,
    _animation,
    _coloring,
    _esc,
    _hover_fields,
    _hover_text,
    _knn_edges,
    _label,
    _layer_labels,
    _layer_title,
    _padded_range,
    _persona_ids,
    _segments,
    _trace_groups,
    _variant_note,
    one_variant,
    projection_input,
    variant_labels,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


def projection(
    result: xr.DataArray | xr.Dataset,
    *,
    color: Hashable | Sequence[Hashable] | None = None,
    groups: Any = None,
    color_values: Any = None,
    hover: Sequence[Hashable] | None = None,
    neighbors: xr.Dataset | None = None,
    components: Sequence[int] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    width: int | None = None,
    height: int | None = None,
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
    color : hashable or list of hashable, optional
        A persona coordinate by name, drawn by its kind (``attrs["kind"]``): numeric as a
        colour scale with a colour bar fixed across layers, ordinal as an ordered scale whose
        ticks are the category names, categorical as one legend entry per category for the
        ``max_categories`` most frequent and ``Other``. ``"cluster"`` draws the k-means labels
        attached to the result (``da.pv.plot.pca(color="cluster", n_clusters=k)`` attaches
        them; :func:`pvx.views.with_clusters` does it by hand). A list draws one panel per
        name, side by side, sharing the layer slider. Missing values (the baseline persona)
        are drawn in neutral grey.
    groups : array-like or xarray.DataArray, optional
        Explicit categories, one per persona, or per layer and persona (e.g. the labels of
        :func:`pvx.cluster.kmeans` with ``mode="per_layer"``). DataArrays are matched by ``id``.
    color_values : array-like or xarray.DataArray, optional
        Explicit numbers, one per persona (or per layer and persona).
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
    width, height : int, optional
        Size of each panel in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped); by default the method, variant and colour.

    Returns
    -------
    plotly.graph_objects.Figure
        Point traces (one per category, or one with a colour bar, plus ``missing``), an
        optional ``kNN`` line trace first; one frame per layer named ``str(layer)``, with a
        layer slider and Play/Pause. A result with a ``variant`` dimension gets one row of
        panels per variant.

    Raises
    ------
    ValueError
        Unexpected dims, wrong component count, or colour values that
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
    from plotly.subplots import make_subplots

    checked = projection_input(
        result,
        components=components,
        axes=axes,
        color=color,
        groups=groups,
        color_values=color_values,
        max_components=3,
    )
    scores, ratio, comps, colors = checked.scores, checked.ratio, checked.comps, checked.colors
    variants, layers = variant_labels(scores), _layer_labels(scores)
    rows, cols = len(variants), len(colors)
    three_d = len(comps) == 3
    name = str(scores.name)
    prefix = _AXIS_NAMES.get(name, f"{_esc(name)} ")
    axis_titles = [f"{prefix}{c}" for c in comps]
    panels = [
        _Panel.build(
            one_variant(scores, variant),
            None if ratio is None else one_variant(ratio, variant),
            None if neighbors is None else one_variant(neighbors, variant),
            comps,
            layers,
            coloring_options={
                "color": c,
                "groups": groups,
                "color_values": color_values,
                "max_categories": max_categories,
            },
            hover=hover,
            variant=variant,
        )
        for variant in variants
        for c in colors
    ]
    many = len(panels) > 1
    fig = make_subplots(
        rows=rows,
        cols=cols,
        specs=[[{"type": "scene" if three_d else "xy"}] * cols] * rows,
        subplot_titles=[p.title for p in panels] if many else None,
        # room for the colour bars that sit between panels
        horizontal_spacing=(0.2 if any(p.plan[0].get("scale") for p in panels) else 0.1)
        if cols > 1
        else None,
        vertical_spacing=0.12 if rows > 1 else None,
    )
    size = marker_size or (7 if panels[0].n <= 200 else 5 if panels[0].n <= 2000 else 3)
    kind = go.Scatter3d if three_d else go.Scattergl
    letters = ("x", "y", "z")[: len(comps)]
    coord_fmt = "<br>".join(f"{t} %{{{a}:.3f}}" for t, a in zip(axis_titles, letters, strict=True))
    fixed = slice(None) if axes == "fixed" else 0
    traces_of: list[list[int]] = []
    for k, panel in enumerate(panels):
        row, col = divmod(k, cols)
        indices = []
        for trace in panel.base_traces(kind, size, coord_fmt, letters, legend_row=row == 0):
            if many:
                trace.update(legendgroup=f"colour {col}")
                if row == 0:
                    trace.update(legendgrouptitle_text=_label(panel.coloring.title or "personas"))
            fig.add_trace(trace, row=row + 1, col=col + 1)
            indices.append(len(fig.data) - 1)
        traces_of.append(indices)
        fig.update_layout(panel.axis_layout(k, fixed, panel.axis_titles(0, axis_titles), three_d))
    for k in range(len(panels)):  # colour bars sit beside their own panel
        for index in traces_of[k]:
            if getattr(fig.data[index].marker, "showscale", None):
                _place_colorbar(fig, fig.data[index], k, three_d)

    method = _METHOD_TITLES.get(name, _esc(name))
    only = panels[0].coloring
    colour_note = f" · colour: {_esc(only.title)}" if not many and only.kind != "none" else ""
    heading = _esc(title) if title is not None else f"{method}{_variant_note(scores)}{colour_note}"
    layout: dict[str, Any] = {
        "title": {"text": heading},
        "legend": {"itemsizing": "constant", "groupclick": "togglegroup"},
        "hovermode": "closest",
        "template": "plotly_white",
        "margin": {"l": 60, "r": 20, "t": 80 if many else 60, "b": 40},
    }
    if not many:
        layout["legend"]["title"] = {"text": _label(only.title)}
    if width is not None or many:
        layout["width"] = (width or 520) * cols + 80 * cols
    if height is not None or rows > 1:
        layout["height"] = (height or 450) * rows + 100
    frames = []
    if "layer" in scores.dims:
        for i, label in enumerate(layers):
            data, indices, frame_layout = [], [], {}
            for k, panel in enumerate(panels):
                updates = panel.frame_traces(i, letters)
                data += [kind(**d) for d in updates]
                indices += traces_of[k][: len(updates)]
                if axes == "per_layer" or panel.ratio is not None:
                    frame_layout.update(
                        panel.axis_layout(
                            k,
                            fixed if axes == "fixed" else i,
                            panel.axis_titles(i, axis_titles),
                            three_d,
                        )
                    )
            frames.append(
                go.Frame(name=str(label), data=data, traces=indices, layout=frame_layout or None)
            )
        layout.update(_animation(layers))
        layout["margin"]["b"] = 90
    elif layers != [None]:
        layout["title"]["text"] += f" · {_layer_title(layers[0])}"
    fig.update_layout(layout)
    fig.frames = frames
    return fig


def _axis_suffix(k: int) -> str:
    return "" if k == 0 else str(k + 1)


def _place_colorbar(fig: go.Figure, trace: Any, k: int, three_d: bool) -> None:
    """Put panel ``k``'s colour bar at the right of that panel."""
    suffix = _axis_suffix(k)
    if three_d:
        domain = fig.layout[f"scene{suffix}"].domain
        x_span, y_span = domain.x, domain.y
    else:
        x_span, y_span = fig.layout[f"xaxis{suffix}"].domain, fig.layout[f"yaxis{suffix}"].domain
    trace.marker.colorbar.update(
        x=x_span[1] + 0.005, xanchor="left", y=sum(y_span) / 2, len=0.9 * (y_span[1] - y_span[0])
    )


@dataclass
class _Panel:
    """One projection panel: one variant's scores coloured one way."""

    xyz: np.ndarray  # (layer, persona, component) float32
    coloring: Any
    text: np.ndarray
    plan: list[dict[str, Any]]
    edges: np.ndarray | None
    ratio: xr.DataArray | None
    comps: list[int]
    title: str

    @property
    def n(self) -> int:
        return int(self.xyz.shape[1])

    @classmethod
    def build(
        cls,
        scores: xr.DataArray,
        ratio: xr.DataArray | None,
        neighbors: xr.Dataset | None,
        comps: list[int],
        layers: list[Any],
        *,
        coloring_options: dict[str, Any],
        hover: Sequence[Hashable] | None,
        variant: Any,
    ) -> _Panel:
        order = ["layer", _P, "component"] if "layer" in scores.dims else [_P, "component"]
        xyz = scores.sel(component=comps).transpose(*order).values.astype(np.float32)
        coloring = _coloring(scores, layers, **coloring_options)
        text = _hover_text(scores, _hover_fields(scores, hover), coloring)
        edges = None if neighbors is None else _knn_edges(neighbors, _persona_ids(scores), layers)
        parts = [_esc(variant)] if variant is not None else []
        parts += [f"colour: {_esc(coloring.title)}"] if coloring.kind != "none" else []
        return cls(
            xyz=xyz if xyz.ndim == 3 else xyz[None],
            coloring=coloring,
            text=text,
            plan=_trace_groups(coloring),
            edges=edges,
            ratio=ratio,
            comps=comps,
            title=" · ".join(parts),
        )

    def points(self, i: int, group: dict[str, Any], letters: Sequence[str]) -> dict[str, Any]:
        member = group["member"][self.coloring.layer(i)]
        trace: dict[str, Any] = {a: self.xyz[i, member, j] for j, a in enumerate(letters)}
        # Hover text stays in the base trace unless membership or labels change by layer.
        if self.coloring.per_layer:
            trace["hovertext"] = self.text[min(i, self.text.shape[0] - 1)][member]
            if group.get("scale"):
                trace["marker"] = {
                    **group["marker"],
                    "color": self.coloring.values[i][member].astype(np.float32),
                }
        return trace

    def edge_trace(self, i: int, letters: Sequence[str]) -> dict[str, Any]:
        assert self.edges is not None
        seg = _segments(self.xyz[i], self.edges[min(i, self.edges.shape[0] - 1)])
        return {a: seg[:, j] for j, a in enumerate(letters)}

    def base_traces(
        self, kind: Any, size: float, coord_fmt: str, letters: Sequence[str], *, legend_row: bool
    ) -> list[Any]:
        data = []
        if self.edges is not None:
            data.append(
                kind(
                    **self.edge_trace(0, letters),
                    mode="lines",
                    name=f"{self.edges.shape[-1] // self.n} nearest neighbours",
                    line={"color": "rgba(120,120,120,0.35)", "width": 1},
                    hoverinfo="skip",
                    showlegend=legend_row,
                )
            )
        for group in self.plan:
            member = group["member"][0]
            marker = dict(group["marker"], size=size)
            if group.get("scale"):
                marker["color"] = self.coloring.values[0][member].astype(np.float32)
            first = self.points(0, group, letters)
            first.setdefault("hovertext", self.text[0][member])
            first.pop("marker", None)
            data.append(
                kind(
                    **first,
                    mode="markers",
                    name=group["name"],
                    marker=marker,
                    hovertemplate=f"%{{hovertext}}<br>{coord_fmt}<extra></extra>",
                    showlegend=legend_row and not group.get("scale"),
                )
            )
        return data

    def frame_traces(self, i: int, letters: Sequence[str]) -> list[dict[str, Any]]:
        data = [self.edge_trace(i, letters)] if self.edges is not None else []
        return data + [self.points(i, group, letters) for group in self.plan]

    def axis_titles(self, i: int, titles: list[str]) -> list[str]:
        if self.ratio is None:
            return titles
        r = self.ratio.isel(layer=i) if "layer" in self.ratio.dims else self.ratio
        return [
            f"{t} ({100 * float(r.sel(component=c)):.1f}%)"
            for t, c in zip(titles, self.comps, strict=True)
        ]

    def axis_layout(
        self, k: int, layer: int | slice, titles: list[str], three_d: bool
    ) -> dict[str, Any]:
        letters = ("x", "y", "z")[: len(titles)]
        spans = [_padded_range(self.xyz[layer, :, j]) for j in range(len(titles))]
        suffix = _axis_suffix(k)
        if three_d:
            return {
                f"scene{suffix}": {
                    f"{a}axis": {"range": r, "title": {"text": t}}
                    for a, r, t in zip(letters, spans, titles, strict=True)
                }
            }
        return {
            f"{a}axis{suffix}": {"range": r, "title": {"text": t}}
            for a, r, t in zip(letters, spans, titles, strict=True)
        }
