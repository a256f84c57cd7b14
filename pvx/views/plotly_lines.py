"""Plotly: curves along layers (pair trajectories, scree, variance heatmap, variant lines)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors
from pvx.views._common import (
    _INK,
    _P,
    _check_dims,
    _computed,
    _esc,
    _label,
    _layer_labels,
    _layer_title,
    _persona_ids,
    _ratio,
    _variant_note,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
