"""The Gram engine shared by every analysis (DESIGN §4, "Engine").

Per layer, each analysis depends on the vectors only through the ``persona x persona`` Gram
matrix ``G = X Xᵀ``. :func:`raw_gram` builds it in one streaming pass in float64 (one task per
layer slice, or block products for slices too big to gather), so dask reads each chunk once
and holds a few layers at a time; :func:`prepared_gram` derives the Gram of centered and/or
normalised rows from it without touching the vectors again:

- centering is ``H G H`` with ``H = I - 11ᵀ/n``. In float64 the absolute error is about
  ``eps * |offset|²``, so a shared offset 10⁴ times the persona differences still leaves
  ~10⁻⁸ relative accuracy (in float32 it would leave nothing);
- normalising divides by the outer product of the row norms ``sqrt(diag)`` (and clips the
  cosines to ``[-1, 1]``, which rounding can overshoot).

The NumPy kernels below take stacks ``(..., n, n)`` so they vectorise over ``layer`` and
``variant``; they are module-level functions with hashable keyword arguments, so dask gives the
same task names to the same step requested by two analyses and ``dask.compute(a, b)`` runs it
once. Eigensolvers, embeddings and spectra of these matrices are in :mod:`pvx._spectra`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import threadpoolctl
import xarray as xr

from pvx._validate import (
    LayerSelection,
    drop_baseline,
    nonfinite_message,
    persona_ids,
    require_dims,
    require_min_personas,
    select_layers,
)

P, Q, H = "persona", "persona_other", "hidden"

# A centered row whose squared norm is below this fraction of the largest raw squared norm is
# treated as zero (it equals the mean up to float64 rounding of the offset).
ZERO_TOL = 1e-12


def zero_rows(sq: Any, scale: Any) -> Any:
    """Rows whose (centred) squared norm ``sq`` is rounding noise against ``scale``, the raw
    rows' largest squared norm: they stay zero instead of being scaled to unit length. Every
    analysis that normalises rows asks this, so they agree on which rows are zero."""
    return sq <= ZERO_TOL * scale


# Upper bound on persona blocks per layer in the blockwise Gram pass (_coarsen_persona_blocks).
MAX_PERSONA_BLOCKS = 8

# A layer slice up to this size in float64 is multiplied in one BLAS call (``X Xᵀ`` by syrk,
# half the work of block products); bigger slices stream over persona blocks.
SLICE_BYTES = 512 * 2**20


# --------------------------------------------------------------------------- inputs


def prepare_input(
    da: xr.DataArray,
    *,
    func: str,
    layer: LayerSelection = None,
    include_baseline: bool = False,
    min_personas: int = 1,
    why: str = "",
) -> xr.DataArray:
    """Validate ``da`` and select what an analysis works on (labels only: the vectors are
    never computed)."""
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{func}() needs an xarray.DataArray, got {type(da).__name__}")
    require_dims(da, P, H, func=func)
    for reserved in (Q, "component"):
        if reserved in da.dims:
            raise ValueError(
                f"{func}() got an array that already has a {reserved!r} dimension "
                f"({da.dims!r}); pass the persona vectors, not an analysis result"
            )
    if "id" in da.coords and "id" not in da.indexes and is_dask(da["id"]):
        # labels read lazily (plain xarray with chunks=): loaded, a string per persona, so
        # the baseline is found and repeated ids are refused as for pvx.load's arrays
        da = da.assign_coords(id=da["id"].compute())
    if "id" in da.indexes:
        rows = [da.indexes["id"]]
    elif "id" in da.coords and P in da["id"].dims:  # not indexed
        # one row of ids per variant when variants were joined without an id index
        by_row = da["id"].transpose(..., P).values
        rows = [pd.Index(row) for row in by_row.reshape(-1, by_row.shape[-1])]
    else:
        rows = []
    for ids in rows:  # labels of results would be ambiguous
        if ids.is_unique:
            continue
        repeated = ids[ids.duplicated()].unique().tolist()
        raise ValueError(
            f"{func}() got persona id(s) {repeated[:5]!r} more than once; ids must be unique "
            "(keep the first of each: "
            "da.isel(persona=~pd.Index(da['id'].values).duplicated()))"
        )
    da = select_layers(da, layer, func=func)
    da = drop_baseline(da, include_baseline=include_baseline)
    require_min_personas(da.sizes[P], min_personas, func=func, why=why)
    if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype, np.complexfloating):
        raise TypeError(
            f"{func}() needs real-valued vectors, got dtype {da.dtype}; convert with da.astype"
        )
    return da


def other_side(da: xr.DataArray, dim: Hashable = P) -> xr.DataArray:
    """Rename ``dim`` and every coordinate along it to ``<name>_other`` (the second axis).

    A coordinate whose new name the personas already use (an attribute ``race_other``
    beside ``race``) is left off the second axis, so the user's own ``race_other`` is never
    replaced by the other persona's ``race``; the labels pvx needs there (``id``, ``name``)
    cannot be left off, so such a clash with them is an error."""
    along = [name for name, coord in da.coords.items() if coord.dims == (dim,)]
    clashing = [name for name in along if f"{name}_other" in da.coords]
    needed = [name for name in clashing if name in ("id", "name")]
    if needed:
        theirs = [f"{name}_other" for name in needed]
        raise ValueError(
            f"the {dim} coordinate(s) {theirs} clash with the labels pvx gives the second "
            f"{dim} axis of pairwise results; rename them first, e.g. "
            f"da.rename({{{theirs[0]!r}: {theirs[0] + '_alt'!r}}})"
        )
    names = {name: f"{name}_other" for name in along if name not in clashing}
    names[dim] = f"{dim}_other"
    return da.drop_vars(clashing).rename(names)


def is_dask(da: xr.DataArray) -> bool:
    """Whether ``da`` is backed by a dask array."""
    return da.chunks is not None


def single_chunk(da: xr.DataArray, *dims: Hashable) -> xr.DataArray:
    """Merge the chunks along ``dims`` (dask only; numpy arrays pass through unchanged).

    Only the data is rechunked: coordinates keep their dask names, so later merges of these
    coordinates compare names instead of computing values.
    """
    axes = {da.get_axis_num(d): -1 for d in dims if d in da.dims}
    if not is_dask(da) or not axes:
        return da
    return da.copy(data=da.data.rechunk(axes))


def bare(da: xr.DataArray) -> xr.DataArray:
    """``da`` without non-index coordinates, for the second input of a multi-input kernel.

    xarray merges the inputs' coordinates and compares lazy ones by value; dropping them
    keeps that merge from computing anything (the first input supplies the coordinates).
    """
    return da.reset_coords(drop=True)


# --------------------------------------------------------------------------- the one pass


def _matmul_t(a: Any, b: Any) -> Any:
    """``a @ bᵀ`` over the last two axes in float64; works on numpy and dask arrays alike."""
    return a.astype(np.float64) @ b.astype(np.float64).swapaxes(-1, -2)


def _coarsen_persona_blocks(da: xr.DataArray) -> xr.DataArray:
    """Merge small persona blocks so a layer has at most ``MAX_PERSONA_BLOCKS`` of them.

    The Gram needs one product per pair of blocks: quadratic in their number, so tiny stored
    blocks would flood the scheduler. Merging stays within one layer's slice.
    """
    if not is_dask(da):
        return da
    axis = da.get_axis_num(P)
    blocks = da.chunks[axis]
    if len(blocks) <= MAX_PERSONA_BLOCKS:
        return da
    size = max(max(blocks), -(-da.sizes[P] // MAX_PERSONA_BLOCKS))
    return da.copy(data=da.data.rechunk({axis: size}))


def _set_blas_threads(libraries: list[Any], counts: list[int]) -> None:
    """Set each library's thread count from whichever thread calls (under the caller's lock).

    threadpoolctl >= 3.6 lets only one "controlling" thread change OpenBLAS's process-wide
    pool and silently ignores the others; the limit below is set by the first worker thread
    to enter and restored by the last to leave, often another, so each change takes control
    and gives it back.
    """
    release = getattr(threadpoolctl.OpenBLASController, "clear_controlling_thread", None)
    if release is not None:
        release(force=True)
    for library, count in zip(libraries, counts, strict=True):
        library.set_num_threads(count)
    if release is not None:
        release(force=True)


class _OneBlasThread:
    """Limit BLAS to one thread while any kernel runs in a worker thread.

    dask's threaded scheduler runs one task per core; a multi-threaded BLAS inside each task
    oversubscribes the cores and spins (4x slower on two cores). The limit is process-wide in
    OpenBLAS, so it is reference counted: set by the first kernel to enter, restored by the
    last to leave. Calls from the main thread (NumPy input, the synchronous scheduler) keep
    every BLAS thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._blas: list[Any] | None = None
        self._saved: list[int] = []

    def _libraries(self) -> list[Any]:
        # Finding the BLAS libraries scans the process (a few ms), so it is done once: NumPy's
        # and SciPy's OpenBLAS, the ones kernels use, are loaded when pvx is imported.
        if self._blas is None:
            controller = threadpoolctl.ThreadpoolController()
            self._blas = controller.select(user_api="blas").lib_controllers
        return self._blas

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self._acquire()

    def __exit__(self, *exc: object) -> None:
        if threading.current_thread() is not threading.main_thread():
            self._release()

    @contextlib.contextmanager
    def everywhere(self) -> Iterator[None]:
        """The limit in the main thread too, for float32 products: OpenBLAS's float32
        results change with its thread count (by ~1e-7), which UMAP's neighbours and layout
        turn into different pictures; one thread everywhere gives every scheduler (and
        NumPy input) the same Gram."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    # The count changes before the limit is set and after it is lifted: an interrupt
    # (Ctrl-C) between the two then leaves the limit off, never stuck on with no user.
    def _acquire(self) -> None:
        with self._lock:
            self._users += 1
            if self._users == 1:
                libraries = self._libraries()
                self._saved = [library.num_threads for library in libraries]
                _set_blas_threads(libraries, [1] * len(libraries))

    def _release(self) -> None:
        with self._lock:
            if self._users == 1:
                _set_blas_threads(self._libraries(), self._saved)
            self._users -= 1

    def _after_fork(self) -> None:
        # a child forked while a kernel held the limit (or the lock) starts without either
        self._lock = threading.Lock()
        if self._users:
            self._users = 0
            _set_blas_threads(self._libraries(), self._saved)


one_blas_thread = _OneBlasThread()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=one_blas_thread._after_fork)

# Kernels import heavy libraries (scikit-learn, umap) when a task first needs them. Two dask
# threads importing the same package at once can see it half-initialised ("cannot import
# name ... from partially initialized module"): kernels import under this lock.
import_lock = threading.Lock()


def _gram_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ bᵀ`` per leading index, returned in float64; ``X Xᵀ`` of one buffer takes BLAS's
    syrk path.

    16-bit input (about 3 significant digits: float16, or float32 holding bfloat16 values,
    as imported from bf16 safetensors) is multiplied in float32, twice as fast as float64,
    after subtracting a reference row ``r`` (the mean of ``a``'s rows) so the shared offset
    does not cancel in float32; the raw Gram is restored exactly from
    ``(Y + 1rᵀ)(Z + 1rᵀ)ᵀ = YZᵀ + (Yr)1ᵀ + 1(Zr)ᵀ + (r·r)11ᵀ`` in float64. Other input is
    multiplied in float64.
    """
    same = a is b or (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, lead + a.shape[-2:])
    b = np.broadcast_to(b, lead + b.shape[-2:])
    out = np.empty((*lead, a.shape[-2], b.shape[-2]))
    with one_blas_thread:
        for index in np.ndindex(*lead):
            # decided per layer, so results do not depend on how layers are chunked
            if _sixteen_bit(a[index]) and (same or _sixteen_bit(b[index])):
                # non-finite rows make NaNs here; prepared_gram's check names them afterwards
                with np.errstate(invalid="ignore", over="ignore"), one_blas_thread.everywhere():
                    _gram_from_reference(a[index], None if same else b[index], out=out[index])
            else:
                left = a[index].astype(np.float64)
                right = left if same else b[index].astype(np.float64)
                np.dot(left, right.T, out=out[index])  # in place; syrk when right is left
    return out


# bfloat16 has float32's exponent range: float32 products of its values overflow or vanish
# at extreme scales, so the fast path takes only finite values of largest magnitude within
# 2^-40..2^40 (products then stay far inside float32's range).
_BF16_SCALE = (2.0**-40, 2.0**40)


def _sixteen_bit(a: np.ndarray) -> bool:
    """Float16, or float32 holding bfloat16 values (the low 16 bits of every value zero) of
    moderate scale. Integer-valued data up to 256 in magnitude passes too: its Gram then has
    float32's rounding of the sums (3.5e-7 relative for 4,096 integers up to 128), as for
    16-bit input."""
    if a.dtype == np.float16:
        return True
    if a.dtype != np.float32 or a.size == 0:
        return False
    rows = a.reshape(-1, a.shape[-1])  # the first row decides most arrays at once
    if np.bitwise_and(np.ascontiguousarray(rows[0]).view(np.uint32), 0xFFFF).any():
        return False
    # reductions, no temporaries: the bits of every value OR-ed, the extremes (NaN if any)
    if np.bitwise_or.reduce(np.ascontiguousarray(rows).view(np.uint32), axis=None) & 0xFFFF:
        return False
    largest = max(float(rows.max()), -float(rows.min()))  # NaN fails both tests below
    return bool(_BF16_SCALE[0] <= largest <= _BF16_SCALE[1])


def _reference_row(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The mean of the finite rows of ``y`` (zeros if none), rounded to the input's 16-bit
    values (``dtype`` float16, else bfloat16 held in float32).

    The mean, not any one persona: rows less the mean are as short as rows get, so the
    float32 products keep their digits even when a persona is far from the others (a zero
    placeholder, an outlier), and a non-finite row cannot spread to every other. Rounded,
    because the difference of two nearby 16-bit values is exact in float32, and so is the
    product of two such differences: only the sums round, as with an unrounded mean they
    would not (1e-7 of the centred Gram instead of 1e-11)."""
    ref = y.mean(axis=0)
    if not np.isfinite(ref).all():
        finite = np.isfinite(y).all(axis=1)  # rare: a whole-array check costs a pass
        ref = y[finite].mean(axis=0) if finite.any() else np.zeros(y.shape[-1], np.float32)
    if dtype == np.float16:
        return ref.astype(np.float16).astype(np.float32)
    return (ref.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # bfloat16's bits


def _gram_from_reference(a: np.ndarray, b: np.ndarray | None, *, out: np.ndarray) -> None:
    """``a @ bᵀ`` (``b`` = ``a`` when None) of 16-bit rows into ``out`` (float64), via
    float32 products of the rows less the mean of ``a``'s finite rows (in 16-bit values).

    The offset terms ``Yr`` are float32 products too: any error in them is a pure row (or
    column) term, which centering removes exactly, and uncentered uses see it relative to
    ``r·r``, which is summed in float64.
    """
    y = a.astype(np.float32)  # a copy, whatever a's dtype
    ref = _reference_row(y, a.dtype)
    y -= ref
    z = y if b is None else np.subtract(b, ref, dtype=np.float32)
    np.copyto(out, y @ z.T)  # syrk when z is y
    yr = (y @ ref).astype(np.float64)
    zr = yr if b is None else (z @ ref).astype(np.float64)
    out += yr[:, None]
    out += zr[None, :]
    ref64 = ref.astype(np.float64)
    out += ref64 @ ref64


def _slice_bytes(da: xr.DataArray) -> int:
    """Bytes of one ``persona x hidden`` slice in float64."""
    return da.sizes[P] * da.sizes[H] * 8


def raw_gram(da: xr.DataArray, other: xr.DataArray | None = None) -> xr.DataArray:
    """Float64 Gram matrix ``X Yᵀ`` over ``hidden``: dims ``(..., persona, persona_other)``.

    Lazy on dask, one task per layer: a layer's slice (up to ``SLICE_BYTES`` in float64) is
    gathered and multiplied in one BLAS call. Bigger slices stream over persona blocks with
    dask's blockwise matmul instead, so memory stays bounded by a few blocks. Both sides
    reuse the same input chunks (same task names), so each chunk is read once.
    """
    big = max(_slice_bytes(x) for x in (da, da if other is None else other)) > SLICE_BYTES
    if is_dask(da) and big:
        da = _coarsen_persona_blocks(da)
        other = da if other is None else _coarsen_persona_blocks(other)
        gram = xr.apply_ufunc(
            _matmul_t,
            da,
            other_side(other),
            input_core_dims=[[P, H], [Q, H]],
            output_core_dims=[[P, Q]],
            dask="allowed",  # dask's blockwise matmul streams over persona/hidden blocks
        )
        return single_chunk(gram, P, Q).rename("gram")
    da = single_chunk(da, P, H)
    if other is None:
        return _self_gram(da)
    return xr.apply_ufunc(
        _gram_kernel,
        da,
        other_side(single_chunk(other, P, H)),
        input_core_dims=[[P, H], [Q, H]],
        output_core_dims=[[P, Q]],
        dask="parallelized",
        output_dtypes=[np.float64],
    ).rename("gram")


def _self_gram_kernel(x: np.ndarray) -> np.ndarray:
    return _gram_kernel(x, x)


def _self_gram(
    da: xr.DataArray, kernel: Callable[..., np.ndarray] | None = None, **kwargs: Any
) -> xr.DataArray:
    """``X Xᵀ`` (or ``kernel(X, **kwargs)``, a persona x persona result) from a single
    input: passing ``X`` twice, dask hands the kernel two copies (each argument's merge and
    transpose fused into the task separately), which doubles the conversion and loses
    BLAS's syrk path (and bit-equality with the numpy path)."""
    gram = xr.apply_ufunc(
        kernel or _self_gram_kernel,
        da,
        input_core_dims=[[P, H]],
        output_core_dims=[[P, Q]],
        kwargs=kwargs,
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {Q: da.sizes[P]}},
    )
    other = other_side(da)
    names = [name for name, coord in other.coords.items() if coord.dims == (Q,)]
    gram = gram.assign_coords({name: other[name].variable for name in names})
    for name in names:
        if name in other.xindexes and name not in gram.xindexes:
            gram = gram.set_xindex(name, type(other.xindexes[name]))
    return gram.rename("gram")


# --------------------------------------------------------------------------- kernels


def _double_center(k: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """``H K H``: remove row and column means (one new array, or ``k`` itself)."""
    rows = k.mean(axis=-1, keepdims=True)
    cols = k.mean(axis=-2, keepdims=True)
    out = np.subtract(k, rows, out=k if in_place else None)
    out -= cols
    out += rows.mean(axis=-2, keepdims=True)
    return out


def check_finite_rows(squares: np.ndarray, ids: Sequence[Any]) -> None:
    """Raise naming the personas (last axis of ``squares``, their rows' sums of squares in
    float64, for any leading layer/variant) whose vector holds a NaN or an inf: a sum of
    squares is non-finite exactly then (float64: no overflow from float16/32 inputs)."""
    bad = ~np.isfinite(squares)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(-1, bad.shape[-1]).any(axis=0))
        raise ValueError(nonfinite_message([ids[i] for i in rows]))


def _check_finite(g: np.ndarray, ids: tuple[Any, ...]) -> None:
    check_finite_rows(np.diagonal(g, axis1=-2, axis2=-1), ids)  # diag(G): the sums of squares


def _prepare_kernel(
    g: np.ndarray,
    *,
    center: bool,
    normalize: bool,
    ids: tuple[Any, ...],
    in_place: bool = False,
) -> np.ndarray:
    """Gram of prepared rows from the raw Gram ``g`` (see module docstring); ``in_place``
    reuses ``g``'s memory."""
    _check_finite(g, ids)
    # the raw rows' largest squared norm, before g may be centred in place
    scale = np.diagonal(g, axis1=-2, axis2=-1).max(axis=-1, keepdims=True)
    if center:
        k = _double_center(g, in_place=in_place)
    else:
        k = g if in_place or not normalize else g.copy()
    if normalize:
        sq = np.diagonal(k, axis1=-2, axis2=-1)
        zero = zero_rows(sq, scale)
        norm = np.sqrt(np.where(zero, 1.0, sq))
        k /= norm[..., :, None]
        k /= norm[..., None, :]
        if zero.any():
            k[np.broadcast_to(zero[..., :, None] | zero[..., None, :], k.shape)] = 0.0
        np.clip(k, -1.0, 1.0, out=k)  # cosines: rounding can leave 1 + eps
    return k


def _prepared_rows_kernel(
    x: np.ndarray, *, center: bool, normalize: bool, ids: tuple[Any, ...]
) -> np.ndarray:
    # the Gram is this task's own: prepared where it lies
    gram = _self_gram_kernel(x)
    return _prepare_kernel(gram, center=center, normalize=normalize, ids=ids, in_place=True)


# Up to this size (float64; 2,048 personas) a lazy layer's raw Gram is a task of its own,
# which the attribute probes share with every analysis of the prepared rows: at 1000 x 126
# x 16384 the default report's task-seconds went from 340 to 301 (one Gram per layer, not 2).
SHARED_GRAM_BYTES = 32 << 20


def prepared(da: xr.DataArray, *, center: bool, normalize: bool) -> xr.DataArray:
    """``prepared_gram(raw_gram(da), ...)``, lazily: the raw Gram is one task per layer
    that any other analysis of the same rows shares (the probes). At thousands of personas
    it is prepared in place in the same task instead of being held beside the prepared one
    (two persona x persona matrices per layer and variant, hundreds of MB each). Analyses
    of the same rows share its tasks."""
    if is_dask(da) and (
        _slice_bytes(da) > SLICE_BYTES or 8 * da.sizes[P] ** 2 <= SHARED_GRAM_BYTES
    ):
        return prepared_gram(raw_gram(da), center=center, normalize=normalize)
    ids = tuple(persona_ids(da))
    options = {"center": center, "normalize": normalize, "ids": ids}
    return _self_gram(single_chunk(da, P, H), _prepared_rows_kernel, **options)


def prepared_gram(
    gram: xr.DataArray,
    *,
    center: bool,
    normalize: bool,
    double_center: bool = False,
) -> xr.DataArray:
    """Gram of the prepared rows, derived lazily from :func:`raw_gram`'s result.

    Also checks for non-finite vectors (when the kernel runs, so lazily on dask) and names the
    offending persona ids. The kernel's arguments do not depend on the calling analysis, so
    analyses computed together share its tasks: ``double_center`` is a separate step on top
    of the same prepared Gram, so the cosine and PCA of one array share it.
    """
    ids = tuple(persona_ids(gram))
    prepared = xr.apply_ufunc(
        _prepare_kernel,
        gram,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, Q]],
        kwargs={"center": center, "normalize": normalize, "ids": ids},
        dask="parallelized",
        output_dtypes=[np.float64],
    )
    return double_centered(prepared) if double_center else prepared


def double_centered(kernel_gram: xr.DataArray) -> xr.DataArray:
    """``H K H`` of every Gram (lazy; the same tasks wherever it is asked for)."""
    return xr.apply_ufunc(
        _double_center,
        kernel_gram,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, Q]],
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def _distance_kernel(k: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows whose Gram is ``k`` (in place in one new array: at
    thousands of personas each temporary is hundreds of MB)."""
    sq = np.diagonal(k, axis1=-2, axis2=-1).copy()
    d = np.multiply(k, -2.0)
    d += sq[..., :, None]
    d += sq[..., None, :]
    np.maximum(d, 0.0, out=d)
    np.sqrt(d, out=d)
    idx = np.arange(d.shape[-1])
    d[..., idx, idx] = 0.0
    return d


def condensed_distances(k: np.ndarray) -> np.ndarray:
    """The upper triangle of :func:`_distance_kernel` (SciPy's condensed form), row by row
    from the Gram ``k``: half the memory, and no square distance matrix at all."""
    n = k.shape[-1]
    sq = np.diagonal(k).copy()
    out = np.empty(n * (n - 1) // 2)
    start = 0
    for i in range(n - 1):
        row = out[start : start + n - 1 - i]
        np.multiply(k[i, i + 1 :], -2.0, out=row)
        row += sq[i]
        row += sq[i + 1 :]
        np.maximum(row, 0.0, out=row)
        np.sqrt(row, out=row)
        start += n - 1 - i
    return out


def row_starts(n: int) -> np.ndarray:
    """Offsets of each row's part in a packed upper triangle (diagonal included)."""
    return np.concatenate([[0], np.cumsum(np.arange(n, 0, -1))])


def pack_upper(square: np.ndarray, *, dtype: Any = None) -> np.ndarray:
    """The upper triangles (diagonal included, row-major) of ``(..., n, n)`` matrices,
    row by row (no index arrays, which at thousands of personas are hundreds of MB)."""
    n = square.shape[-1]
    out = np.empty((*square.shape[:-2], n * (n + 1) // 2), dtype=dtype or square.dtype)
    starts = row_starts(n)
    for index in np.ndindex(*square.shape[:-2]):
        for i in range(n):
            out[index][starts[i] : starts[i + 1]] = square[index][i, i:]
    return out


# side of the square tiles the lower triangle is copied in: a transposed read of whole
# matrices strides across memory (5x slower at 5,000 personas)
TRANSPOSE_TILE = 256


def unpack_upper(packed: np.ndarray, n: int) -> np.ndarray:
    """Symmetric ``(..., n, n)`` matrices from :func:`pack_upper`'s triangles."""
    square = np.empty((*packed.shape[:-1], n, n), dtype=packed.dtype)
    starts = row_starts(n)
    tile = TRANSPOSE_TILE
    diagonal_lower = np.tri(min(n, tile), k=-1, dtype=bool)
    for index in np.ndindex(*packed.shape[:-1]):
        layer = square[index]
        for i in range(n):
            layer[i, i:] = packed[index][starts[i] : starts[i + 1]]
        for a in range(0, n, tile):  # the lower triangle, a tile at a time
            for b in range(0, a, tile):
                layer[a : a + tile, b : b + tile] = layer[b : b + tile, a : a + tile].T
            block = layer[a : a + tile, a : a + tile]
            np.copyto(block, block.T, where=diagonal_lower[: len(block), : len(block)])
    return square


def distances(prepared: xr.DataArray) -> xr.DataArray:
    """Euclidean distances ``(..., persona, persona_other)`` from a prepared Gram."""
    return xr.apply_ufunc(
        _distance_kernel,
        prepared,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, Q]],
        dask="parallelized",
        output_dtypes=[np.float64],
    ).rename("distance")


def prepared_distances(
    da: xr.DataArray, *, center: bool = True, normalize: bool = True
) -> xr.DataArray:
    """Distances between the prepared (centered, normalised) rows of ``da``."""
    gram = raw_gram(da)
    return distances(prepared_gram(gram, center=center, normalize=normalize))


def batched(
    kernel: Callable[..., Any], arrays: tuple[np.ndarray, ...], n_core: tuple[int, ...], **kwargs
) -> Any:
    """Apply a kernel written for one layer to every index of the shared leading dims.

    ``n_core[i]`` is the number of trailing core axes of ``arrays[i]``. Returns an array (or a
    tuple of arrays, matching the kernel) with the leading dims restored.
    """
    lead = arrays[0].shape[: arrays[0].ndim - n_core[0]]
    results = []
    with one_blas_thread:
        for index in np.ndindex(*lead):
            out = kernel(*(a[index] for a in arrays), **kwargs)
            results.append(out if isinstance(out, tuple) else (out,))
    if not results:  # a zero-length leading dim
        raise ValueError("cannot analyse an empty array")
    stacked = tuple(
        np.stack([r[i] for r in results]).reshape(lead + np.shape(results[0][i]))
        for i in range(len(results[0]))
    )
    return stacked if len(stacked) > 1 else stacked[0]


def batched_arrays(
    *arrays: np.ndarray, kernel: Callable[..., Any], n_core: tuple[int, ...], **kwargs: Any
) -> Any:
    """:func:`batched` in the calling convention of ``xr.apply_ufunc`` (arrays first)."""
    return batched(kernel, arrays, n_core, **kwargs)
