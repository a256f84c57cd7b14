"""Spectra of prepared Gram matrices: eigendecompositions (dense or subspace iteration),
embeddings, explained-variance spectra and traces, per layer and variant.

The second half of pvx's engine (:mod:`pvx._engine` builds the prepared Gram matrices in
one pass over ``hidden``); see DESIGN §4.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import xarray as xr

from pvx import _lapack
from pvx._engine import P, Q, bare, batched, double_centered, one_blas_thread, single_chunk

# Extra columns of the random block in subspace_eigen, beyond the Gram's rank bound.
SUBSPACE_OVERSAMPLE = 10


def _tridiagonal_one(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # GIL released: scipy.linalg.lapack.dsytrd would stall every other dask thread. One BLAS
    # thread wherever it runs: OpenBLAS rounds dsytrd's blocked updates differently on two
    # threads (the main thread: lean mode, NumPy input) than on one (each dask thread), by
    # 1e-6 of the reflectors, and PCA's vectors, and UMAP's start from them, followed
    with one_blas_thread.everywhere():
        packed, _, _, tau = _lapack.dsytrd_lower(k)
    return packed, tau


def _tridiagonal_kernel(k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Householder reduction ``K = Q T Qᵀ`` of each symmetric matrix (LAPACK ``dsytrd``).

    This is the O(n³) part of an eigendecomposition; the scree (every eigenvalue) and the top
    eigenvectors both finish from it cheaply, so analyses computed together reduce each
    layer once. Returns ``dsytrd``'s packed output, transposed (C-ordered, so stacking
    layers copies without transposing): ``T`` on the diagonal and superdiagonal, the
    reflectors above it, and their scales ``tau``.
    """
    return batched(_tridiagonal_one, (np.asarray(k, dtype=np.float64),), (2,))


def tridiagonalize(kernel_gram: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy :func:`_tridiagonal_kernel`: the packed reduction ``(..., persona,
    persona_other)`` and the reflector scales ``(..., reflector)``."""
    n = kernel_gram.sizes[P]
    reduced, tau = xr.apply_ufunc(
        _tridiagonal_kernel,
        kernel_gram,
        input_core_dims=[[P, Q]],
        output_core_dims=[[P, Q], ["reflector"]],
        dask="parallelized",
        output_dtypes=[np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {"reflector": max(n - 1, 0)}},
    )
    return reduced, bare(tau)


def _tridiagonal(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.diagonal(packed).copy(), np.diagonal(packed, 1).copy()


def _top_eigen_one(
    packed: np.ndarray, tau: np.ndarray, n_top: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n_top`` eigenpairs from one packed reduction, largest first.

    Eigenvectors of ``T`` (MRRR, O(n·n_top)) are carried back by
    the reflectors: ``dsytrd`` with ``lower=1`` stores ``Q = diag(1, Q')`` with ``Q'`` in
    QR form in ``reduced[1:, :-1]``, which LAPACK ``dormqr`` applies.
    """
    n = packed.shape[-1]
    d, e = _tridiagonal(packed)
    reduced = packed.T
    # MRRR (stemr): stebz's bisection fails on exactly repeated eigenvalues, e.g. personas
    # with orthogonal vectors of equal norm
    vals, vecs = scipy.linalg.eigh_tridiagonal(
        d, e, select="i", select_range=(n - n_top, n - 1), lapack_driver="stemr"
    )
    if n > 1:
        lwork = max(1, n_top) * 64
        rotated, _, info = scipy.linalg.lapack.dormqr(
            "L", "N", reduced[1:, :-1], tau, vecs[1:], lwork
        )
        if info != 0:
            raise np.linalg.LinAlgError(f"LAPACK dormqr failed (info={info})")
        vecs[1:] = rotated
    return vals[::-1], vecs[:, ::-1]


def _embedding_kernel(
    packed: np.ndarray, tau: np.ndarray, *, n_top: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenpairs of a doubly centered Gram: coordinates ``V sqrt(λ)`` and ``λ``.

    Signs are deterministic: each column's largest-magnitude entry is positive.
    """
    vals, vecs = batched(_top_eigen_one, (packed, tau), (2, 1), n_top=n_top)
    vals = np.clip(vals, 0.0, None)
    coords = vecs * np.sqrt(vals)[..., None, :]
    return fix_signs(coords), vals


def fix_signs(coords: np.ndarray) -> np.ndarray:
    """Flip columns (last axis) so each one's largest-magnitude entry is positive."""
    pivot = np.take_along_axis(coords, np.abs(coords).argmax(axis=-2)[..., None, :], axis=-2)
    return coords * np.where(pivot < 0, -1.0, 1.0)


def _use_subspace(n: int, rank: int | None) -> bool:
    """Whether the Gram's rank bound is small enough for :func:`subspace_eigen` to pay off."""
    return rank is not None and rank + SUBSPACE_OVERSAMPLE <= n // 4


def _centered_product(k: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(H K H) x`` without forming ``H K H`` (``H`` removes the mean over rows)."""
    y = k @ (x - x.mean(axis=0))
    y -= y.mean(axis=0)
    return y


def _subspace_eigen_one(
    k: np.ndarray, rank: int, center: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Every nonzero eigenpair of a symmetric ``k`` (with ``center``, of ``H k H``) of rank
    at most ``rank``, largest first.

    ``k`` times a random ``n x w`` block (``w = rank + oversampling``) spans ``k``'s range
    exactly, so the eigenpairs of ``k`` restricted to that basis are ``k``'s own (up to
    rounding, ``eps * |k|`` as in the dense path): two BLAS-3 products, ``4 n² w`` flops,
    instead of the ``4/3 n³`` memory-bound Householder reduction. Centering is applied to
    the products, so no centred copy of ``k`` is made. Seeded: deterministic.
    """
    n = k.shape[-1]
    width = min(n, rank + SUBSPACE_OVERSAMPLE)
    probe = np.random.default_rng(0).standard_normal((n, width))
    product = (lambda x: _centered_product(k, x)) if center else k.__matmul__
    basis, _ = np.linalg.qr(product(probe))
    small = basis.T @ product(basis)
    vals, vecs = np.linalg.eigh((small + small.T) / 2)
    return vals[::-1], (basis @ vecs)[:, ::-1]


def _subspace_eigen_kernel(
    k: np.ndarray, *, rank: int, center: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=np.float64)
    return batched(_subspace_eigen_one, (k,), (2,), rank=rank, center=center)


def subspace_eigen(
    kernel_gram: xr.DataArray, rank: int, *, center: bool = False
) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy :func:`_subspace_eigen_one`: eigenvalues ``(..., eigen)`` and eigenvectors
    ``(..., persona, eigen)``, shared (same task names) by PCA and the scree."""
    width = min(kernel_gram.sizes[P], rank + SUBSPACE_OVERSAMPLE)
    vals, vecs = xr.apply_ufunc(
        _subspace_eigen_kernel,
        kernel_gram,
        input_core_dims=[[P, Q]],
        output_core_dims=[["eigen"], [P, "eigen"]],
        kwargs={"rank": rank, "center": center},
        dask="parallelized",
        output_dtypes=[np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {"eigen": width}},
    )
    return vals, vecs


def _subspace_embedding_kernel(
    vals: np.ndarray, vecs: np.ndarray, *, n_top: int
) -> tuple[np.ndarray, np.ndarray]:
    vals = np.clip(vals[..., :n_top], 0.0, None)
    coords = vecs[..., :n_top] * np.sqrt(vals)[..., None, :]
    return fix_signs(coords), vals


def embedding(
    kernel_gram: xr.DataArray, n_top: int, *, rank: int | None = None, center: bool = False
) -> tuple[xr.DataArray, xr.DataArray]:
    """Coordinates ``(..., persona, component)`` and eigenvalues ``(..., component)`` of
    every Gram (with ``center``, of its double centering ``H K H``).

    ``rank`` bounds the Gram's rank (e.g. the hidden size): when it is well below the
    persona count, the eigenpairs come from :func:`subspace_eigen` instead of a full
    Householder reduction, and centering is applied implicitly (no centred copy).
    """
    if _use_subspace(kernel_gram.sizes[P], rank):
        eigvals, eigvecs = subspace_eigen(kernel_gram, rank, center=center)
        coords, vals = xr.apply_ufunc(
            _subspace_embedding_kernel,
            eigvals,
            eigvecs,
            input_core_dims=[["eigen"], [P, "eigen"]],
            output_core_dims=[[P, "component"], ["component"]],
            kwargs={"n_top": n_top},
            dask="parallelized",
            output_dtypes=[np.float64, np.float64],
            dask_gufunc_kwargs={"output_sizes": {"component": n_top}},
        )
    else:
        reduced, tau = tridiagonalize(double_centered(kernel_gram) if center else kernel_gram)
        coords, vals = xr.apply_ufunc(
            _embedding_kernel,
            reduced,
            tau,
            input_core_dims=[[P, Q], ["reflector"]],
            output_core_dims=[[P, "component"], ["component"]],
            kwargs={"n_top": n_top},
            dask="parallelized",
            output_dtypes=[np.float64, np.float64],
            dask_gufunc_kwargs={"output_sizes": {"component": n_top}},
        )
    component = np.arange(1, n_top + 1)
    return coords.assign_coords(component=component), vals.assign_coords(component=component)


def _align_kernel(coords: np.ndarray) -> np.ndarray:
    """Flip components so consecutive layers' coordinates correlate positively.

    ``coords`` is ``(..., layer, persona, component)``; the first layer keeps its signs.
    """
    out = coords.copy()
    for i in range(1, out.shape[-3]):
        agree = (out[..., i - 1, :, :] * out[..., i, :, :]).sum(axis=-2)
        out[..., i, :, :] *= np.where(agree < 0, -1.0, 1.0)[..., None, :]
    return out


def align_layers(coords: xr.DataArray) -> xr.DataArray:
    """Apply :func:`_align_kernel` along ``layer`` (no-op without a layer dim)."""
    if "layer" not in coords.dims:
        return coords
    coords = single_chunk(coords, "layer", P, "component")  # small: n x k per layer
    return xr.apply_ufunc(
        _align_kernel,
        coords,
        input_core_dims=[["layer", P, "component"]],
        output_core_dims=[["layer", P, "component"]],
        dask="parallelized",
        output_dtypes=[coords.dtype],
    )


def _eigvals_one(packed: np.ndarray, n_top: int) -> np.ndarray:
    # Every eigenvalue of T (LAPACK dsterf, O(n²)); the largest n_top are kept.
    vals = _lapack.dsterf(*_tridiagonal(packed))[::-1]
    return vals[:n_top]


def _eigvals_kernel(packed: np.ndarray, *, n_top: int) -> np.ndarray:
    return np.clip(batched(_eigvals_one, (packed,), (2,), n_top=n_top), 0.0, None)


def _top_values(vals: np.ndarray, *, n_top: int) -> np.ndarray:
    return np.clip(vals[..., :n_top], 0.0, None)


def spectrum(
    kernel_gram: xr.DataArray, n_top: int, *, rank: int | None = None, center: bool = False
) -> xr.DataArray:
    """The ``n_top`` largest eigenvalues of every Gram matrix, ``(..., component)``
    (``rank`` and ``center`` as in :func:`embedding`)."""
    if _use_subspace(kernel_gram.sizes[P], rank):
        eigvals, _ = subspace_eigen(kernel_gram, rank, center=center)
        kernel, core, values = _top_values, ["eigen"], eigvals
    else:
        values, _ = tridiagonalize(double_centered(kernel_gram) if center else kernel_gram)
        kernel, core = _eigvals_kernel, [P, Q]
    vals = xr.apply_ufunc(
        kernel,
        values,
        input_core_dims=[core],
        output_core_dims=[["component"]],
        kwargs={"n_top": n_top},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"component": n_top}},
    )
    return vals.assign_coords(component=np.arange(1, n_top + 1))


def _centered_trace(k: np.ndarray) -> np.ndarray:
    # trace(H K H) = trace(K) - sum(K) / n
    n = k.shape[-1]
    return np.trace(k, axis1=-2, axis2=-1) - k.sum(axis=(-2, -1)) / n


def trace(kernel_gram: xr.DataArray, *, center: bool = False) -> xr.DataArray:
    """Trace of every Gram matrix (with ``center``, of ``H K H``): the total variance times
    ``n - 1``."""
    if center:
        return xr.apply_ufunc(
            _centered_trace,
            kernel_gram,
            input_core_dims=[[P, Q]],
            dask="parallelized",
            output_dtypes=[np.float64],
        )
    return xr.apply_ufunc(
        np.trace,
        kernel_gram,
        input_core_dims=[[P, Q]],
        kwargs={"axis1": -2, "axis2": -1},
        dask="parallelized",
        output_dtypes=[np.float64],
    )
