"""How the prompt variant moves each persona, per layer: :func:`variant_similarity`
(part of :mod:`pvx.similarity`'s API)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from pvx import _engine
from pvx._engine import P, Q
from pvx._validate import LayerSelection, select_layers

# Rows per float64 block: 64 rows of 16384 are 8 MiB, so a block's conversion stays in
# cache for its products instead of streaming float64 copies of whole layers from memory.
ROW_BLOCK = 64


def _row_products(
    a: np.ndarray, b: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per row, in float64 (one block of rows at a time): ``a·b``, ``a·mean_b``,
    ``b·mean_a``, ``a·a``, ``b·b``, ``a·mean_a`` and ``b·mean_b``."""
    lead = np.broadcast_shapes(*(x.shape[:-1] for x in (a, b, mean_a, mean_b)))
    a, b, mean_a, mean_b = (
        np.broadcast_to(x, (*lead, x.shape[-1])) for x in (a, b, mean_a, mean_b)
    )
    out = np.empty((7, *lead))
    for index in np.ndindex(*lead[:-1]):
        for start in range(0, lead[-1] if lead else 1, ROW_BLOCK):
            where = (*index, slice(start, start + ROW_BLOCK)) if lead else ()
            a64, b64 = a[where].astype(np.float64), b[where].astype(np.float64)
            ma, mb = mean_a[where], mean_b[where]
            if lead and ma.strides[0] == mb.strides[0] == 0:  # one mean per block: BLAS gemv
                means = np.stack([mb[0], ma[0]], axis=-1)
                to_a_means, to_b_means = a64 @ means, b64 @ means
            else:
                to_a_means, to_b_means = (
                    np.stack([np.vecdot(x, mb), np.vecdot(x, ma)], axis=-1) for x in (a64, b64)
                )
            out[(slice(None), *where)] = (
                np.vecdot(a64, b64),
                to_a_means[..., 0],
                to_b_means[..., 1],
                np.vecdot(a64, a64),
                np.vecdot(b64, b64),
                to_a_means[..., 1],
                to_b_means[..., 0],
            )
    return tuple(out)


def _variant_kernel(
    paired: np.ndarray,
    to_mean_b: np.ndarray,
    to_mean_a: np.ndarray,
    sq_a: np.ndarray,
    sq_b: np.ndarray,
    a_to_mean_a: np.ndarray,
    b_to_mean_b: np.ndarray,
    means: np.ndarray,
    sq_mean_a: np.ndarray,
    sq_mean_b: np.ndarray,
    *,
    ids: tuple[Any, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Per persona the raw and centered cosine between its two variants, from row products
    alone (no persona x persona matrix: the Grams are freed as soon as the cosines are
    made)."""
    # a squared norm is non-finite exactly when its row holds a NaN or an inf: named here,
    # since these results need not wait for the cosines' own check
    _engine.check_finite_rows(sq_a + sq_b, ids)

    def ratio(num: np.ndarray, sq_a: np.ndarray, sq_b: np.ndarray) -> np.ndarray:
        den = np.sqrt(np.clip(sq_a, 0, None) * np.clip(sq_b, 0, None))
        return np.clip(np.divide(num, den, out=np.zeros_like(num), where=den > 0), -1, 1)

    raw = ratio(paired, sq_a, sq_b)
    # Each variant is centered by its own mean: (a_i - m_a)·(b_i - m_b) and |a_i - m_a|²,
    # expanded into products with the means.
    centered_paired = paired - to_mean_b - to_mean_a + means[..., None]
    centered_sq_a = sq_a - 2.0 * a_to_mean_a + sq_mean_a[..., None]
    centered_sq_b = sq_b - 2.0 * b_to_mean_b + sq_mean_b[..., None]
    return raw, ratio(centered_paired, centered_sq_a, centered_sq_b)


def _correlation_kernel(cos_a: np.ndarray, cos_b: np.ndarray) -> np.ndarray:
    """The correlation of two cosine matrices over pairs ``i < j`` (row loops: a persona x
    persona temporary is hundreds of MB at thousands of personas)."""
    corr = np.empty(cos_a.shape[:-2])
    for index in np.ndindex(*corr.shape):
        corr[index] = _upper_correlation(cos_a[index], cos_b[index])
    return corr


def _upper_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two matrices' entries above the diagonal, two passes of row
    slices (means, then centered sums)."""
    n = a.shape[-1]
    count = n * (n - 1) / 2
    mean_a = sum(a[i, i + 1 :].sum() for i in range(n - 1)) / count
    mean_b = sum(b[i, i + 1 :].sum() for i in range(n - 1)) / count
    num = sq_a = sq_b = 0.0
    for i in range(n - 1):
        da, db = a[i, i + 1 :] - mean_a, b[i, i + 1 :] - mean_b
        num += da @ db
        sq_a += da @ da
        sq_b += db @ db
    den = np.sqrt(sq_a * sq_b)
    return float(num / den) if den > 0 else np.nan


def _check_same_personas(
    x_a: xr.DataArray, x_b: xr.DataArray, a: Hashable, b: Hashable, *, func: str
) -> None:
    """Rows are compared by position: refuse variants whose ids (one row of ids per variant,
    when they were stacked without an ``id`` index) differ there."""
    if "id" not in x_a.coords or "id" in x_a.indexes:
        return
    ids_a, ids_b = (np.asarray(x["id"].values, dtype=object) for x in (x_a, x_b))
    differ = np.flatnonzero(ids_a != ids_b)  # rows of one stacked array: one length
    if not len(differ):
        return
    raise ValueError(
        f"{func}() compares each persona with itself, but variants {a!r} and {b!r} list "
        f"different personas at {len(differ)} position(s) (first: {ids_a[differ[0]]!r} "
        f"against {ids_b[differ[0]]!r}): they were stacked without an 'id' index. "
        "Join them on id first: xr.concat([v.set_xindex('id') for v in variants], "
        "'variant', join='inner'), or load them together with pvx.load"
    )


def variant_similarity(
    da: xr.DataArray,
    a: Hashable,
    b: Hashable,
    *,
    layer: LayerSelection = None,
    include_baseline: bool = False,
) -> xr.Dataset:
    """How the prompt variant moves each persona: variant ``a`` against variant ``b``.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with a ``variant`` dimension (stacked variants, inner-joined on id and
        layer), plus ``persona`` and ``hidden``.
    a, b : hashable
        The two variant labels to compare.
    layer : label, list of labels or None
        Layers to analyse (see :func:`cosine`).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``raw`` and ``centered`` (dims ``(..., persona)``): per persona and layer, the cosine
        between its vectors in ``a`` and ``b``, raw and with each variant centered by its own
        mean over personas; ``matrix_correlation`` (dims ``(...)``): per layer, the Pearson
        correlation between the two variants' centered cosine matrices (pairs ``i < j``).

    Raises
    ------
    ValueError
        No ``variant`` dimension, or fewer than 3 personas.
    KeyError
        ``a`` or ``b`` is not a variant of the array, or unknown layer labels.

    Examples
    --------
    >>> import pvx.similarity, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(variants=["biography", "templated"], seed=0)
    >>> vs = pvx.similarity.variant_similarity(da, "biography", "templated")
    >>> vs["centered"].dims, vs["matrix_correlation"].dims
    (('layer', 'persona'), ('layer',))
    """
    func = "variant_similarity"
    if "variant" not in getattr(da, "dims", ()):
        raise ValueError(
            f"{func}() needs a 'variant' dimension holding the variants to compare, but the "
            f"array has {getattr(da, 'dims', None)!r}; load several variants together "
            "(they stack along 'variant')"
        )
    variants = da.indexes["variant"] if "variant" in da.indexes else None
    missing = [v for v in (a, b) if variants is None or v not in variants]
    if missing:
        known = variants.tolist() if variants is not None else []
        raise KeyError(
            f"{func}() got variant(s) {missing!r} that the array does not have; it has "
            f"{known!r}: pick two of those or load the missing variant"
        )
    da = _engine.prepare_input(
        select_layers(da, layer, func=func),
        func=func,
        include_baseline=include_baseline,
        min_personas=3,
        why="the correlation of cosine matrices needs at least 3 pairs",
    )
    x_a = da.sel(variant=a).drop_vars("variant")
    x_b = da.sel(variant=b).drop_vars("variant")
    _check_same_personas(x_a, x_b, a, b, func=func)
    # The cosines as cosine() makes them, lazily for every variant: the tasks are shared
    # with the other analyses of ``da`` in one dask.compute, and only the two variants'
    # chunks run (this also checks finiteness). Eager input multiplies just the two.
    rows = da if _engine.is_dask(da) else da.sel(variant=[a, b])
    cosines = _engine.prepared(rows, center=True, normalize=True)
    cos_a, cos_b = (cosines.sel(variant=v).drop_vars("variant") for v in (a, b))
    # skipna=False: the cosines' check already refuses non-finite rows, and NaN-skipping means
    # copy and mask every layer (a third of this function's reading time at L)
    mean_a = x_a.mean(P, dtype=np.float64, skipna=False)
    mean_b = x_b.mean(P, dtype=np.float64, skipna=False)
    # Row products block by block in float64 inside one task each: float64 copies of whole
    # layers, held until every product of them ran, made memory grow with the layer count.
    # whole rows per task (a user's .chunk({"hidden": ...}) splits them), as the Grams take them
    x_a, x_b, mean_a, mean_b = (
        _engine.single_chunk(v, _engine.H) for v in (x_a, x_b, mean_a, mean_b)
    )
    products = xr.apply_ufunc(
        _row_products,
        x_a,
        _engine.bare(x_b),
        _engine.bare(mean_a),
        _engine.bare(mean_b),
        input_core_dims=[[_engine.H], [_engine.H], [_engine.H], [_engine.H]],
        output_core_dims=[[]] * 7,
        dask="parallelized",
        output_dtypes=[np.float64] * 7,
    )
    # the first keeps the personas' coordinates for the result
    products = [
        _engine.single_chunk(p if i == 0 else _engine.bare(p), P) for i, p in enumerate(products)
    ]
    mean_products = [
        _engine.bare(xr.dot(m, n, dim=_engine.H))
        for m, n in ((mean_a, mean_b), (mean_a, mean_a), (mean_b, mean_b))
    ]
    raw, centered = xr.apply_ufunc(
        _variant_kernel,
        *products,
        *mean_products,
        input_core_dims=[[P]] * 7 + [[]] * 3,
        output_core_dims=[[P], [P]],
        kwargs={"ids": tuple(_engine.persona_ids(da).tolist())},
        dask="parallelized",
        output_dtypes=[np.float64] * 2,
    )
    corr = xr.apply_ufunc(
        _correlation_kernel,
        _engine.bare(cos_a),
        _engine.bare(cos_b),
        input_core_dims=[[P, Q], [P, Q]],
        output_core_dims=[[]],
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    ds = xr.Dataset({"raw": raw, "centered": centered, "matrix_correlation": corr})
    ds.attrs = {"variant_a": str(a), "variant_b": str(b)}
    return ds
