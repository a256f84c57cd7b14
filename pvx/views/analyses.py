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
from typing import Any

import numpy as np
import xarray as xr

from pvx import attributes as _attributes  # the name 'attributes' is a parameter here
from pvx import cluster, decomposition, similarity
from pvx._forward import forward
from pvx.views._backends import backend_views
from pvx.views._common import (
    _compute_together,
)
from pvx.views.analyses_projection import isomap, pca, projection, umap

_FIGURES = {
    "plotly": "plotly.graph_objects.Figure",
    "holoviews": "a HoloViews object (``HoloMap`` over ``layer``, ``Layout`` for several colours)",
}


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
    return backend_views(backend).heatmap(
        sim, order=order, order_layer=order_layer, title=title, **draw
    )


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
    return backend_views(backend).pair_trajectories(
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
    return backend_views(backend).variant_lines(
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
    views = backend_views(backend)
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
    return backend_views(backend).dendrogram(
        tree, names=names, max_labels=max_labels, width=width, height=height, title=title
    )


def probe(
    da: xr.DataArray,
    attributes: Hashable | Sequence[Hashable] | None = None,
    *,
    layer: Any = None,
    folds: int = 5,
    permutations: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
    C: float = 1.0,
    normalize: bool = True,
    heatmap: bool = False,
    include_baseline: bool = False,
    width: int | None = None,
    height: int | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Which layers encode which attributes: :func:`pvx.attributes.probe`, then
    ``probe_lines`` (score by layer over the shuffled-label band, one line per attribute)
    or, with ``heatmap=True``, ``probe_heatmap`` (attribute × layer gain).

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with persona attributes.
    attributes : name or list of names, optional
        Attributes to probe (default all).
    layer : label, list of labels or None
        Layers to probe.
    folds, permutations, seed
        Cross-validation folds, shuffled-label repetitions and their seed.
    alpha, C, normalize
        Ridge penalty, logistic inverse penalty, and whether the vectors are normalised
        (see :func:`pvx.attributes.probe`).
    heatmap : bool
        Draw the gain heatmap instead of the lines.
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
    result = _attributes.probe(
        da,
        attributes,
        layer=layer,
        folds=folds,
        permutations=permutations,
        seed=seed,
        alpha=alpha,
        C=C,
        normalize=normalize,
        include_baseline=include_baseline,
    )
    (result,) = _compute_together(result)
    views = backend_views(backend)
    draw = views.probe_heatmap if heatmap else views.probe_lines
    return draw(result, width=width, height=height, title=title)


ANALYSES = {
    "pca": pca,
    "umap": umap,
    "isomap": isomap,
    "cosine": cosine,
    "pair_similarity": pair_similarity,
    "variant_similarity": variant_similarity,
    "explained_variance": explained_variance,
    "linkage": linkage,
    "probe": probe,
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
