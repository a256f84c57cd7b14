"""HoloViews figures of pvx results (hvplot), with ``layer`` and ``variant`` widgets.

The same views as the Plotly modules, with the same keywords, drawn from the same prepared
data (:mod:`pvx.views._common`, :mod:`pvx.views.charts`). Bokeh shows text as text, so names
are kept raw here (Plotly's views escape them instead).
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors
from pvx.views import charts
from pvx.views._common import (
    _AXIS_NAMES,
    _INK,
    _METHOD_TITLES,
    _P,
    _coloring,
    _hover_fields,
    _knn_edges,
    _layer_labels,
    _persona_ids,
    one_variant,
    projection_input,
    variant_labels,
)

_WIDTH, _HEIGHT = 600, 480


def _hv() -> Any:
    """HoloViews with its Bokeh backend registered: options of elements drawn without
    hvplot need a backend (``hv.extension`` would also reload BokehJS in a notebook)."""
    import holoviews as hv
    import holoviews.plotting.bokeh

    return hv


def _literal(text: Any) -> str:
    """Text for a HoloViews title, whose ``{...}`` fields are format placeholders."""
    return str(text).replace("{", "{{").replace("}", "}}")


def _items(view: Any) -> list[tuple[tuple[Any, ...], Any]]:
    """(key, element) pairs of a HoloMap, or ``[((), element)]``."""
    hv = _hv()

    if isinstance(view, hv.HoloMap):
        return [(key if isinstance(key, tuple) else (key,), el) for key, el in view.data.items()]
    return [((), view)]


def _by_variant(views: dict[Any, Any]) -> Any:
    """One view, or a HoloMap whose first key is the variant (a widget beside the layer's)."""
    hv = _hv()

    if list(views) == [None]:
        return views[None]
    first = next(iter(views.values()))
    kdims = ["variant", *(first.kdims if isinstance(first, hv.HoloMap) else [])]
    data = {(v, *key): el for v, view in views.items() for key, el in _items(view)}
    return hv.HoloMap(data, kdims=kdims)


def _variant_widget(draw: Any) -> Any:
    """``draw`` that takes results with a ``variant`` dim too: one view per variant, with a
    variant widget (an xarray argument with that dim is cut to the variant as well)."""

    @functools.wraps(draw)
    def drawn(result: Any, *args: Any, **kwargs: Any) -> Any:
        if "variant" not in result.dims:
            return draw(result, *args, **kwargs)

        def cut(value: Any, variant: Any) -> Any:
            if not (isinstance(value, xr.DataArray | xr.Dataset) and "variant" in value.coords):
                return value
            if variant not in np.atleast_1d(value["variant"].values):  # a dim, or one label
                raise ValueError(
                    f"{draw.__name__}() got a result of variants {variant_labels(result)!r} "
                    "and an argument of variants "
                    f"{np.atleast_1d(value['variant'].values).tolist()!r}; give both the "
                    "same variants"
                )
            return one_variant(value, variant) if "variant" in value.dims else value

        def alone(variant: Any) -> Any:
            # the variant widget names it: not in each frame's title as well
            return one_variant(result, variant).drop_vars("variant", errors="ignore")

        return _by_variant(
            {
                v: draw(
                    alone(v),
                    *(cut(a, v) for a in args),
                    **{k: cut(a, v) for k, a in kwargs.items()},
                )
                for v in variant_labels(result)
            }
        )

    return drawn


def _color_column(coloring: _colors.Coloring, n_layer: int) -> tuple[Any, Any]:
    """Per-row colour values and the hvplot ``cmap`` for them; categories keep their order."""
    rows = coloring.values if coloring.per_layer else np.repeat(coloring.values, n_layer, 0)
    if coloring.kind == "numeric":
        return rows.ravel(), "viridis"
    if coloring.kind == "ordinal":
        codes = [-1 if np.isnan(c) else int(c) for c in rows.ravel()]
    else:
        codes = [int(c) for c in rows.ravel()]
    missing = coloring.missing_label
    names = [missing if c < 0 else coloring.categories[c] for c in codes]
    order = [*coloring.categories, missing]
    cmap = {**dict(zip(coloring.categories, coloring.colors, strict=True))}
    cmap[missing] = _colors.MISSING_COLOR
    return pd.Categorical(names, categories=order), cmap


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
) -> Any:
    """Scatter of a computed projection with a ``layer`` widget, coloured by an attribute.

    The keywords are those of :func:`pvx.plot.projection`; HoloViews draws two components.
    A ``variant`` dimension becomes a second widget; a list of colours a ``Layout`` of one
    panel per colour, sharing the widgets.

    Returns
    -------
    holoviews.HoloMap or holoviews.Layout
        ``Scatter`` elements (overlaid with neighbour ``Segments`` for ``neighbors=``) keyed
        by ``layer`` (and ``variant``); a plain element without those dimensions.

    Examples
    --------
    >>> import pvx.decomposition, pvx.hvplot, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> view = pvx.hvplot.projection(pvx.decomposition.pca(da), color="age")
    >>> view.kdims[0].name, list(view.keys())
    ('layer', [0, 1, 2])
    """
    hv = _hv()

    checked = projection_input(
        result,
        components=components,
        axes=axes,
        color=color,
        groups=groups,
        color_values=color_values,
        max_components=2,
    )
    scores, comps, colors = checked.scores, checked.comps, checked.colors
    name = str(scores.name)
    prefix = _AXIS_NAMES.get(name, f"{name} ").strip()
    names = [f"{prefix}{c}" if prefix == "PC" else f"{prefix} {c}" for c in comps]
    method = _METHOD_TITLES.get(name, name)
    panels = []
    for c in colors:
        by_variant = {
            v: _scatter(
                one_variant(scores, v),
                None if neighbors is None else one_variant(neighbors, v),
                comps,
                names,
                coloring_options={
                    "color": c,
                    "groups": groups,
                    "color_values": color_values,
                    "max_categories": max_categories,
                },
                hover=hover,
                axes=axes,
                marker_size=marker_size,
                size=(width or _WIDTH, height or _HEIGHT),
            )
            for v in variant_labels(scores)
        }
        heading = title if title is not None else f"{method} · colour: {c}" if c else method
        view = _by_variant({v: view for v, (view, _) in by_variant.items()})
        # a Layout names the widget values once, above its panels
        dims = " · {dimensions}" if isinstance(view, hv.HoloMap) and len(colors) == 1 else ""
        panels.append(view.opts(title=_literal(heading) + dims))
    return panels[0] if len(panels) == 1 else hv.Layout(panels).cols(2)


def _scatter(
    scores: xr.DataArray,
    neighbors: xr.Dataset | None,
    comps: Sequence[int],
    names: Sequence[str],
    *,
    coloring_options: dict[str, Any],
    hover: Sequence[Hashable] | None,
    axes: str,
    marker_size: float | None,
    size: tuple[int, int],
) -> tuple[Any, Any]:
    """One variant's scatter, over layers; returns (view, colouring)."""
    hv = _hv()
    from hvplot import hvPlotTabular  # not hvplot.pandas, whose import reloads BokehJS

    layers = _layer_labels(scores)
    order = ["layer", _P, "component"] if "layer" in scores.dims else [_P, "component"]
    xyz = scores.sel(component=list(comps)).transpose(*order).values
    xyz = xyz.reshape(len(layers), scores.sizes[_P], len(comps))
    n = scores.sizes[_P]
    frame = pd.DataFrame(
        {
            "layer": np.repeat(np.asarray(layers, dtype=object), n),
            "id": np.tile(_persona_ids(scores), len(layers)),
        }
    )
    if "name" in scores.coords:
        frame["name"] = np.tile(np.asarray(scores["name"].values, dtype=object), len(layers))
    for j, column in enumerate(names):
        frame[column] = xyz[:, :, j].ravel()
    coloring = _coloring(scores, layers, **coloring_options)
    # the colour column is shown on hover already
    fields = [str(f) for f in _hover_fields(scores, hover) if f != coloring.title]
    for f in fields:
        frame[f] = np.tile(np.asarray(scores[f].values, dtype=object), len(layers))
    kwargs: dict[str, Any] = {
        "x": names[0],
        "y": names[1],
        "hover_cols": [c for c in ("id", "name") if c in frame] + fields,
        "framewise": axes == "per_layer",
        "width": size[0],
        "height": size[1],
        "size": (marker_size or (7 if n <= 200 else 5 if n <= 2000 else 3)) ** 2,
    }
    if coloring.kind != "none":
        column = coloring.title if coloring.title not in frame else f"{coloring.title} "
        values, cmap = _color_column(coloring, len(layers))
        frame[column] = values
        if isinstance(values, pd.Categorical):  # legends list categories as first drawn
            frame = frame.iloc[np.argsort(values.codes, kind="stable")]
        kwargs.update(c=column, cmap=cmap)
        if coloring.kind == "numeric":
            kwargs.update(clim=(coloring.cmin, coloring.cmax), colorbar=True)
    if "layer" in scores.dims:
        kwargs.update(groupby="layer", dynamic=False)
    else:
        frame = frame.drop(columns="layer")
    view = hvPlotTabular(frame).scatter(**kwargs)
    if coloring.kind == "numeric":
        # one colour range for every layer, as a dimension range HoloViews normalises by
        view = view.redim.range(**{kwargs["c"]: (coloring.cmin, coloring.cmax)})
        view = view.opts(clipping_colors={"NaN": _colors.MISSING_COLOR})
    if neighbors is not None:
        edges = _knn_edges(neighbors, _persona_ids(scores), layers)
        segments = {
            layer: hv.Segments(
                np.column_stack(
                    [
                        xyz[i, edges[min(i, len(edges) - 1), 0]],
                        xyz[i, edges[min(i, len(edges) - 1), 1]],
                    ]
                ),
                kdims=["x0", "y0", "x1", "y1"],
                label="nearest neighbours",
            ).opts(color="gray", alpha=0.35, line_width=1)
            for i, layer in enumerate(layers)
        }
        lines = (
            hv.HoloMap(segments, kdims=["layer"]) if "layer" in scores.dims else segments[layers[0]]
        )
        view = lines * view
    return view, coloring


@_variant_widget
def heatmap(
    sim: xr.DataArray,
    *,
    order: Any = None,
    order_layer: Any = None,
    labels: str = "id",
    max_rows: int | None = 800,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """A cosine matrix as an image with a ``layer`` widget; rows keep one order on all layers.

    Keywords as in :func:`pvx.plot.heatmap`.

    Returns
    -------
    holoviews.HoloMap
        ``Image`` elements keyed by layer; x and y are positions in the row order (``col``,
        ``row``, labelled with the persona ids when there are at most 60), the value is
        ``cosine``; hovering a cell names its row and column personas.
    """
    from hvplot import hvPlot  # not hvplot.xarray, whose import reloads BokehJS

    prepared = charts.matrix(
        sim, order=order, order_layer=order_layer, labels=labels, max_rows=max_rows, title=title
    )
    n = len(prepared.ticks)
    coords: dict[str, Any] = {"row": np.arange(n), "col": np.arange(n)}
    layered = "layer" in sim.dims
    z = prepared.z if layered else prepared.z[0]
    if layered:
        coords["layer"] = prepared.layers
    image = xr.DataArray(z, dims=["layer", "row", "col"][-z.ndim :], coords=coords, name="cosine")
    kwargs: dict[str, Any] = {
        "x": "col",
        "y": "row",
        "cmap": "RdBu_r",
        "clim": (-1.0, 1.0),
        "flip_yaxis": True,
        "width": width or 560,
        "height": height or 500,
    }
    if n <= 60:
        ticks = list(enumerate(prepared.ticks))
        kwargs.update(xticks=ticks, yticks=ticks, rot=45)
    if layered:
        kwargs.update(groupby="layer", dynamic=False)
    kwargs["tools"] = [_label_hover(prepared.ticks)]
    view = hvPlot(image).image(**kwargs)
    dims = " · {dimensions}" if layered else ""
    return view.opts(title=_literal(prepared.title) + dims)


def _label_hover(labels: Sequence[str]) -> Any:
    """A hover naming a cell's row and column personas: the image's axes are positions in
    the row order (ids on the ticks only up to 60 rows)."""
    from bokeh.models import CustomJSHover, HoverTool

    # text, not HTML: bokeh shows a formatter's result as text
    name = CustomJSHover(
        args={"labels": list(labels)},
        code="const i = Math.round(value); return i >= 0 && i < labels.length ? labels[i] : '';",
    )
    return HoverTool(
        tooltips=[("row", "$y{custom}"), ("column", "$x{custom}"), ("cosine", "@image{0.000}")],
        formatters={"$x": name, "$y": name},
    )


def draw_lines(chart: charts.LineChart, *, width: int | None, height: int | None) -> Any:
    """A HoloViews overlay of a prepared :class:`~pvx.views.charts.LineChart`."""
    hv = _hv()

    x = np.asarray(chart.x)
    layers = []
    for series in chart.series:
        if series.low is not None:
            layers.append(
                hv.Area(
                    (x, series.low, series.y), kdims=["x"], vdims=["low", "high"], label=series.name
                ).opts(color=series.color, line_alpha=0, alpha=0.35)
            )
            continue
        dash = {"dash": "dashed", "dot": "dotted"}.get(series.dash or "", "solid")
        curve = hv.Curve((x, series.y), chart.x_title, chart.hover_value, label=series.name)
        layers.append(curve.opts(color=series.color, line_dash=dash, tools=["hover"]))
        if series.markers:
            points = hv.Scatter((x, series.y), chart.x_title, chart.hover_value, label=series.name)
            layers.append(points.opts(color=series.color, size=5))
    overlay = hv.Overlay(layers).opts(
        title=_literal(chart.title),
        width=width or 650,
        height=height or 420,
        legend_position="right",
        xlabel=chart.x_title,
        ylabel=chart.y_title,
    )
    if chart.y_range is not None:
        overlay = overlay.opts(ylim=chart.y_range)
    return overlay


@_variant_widget
def scree(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = None,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Scree curves, one per layer, as in :func:`pvx.plot.scree`.

    Returns
    -------
    holoviews.Overlay
        One ``Curve`` (and its markers) per layer.
    """
    chart = charts.scree_chart(
        evr, cumulative=cumulative, max_components=max_components, title=title
    )
    return draw_lines(chart, width=width, height=height)


@_variant_widget
def variance_heatmap(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = 50,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Layer × component heatmap of explained-variance ratios, as in
    :func:`pvx.plot.variance_heatmap`.

    Returns
    -------
    holoviews.HeatMap
    """
    from hvplot import hvPlot

    ratio = charts.variance_ratios(
        evr, cumulative=cumulative, max_components=max_components, func="variance_heatmap"
    )
    charts._layer_axis(ratio, "variance_heatmap")
    what = "cumulative ratio" if cumulative else "ratio"
    heading = title if title is not None else "Explained variance by layer and component"
    view = hvPlot(ratio.rename(what)).heatmap(
        x="component", y="layer", C=what, cmap="viridis", width=width or 650, height=height or 420
    )
    return view.opts(title=_literal(heading + charts.variant_suffix(ratio)))


@_variant_widget
def pair_trajectories(
    ps: xr.Dataset,
    *,
    top: int | None = None,
    max_pairs: int = 10,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Cosine of chosen persona pairs across layers against the all-pairs median and band,
    as in :func:`pvx.plot.pair_trajectories`.

    Returns
    -------
    holoviews.Overlay
    """
    chart = charts.pair_chart(ps, top=top, max_pairs=max_pairs, title=title)
    return draw_lines(chart, width=width, height=height)


def variant_lines(
    vs: xr.Dataset,
    *,
    personas: Sequence[Hashable] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """How the prompt variant moves personas, by layer, as in :func:`pvx.plot.variant_lines`.

    Returns
    -------
    holoviews.Overlay
    """
    chart = charts.variant_chart(vs, personas=personas, quantiles=quantiles, title=title)
    return draw_lines(chart, width=width, height=height)


@_variant_widget
def dendrogram(
    tree: xr.Dataset,
    *,
    names: Any = None,
    max_labels: int = 80,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Dendrogram per layer on a shared height axis, as in :func:`pvx.plot.dendrogram`.

    Returns
    -------
    holoviews.HoloMap
        ``Overlay`` of the merges (``Path``) and the leaves (``Points`` with id and name on
        hover) keyed by layer.
    """
    hv = _hv()

    prepared = charts.tree(tree, names=names, title=title)
    ids, n = prepared.ids, len(prepared.ids)
    names_by_id = [str(prepared.names.get(i, i)) for i in ids]

    def one(i: int) -> Any:
        x, y, leaves = prepared.lines[i]
        merges = hv.Path([np.column_stack([x, y])], kdims=["leaf", "merge distance"])
        leaf_frame = pd.DataFrame(
            {
                "leaf": prepared.leaf_x,
                "merge distance": np.zeros(n),
                "id": [str(ids[j]) for j in leaves],
                "name": [names_by_id[j] for j in leaves],
            }
        )
        points = hv.Points(leaf_frame, kdims=["leaf", "merge distance"], vdims=["id", "name"])
        ticks = (
            list(zip(prepared.leaf_x.tolist(), [names_by_id[j] for j in leaves], strict=True))
            if n <= max_labels
            else []
        )
        return (
            merges.opts(color=_INK, line_width=1)
            * points.opts(color=_colors.DEFAULT_COLOR, size=5, tools=["hover"])
        ).opts(
            xticks=ticks,
            xrotation=60,
            ylim=(0, prepared.top),
            xlim=(0, 10 * n),
            width=width or 700,
            height=height or 420,
        )

    if "layer" in tree.dims:
        view = hv.HoloMap(
            {label: one(i) for i, label in enumerate(prepared.layers)}, kdims=["layer"]
        )
        return view.opts(title=_literal(prepared.title) + " · {dimensions}")
    return one(0).opts(title=_literal(prepared.title))


def save(view: Any, path: Any, *, title: str | None = None) -> Any:
    """Save a HoloViews view as one HTML file that works offline.

    BokehJS is embedded (``resources="inline"``) instead of loaded from a CDN, and every
    widget state (each layer, each variant) is stored in the page, so the widgets work
    without a Python kernel. Returns the path.

    Examples
    --------
    >>> import pathlib, tempfile, pvx.decomposition, pvx.hvplot, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=2, seed=0)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "pca.html"
    >>> pvx.hvplot.save(pvx.hvplot.projection(pvx.decomposition.pca(da)), out).exists()
    True
    """
    import panel as pn

    pn.panel(view).save(
        str(path), embed=True, resources="inline", title=title or "pvx", progress=False
    )
    page = Path(path)
    page.write_text(_without_cdn(page.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def _without_cdn(page: str) -> str:
    """``page`` with the stylesheets Panel still links from its CDN when saving with inline
    resources (Panel 1.9: its layouts' own CSS) embedded as data URLs, and its icon links
    dropped: opened offline, the page would fetch them (or fail to)."""
    from panel.io.resources import CDN_DIST, DIST_DIR

    def data_url(path: Path, kind: str) -> str:
        return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")

    def embedded(match: re.Match[str]) -> str:
        css = DIST_DIR / match[1]
        if not css.is_file():
            return match[0]
        text = css.read_text(encoding="utf-8")

        def image(found: re.Match[str]) -> str:  # the spinners' ../assets/*.svg, relative
            svg = (css.parent / found[1]).resolve()
            inside = svg.is_relative_to(DIST_DIR.resolve()) and svg.is_file()
            return f"url('{data_url(svg, 'image/svg+xml')}')" if inside else found[0]

        text = re.sub(r"url\('?(\.\./[\w./-]+\.svg)'?\)", image, text)
        return "data:text/css;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")

    page = re.sub(re.escape(CDN_DIST) + r"([\w./-]+\.css)(?:\?[\w.=&-]*)?", embedded, page)
    return re.sub(r'<link rel="(?:apple-touch-icon|icon)"[^>]*>', "", page)


@_variant_widget
def probe_lines(
    result: xr.Dataset,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Probe score by layer over shuffled-label bands, as in :func:`pvx.plot.probe_lines`.

    Returns
    -------
    holoviews.Overlay
    """
    return draw_lines(charts.probe_chart(result, title=title), width=width, height=height)


@_variant_widget
def probe_heatmap(
    result: xr.Dataset,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Attribute × layer heatmap of the probes' gain, as in :func:`pvx.plot.probe_heatmap`.

    Returns
    -------
    holoviews.HeatMap
    """
    from hvplot import hvPlot

    gain = charts.gain_grid(result)
    heading = title if title is not None else "Probe gain over shuffled labels"
    view = hvPlot(gain.rename("gain")).heatmap(
        x="layer",
        y="attribute",
        C="gain",
        cmap="viridis",
        width=width or 650,
        height=height or 420,
    )
    return view.opts(title=_literal(heading + charts.variant_suffix(gain)))


def association_heatmap(
    v: xr.DataArray,
    *,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
) -> Any:
    """Heatmap of Cramér's V between attributes, as in :func:`pvx.plot.association_heatmap`.

    Returns
    -------
    holoviews.HeatMap
    """
    from hvplot import hvPlot

    grid = charts.association_grid(v)
    heading = title if title is not None else "Association between attributes (Cramér's V)"
    view = hvPlot(grid.rename("cramers_v")).heatmap(
        x="attribute_other",
        y="attribute",
        C="cramers_v",
        cmap="viridis",
        clim=(0, 1),
        rot=45,
        width=width or 600,
        height=height or 520,
    )
    return view.opts(title=_literal(heading))
