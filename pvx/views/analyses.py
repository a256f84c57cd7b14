"""Analyse-then-draw: run one pvx analysis on persona vectors, then draw it (``da.pv.plot``)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from pvx import cluster, decomposition, manifold, similarity
from pvx._forward import forward
from pvx.views._common import _compute_together
from pvx.views.plotly_lines import pair_trajectories, scree, variance_heatmap, variant_lines
from pvx.views.plotly_matrix import dendrogram, heatmap
from pvx.views.plotly_projection import projection

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
