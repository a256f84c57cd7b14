"""Similarities between personas: cosine matrices, nearest neighbours, pairs, variants.

All functions are pure, lazy on dask input and vectorised over every dimension other than
``persona`` and ``hidden`` (so over ``layer`` and ``variant``). They read the vectors once,
through the per-layer Gram matrix (:mod:`pvx._engine`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from pvx import _engine
from pvx._engine import H, P, Q
from pvx._validate import LayerSelection, check_positive_int
from pvx._variant_similarity import variant_similarity  # part of this module's API

__all__ = ["cosine", "neighbors", "pair_similarity", "variant_similarity"]


def cosine(
    da: xr.DataArray,
    other: xr.DataArray | None = None,
    *,
    layer: LayerSelection = None,
    center: bool = True,
    include_baseline: bool = False,
) -> xr.DataArray:
    """Cosine similarity between every pair of personas, per layer.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden`` (and any others, e.g. ``layer``,
        ``variant``, which the result keeps).
    other : xarray.DataArray, optional
        Compare ``da``'s personas with these instead of with each other (same hidden size and
        the same labels on every other dim). When centering, each array is centered by its
        own mean over personas, as :func:`variant_similarity` does.
    layer : label, list of labels or None
        Layers to analyse: one label drops the ``layer`` dim (as ``sel`` does), a list keeps
        it, ``None`` keeps every layer.
    center : bool
        Subtract each hidden unit's mean over personas first (the default), removing the
        shared residual-stream component that pushes raw cosines towards 1. ``False`` gives
        the raw cosine.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona (left out by default).

    Returns
    -------
    xarray.DataArray
        ``cosine``, float64, dims ``(..., persona, persona_other)``; the second axis carries
        every persona coordinate with an ``_other`` suffix (``id_other``, ``name_other``, ...).
        A zero vector (centered: one equal to the mean, up to the rounding of the offset, i.e.
        a squared norm below 1e-12 of the largest raw one) has cosine 0 with everything.

    Raises
    ------
    ValueError
        Missing ``persona``/``hidden`` dims, fewer than 2 personas when centering, ``other``
        with another hidden size or other layer labels, or non-finite values (raised when
        the result is computed, naming the persona ids).
    KeyError
        Unknown layer labels.

    See Also
    --------
    pvx.decomposition.pca : the principal axes of the same centered, normalised vectors.

    Examples
    --------
    >>> import pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=3, seed=0)
    >>> sim = pvx.similarity.cosine(da, layer=0)
    >>> sim.dims
    ('persona', 'persona_other')
    >>> bool(sim.sel(id="p0", id_other="p1") > 0.9), bool(sim.sel(id="p0", id_other="p7") < 0)
    (True, True)
    """
    da = _engine.prepare_input(
        da,
        func="cosine",
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2 if center else 1,
        why="centering subtracts the mean over personas",
    )
    if other is None:
        # the prepared Gram of unit rows is clipped to [-1, 1] already: the cosines are that
        # matrix itself, shared with the other analyses (no copy per layer)
        sim = _engine.prepared(da, center=center, normalize=True)
    else:
        sim = _cross_cosine(
            da, other, layer=layer, center=center, include_baseline=include_baseline
        ).clip(-1.0, 1.0)
    sim = sim.rename("cosine")
    sim.attrs = {"long_name": "centered cosine similarity" if center else "cosine similarity"}
    return sim


def _cross_kernel(
    g_ab: np.ndarray,
    g_aa: np.ndarray,
    g_bb: np.ndarray,
    *,
    center: bool,
    ids_a: tuple[Any, ...],
    ids_b: tuple[Any, ...],
) -> np.ndarray:
    _engine._check_finite(g_aa, ids_a)
    _engine._check_finite(g_bb, ids_b)
    # the raw rows' largest squared norms, as cosine() measures zero rows against them
    scales = [np.diagonal(g, axis1=-2, axis2=-1).max(axis=-1, keepdims=True) for g in (g_aa, g_bb)]
    if center:  # each side by its own mean: Ca Cbᵀ = Ha Gab Hb
        g_ab, g_aa, g_bb = (_engine._double_center(g) for g in (g_ab, g_aa, g_bb))
    norms = []
    for g, scale in zip((g_aa, g_bb), scales, strict=True):
        sq = np.diagonal(g, axis1=-2, axis2=-1)
        zero = _engine.zero_rows(sq, scale)
        norms.append(np.where(zero, np.inf, np.sqrt(np.where(zero, 1.0, sq))))
    return g_ab / norms[0][..., :, None] / norms[1][..., None, :] + 0.0  # a zero row: 0, not -0


def _anonymous(gram: xr.DataArray, name: str) -> xr.DataArray:
    # A side input: no coordinates to merge, and its own names for its square dims.
    return gram.drop_vars(list(gram.coords)).rename({P: name, Q: f"{name}2"})


def _cross_cosine(
    da: xr.DataArray,
    other: xr.DataArray,
    *,
    layer: LayerSelection,
    center: bool,
    include_baseline: bool,
) -> xr.DataArray:
    other = _engine.prepare_input(
        other,
        func="cosine",
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2 if center else 1,
        why="centering subtracts the mean over personas",
    )
    if da.sizes[H] != other.sizes[H]:
        raise ValueError(
            f"cosine() needs vectors of one hidden size, but da has {da.sizes[H]} hidden units "
            f"and other has {other.sizes[H]}; compare vectors of the same model"
        )
    try:
        da, other = xr.align(da, other, join="exact", exclude=[P, H])
    except ValueError as err:
        raise ValueError(
            f"cosine() needs da and other to share the labels of every dim but persona and "
            f"hidden ({err}); select matching layers/variants first, e.g. with layer=[...]"
        ) from None
    ids_a = tuple(_engine.persona_ids(da).tolist())
    ids_b = tuple(_engine.persona_ids(other).tolist())
    return xr.apply_ufunc(
        _cross_kernel,
        _engine.raw_gram(da, other),
        _anonymous(_engine.raw_gram(da), "_a"),
        _anonymous(_engine.raw_gram(other), "_b"),
        input_core_dims=[[P, Q], ["_a", "_a2"], ["_b", "_b2"]],
        output_core_dims=[[P, Q]],
        kwargs={"center": center, "ids_a": ids_a, "ids_b": ids_b},
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def _neighbors_kernel(
    sim: np.ndarray, *, k: int, ids: tuple[Any, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sim = sim.copy()
    n = sim.shape[-1]
    sim[..., np.arange(n), np.arange(n)] = -np.inf  # self is never a neighbour
    order = np.argsort(-sim, axis=-1, kind="stable")[..., :k]
    # ids are looked up here rather than by a second task on `order`: dask (2026.8) loses a
    # key when a multi-output result and a task built on it are computed with other results
    return order, np.take_along_axis(sim, order, axis=-1), np.asarray(ids)[order]


def neighbors(
    da: xr.DataArray,
    k: int,
    *,
    layer: LayerSelection = None,
    center: bool = True,
    include_baseline: bool = False,
) -> xr.Dataset:
    """The ``k`` nearest personas of every persona, self excluded, nearest first.

    Nearness is cosine similarity of the (by default centered) vectors, which ranks like the
    Euclidean distance between the prepared unit vectors; ties keep persona order.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden``.
    k : int
        Number of neighbours, between 1 and ``personas - 1``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`cosine`).
    center : bool
        Center before comparing (default).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        Dims ``(..., persona, rank)`` with ``rank`` 1..k: ``index`` (position of the
        neighbour along ``persona``), ``neighbor_id`` (its id) and ``cosine``.

    Examples
    --------
    >>> import pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, seed=0)
    >>> nn = pvx.similarity.neighbors(da, 3, layer=0)
    >>> sorted(nn["neighbor_id"].sel(id="p0").values.tolist())
    ['p1', 'p2', 'p3']
    """
    da = _engine.prepare_input(
        da,
        func="neighbors",
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2,
        why="a persona's neighbours exclude itself",
    )
    k = check_positive_int(
        k, "k", func="neighbors", maximum=da.sizes[P] - 1, why="at most personas - 1 neighbours"
    )
    sim = cosine(da, center=center, include_baseline=True)
    ids = tuple(_engine.persona_ids(da).tolist())
    index, value, neighbor_id = xr.apply_ufunc(
        _neighbors_kernel,
        sim,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, "rank"]] * 3,
        kwargs={"k": k, "ids": ids},
        dask="parallelized",
        output_dtypes=[np.int64, np.float64, np.asarray(ids).dtype],
        dask_gufunc_kwargs={"output_sizes": {"rank": k}},
    )
    ds = xr.Dataset({"index": index, "neighbor_id": neighbor_id, "cosine": value})
    return ds.assign_coords(rank=np.arange(1, k + 1))


def _positions(da: xr.DataArray, wanted: Sequence[Hashable], *, func: str) -> np.ndarray:
    if "id" not in da.indexes:
        raise ValueError(
            f"{func}() finds personas by id, but the array has no indexed 'id' coordinate; "
            "add one with da.assign_coords(id=('persona', ids)).set_xindex('id')"
        )
    index = da.indexes["id"]
    positions = index.get_indexer(list(wanted))
    unknown = sorted({str(w) for w, p in zip(wanted, positions, strict=True) if p < 0})
    if unknown:
        raise KeyError(
            f"{func}() got unknown persona id(s) {unknown!r}; pick ids from da['id'] "
            f"(the array has {len(index)} personas, e.g. {index[:3].tolist()!r})"
        )
    return positions


def _band_kernel(sim: np.ndarray, *, quantiles: tuple[float, ...]) -> np.ndarray:
    # pairs i < j gathered row by row into one buffer, partitioned in place: no index
    # arrays or copies (each hundreds of MB at thousands of personas)
    n = sim.shape[-1]
    out = np.empty((*sim.shape[:-2], 1 + len(quantiles)))
    upper = np.empty(n * (n - 1) // 2, dtype=sim.dtype)
    for index in np.ndindex(*sim.shape[:-2]):
        start = 0
        for i in range(n - 1):
            upper[start : start + n - 1 - i] = sim[index][i, i + 1 :]
            start += n - 1 - i
        out[index] = np.quantile(upper, (0.5, *quantiles), overwrite_input=True)
    return out


def _band(sim: xr.DataArray, quantiles: tuple[float, float]) -> xr.DataArray:
    """Median and ``quantiles`` of the cosine over all pairs ``i < j`` (dim ``stat``)."""
    return xr.apply_ufunc(
        _band_kernel,
        sim,
        input_core_dims=[[P, Q]],
        output_core_dims=[["stat"]],
        kwargs={"quantiles": tuple(float(q) for q in quantiles)},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"stat": 3}},
    )


def pair_similarity(
    da: xr.DataArray,
    pairs: Sequence[tuple[Hashable, Hashable]] | None = None,
    *,
    layer: LayerSelection = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    include_baseline: bool = False,
) -> xr.Dataset:
    """Centered cosine of chosen persona pairs across layers, against all pairs.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona``, ``hidden`` and usually ``layer``.
    pairs : sequence of (id, id), optional
        The pairs to follow, by persona id. ``None`` follows every pair ``i < j``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`cosine`).
    quantiles : (float, float)
        The band drawn around the median of all pairs.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``cosine`` with dims ``(..., pair)`` and the pair's ``id``/``id_other`` (and other
        persona coordinates) along ``pair``; ``median``, ``low`` and ``high``: the median and
        the ``quantiles`` of the cosine over all pairs ``i < j``, per layer.

    Examples
    --------
    >>> import pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, seed=0)
    >>> ps = pvx.similarity.pair_similarity(da, [("p0", "p1"), ("p0", "p7")])
    >>> ps["cosine"].dims, ps["median"].dims
    (('layer', 'pair'), ('layer',))
    """
    da = _engine.prepare_input(
        da,
        func="pair_similarity",
        layer=layer,
        include_baseline=include_baseline,
        min_personas=3,
        why="the all-pairs band needs several pairs",
    )
    if len(quantiles) != 2 or not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(
            f"pair_similarity() needs two quantiles between 0 and 1, got {quantiles!r}; "
            "pass e.g. quantiles=(0.05, 0.95)"
        )
    n = da.sizes[P]
    if pairs is None:
        first, second = np.triu_indices(n, k=1)
    else:
        pairs = list(pairs)
        if not pairs or any(np.ndim(p) != 1 or len(p) != 2 for p in pairs):
            raise ValueError(
                f"pair_similarity() needs pairs as a non-empty list of (id, id) tuples, got "
                f"{pairs!r}"
            )
        first = _positions(da, [p[0] for p in pairs], func="pair_similarity")
        second = _positions(da, [p[1] for p in pairs], func="pair_similarity")
    sim = cosine(da, include_baseline=True)
    chosen = sim.isel({P: xr.DataArray(first, dims="pair"), Q: xr.DataArray(second, dims="pair")})
    band = _band(sim, quantiles)
    ds = xr.Dataset(
        {
            "cosine": chosen.drop_indexes([c for c in chosen.xindexes if c != "layer"]),
            "median": band.isel(stat=0),
            "low": band.isel(stat=1),
            "high": band.isel(stat=2),
        }
    )
    ds.attrs = {"quantiles": list(quantiles)}
    return ds


def pair_change(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    include_baseline: bool = False,
) -> xr.Dataset:
    """How much each pair's centered cosine changes across layers, with the all-pairs band.

    The summary of :func:`pair_similarity` over every pair without every pair's trajectory
    (half a million pairs at 1,000 personas): computed with :func:`cosine` on the same
    input, it shares its Gram matrices.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona``, ``layer`` and ``hidden``.
    layer : list of labels or None
        Layers to compare (default all).
    quantiles : (float, float)
        The all-pairs band per layer, as in :func:`pair_similarity`.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``change`` (max minus min over ``layer``, float32) with dims ``(..., persona,
        persona_other)``; ``median``, ``low`` and ``high`` over all pairs ``i < j``, per
        layer, as in :func:`pair_similarity`.

    Examples
    --------
    >>> import pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> pvx.similarity.pair_change(da)["change"].dims
    ('persona', 'persona_other')
    """
    if len(quantiles) != 2 or not all(0.0 <= q <= 1.0 for q in quantiles):
        raise ValueError(
            f"pair_change() needs two quantiles between 0 and 1, got {quantiles!r}; "
            "pass e.g. quantiles=(0.05, 0.95)"
        )
    sim = cosine(da, layer=layer, include_baseline=include_baseline)
    if "layer" not in sim.dims:
        raise ValueError("pair_change() needs several layers; pass layer=None or a list")
    return pair_change_from_parts(pair_change_parts(sim, quantiles))


def pair_change_parts(sim: xr.DataArray, quantiles: tuple[float, float]) -> xr.Dataset:
    """What :func:`pair_change` needs from some layers' cosines ``sim``: the band per layer
    and each pair's running extremes over those layers (``max``/``min``, float32 upper
    triangles, dim ``pair``). Parts of consecutive layer groups combine with
    :func:`combine_pair_change_parts`, so the layers can be computed a group at a time."""
    sim = _engine.single_chunk(sim, P, Q)
    band = _band(sim, quantiles)
    high, low = _layer_extremes(sim)
    ds = xr.Dataset(
        {
            "median": band.isel(stat=0),
            "low": band.isel(stat=1),
            "high": band.isel(stat=2),
            "max": high,
            "min": low,
        }
    )
    # the personas' coordinates, for the change matrix made from the triangles
    ds = ds.assign_coords(_persona_coords(sim))
    ds.attrs = {"quantiles": list(quantiles), "n_personas": sim.sizes[P]}
    return ds


def _persona_coords(obj: xr.DataArray | xr.Dataset) -> dict[Hashable, xr.DataArray]:
    """The coordinates along ``persona`` or ``persona_other`` (ids, names, attributes)."""
    return {k: c for k, c in obj.coords.items() if {P, Q} & set(c.dims)}


def combine_pair_change_parts(parts: Sequence[xr.Dataset]) -> xr.Dataset:
    """One set of parts from those of consecutive layer groups (computed, in order)."""
    band = xr.concat([p[["median", "low", "high"]] for p in parts], "layer")
    high, low = parts[0]["max"].copy(), parts[0]["min"].copy()
    for part in parts[1:]:
        np.fmax(high.values, part["max"].values, out=high.values)
        np.fmin(low.values, part["min"].values, out=low.values)
    ds = band.assign(max=high, min=low).assign_coords(_persona_coords(parts[0]))
    ds.attrs = dict(parts[0].attrs)
    return ds


def pair_change_from_parts(parts: xr.Dataset) -> xr.Dataset:
    """:func:`pair_change`'s result from :func:`pair_change_parts`."""
    n = parts.attrs["n_personas"]
    change = xr.apply_ufunc(
        _range_value,
        parts["max"],
        parts["min"],
        input_core_dims=[["pair"], ["pair"]],
        output_core_dims=[[P, Q]],
        kwargs={"n": n},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {P: n, Q: n}},
    ).assign_coords(_persona_coords(parts))
    ds = parts[["median", "low", "high"]].assign(change=change)
    ds = ds[["change", "median", "low", "high"]]
    ds.attrs = {"quantiles": parts.attrs["quantiles"]}
    return ds


def _layer_extremes(sim: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Each pair's max and min over ``layer`` (missing values skipped), as float32 upper
    triangles (cosines to 6e-8, a quarter of the memory of the squares); ``sim`` is in one
    chunk over the personas.

    On dask, a chain along ``layer``: each step folds one more layer block into running
    extremes, so memory holds one pair of extremes per variant. A reduction tree would keep
    a pair per tree level (about log2(layers) of them: gigabytes at thousands of personas).
    """
    n = sim.sizes[P]
    # each layer's cosines packed as soon as they are made: the chain may reach a layer
    # late, and meanwhile holds a quarter of the matrix
    packed = xr.apply_ufunc(
        _engine.pack_upper,
        sim,
        input_core_dims=[[P, Q]],
        output_core_dims=[["pair"]],
        kwargs={"dtype": np.float32},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"pair": n * (n + 1) // 2}},
    )
    template = packed.isel(layer=0, drop=True)
    axis = packed.get_axis_num("layer")
    if not _engine.is_dask(packed):
        high, low = _range_step(None, packed.values, axis)
        return template.copy(data=high), template.copy(data=low)
    import dask
    import dask.array

    data = packed.data
    # block keys kept as they are (no optimisation): the cosine tasks stay shared
    blocks = np.moveaxis(data.to_delayed(optimize_graph=False), axis, 0)
    sizes = [c for i, c in enumerate(data.chunks) if i != axis]
    step = dask.delayed(_range_step, pure=True, nout=2)
    high = np.empty(blocks.shape[1:], dtype=object)
    low = np.empty(blocks.shape[1:], dtype=object)
    for index in np.ndindex(*high.shape):
        extremes = None
        for block in blocks[(slice(None), *index)]:
            extremes = step(extremes, block, axis)
        shape = tuple(size[i] for size, i in zip(sizes, index, strict=True))
        high[index] = dask.array.from_delayed(extremes[0], shape=shape, dtype=np.float32)
        low[index] = dask.array.from_delayed(extremes[1], shape=shape, dtype=np.float32)
    return (
        template.copy(data=dask.array.block(high.tolist())),
        template.copy(data=dask.array.block(low.tolist())),
    )


def _range_step(
    extremes: tuple[np.ndarray, np.ndarray] | None, block: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fold one block of layers into the running ``(max, min)`` (fmax/fmin skip NaN, which
    stays only where every layer is NaN, and do not warn)."""
    high = np.fmax.reduce(block, axis=axis)
    low = np.fmin.reduce(block, axis=axis)
    if extremes is None:
        return high, low
    # in place: the previous step's extremes have no other consumer
    np.fmax(extremes[0], high, out=extremes[0])
    np.fmin(extremes[1], low, out=extremes[1])
    return extremes


def _range_value(high: np.ndarray, low: np.ndarray, *, n: int) -> np.ndarray:
    return _engine.unpack_upper(high - low, n)
