"""Analyse-then-draw: run one pvx analysis on persona vectors, then draw it.

One function per analysis serves both back ends: :func:`bind` fixes the back end
(``"plotly"`` for :mod:`pvx.plot` and ``da.pv.plot``, ``"holoviews"`` for :mod:`pvx.hvplot`
and ``da.pv.hvplot``), so both take the same keywords and run the same analyses. Each runs
everything it needs (the analysis, k-means for ``color="cluster"``, neighbours, a linkage for
``order="dendrogram"``) in one ``dask.compute``, then hands the results to the back end's
drawing function, which only draws.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Hashable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import xarray as xr

from pvx import cluster, decomposition, manifold, similarity
from pvx._forward import forward
from pvx._validate import BASELINE_ID
from pvx.views._common import (
    _compute_together,
    _layer_labels,
    _persona_ids,
    _scores,
    color_list,
    with_clusters,
)

_FIGURES = {
    "plotly": "plotly.graph_objects.Figure",
    "holoviews": "a HoloViews object (``HoloMap`` over ``layer``, ``Layout`` for several colours)",
}


def _views(backend: str) -> SimpleNamespace:
    """The drawing functions of a back end (imported on first use)."""
    if backend == "plotly":
        from pvx.views import plotly_lines, plotly_matrix, plotly_projection

        return SimpleNamespace(
            projection=plotly_projection.projection,
            heatmap=plotly_matrix.heatmap,
            dendrogram=plotly_matrix.dendrogram,
            scree=plotly_lines.scree,
            variance_heatmap=plotly_lines.variance_heatmap,
            pair_trajectories=plotly_lines.pair_trajectories,
            variant_lines=plotly_lines.variant_lines,
        )
    if backend == "holoviews":
        from pvx.views import holoviews

        return SimpleNamespace(
            projection=holoviews.projection,
            heatmap=holoviews.heatmap,
            dendrogram=holoviews.dendrogram,
            scree=holoviews.scree,
            variance_heatmap=holoviews.variance_heatmap,
            pair_trajectories=holoviews.pair_trajectories,
            variant_lines=holoviews.variant_lines,
        )
    raise ValueError(f"unknown back end {backend!r}; choose 'plotly' or 'holoviews'")


def bind(func: Callable[..., Any], backend: str) -> Callable[..., Any]:
    """``func`` with ``backend=`` fixed: its signature and docs without that parameter."""
    if backend not in _FIGURES:
        raise ValueError(f"unknown back end {backend!r}; choose 'plotly' or 'holoviews'")
    signature = inspect.signature(func)

    @functools.wraps(func)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return func(*args, backend=backend, **kwargs)

    params = [p for name, p in signature.parameters.items() if name != "backend"]
    bound.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    bound.__doc__ = (func.__doc__ or "").replace("{figure}", _FIGURES[backend])
    del bound.__wrapped__  # inspect.signature would otherwise unwrap to func's own
    return bound


_DRAWN_PROJECTION = """\
color : hashable or list of hashable, optional
        A persona attribute, or ``"cluster"``: k-means labels (with ``n_clusters``; without
        it, a ``cluster`` attribute of the personas). A list draws one panel per colour.
    groups : array-like or xarray.DataArray, optional
        Explicit categories per persona (or per layer and persona), instead of ``color``.
    n_clusters : int, optional
        Run :func:`pvx.cluster.kmeans` with this many clusters for ``color="cluster"``
        (computed with the projection in one pass).
    cluster_mode : str
        k-means mode (see :func:`pvx.cluster.kmeans`).
    hover : sequence of hashable, optional
        Persona attributes shown on hover.
    axes : {"fixed", "per_layer"}
        Axis ranges fixed over all layers, or fitted to each.
    max_categories : int
        Legend entries for categorical colours before the rest become ``Other``.
    marker_size : float, optional
        Point size (smaller for more personas by default).
    width, height : int, optional
        Size of each panel in pixels.
    title : str, optional
        Title."""


def _with_doc(**sections: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__doc__ = (func.__doc__ or "").format(figure="{figure}", **sections)
        return func

    return decorate


def _project(
    method: str,
    da: xr.DataArray,
    analysis: dict[str, Any],
    *,
    color: Any,
    n_clusters: int | None,
    cluster_mode: str,
    k: int | None,
    components: Sequence[int] | None,
    draw: dict[str, Any],
    backend: str,
) -> Any:
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
    clusters = _needs_kmeans(color, n_clusters, da, func=method)
    if clusters:
        lazy.append(cluster.kmeans(da, n_clusters, mode=cluster_mode, **common))
    if k is not None:
        lazy.append(similarity.neighbors(da, k, **common))
    computed = list(_compute_together(*lazy))
    result = computed.pop(0)
    if clusters:
        result = with_clusters(result, computed.pop(0))
    neighbors = computed.pop(0) if k is not None else None
    return _views(backend).projection(
        result, color=color, neighbors=neighbors, components=comps, **draw
    )


def _needs_kmeans(color: Any, n_clusters: int | None, da: xr.DataArray, *, func: str) -> bool:
    """Whether ``color`` asks for k-means labels to be computed (``n_clusters`` given)."""
    if "cluster" not in color_list(color):
        return False
    if n_clusters is not None:
        return True
    if "cluster" in da.coords and da["cluster"].dims == ("persona",):
        return False  # the personas' own 'cluster' attribute
    raise ValueError(f"{func}(color='cluster') needs n_clusters=k (k-means on the vectors)")


@_with_doc(drawn=_DRAWN_PROJECTION)
def pca(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | Sequence[Hashable] | None = None,
    groups: Any = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    normalize: bool = True,
    include_baseline: bool = False,
    hover: Sequence[Hashable] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Layered PCA scatter: :func:`pvx.decomposition.pca`, then ``projection``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors ``(persona, layer, hidden)``, maybe with a ``variant`` dimension
        (one panel row, or a widget, per variant).
    layer : label, list of labels or None
        Layers to show (default all).
    components : sequence of int, optional
        Components to draw, ``(1, 2)`` by default; three give a 3-D plot (Plotly).
    k : int, optional
        Link each persona to its ``k`` nearest neighbours (:func:`pvx.similarity.neighbors`).
    normalize : bool
        Normalise the centered vectors first (see :func:`pvx.decomposition.pca`).
    include_baseline : bool
        Show the ``baseline_assistant`` persona (its attributes are missing: grey).
    {drawn}

    Returns
    -------
    {figure}
    """
    return _project(
        "pca",
        da,
        {"layer": layer, "normalize": normalize, "include_baseline": include_baseline},
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        draw=_projection_draw(locals()),
        backend=backend,
    )


def _projection_draw(arguments: dict[str, Any]) -> dict[str, Any]:
    keys = ("groups", "hover", "axes", "max_categories", "marker_size", "width", "height", "title")
    return {key: arguments[key] for key in keys}


@_with_doc(drawn=_DRAWN_PROJECTION)
def umap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | Sequence[Hashable] | None = None,
    groups: Any = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    n_neighbors: int | None = None,
    normalize: bool = True,
    seed: int = 42,
    include_baseline: bool = False,
    hover: Sequence[Hashable] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Layered UMAP scatter: :func:`pvx.manifold.umap`, then ``projection``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show (default all).
    components : sequence of int, optional
        Components to draw, ``(1, 2)`` by default.
    k : int, optional
        Link each persona to its ``k`` nearest neighbours.
    n_neighbors, normalize, seed
        UMAP options (see :func:`pvx.manifold.umap`).
    include_baseline : bool
        Show the ``baseline_assistant`` persona.
    {drawn}

    Returns
    -------
    {figure}
    """
    analysis = {
        "layer": layer,
        "n_neighbors": n_neighbors,
        "normalize": normalize,
        "seed": seed,
        "include_baseline": include_baseline,
    }
    return _project(
        "umap",
        da,
        analysis,
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        draw=_projection_draw(locals()),
        backend=backend,
    )


@_with_doc(drawn=_DRAWN_PROJECTION)
def isomap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] | None = None,
    color: Hashable | Sequence[Hashable] | None = None,
    groups: Any = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    k: int | None = None,
    n_neighbors: int = 8,
    include_baseline: bool = False,
    hover: Sequence[Hashable] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Layered Isomap scatter: :func:`pvx.manifold.isomap`, then ``projection``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show (default all).
    components : sequence of int, optional
        Components to draw, ``(1, 2)`` by default.
    k : int, optional
        Link each persona to its ``k`` nearest neighbours.
    n_neighbors : int
        Isomap's neighbourhood size.
    include_baseline : bool
        Show the ``baseline_assistant`` persona.
    {drawn}

    Returns
    -------
    {figure}
    """
    analysis = {"layer": layer, "n_neighbors": n_neighbors, "include_baseline": include_baseline}
    return _project(
        "isomap",
        da,
        analysis,
        color=color,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        k=k,
        components=components,
        draw=_projection_draw(locals()),
        backend=backend,
    )


@_with_doc(drawn=_DRAWN_PROJECTION)
def projection(
    result: xr.DataArray | xr.Dataset,
    *,
    vectors: xr.DataArray,
    color: Hashable | Sequence[Hashable] | None = None,
    groups: Any = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    components: Sequence[int] | None = None,
    hover: Sequence[Hashable] | None = None,
    axes: str = "fixed",
    max_categories: int = 10,
    marker_size: float | None = None,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Recolour a computed projection; ``color="cluster"`` runs k-means on ``vectors``.

    Parameters
    ----------
    result : xarray.DataArray or xarray.Dataset
        A computed :func:`pvx.decomposition.pca`, :func:`pvx.manifold.umap` or
        :func:`pvx.manifold.isomap` of ``vectors``.
    vectors : xarray.DataArray
        The persona vectors (``da`` of ``da.pv.plot.projection``).
    components : sequence of int, optional
        Components to draw.
    {drawn}

    Returns
    -------
    {figure}
    """
    draw = _projection_draw(locals())
    if _needs_kmeans(color, n_clusters, vectors, func="projection"):
        scores, _ = _scores(result)
        layers = _layer_labels(scores)
        labels = cluster.kmeans(
            vectors,
            n_clusters,
            layer=None if layers == [None] else list(layers),
            mode=cluster_mode,
            include_baseline=BASELINE_ID in set(_persona_ids(scores).tolist()),
        )
        result = with_clusters(result, *_compute_together(labels))
    return _views(backend).projection(result, color=color, components=components, **draw)


def cosine(
    da: xr.DataArray,
    *,
    layer: Any = None,
    order: Any = None,
    order_layer: Any = None,
    method: str = "ward",
    center: bool = True,
    include_baseline: bool = False,
    labels: str = "id",
    max_rows: int | None = 800,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Similarity heatmap per layer: :func:`pvx.similarity.cosine`, then ``heatmap``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show.
    order : "dendrogram", array-like or None
        ``"dendrogram"`` orders rows by the leaf order of :func:`pvx.cluster.linkage`
        (``method``) on ``order_layer`` (default: the last shown layer), computed with the
        cosine in one pass; or persona positions or ids.
    order_layer : label, optional
        The layer whose dendrogram orders the rows.
    method : str
        Linkage method for ``order="dendrogram"``.
    center : bool
        Centered cosine (default).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    labels : {"id", "name"}
        Row and column labels.
    max_rows : int or None
        Average neighbouring rows into at most this many blocks.
    width, height : int, optional
        Size in pixels.
    title : str, optional
        Title.

    Returns
    -------
    {figure}
    """
    sim = similarity.cosine(da, layer=layer, center=center, include_baseline=include_baseline)
    if isinstance(order, str):
        if order != "dendrogram":
            raise ValueError(
                f"cosine() got order={order!r}; pass 'dendrogram', persona positions or ids"
            )
        if order_layer is None:
            shown = np.atleast_1d(sim["layer"].values) if "layer" in sim.coords else [None]
            order_layer = shown[-1]
        tree = cluster.linkage(
            da, layer=order_layer, method=method, include_baseline=include_baseline
        )
        sim, order = _compute_together(sim, tree)
    draw = {"labels": labels, "max_rows": max_rows, "width": width, "height": height}
    return _views(backend).heatmap(sim, order=order, order_layer=order_layer, title=title, **draw)


def pair_similarity(
    da: xr.DataArray,
    pairs: Sequence[tuple[Hashable, Hashable]] | None = None,
    *,
    layer: Any = None,
    top: int | None = None,
    max_pairs: int = 10,
    quantiles: tuple[float, float] = (0.05, 0.95),
    include_baseline: bool = False,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Pair trajectories: :func:`pvx.similarity.pair_similarity`, then ``pair_trajectories``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    pairs : sequence of (id, id), optional
        Pairs to draw; ``None`` computes every pair and draws the ``top`` (default 5) that
        change most across layers.
    layer : label, list of labels or None
        Layers to show.
    top : int, optional
        Draw the pairs whose cosine changes most.
    max_pairs : int
        Without ``top``: draw every pair if there are at most this many.
    quantiles : (float, float)
        The all-pairs band.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    width, height : int, optional
        Size in pixels.
    title : str, optional
        Title.

    Returns
    -------
    {figure}
    """
    ps = similarity.pair_similarity(
        da, pairs, layer=layer, quantiles=quantiles, include_baseline=include_baseline
    )
    if pairs is None and top is None:
        top = 5
    return _views(backend).pair_trajectories(
        ps, top=top, max_pairs=max_pairs, width=width, height=height, title=title
    )


def variant_similarity(
    da: xr.DataArray,
    a: Hashable,
    b: Hashable,
    *,
    layer: Any = None,
    personas: Sequence[Hashable] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    include_baseline: bool = False,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Variant shift: :func:`pvx.similarity.variant_similarity`, then ``variant_lines``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with a ``variant`` dimension.
    a, b : hashable
        The two variants compared.
    layer : label, list of labels or None
        Layers to show.
    personas : sequence of hashable, optional
        Persona ids drawn individually.
    quantiles : (float, float)
        The band over personas.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    width, height : int, optional
        Size in pixels.
    title : str, optional
        Title.

    Returns
    -------
    {figure}
    """
    vs = similarity.variant_similarity(da, a, b, layer=layer, include_baseline=include_baseline)
    return _views(backend).variant_lines(
        vs, personas=personas, quantiles=quantiles, width=width, height=height, title=title
    )


def explained_variance(
    da: xr.DataArray,
    *,
    layer: Any = None,
    heatmap: bool = False,
    cumulative: bool = False,
    max_components: int | None = None,
    normalize: bool = True,
    include_baseline: bool = False,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Scree: :func:`pvx.decomposition.explained_variance`, then ``scree`` curves.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show.
    heatmap : bool
        Draw the layer × component ``variance_heatmap`` instead of curves.
    cumulative : bool
        The cumulative ratio.
    max_components : int, optional
        Only the first components (the heatmap shows 50 by default).
    normalize : bool
        Normalise the centered vectors first.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    width, height : int, optional
        Size in pixels.
    title : str, optional
        Title.

    Returns
    -------
    {figure}
    """
    evr = decomposition.explained_variance(
        da, layer=layer, normalize=normalize, include_baseline=include_baseline
    )
    views = _views(backend)
    if heatmap:
        return views.variance_heatmap(
            evr,
            cumulative=cumulative,
            max_components=50 if max_components is None else max_components,
            width=width,
            height=height,
            title=title,
        )
    return views.scree(
        evr,
        cumulative=cumulative,
        max_components=max_components,
        width=width,
        height=height,
        title=title,
    )


def linkage(
    da: xr.DataArray,
    *,
    layer: Any = None,
    method: str = "ward",
    include_baseline: bool = False,
    max_labels: int = 80,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Dendrogram: :func:`pvx.cluster.linkage`, then ``dendrogram`` with the names of ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors.
    layer : label, list of labels or None
        Layers to show.
    method : str
        Linkage method.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.
    max_labels : int
        Label the leaves when there are at most this many.
    width, height : int, optional
        Size in pixels.
    title : str, optional
        Title.

    Returns
    -------
    {figure}
    """
    tree = cluster.linkage(da, layer=layer, method=method, include_baseline=include_baseline)
    names = da["name"] if "name" in da.coords and "id" in da.coords else None
    return _views(backend).dendrogram(
        tree, names=names, max_labels=max_labels, width=width, height=height, title=title
    )


ANALYSES = {
    "pca": pca,
    "umap": umap,
    "isomap": isomap,
    "cosine": cosine,
    "pair_similarity": pair_similarity,
    "variant_similarity": variant_similarity,
    "explained_variance": explained_variance,
    "linkage": linkage,
}


def accessor_class(backend: str, doc: str) -> type:
    """The ``da.pv.plot`` / ``da.pv.hvplot`` namespace of a back end: one method per analysis
    (``scree`` is ``explained_variance``), plus ``projection`` to recolour a result."""
    methods: dict[str, Any] = {
        name: forward(bind(func, backend)) for name, func in ANALYSES.items()
    }
    methods["projection"] = forward(bind(projection, backend), as_keyword="vectors")
    methods["scree"] = methods["explained_variance"]

    def __init__(self: Any, da: xr.DataArray) -> None:
        self._da = da

    return type(
        {"plotly": "PlotAccessor", "holoviews": "HvplotAccessor"}[backend],
        (),
        {"__init__": __init__, "__doc__": doc, "__module__": __name__, **methods},
    )
