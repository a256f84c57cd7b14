"""Non-linear views of persona space per layer: UMAP, Isomap and TwoNN intrinsic dimension.

Each works on the Euclidean distances between the prepared (centered, normalised) vectors,
which the Gram engine gives without a second pass over the data; the per-layer methods then
run on those ``persona x persona`` matrices, one dask task per layer.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
import scipy.sparse
import xarray as xr

from pvx import _engine, _spectra
from pvx._engine import P, Q
from pvx._validate import LayerSelection, check_n_components, check_positive_int

__all__ = ["isomap", "prepare_umap", "twonn", "umap", "umap_processes"]


def _embed(matrix: xr.DataArray, kernel: Any, size: int, **kwargs: Any) -> xr.DataArray:
    """``kernel`` (one layer's persona x persona matrix -> coordinates) over every layer."""
    coords = xr.apply_ufunc(
        _engine.batched_arrays,
        matrix,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, "component"]],
        kwargs={"kernel": kernel, "n_core": (2,), **kwargs},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"component": size}},
    )
    return coords.assign_coords(component=np.arange(1, size + 1))


def _load_umap() -> Any:
    """Import umap-learn, with its numba functions cached on disk.

    umap-learn compiles most of its numba functions without ``cache=True``, so every fresh
    process spent ~10 s compiling them before its first UMAP. Caching them (in numba's cache
    directory: beside umap-learn's sources when writable, else the user's cache or
    ``NUMBA_CACHE_DIR``) makes that a one-time cost per environment.
    """
    global _umap_module
    with _engine.import_lock:
        if _umap_module is None:
            import numba.core.registry
            import umap as umap_learn  # heavy (numba): imported when UMAP is first used
            import umap.layouts
            import umap.umap_
            import umap.utils

            for module in (umap.umap_, umap.layouts, umap.utils):
                for function in vars(module).values():
                    if isinstance(function, numba.core.registry.CPUDispatcher):
                        with contextlib.suppress(RuntimeError):  # no writable cache location
                            function.enable_caching()
            _umap_module = umap_learn
    return _umap_module


_umap_module: Any = None
_umap_ready = False


def _exact_neighbors(
    distance: np.ndarray, k: int, *, first: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest points of each row of ``distance`` (rows ``first, first + 1, ...``
    of the full matrix; itself first), sorted: exact at any size (umap-learn itself falls
    back to approximate neighbours above 4096 points) and no numba kernel to compile."""
    ranked = distance.copy()
    rows = np.arange(len(ranked))
    ranked[rows, first + rows] = -np.inf  # each point is its own first neighbour, even on ties
    nearest = np.argpartition(ranked, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(ranked, nearest, axis=1), axis=1, kind="stable")
    nearest = np.take_along_axis(nearest, order, axis=1)
    return nearest.astype(np.int32), np.take_along_axis(distance, nearest, axis=1).astype(
        np.float32
    )


def _neighbors_from_gram(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_exact_neighbors` of the rows whose Gram is ``gram``, a block of rows at a
    time: no square distance matrix (hundreds of MB at thousands of personas)."""
    n = gram.shape[0]
    sq = np.diagonal(gram).copy()
    indices = np.empty((n, k), dtype=np.int32)
    dists = np.empty((n, k), dtype=np.float32)
    for first in range(0, n, NEIGHBOR_ROWS):
        block = np.multiply(gram[first : first + NEIGHBOR_ROWS], -2.0)
        block += sq[first : first + NEIGHBOR_ROWS, None]
        block += sq[None, :]
        np.maximum(block, 0.0, out=block)
        np.sqrt(block, out=block)
        rows = np.arange(len(block))
        block[rows, first + rows] = 0.0
        found = _exact_neighbors(block, k, first=first)
        indices[first : first + len(block)], dists[first : first + len(block)] = found
    return indices, dists


# rows of distances made at once when finding neighbours
NEIGHBOR_ROWS = 512


def _quiet_umap_warnings() -> None:
    # pvx never inverts or extends an embedding, and umap warns about both on every fit with
    # precomputed distances. A process-wide filter for just these messages from umap:
    # catch_warnings around each fit is not thread-safe (dask threads leak filters through
    # it), while re-adding an existing filter only moves it to the front.
    for message in ("using precomputed metric; inverse_transform", r"precomputed_knn\[2\]"):
        warnings.filterwarnings("ignore", message=message, module="umap")


# From the PCA start, 200 epochs kept 0.98-1.00 of the trustworthiness of umap-learn's
# default (500 epochs from its spectral start) on the demo store's real embeddings, where
# 30 kept only 0.91-0.95 and 100 0.96-0.98 (planted clusters need far fewer: 30 kept 0.997).
DEFAULT_UMAP_EPOCHS = 200
# Aligned UMAP (each layer from the layout of the layer before it): 40% of the epochs at a
# quarter of umap-learn's learning rate kept 0.995 of umap-learn's default trustworthiness
# on the demo's layers (seeds 1-4; no layer below 0.976), more than 200 epochs from the PCA
# start (0.988); at the full rate 100 epochs kept only 0.975 (benchmarks/README.md).
ALIGNED_EPOCHS_SHARE = 0.4
ALIGNED_LEARNING_RATE = 0.25
UMAP_INITS = ("pca", "spectral", "random")


def _umap_start(scores: np.ndarray) -> np.ndarray:
    """The principal component ``scores`` as UMAP's start, or NaN (umap-learn's spectral
    start is used) where the points coincide along a component."""
    spread = np.ptp(scores, axis=0)
    usable = (spread > 1e-12 * max(1.0, float(np.abs(scores).max()))).all()
    return scores if usable else np.full(scores.shape, np.nan)


def _umap_one(
    indices: np.ndarray,
    dists: np.ndarray,
    start: np.ndarray,
    variance: np.ndarray,
    **kwargs: Any,
) -> Any:
    return _umap_submit(indices, dists, start, variance, **kwargs).result()


def _umap_submit(
    indices: np.ndarray,
    dists: np.ndarray,
    start: np.ndarray,
    variance: np.ndarray,
    *,
    n_neighbors: int,
    n_components: int,
    seed: int,
    n_epochs: int | None = None,
    init: str = "pca",
    learning_rate: float = 1.0,
) -> Future:
    """One layer's UMAP, in a worker process of :func:`umap_processes` if there is one (the
    future of its layout), else here (a future already done)."""
    done: Future = Future()
    if not variance > 0:
        # every persona at one point (e.g. a first-token layer): one point, as in PCA and
        # Isomap, not a layout drawn from arbitrary ties among equal distances
        done.set_result(np.zeros((len(indices), n_components)))
        return done
    kwargs = {"n_neighbors": n_neighbors, "n_components": n_components, "seed": seed}
    kwargs |= {"init": init, "learning_rate": learning_rate}
    if _umap_pool is not None:
        return _umap_pool.submit(_umap_fit, indices, dists, start, n_epochs=n_epochs, **kwargs)
    done.set_result(_umap_fit(indices, dists, start, n_epochs=n_epochs, **kwargs))
    return done


_umap_pool: Executor | None = None


def _umap_chain(
    indices: np.ndarray,
    dists: np.ndarray,
    starts: np.ndarray,
    variances: np.ndarray,
    before: np.ndarray | None,
    *,
    n_epochs: int | None,
    aligned_epochs: int | None,
    **options: Any,
) -> np.ndarray:
    """Aligned UMAP along axis -3 (layers) of ``indices``: each layer starts from the layout
    of the one before it (``before``: the layout the first starts from, if any) and runs
    ``aligned_epochs`` at :data:`ALIGNED_LEARNING_RATE`; a layer with no usable layout
    before it (the first, or after one whose personas are all at one point) runs
    ``n_epochs`` from its own start. The fits of one layer (e.g. of each variant) run at
    once in the worker processes, if any."""
    if before is not None and not np.isfinite(before).all():
        raise ValueError("umap() got a start_layout with NaN or infinite values")
    layouts = np.empty((*indices.shape[:-1], options["n_components"]))
    batches = list(np.ndindex(indices.shape[:-3]))
    previous = {b: None if before is None else before[b] for b in batches}
    for layer in range(indices.shape[-3]):
        fits = {}
        for batch in batches:
            at = (*batch, layer)
            if previous[batch] is not None and not np.isnan(_umap_start(previous[batch])).any():
                start, epochs = previous[batch], aligned_epochs
                # "pca": from the start given; a smaller step keeps what the layout before
                # got right (its full step scrambles it first)
                fit = {**options, "init": "pca", "learning_rate": ALIGNED_LEARNING_RATE}
            else:
                start, epochs, fit = starts[at], n_epochs, options
            args = (indices[at], dists[at], start, variances[at])
            fits[batch] = _umap_submit(*args, n_epochs=epochs, **fit)
        for batch in batches:
            layouts[(*batch, layer)] = previous[batch] = fits[batch].result()
    return layouts


def _aligned_umap(
    indices: xr.DataArray,
    dists: xr.DataArray,
    start: xr.DataArray,
    variance: xr.DataArray,
    before: xr.DataArray | None,
    **kwargs: Any,
) -> xr.DataArray:
    """:func:`_umap_chain` over every layer, one task per block of layers, each waiting for
    the block before it (dask) or in one pass (NumPy)."""
    if "layer" not in indices.dims:  # one layer, selected by label
        args = (x.expand_dims("layer") for x in (indices, dists, start, variance))
        return _aligned_umap(*args, before, **kwargs).isel(layer=0)
    batch = [d for d in indices.dims if d not in ("layer", P, "neighbor")]
    order = [*batch, "layer", P]
    indices = indices.transpose(*order, "neighbor")
    dists = dists.transpose(*order, "neighbor")
    start = start.transpose(*order, "component")
    variance = variance.transpose(*batch, "layer")
    first = None if before is None else before.transpose(*batch, P, ...).data
    inputs = [x for x in (indices, dists, start, variance, before) if x is not None]
    if not any(_engine.is_dask(x) for x in inputs):
        layouts: Any = _umap_chain(
            indices.values, dists.values, start.values, variance.values, first, **kwargs
        )
    else:
        layouts = _chained_blocks(
            [x.data for x in (indices, dists, start, variance)], first, kwargs
        )
    template = indices.isel(neighbor=0, drop=True)
    return xr.DataArray(layouts, dims=(*template.dims, "component"), coords=template.coords)


def _chained_blocks(arrays: list[Any], first: Any, kwargs: dict) -> Any:
    """The dask array of :func:`_umap_chain` over blocks of layers, each block's task
    taking the last layout of the block before it (``first``, NumPy or dask: the layout the
    first block starts from)."""
    import dask
    import dask.array as dsa

    indices, dists, start, variance = (dsa.asarray(a) for a in arrays)
    # One chain over the layers for all variants (one chunk along every other dim): a chain
    # per variant made dask read every layer of one variant before the other's, and hold
    # them for the steps that need both (2.2x the memory of the main job at M).
    layer_axis = indices.ndim - 3
    whole = {axis: -1 for axis in range(indices.ndim) if axis != layer_axis}
    indices, dists, start = (a.rechunk(whole) for a in (indices, dists, start))
    variance = variance.rechunk(indices.chunks[:-2])
    # keys kept (unoptimised): the Grams these come from are shared with the other analyses
    blocks = [a.to_delayed(optimize_graph=False).ravel() for a in (indices, dists, start, variance)]
    chain = dask.delayed(_umap_chain, pure=True)
    if isinstance(first, dsa.Array):  # its keys kept, to be shared with the graph it is from
        first = first.rechunk(-1).to_delayed(optimize_graph=False).ravel()[0]
    previous, assembled = first, []
    for block, layers in enumerate(indices.chunks[layer_axis]):
        task = chain(*(b[block] for b in blocks), previous, **kwargs)
        shape = (*indices.shape[:layer_axis], layers, *start.shape[-2:])
        assembled.append(dsa.from_delayed(task, shape, dtype=np.float64))
        previous = task[..., -1, :, :]
    return dsa.concatenate(assembled, axis=layer_axis)


def _umap_worker_start(parent: int) -> None:
    import signal

    from threadpoolctl import threadpool_limits

    # Ctrl+C reaches the terminal's whole process group: the parent stops the run (and its
    # workers end with it, below); here it would only print a traceback per worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_with(parent)
    threadpool_limits(1)  # one core per worker: the pool has one worker per core
    prepare_umap()


def _end_with(parent: int) -> None:
    """End this worker once ``parent``, the process that started it, is gone: a killed
    ``pvx analyze`` left its worker waiting for loky's idle timeout (5 minutes). A thread
    watches the worker's parent id, which changes when the parent dies (the kernel's
    parent-death signal would follow the thread that started the worker, not the process)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="pvx-parent-watch", daemon=True).start()


@contextlib.contextmanager
def umap_processes(workers: int | None = None) -> Iterator[None]:
    """Run the UMAP fits of computations inside this block in worker processes.

    umap-learn's layout optimisation holds the GIL, so on dask's threaded scheduler its fits
    run one at a time and stall every other task (reads, Gram products) while they do. In a
    block, each fit is sent to one of ``workers`` processes (default: one per core), which
    load umap-learn's cached code as they start; results are identical to in-process fits.
    ``pvx analyze`` uses it on the local scheduler (a distributed cluster's workers are
    processes already).

    Examples
    --------
    >>> import pvx.manifold, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0)
    >>> with pvx.manifold.umap_processes(1):
    ...     emb = pvx.manifold.umap(da).compute()
    >>> emb.sizes["layer"]
    2
    """
    global _umap_pool
    if _umap_pool is not None:  # nested: the outer block's pool serves
        yield
        return
    from loky import get_reusable_executor

    # loky's executor (joblib's) starts clean interpreters without re-running the caller's
    # script, and is reused by later blocks (workers stay warm; idle ones exit after 5 min)
    count = workers or os.cpu_count() or 1
    _umap_pool = get_reusable_executor(
        count, timeout=300, initializer=_umap_worker_start, initargs=(os.getpid(),)
    )
    for _ in range(count):  # start the workers now: they load umap while other work runs
        _umap_pool.submit(os.getpid)
    try:
        yield
    finally:
        _umap_pool = None


def worker_pool() -> Executor | None:
    """The worker processes of the :func:`umap_processes` block running now, if any."""
    return _umap_pool


def _umap_fit(
    indices: np.ndarray,
    dists: np.ndarray,
    start: np.ndarray,
    *,
    n_neighbors: int,
    n_components: int,
    seed: int,
    n_epochs: int | None,
    init: str = "pca",
    learning_rate: float = 1.0,
) -> np.ndarray:
    """umap-learn on the exact neighbours. Its data argument is an empty sparse distance
    matrix: with precomputed neighbours umap-learn reads only its shape, and the layouts
    are the same as from the dense distances (checked bit for bit), in half the time."""
    umap_learn = _load_umap()
    _quiet_umap_warnings()
    n = indices.shape[0]
    layout: Any = init
    if n <= n_components + 1:
        layout = "random"  # the spectral and PCA starts need more points than components + 1
    elif init == "pca":
        # degenerate principal components (points equal along one): umap-learn's own start
        layout = "spectral" if np.isnan(start).any() else start
    model = umap_learn.UMAP(
        n_neighbors=n_neighbors,
        n_components=n_components,
        metric="precomputed",
        precomputed_knn=(indices, dists),
        random_state=seed,
        n_epochs=n_epochs,
        n_jobs=1,  # a fixed seed forces one thread anyway; saying so avoids a warning
        init=layout,
        learning_rate=learning_rate,
    )
    return model.fit_transform(scipy.sparse.csr_matrix((n, n))).astype(np.float64)


def prepare_umap() -> float:
    """Get UMAP's compiled code ready in this process; returns the seconds it took.

    The first UMAP of a process loads umap-learn's numba code from the on-disk cache, or,
    the first time in an environment, compiles it (~10 s). Calling this first lets a caller
    say so instead of a computation stalling silently; ``pvx analyze`` does, and runs it on
    every worker of a distributed cluster before computing.
    """
    global _umap_ready
    start = time.perf_counter()
    if not _umap_ready:
        points = np.random.default_rng(0).standard_normal((12, 3))
        points -= points.mean(axis=0)
        u, s, _ = np.linalg.svd(points, full_matrices=False)
        kwargs = {"n_neighbors": 4, "n_components": 2, "seed": 0}
        indices, dists = _neighbors_from_gram(points @ points.T, 4)
        _umap_fit(indices, dists, _umap_start(u[:, :2] * s[:2]), n_epochs=None, **kwargs)
        _umap_ready = True
    return time.perf_counter() - start


def umap(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    n_components: int = 2,
    normalize: bool = True,
    n_neighbors: int | None = None,
    seed: int = 42,
    n_epochs: int | None = DEFAULT_UMAP_EPOCHS,
    init: str = "pca",
    aligned: bool = False,
    start_layout: xr.DataArray | None = None,
    include_baseline: bool = False,
) -> xr.DataArray:
    """UMAP embedding of the personas, per layer.

    Runs umap-learn on the Euclidean distances between the centered (and, by default,
    normalised) vectors, with a fixed seed: reproducible on one machine.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden`` (and e.g. ``layer``, ``variant``).
    layer : label, list of labels or None
        Layers to analyse: one label drops the ``layer`` dim, a list keeps it, ``None`` keeps
        every layer.
    n_components : int
        Embedding dimension, at most ``personas - 1``.
    normalize : bool
        Normalise the centered rows to unit length first (default).
    n_neighbors : int, optional
        Size of the local neighbourhood; default ``min(15, personas - 1)``.
    seed : int
        Random state of UMAP.
    n_epochs : int or None
        Optimisation epochs. umap-learn's own default (``None``) is 500 below 10,000
        personas; 200 from the PCA start kept at least 0.98 of the trustworthiness of
        umap-learn's default (500 epochs from its spectral start) on the demo store's real
        embeddings, in 40% of the time (``benchmarks/README.md``). Fewer epochs suit
        well-separated clusters only: 30 kept 0.997 on planted data but 0.91 on the demo.
    init : {"pca", "spectral", "random"}
        Starting layout: the top principal components (default; from the distances, so
        free), or umap-learn's own spectral or random start.
    aligned : bool
        Start each layer from the layout of the layer before it (in ``da``'s order), with
        40% of the epochs (of ``n_epochs``, or of umap-learn's own count) at a quarter of
        the learning rate: a layer slider's frames stay comparable (a persona moves only as
        far as its neighbourhood changes), in less than half the time. The first layer (and
        one after a layer whose personas are all at one point) starts from ``init``; with
        ``n_components + 1`` personas or fewer umap-learn starts every layer at random, so
        each is fitted on its own. On the demo store's real embeddings this kept more of
        umap-learn's default quality than the layers fitted alone
        (``benchmarks/README.md``). A layer's layout then depends on the layers before it.
    start_layout : xarray.DataArray, optional
        With ``aligned``: the layout the first layer starts from, e.g. the last layer of an
        earlier aligned call on layers before these; dims ``persona``, ``component`` and
        ``da``'s other dims but ``layer`` and ``hidden`` (e.g. ``variant``), the same personas
        (and variants) in the same order as ``da``. It may be lazy: it is computed with the
        layouts.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.DataArray
        ``umap`` with dims ``(..., persona, component)``, ``component`` numbered from 1.

    Raises
    ------
    ValueError
        Fewer than 3 personas, ``n_components`` or ``n_neighbors`` out of range, non-finite
        values (when computed).

    Examples
    --------
    >>> import pvx.manifold, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0)
    >>> pvx.manifold.umap(da, layer=0).dims
    ('persona', 'component')
    """
    func = "umap"
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=3,
        why="UMAP needs neighbours to embed",
    )
    n = da.sizes[P]
    k = check_n_components(
        n_components, n_persona=n, n_hidden=da.sizes[_engine.H], func=func, limit=n - 1
    )
    if n_neighbors is None:
        n_neighbors = min(15, n - 1)
    n_neighbors = check_positive_int(
        n_neighbors,
        "n_neighbors",
        func=func,
        maximum=n - 1,
        minimum=2,
        why="neighbours exclude self, and UMAP needs two",
    )
    prepared = _engine.prepared(da, center=True, normalize=normalize)
    if n_epochs is not None:
        n_epochs = check_positive_int(
            n_epochs,
            "n_epochs",
            func=func,
            maximum=100_000,
            why="epochs of optimisation",
            too_large="pass fewer",
        )
    if init not in UMAP_INITS:
        raise ValueError(f"{func}() got init={init!r}; choose one of {list(UMAP_INITS)}")
    options = {"n_neighbors": n_neighbors, "n_components": k, "seed": int(seed), "init": init}
    # Two steps: neighbours and start (fast, from the shared Gram and PCA), then the fit
    # (slow, in a worker process under `pvx analyze`), which holds only those small inputs.
    indices, dists = xr.apply_ufunc(
        _engine.batched_arrays,
        prepared,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, "neighbor"], [P, "neighbor"]],
        kwargs={"kernel": _neighbors_from_gram, "n_core": (2,), "k": n_neighbors},
        dask="parallelized",
        output_dtypes=[np.int32, np.float32],
        dask_gufunc_kwargs={"output_sizes": {"neighbor": n_neighbors}},
    )
    if init == "pca" and n > k + 1:
        # the PCA of the same rows, as pca() asks for it: its eigensolve is shared with
        # pca() and explained_variance() computed together
        scores, _ = _spectra.embedding(prepared, k, rank=da.sizes[_engine.H], center=normalize)
        start = xr.apply_ufunc(
            _engine.batched_arrays,
            scores,
            input_core_dims=[[P, "component"]],
            output_core_dims=[[P, "component"]],
            kwargs={"kernel": _umap_start, "n_core": (2,)},
            dask="parallelized",
            output_dtypes=[np.float64],
        )
    else:
        start = xr.full_like(indices.isel(neighbor=0, drop=True), np.nan, dtype=np.float64)
        start = start.expand_dims(component=k, axis=-1)
    # the prepared rows' total variance (shared with the scree's): zero when they coincide
    variance = _spectra.trace(prepared, center=normalize)
    if start_layout is not None and not aligned:
        raise ValueError(
            f"{func}() got a start_layout without aligned=True: the layout is where an "
            "aligned run of layers starts; pass aligned=True or leave start_layout out"
        )
    # too few points for a start layout (umap-learn starts at random): each layer on its own
    aligned = aligned and n > k + 1
    if aligned:
        # n_epochs=None: umap-learn's own count (500 up to 10,000 points, else 200)
        epochs = n_epochs if n_epochs is not None else (500 if n <= 10_000 else 200)
        aligned_epochs = max(1, round(epochs * ALIGNED_EPOCHS_SHARE))
        before = _start_layout(start_layout, start, func=func)
        chained = {"n_epochs": n_epochs, "aligned_epochs": aligned_epochs, **options}
        coords = _aligned_umap(indices, dists, start, variance, before, **chained)
        coords = coords.transpose(*indices.dims[:-1], "component")
    else:
        coords = _independent_umap(indices, dists, start, variance, n_epochs, options)
    coords = coords.assign_coords(component=np.arange(1, k + 1))
    coords.attrs = {"n_neighbors": n_neighbors, "seed": int(seed), "normalize": int(normalize)}
    # too few points for the PCA or spectral start: umap-learn starts at random (_umap_fit)
    coords.attrs["init"] = init if n > k + 1 else "random"
    if n_epochs is not None:
        coords.attrs["n_epochs"] = n_epochs
    if aligned:
        coords.attrs["aligned"] = 1
        coords.attrs["aligned_epochs"] = aligned_epochs
    return coords.rename("umap")


def _independent_umap(
    indices: xr.DataArray,
    dists: xr.DataArray,
    start: xr.DataArray,
    variance: xr.DataArray,
    n_epochs: int | None,
    options: dict[str, Any],
) -> xr.DataArray:
    """Each layer's UMAP on its own, one task per layer."""
    return xr.apply_ufunc(
        _engine.batched_arrays,
        indices,
        _engine.bare(dists),
        _engine.bare(start),
        _engine.bare(variance),
        input_core_dims=[[P, "neighbor"], [P, "neighbor"], [P, "component"], []],
        output_core_dims=[[P, "component"]],
        kwargs={"kernel": _umap_one, "n_core": (2, 2, 2, 0), "n_epochs": n_epochs, **options},
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def _start_layout(
    layout: xr.DataArray | None, start: xr.DataArray, *, func: str
) -> xr.DataArray | None:
    """``start_layout``, checked against the layouts it starts (``start``'s first layer)."""
    if layout is None:
        return None
    expected = start.isel(layer=0, drop=True) if "layer" in start.dims else start
    if not isinstance(layout, xr.DataArray) or set(layout.dims) != set(expected.dims):
        dims = getattr(layout, "dims", type(layout).__name__)
        raise ValueError(
            f"{func}() got a start_layout with dims {dims}; pass one with dims "
            f"{expected.dims}, e.g. the last layer of an earlier aligned UMAP"
        )
    for dim in expected.dims:
        if layout.sizes[dim] != expected.sizes[dim]:
            raise ValueError(
                f"{func}() got a start_layout with {layout.sizes[dim]} along {dim!r} where the "
                f"data has {expected.sizes[dim]}: pass the layout of the same {dim}s"
            )
        if (
            dim in expected.indexes
            and dim in layout.indexes
            and not layout.indexes[dim].equals(expected.indexes[dim])
        ):
            raise ValueError(
                f"{func}() got a start_layout whose {dim!r} labels {list(layout.indexes[dim])} "
                f"are not the data's {list(expected.indexes[dim])}: pass the layout of the "
                f"same {dim}s, in the same order"
            )
    if "id" in expected.coords and "id" in layout.coords:
        if not np.array_equal(layout["id"].values, expected["id"].values):
            raise ValueError(
                f"{func}() got a start_layout of other personas (ids differ) than the data's: "
                "pass the layout of the same personas, in the same order"
            )
    # its values are checked where they are used (a lazy layout stays lazy)
    return layout


def _isomap_one(distance: np.ndarray, *, n_neighbors: int, n_components: int) -> np.ndarray:
    with _engine.import_lock:
        from sklearn.manifold import Isomap

    model = Isomap(
        n_neighbors=n_neighbors,
        n_components=n_components,
        metric="precomputed",
        eigen_solver="dense",
    )
    return _spectra.fix_signs(model.fit_transform(distance))


def isomap(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    n_components: int = 2,
    n_neighbors: int = 8,
    normalize: bool = True,
    include_baseline: bool = False,
) -> xr.DataArray:
    """Isomap embedding of the personas, per layer.

    scikit-learn's Isomap on the Euclidean distances between the centered, normalised
    vectors, with ``min(n_neighbors, personas - 1)`` neighbours. Signs follow
    :func:`pvx.decomposition.pca`: deterministic, and aligned between consecutive layers.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`umap`). The signs are aligned between consecutive
        layers, so selecting one layer of the result computes every layer; pass ``layer=``
        to compute fewer.
    n_components : int
        Embedding dimension, at most ``personas - 1``.
    n_neighbors : int
        Neighbours of the kNN graph (capped at ``personas - 1``).
    normalize : bool
        Normalise the centered rows to unit length first (default).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.DataArray
        ``isomap`` with dims ``(..., persona, component)``.

    Examples
    --------
    >>> import pvx.manifold, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0)
    >>> pvx.manifold.isomap(da).dims
    ('layer', 'persona', 'component')
    """
    func = "isomap"
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=3,
        why="Isomap needs a neighbourhood graph",
    )
    n = da.sizes[P]
    k = check_n_components(
        n_components, n_persona=n, n_hidden=da.sizes[_engine.H], func=func, limit=n - 1
    )
    n_neighbors = check_positive_int(
        n_neighbors, "n_neighbors", func=func, maximum=10**9, why="a positive number"
    )
    n_neighbors = min(n_neighbors, n - 1)
    distance = _engine.prepared_distances(da, normalize=normalize)
    coords = _embed(distance, _isomap_one, k, n_neighbors=n_neighbors, n_components=k)
    coords = _spectra.align_layers(coords)
    coords.attrs = {"n_neighbors": n_neighbors, "normalize": int(normalize)}
    return coords.rename("isomap")


def _twonn_one(distance: np.ndarray, *, discard_fraction: float) -> np.ndarray:
    """TwoNN estimate (Facco et al. 2017) from one distance matrix.

    ``mu = r2 / r1`` follows a Pareto law with exponent ``d``; the slope of
    ``-log(1 - F(mu))`` against ``log(mu)`` through the origin, on the empirical CDF with the
    largest ``discard_fraction`` of ratios dropped, estimates ``d``.
    """
    d = distance.copy()
    np.fill_diagonal(d, np.inf)
    nearest = np.sort(np.partition(d, 1, axis=1)[:, :2], axis=1)
    r1, r2 = nearest[:, 0], nearest[:, 1]
    keep = r1 > 0  # duplicates make the ratio undefined
    mu = np.sort(r2[keep] / r1[keep])
    n = mu.size
    # the largest ratio has F = 1 (an infinite -log(1 - F)): never part of the fit
    n_fit = min(int(np.floor(n * (1.0 - discard_fraction))), n - 1)
    if n_fit < 2:
        return np.asarray(np.nan)
    x = np.log(mu[:n_fit])
    y = -np.log1p(-np.arange(1, n_fit + 1) / n)
    denom = float(x @ x)
    return np.asarray(float(x @ y) / denom if denom > 0 else np.nan)


def twonn(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    discard_fraction: float = 0.1,
    normalize: bool = True,
    include_baseline: bool = False,
) -> xr.DataArray:
    """Intrinsic dimension of persona space per layer, by TwoNN (Facco et al. 2017).

    Uses each persona's two nearest neighbours among the centered (by default normalised)
    vectors. Personas with an exact duplicate are skipped (their ratio is undefined).

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`umap`).
    discard_fraction : float
        Fraction of the largest neighbour-distance ratios left out of the fit, in ``[0, 1)``.
    normalize : bool
        Normalise the centered rows to unit length first (default). Normalising maps a flat
        ``d``-dimensional cloud through the mean onto a ``(d-1)``-sphere; pass ``False`` to
        measure the raw geometry.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.DataArray
        ``intrinsic_dimension`` with the input's dims other than ``persona``/``hidden``.

    Examples
    --------
    >>> import pvx.manifold, pvx.synthetic
    >>> da = pvx.synthetic.manifold_personas(dims=(2,), n_persona=500, seed=0)
    >>> round(float(pvx.manifold.twonn(da, layer=0)))
    2
    """
    func = "twonn"
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=3,
        why="TwoNN uses two neighbours of every persona",
    )
    if not 0.0 <= discard_fraction < 1.0:
        raise ValueError(
            f"{func}() got discard_fraction={discard_fraction!r}; pass a fraction in [0, 1), "
            "e.g. 0.1"
        )
    distance = _engine.prepared_distances(da, normalize=normalize)
    dim = xr.apply_ufunc(
        _engine.batched_arrays,
        distance,
        input_core_dims=[[P, Q]],
        output_core_dims=[[]],
        kwargs={
            "kernel": _twonn_one,
            "n_core": (2,),
            "discard_fraction": float(discard_fraction),
        },
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    dim.attrs = {"discard_fraction": float(discard_fraction), "normalize": int(normalize)}
    return dim.rename("intrinsic_dimension")
