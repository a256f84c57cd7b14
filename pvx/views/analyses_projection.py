"""Analyse-then-draw for projections: PCA, UMAP and Isomap scatters, and recolouring a
computed projection (k-means for ``color="cluster"``). See :mod:`pvx.views.analyses`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import xarray as xr

from pvx import cluster, decomposition, manifold, similarity
from pvx._validate import BASELINE_ID
from pvx.views._backends import backend_views
from pvx.views._common import (
    _compute_together,
    _layer_labels,
    _persona_ids,
    _scores,
    color_list,
    with_clusters,
)

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
    return backend_views(backend).projection(
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
    n_epochs: int | None = manifold.DEFAULT_UMAP_EPOCHS,
    init: str = "pca",
    aligned: bool = False,
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
    n_neighbors, normalize, seed, n_epochs, init, aligned
        UMAP options (see :func:`pvx.manifold.umap`); ``aligned=True`` starts each layer
        from the layout of the layer before it, so the slider's frames stay comparable.
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
        "n_epochs": n_epochs,
        "init": init,
        "aligned": aligned,
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
    normalize : bool
        Normalise the centered vectors first (default).
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
        "include_baseline": include_baseline,
    }
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
    return backend_views(backend).projection(result, color=color, components=components, **draw)
