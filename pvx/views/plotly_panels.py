"""Plotly: a view of a result with a ``variant`` dimension, one panel per variant."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx.views._common import _esc, one_variant, variant_labels

if TYPE_CHECKING:
    import plotly.graph_objects as go


def panel_per_variant(
    draw: Callable[..., go.Figure] | None = None,
    *,
    select: Callable[..., Any] | None = None,
    share_y: bool = True,
) -> Any:
    """``draw`` of a result with a ``variant`` dimension: one panel per variant, side by
    side (as the projections draw them), sharing the legend, one colour range for heatmaps,
    the layer slider (frames of the same layer move together) and, with ``share_y``, the y
    axis. One variant is drawn as before. ``select(result, kwargs)`` may first choose, over
    every variant at once, what each panel draws. Arguments with a ``variant`` dimension
    (a linkage ``order``) are taken per variant too. ``width`` is each panel's (480 by
    default), as in the projections' panels."""
    if draw is None:
        return functools.partial(panel_per_variant, select=select, share_y=share_y)

    @functools.wraps(draw)
    def drawn(result: Any, *args: Any, width: int | None = None, **kwargs: Any) -> go.Figure:
        variants = variant_labels(result)
        if len(variants) == 1:
            if variants != [None]:
                kwargs = {k: _of(a, variants[0]) for k, a in kwargs.items()}
            return draw(one_variant(result, variants[0]), *args, width=width, **kwargs)
        if select is not None:
            result, kwargs = select(result, kwargs)
        title = kwargs.pop("title", None)
        figures = [
            draw(_of(result, v), *args, width=None, **{k: _of(a, v) for k, a in kwargs.items()})
            for v in variants
        ]
        return side_by_side(figures, variants, title=title, width=width, share_y=share_y)

    return drawn


def _of(obj: Any, variant: Any) -> Any:
    """``obj``'s part for one variant (an argument without variants as it is)."""
    if isinstance(obj, xr.DataArray | xr.Dataset) and "variant" in obj.dims:
        return one_variant(obj, variant).drop_vars("variant")
    return obj


def side_by_side(
    figures: list[go.Figure],
    variants: list[Any],
    *,
    title: str | None,
    width: int | None,
    share_y: bool,
) -> go.Figure:
    """One figure of ``figures`` (single-panel figures of the same view), in columns."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=len(figures),
        shared_yaxes=share_y,
        subplot_titles=[_esc(v) for v in variants],
        horizontal_spacing=0.06 if share_y else 0.1,
    )
    heat = [t for f in figures for t in f.data if t.type == "heatmap"]
    if heat:  # one colour range for every panel: the same colour is the same value
        with warnings.catch_warnings():  # a panel of NaN only has no range of its own
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanmin([np.nanmin(t.z) if t.zmin is None else t.zmin for t in heat])
            high = np.nanmax([np.nanmax(t.z) if t.zmax is None else t.zmax for t in heat])
        low, high = (None, None) if np.isnan(low) else (float(low), float(high))
    seen: set[str] = set()
    offsets = []
    for col, figure in enumerate(figures, start=1):
        offsets.append(len(fig.data))
        for trace in figure.data:
            if trace.type == "heatmap":
                trace.update(zmin=low, zmax=high, showscale=col == len(figures))
            else:  # one legend entry per series; clicking it toggles every panel's
                key = trace.name or ""
                trace.update(legendgroup=key, showlegend=key not in seen and trace.showlegend)
                seen.add(key)
            fig.add_trace(trace, row=1, col=col)
        axes = _panel_axes(figure.layout.to_plotly_json(), col)
        if share_y and col > 1:
            axes[f"yaxis{col}"].pop("title", None)
        fig.update_layout(axes)
    ranges = [f.layout.yaxis.range for f in figures]
    if share_y and all(r is not None for r in ranges):  # the matched axes show every panel's
        fig.update_yaxes(range=[min(r[0] for r in ranges), max(r[1] for r in ranges)])
    first = figures[0].layout
    fig.update_layout(
        title={"text": _esc(title) if title is not None else first.title.text},
        template=first.template,
        hovermode=first.hovermode,
        showlegend=first.showlegend,
        margin=first.margin,
        sliders=first.sliders,
        updatemenus=first.updatemenus,
        width=(width or 480) * len(figures),
        height=first.height,
    )
    # a layer's frame moves every panel: the frames of one name, their traces renumbered
    fig.frames = [
        go.Frame(
            name=frame.name,
            data=[t for f in figures for t in f.frames[i].data],
            traces=[
                offset + index
                for offset, f in zip(offsets, figures, strict=True)
                for index in f.frames[i].traces
            ],
            layout=_merged(
                _panel_axes(f.frames[i].layout.to_plotly_json(), col)
                for col, f in enumerate(figures, start=1)
            )
            or None,
        )
        for i, frame in enumerate(figures[0].frames)
    ]
    return fig


def _panel_axes(layout: dict[str, Any], col: int) -> dict[str, Any]:
    """A single panel's ``xaxis``/``yaxis`` settings for column ``col``: renamed, with the
    axis it is anchored to renamed too and its placement left to the subplot grid."""
    suffix = "" if col == 1 else str(col)
    out = {}
    for axis in ("xaxis", "yaxis"):
        if axis not in layout:
            continue
        props = {k: v for k, v in layout[axis].items() if k not in ("domain", "anchor", "matches")}
        if props.get("scaleanchor") == "x":
            props["scaleanchor"] = f"x{suffix}"
        out[axis + suffix] = props
    return out


def _merged(dicts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        out.update(d)
    return out
