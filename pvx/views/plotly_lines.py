"""Plotly: curves along layers (pair trajectories, scree, variance heatmap, variant lines)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx import _colors
from pvx.views._common import _category_axis, _esc, _label, _variant_note
from pvx.views.charts import (
    LineChart,
    _layer_axis,
    association_grid,
    gain_grid,
    pair_chart,
    probe_chart,
    scree_chart,
    variance_ratios,
    variant_chart,
)
from pvx.views.plotly_panels import panel_per_variant

if TYPE_CHECKING:
    import plotly.graph_objects as go


def draw_lines(chart: LineChart, *, width: int | None, height: int | None) -> go.Figure:
    """A Plotly figure of a prepared :class:`~pvx.views.charts.LineChart` (text escaped)."""
    import plotly.graph_objects as go

    data = []
    x = np.asarray(chart.x)
    for series in chart.series:
        name = _label(series.name)
        if series.low is not None:  # one filled polygon, whatever the number of pairs
            data.append(
                go.Scatter(
                    x=np.concatenate([x, x[::-1]]),
                    y=np.concatenate([series.y, series.low[::-1]]).astype(np.float32),
                    mode="lines",
                    fill="toself",
                    fillcolor=series.color,
                    line={"width": 0},
                    name=name,
                    hoverinfo="skip",
                )
            )
            continue
        hover = (
            f"{_esc(series.name)}<br>{chart.x_title} {chart.x_prefix}%{{x}}<br>"
            f"{chart.hover_value} %{{y:.3f}}<extra></extra>"
        )
        data.append(
            go.Scatter(
                x=x,
                y=np.asarray(series.y, dtype=np.float32),
                mode="lines+markers" if series.markers else "lines",
                name=name,
                line={"color": series.color, "dash": series.dash},
                marker={"size": 5},
                hovertemplate=hover,
            )
        )
    layout: dict[str, Any] = {
        "title": {"text": _esc(chart.title)},
        "template": "plotly_white",
        "xaxis": {"title": {"text": chart.x_title}},
        "yaxis": {"title": {"text": chart.y_title}, "range": chart.y_range},
        "hovermode": "closest",
        "width": width,
        "height": height,
    }
    return go.Figure(data=data, layout=layout)


def _same_pairs(ps: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Every variant's panel draws the same pairs, in the same colours: those whose cosine
    changes most across layers in any variant."""
    top, max_pairs = kwargs.get("top"), kwargs.get("max_pairs", 10)
    if not isinstance(ps, xr.Dataset) or "cosine" not in ps or "pair" not in ps.dims:
        return ps, kwargs  # the drawing names what is missing
    cos = ps["cosine"].transpose("variant", "layer", "pair").values
    if top is None and cos.shape[2] <= max_pairs:
        return ps, kwargs
    k = min(top if top is not None else 5, cos.shape[2])
    change = np.nanmax(np.nanmax(cos, axis=1) - np.nanmin(cos, axis=1), axis=0)
    chosen = np.argsort(-change, kind="stable")[:k]
    return ps.isel(pair=chosen), {**kwargs, "top": None, "max_pairs": k}


@panel_per_variant(select=_same_pairs)
def pair_trajectories(
    ps: xr.Dataset,
    *,
    top: int | None = None,
    max_pairs: int = 10,
    width: int | None = None,
    height: int | None = None,
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
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scatter`` traces: the quantile band (one filled trace), the median, then one line
        per drawn pair. A result with a ``variant`` dimension gets one panel per variant,
        each with the same pairs (those that change most in any variant).

    Examples
    --------
    >>> import pvx.plot, pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> fig = pvx.plot.pair_trajectories(pvx.similarity.pair_similarity(da, [("p0", "p7")]))
    >>> [t.name for t in fig.data]
    ['5–95% of all pairs', 'median of all pairs', 'Ada (p0) – Bea (p7)']
    """
    chart = pair_chart(ps, top=top, max_pairs=max_pairs, title=title)
    return draw_lines(chart, width=width, height=height)


@panel_per_variant
def scree(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = None,
    width: int | None = None,
    height: int | None = None,
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
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Scatter`` per layer, coloured from early (dark) to late (light) layers; one
        panel per variant if the result has a ``variant`` dimension.
    """
    chart = scree_chart(evr, cumulative=cumulative, max_components=max_components, title=title)
    return draw_lines(chart, width=width, height=height)


@panel_per_variant
def variance_heatmap(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = 50,
    width: int | None = None,
    height: int | None = None,
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
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace: x = component, y = layer label (one per variant, side by
        side on one colour scale, if the result has a ``variant`` dimension).
    """
    import plotly.graph_objects as go

    ratio = variance_ratios(
        evr, cumulative=cumulative, max_components=max_components, func="variance_heatmap"
    )
    _layer_axis(ratio, "variance_heatmap")
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
        "width": width,
        "height": height,
    }
    return go.Figure(data=[trace], layout=layout)


def variant_lines(
    vs: xr.Dataset,
    *,
    personas: Sequence[Hashable] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    width: int | None = None,
    height: int | None = None,
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
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        ``Scatter`` traces over layer labels.
    """
    chart = variant_chart(vs, personas=personas, quantiles=quantiles, title=title)
    return draw_lines(chart, width=width, height=height)


@panel_per_variant
def probe_lines(
    result: xr.Dataset,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Probe score by layer, one line per attribute over its shuffled-label band.

    Parameters
    ----------
    result : xarray.Dataset
        :func:`pvx.attributes.probe`, dims ``(attribute, layer)``.
    width, height : int, optional
        Figure size in pixels (the figure fits its container by default).
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        Per attribute a filled band (baseline ± 2 standard deviations over permutations)
        and a line of the cross-validated score; one panel per variant if the result has a
        ``variant`` dimension.
    """
    return draw_lines(probe_chart(result, title=title), width=width, height=height)


@panel_per_variant
def probe_heatmap(
    result: xr.Dataset,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Attribute × layer heatmap of the probes' gain over shuffled labels.

    Parameters
    ----------
    result : xarray.Dataset
        :func:`pvx.attributes.probe`.
    width, height : int, optional
        Figure size in pixels.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace: x = layer, y = attribute (one per variant, side by side on one
        colour scale, if the result has a ``variant`` dimension).
    """
    import plotly.graph_objects as go

    gain = gain_grid(result)
    attributes, attribute_axis = _category_axis(gain["attribute"].values)
    trace = go.Heatmap(
        z=gain.values.astype(np.float32),
        x=[str(v) for v in gain["layer"].values],
        y=attributes,
        colorscale=_colors.NUMERIC_SCALE,
        colorbar={"title": {"text": "gain"}},
        hovertemplate="%{y}<br>layer %{x}<br>gain over shuffled %{z:.3f}<extra></extra>",
    )
    heading = title if title is not None else "Probe gain over shuffled labels"
    layout = {
        "title": {"text": _esc(heading) + _variant_note(gain)},
        "template": "plotly_white",
        "xaxis": {"title": {"text": "layer"}, "type": "category"},
        "yaxis": {"title": {"text": "attribute"}, "autorange": "reversed", **attribute_axis},
        "width": width,
        "height": height,
    }
    return go.Figure(data=[trace], layout=layout)


def association_heatmap(
    v: xr.DataArray,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of Cramér's V between persona attributes, each cell printed.

    Parameters
    ----------
    v : xarray.DataArray
        :func:`pvx.attributes.association`.
    width, height : int, optional
        Figure size in pixels.
    title : str, optional
        Figure title (escaped).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Heatmap`` trace from 0 (independent) to 1.
    """
    import plotly.graph_objects as go

    grid = association_grid(v)
    ticks, tick_axis = _category_axis(grid["attribute"].values)
    trace = go.Heatmap(
        z=grid.values.astype(np.float32),
        x=ticks,
        y=ticks,
        zmin=0,
        zmax=1,
        colorscale=_colors.NUMERIC_SCALE,
        colorbar={"title": {"text": "Cramér's V"}},
        texttemplate="%{z:.2f}",
        hovertemplate="%{y} × %{x}<br>Cramér's V %{z:.3f}<extra></extra>",
    )
    heading = title if title is not None else "Association between attributes (Cramér's V)"
    layout = {
        "title": {"text": _esc(heading)},
        "template": "plotly_white",
        "xaxis": {**tick_axis, "tickangle": -45},
        "yaxis": {**tick_axis, "autorange": "reversed", "scaleanchor": "x"},
        "width": width,
        "height": height,
    }
    return go.Figure(data=[trace], layout=layout)
