"""Clusters of personas: k-means (with cluster identities kept across layers) and linkage.

Both work on the centered, normalised vectors through their Gram matrix: k-means on rows
``R`` with ``R Rᵀ`` the doubly centered Gram (pivoted Cholesky: the same distances as the
vectors, so the same partitions as k-means on the vectors), hierarchical clustering on the
Euclidean distances.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import scipy.cluster.hierarchy
import scipy.optimize
import threadpoolctl
import xarray as xr

from pvx import _engine, _lapack, _spectra
from pvx._engine import H, P, Q
from pvx._validate import LayerSelection, check_choice, check_positive_int

__all__ = ["KMEANS_MODES", "LINKAGE_METHODS", "kmeans", "linkage"]

KMEANS_MODES = ("mean_across_layers", "first_layer", "per_layer")
LINKAGE_METHODS = ("ward", "average", "complete", "single")


def _euclidean_embedding(k: np.ndarray, *, center: bool) -> np.ndarray:
    """Rows whose Gram is the doubly centered ``k`` (with ``center``, centred here: a
    transient copy rather than one more matrix held per layer), by pivoted Cholesky to its
    numerical rank: the same distances as the vectors, at a fifth of an
    eigendecomposition's cost."""
    if center:
        return _lapack.dpstrf_rows(_engine._double_center(k), overwrite=True)
    return _lapack.dpstrf_rows(k)


def _first_seen_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters in order of first appearance along personas (deterministic labels)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[np.searchsorted(np.unique(labels), labels)]


@functools.cache
def _threadpools() -> threadpoolctl.ThreadpoolController:
    # scanning the process for thread pools takes milliseconds: once, and only after
    # scikit-learn is imported (its OpenMP runtime must be loaded to be found)
    return threadpoolctl.ThreadpoolController()


def _kmeans_one(
    k: np.ndarray, *, n_clusters: int, seed: int, n_init: int, center: bool
) -> np.ndarray:
    points = _euclidean_embedding(k, center=center)
    return _kmeans_points(points, n_clusters=n_clusters, seed=seed, n_init=n_init)


def _kmeans_points(points: np.ndarray, *, n_clusters: int, seed: int, n_init: int) -> np.ndarray:
    with _engine.import_lock:
        from sklearn.cluster import KMeans

    # One OpenMP thread: scikit-learn's k-means spreads a thousand points over every core,
    # which costs more than it gains and, beside dask's threads doing the same, spins
    # (1000 points x 999 dims: 46 ms against 80 ms alone; 8 fits in 2 threads 0.41 s against
    # 1.52 s). The limit is per thread in OpenMP: other threads keep theirs.
    with _threadpools().limit(limits=1, user_api="openmp"):
        model = KMeans(n_clusters=n_clusters, random_state=seed, n_init=n_init)
        labels = model.fit_predict(points)
    return _first_seen_labels(labels)


def _match_layers(labels: np.ndarray, *, n_clusters: int) -> np.ndarray:
    """Relabel ``(..., layer, persona)`` so each layer's clusters match the previous layer's.

    Hungarian assignment on the overlap counts: a cluster keeps its label where it persists.
    """
    out = labels.copy()
    for index in np.ndindex(*labels.shape[:-2]):
        layers = out[index]
        for i in range(1, layers.shape[0]):
            overlap = np.zeros((n_clusters, n_clusters), dtype=np.int64)
            np.add.at(overlap, (layers[i - 1], layers[i]), 1)
            previous, current = scipy.optimize.linear_sum_assignment(overlap, maximize=True)
            mapping = np.empty(n_clusters, dtype=labels.dtype)
            mapping[current] = previous
            layers[i] = mapping[layers[i]]
    return out


def match_layers(labels: xr.DataArray, *, n_clusters: int | None = None) -> xr.DataArray:
    """Relabel per-layer clusters (``(..., layer, persona)``) so each layer's clusters match
    the previous layer's (see :func:`_match_layers`); lazy on dask. ``n_clusters`` defaults
    to the labels' ``n_clusters`` attribute."""
    n_clusters = n_clusters or int(labels.attrs["n_clusters"])
    matched = xr.apply_ufunc(
        _match_layers,
        _engine.single_chunk(labels, "layer", P),
        input_core_dims=[["layer", P]],
        output_core_dims=[["layer", P]],
        kwargs={"n_clusters": n_clusters},
        dask="parallelized",
        output_dtypes=[np.int64],
    )
    return matched.transpose(*labels.dims).rename(labels.name).assign_attrs(labels.attrs)


def _mean_unit_vectors(da: xr.DataArray) -> xr.DataArray:
    """Each persona's mean over layers of its centered unit vectors (lazy, float64)."""
    x = da.astype(np.float64)
    centered = x - x.mean(P)
    sq = (centered**2).sum(H)
    zero = _engine.zero_rows(sq, (x**2).sum(H).max(P))  # as cosine() finds them
    return (centered / np.sqrt(sq).where(~zero)).fillna(0.0).mean("layer")


def _finite_check(g: np.ndarray, sumsq: np.ndarray, *, ids: tuple[Any, ...]) -> np.ndarray:
    # the layer-mean above spreads one persona's NaN to all; name offenders from the raw rows
    _engine.check_finite_rows(sumsq, ids)
    return g


def kmeans(
    da: xr.DataArray,
    n_clusters: int,
    *,
    layer: LayerSelection = None,
    mode: str = "mean_across_layers",
    seed: int = 0,
    n_init: int = 10,
    n_components: int | None = None,
    include_baseline: bool = False,
) -> xr.DataArray:
    """k-means clusters of the personas, from their centered, normalised vectors.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona``, ``hidden`` and usually ``layer``.
    n_clusters : int
        Number of clusters, at most the number of personas.
    layer : label, list of labels or None
        Layers to use (one label drops the ``layer`` dim, a list keeps it, ``None`` keeps all).
    mode : {"mean_across_layers", "first_layer", "per_layer"}
        ``mean_across_layers`` clusters each persona's mean over the selected layers of its
        centered unit vectors (one labelling); ``first_layer`` clusters the first selected
        layer; ``per_layer`` clusters every layer and matches labels between consecutive
        layers (Hungarian assignment on overlap) so a cluster keeps its label where it can.
    seed : int
        Random state of scikit-learn's ``KMeans``.
    n_init : int
        k-means++ starts per clustering; the best is kept (scikit-learn's ``n_init``).
    n_components : int, optional
        Cluster the personas' scores on their first ``n_components`` principal components
        (as :func:`pvx.decomposition.pca` computes them) instead of the vectors: the usual
        reduction before clustering, several times faster at a thousand personas; with
        ``per_layer`` it shares the eigendecomposition of :func:`pvx.decomposition.pca` and
        the scree over the same layers. At most ``personas - 1`` (what the centred vectors
        span). ``None`` (default) clusters by the vectors' exact distances.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.DataArray
        ``cluster`` (int), dims ``(..., persona)``, or ``(..., layer, persona)`` for
        ``per_layer``. Labels are numbered in order of first appearance along ``persona``
        (on the first layer for ``per_layer``).

    Raises
    ------
    ValueError
        ``n_clusters`` out of range, unknown ``mode``, missing dims, non-finite values (when
        computed, naming the persona ids).

    Notes
    -----
    ``first_layer`` and ``per_layer`` work from the per-layer Gram matrices (shared with the
    other analyses). ``mean_across_layers`` needs inner products across layers, which those
    do not hold, so it builds the layer-mean unit vectors directly: a pass over the vectors of
    its own (still lazy and streamed per persona block).

    Examples
    --------
    >>> import pvx.cluster, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, seed=0)
    >>> pvx.cluster.kmeans(da, 2).values.tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """
    func = "kmeans"
    mode = check_choice(mode, KMEANS_MODES, "mode", func=func)
    da = _engine.prepare_input(
        da, func=func, layer=layer, include_baseline=include_baseline, min_personas=1
    )
    n_clusters = check_positive_int(
        n_clusters,
        "n_clusters",
        func=func,
        maximum=da.sizes[P],
        why=f"there are {da.sizes[P]} personas to cluster",
    )
    n_init = check_positive_int(
        n_init, "n_init", func=func, maximum=10_000, why="k-means++ starts, the best kept"
    )
    if n_components is not None:
        n_components = check_positive_int(
            n_components, "n_components", func=func, maximum=10**9, why="a positive number"
        )
        # centred, the personas span at most personas - 1 dimensions; one persona is one
        # cluster, with nothing to reduce
        n_components = min(n_components, da.sizes[P] - 1, da.sizes[H]) or None
    has_layers = "layer" in da.dims
    if mode == "first_layer" and has_layers:
        da = da.isel(layer=0)
    ids = tuple(_engine.persona_ids(da).tolist())
    if mode == "mean_across_layers" and has_layers:
        gram = _engine.raw_gram(_mean_unit_vectors(da))
        sumsq = (da.astype(np.float64) ** 2).sum(H, skipna=False)
        gram = xr.apply_ufunc(
            _finite_check,
            gram,
            _engine.single_chunk(_engine.bare(sumsq), "layer", P),
            input_core_dims=[[P, Q], ["layer", P]],
            output_core_dims=[[P, Q]],
            kwargs={"ids": ids},
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        kernel = _engine.prepared_gram(gram, center=True, normalize=False)
        center = False  # centering the rows made the Gram doubly centered
    else:
        # the cosines' Gram (shared), centred again in the kernel: normalising uncentred it
        kernel = _engine.prepared(da, center=True, normalize=True)
        center = True
    options = {"n_core": (2,), "n_clusters": n_clusters, "seed": int(seed), "n_init": n_init}
    if n_components is None:
        points, core = kernel, [P, Q]
        options |= {"kernel": _kmeans_one, "center": center}
    else:
        # the same call as pca()'s (its rank bound too): one reduction per layer for both
        points, _ = _spectra.embedding(kernel, n_components, rank=da.sizes[H], center=center)
        core = [P, "component"]
        options |= {"kernel": _kmeans_points}
    labels = xr.apply_ufunc(
        _engine.batched_arrays,
        points,
        input_core_dims=[core],
        output_core_dims=[[P]],
        kwargs=options,
        dask="parallelized",
        output_dtypes=[np.int64],
    )
    if mode == "per_layer" and has_layers:
        labels = match_layers(labels, n_clusters=n_clusters)
    labels.attrs = {"mode": mode, "n_clusters": n_clusters, "seed": int(seed), "n_init": n_init}
    if n_components is not None:
        labels.attrs["n_components"] = n_components
    # A persona attribute named "cluster" (e.g. planted labels) would shadow the result: a
    # DataArray named like one of its coordinates cannot become a Dataset variable.
    return labels.drop_vars("cluster", errors="ignore").rename("cluster")


def _linkage_one(
    prepared: np.ndarray, *, method: str, ids: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # distances straight from the prepared Gram the other analyses share (condensed: the
    # square matrix would be one more personas² array per layer)
    z = scipy.cluster.hierarchy.linkage(_engine.condensed_distances(prepared), method=method)
    order = scipy.cluster.hierarchy.leaves_list(z).astype(np.int64)
    # ids looked up here, not by a task on `order` (see similarity._neighbors_kernel)
    return z, order, np.asarray(ids)[order]


def linkage(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    method: str = "ward",
    include_baseline: bool = False,
) -> xr.Dataset:
    """Hierarchical clustering of the personas' centered, normalised vectors, per layer.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`kmeans`).
    method : {"ward", "average", "complete", "single"}
        Linkage criterion, on Euclidean distances.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``linkage``: the SciPy linkage matrix, dims ``(..., merge, field)`` with ``field`` =
        ``left, right, distance, size``; ``order``: the dendrogram's leaf order as positions
        along ``persona``, dims ``(..., leaf)``, and ``leaf_id``: their ids. For one layer,
        ``sim.isel(persona=order, persona_other=order)`` orders a heatmap.

    Examples
    --------
    >>> import pvx.cluster, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, seed=0)
    >>> tree = pvx.cluster.linkage(da, layer=0)
    >>> first_four = sorted(tree["leaf_id"].values[:4].tolist())  # one planted cluster
    >>> tree["linkage"].shape, first_four in (["p0", "p1", "p2", "p3"], ["p4", "p5", "p6", "p7"])
    ((7, 4), True)
    """
    func = "linkage"
    method = check_choice(method, LINKAGE_METHODS, "method", func=func)
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2,
        why="a merge needs two personas",
    )
    n = da.sizes[P]
    prepared = _engine.prepared(da, center=True, normalize=True)
    ids = tuple(_engine.persona_ids(da).tolist())
    z, order, leaf_id = xr.apply_ufunc(
        _engine.batched_arrays,
        prepared,
        input_core_dims=[[P, Q]],
        output_core_dims=[["merge", "field"], ["leaf"], ["leaf"]],
        kwargs={"kernel": _linkage_one, "n_core": (2,), "method": method, "ids": ids},
        dask="parallelized",
        output_dtypes=[np.float64, np.int64, np.asarray(ids).dtype],
        dask_gufunc_kwargs={"output_sizes": {"merge": n - 1, "field": 4, "leaf": n}},
    )
    ds = xr.Dataset({"linkage": z, "order": order, "leaf_id": leaf_id})
    ds = ds.assign_coords(field=["left", "right", "distance", "size"])
    ds.attrs = {"method": method}
    return ds
