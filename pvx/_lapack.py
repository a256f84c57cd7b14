"""The LAPACK routines of the per-layer eigen step, called without holding the GIL.

``scipy.linalg.lapack``'s wrappers hold the GIL for the whole Fortran call. The Householder
reduction of one 1000 x 1000 layer takes about 45 ms, during which every other dask thread
that needs Python (reading the next chunks through Zarr, writing results, the scheduler
itself) stands still: the cores idled a third of the time on the M store. These call the
same routines through the function pointers ``scipy.linalg.cython_lapack`` exports for
Cython users (numba finds its LAPACK the same way), via ctypes, which releases the GIL
around a foreign call.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg.cython_lapack

_INT = ctypes.POINTER(ctypes.c_int)
_DOUBLE = ctypes.POINTER(ctypes.c_double)
_CHAR = ctypes.c_char_p

_capsule_name = ctypes.pythonapi.PyCapsule_GetName
_capsule_name.restype = ctypes.c_char_p
_capsule_name.argtypes = [ctypes.py_object]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@functools.cache
def _routine(name: str, *argtypes: Any) -> Callable[..., None]:
    capsule = scipy.linalg.cython_lapack.__pyx_capi__[name]
    address = _capsule_pointer(capsule, _capsule_name(capsule))
    return ctypes.CFUNCTYPE(None, *argtypes)(address)


def _int(value: int) -> ctypes.c_int:
    return ctypes.c_int(value)


def _ptr(array: np.ndarray) -> Any:
    return array.ctypes.data_as(_DOUBLE)


def dsytrd_lower(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Householder reduction of the symmetric float64 matrix ``k`` (LAPACK ``dsytrd``,
    ``uplo="L"``), as ``scipy.linalg.lapack.dsytrd(k, lower=1)`` returns it but transposed:
    ``(packed.T, d, e, tau)``. ``k`` is read, not changed."""
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"dsytrd_lower() needs a square matrix, got shape {k.shape}")
    n = k.shape[-1]
    # C-ordered, the copy is the Fortran-ordered kᵀ = k, and LAPACK leaves packedᵀ in it
    packed = np.array(k, dtype=np.float64, order="C")
    d = np.empty(n)
    e = np.empty(max(n - 1, 1))
    tau = np.empty(max(n - 1, 1))
    info = ctypes.c_int(0)
    dsytrd = _routine("dsytrd", _CHAR, _INT, _DOUBLE, _INT, _DOUBLE, _DOUBLE, _DOUBLE,
                      _DOUBLE, _INT, _INT)  # fmt: skip
    size = ctypes.c_double(0.0)
    lda = _int(max(n, 1))
    dsytrd(b"L", _int(n), _ptr(packed), lda, _ptr(d), _ptr(e), _ptr(tau),
           ctypes.byref(size), _int(-1), ctypes.byref(info))  # fmt: skip
    work = np.empty(max(int(size.value), 1))
    dsytrd(b"L", _int(n), _ptr(packed), lda, _ptr(d), _ptr(e), _ptr(tau),
           _ptr(work), _int(work.size), ctypes.byref(info))  # fmt: skip
    if info.value != 0:
        raise np.linalg.LinAlgError(f"LAPACK dsytrd failed (info={info.value})")
    return packed, d, e[: max(n - 1, 0)], tau[: max(n - 1, 0)]


def dsterf(d: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Every eigenvalue, ascending, of the symmetric tridiagonal matrix with diagonal ``d``
    and off-diagonal ``e`` (LAPACK ``dsterf``)."""
    if np.ndim(d) != 1 or np.shape(e) != (max(len(d) - 1, 0),):
        raise ValueError(
            f"dsterf() needs an off-diagonal of length {max(len(d) - 1, 0)} for a diagonal of "
            f"length {len(d)}, got shape {np.shape(e)}"
        )
    vals = np.array(d, dtype=np.float64)
    off = np.array(e, dtype=np.float64) if len(e) else np.zeros(1)
    info = ctypes.c_int(0)
    _routine("dsterf", _INT, _DOUBLE, _DOUBLE, _INT)(
        _int(len(vals)), _ptr(vals), _ptr(off), ctypes.byref(info)
    )
    if info.value != 0:
        raise np.linalg.LinAlgError(f"LAPACK dsterf failed to converge (info={info.value})")
    return vals


def dpstrf_rows(k: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Rows ``R`` (``n x rank``) with ``R Rᵀ = k`` for a symmetric positive semi-definite
    float64 ``k``: LAPACK's pivoted Cholesky ``dpstrf``, about five times cheaper than an
    eigendecomposition, stopping at the numerical rank. ``k`` is read, not changed, unless
    ``overwrite`` (then a C-ordered float64 ``k`` is factorised in place: no copy)."""
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"dpstrf_rows() needs a square matrix, got shape {k.shape}")
    n = k.shape[-1]
    if n == 0:
        return np.zeros((0, 0))
    # The C-ordered copy is k (symmetric) to Fortran; the factor U of Pᵀ k P = Uᵀ U that
    # LAPACK writes in Fortran's upper triangle reads, row-major, as the lower triangle Uᵀ.
    factor = np.array(k, dtype=np.float64, order="C", copy=None if overwrite else True)
    pivots = np.empty(n, dtype=np.intc)
    rank = ctypes.c_int(0)
    work = np.empty(2 * n)
    info = ctypes.c_int(0)
    dpstrf = _routine("dpstrf", _CHAR, _INT, _DOUBLE, _INT, ctypes.POINTER(ctypes.c_int),
                      _INT, _DOUBLE, _DOUBLE, _INT)  # fmt: skip
    dpstrf(b"U", _int(n), _ptr(factor), _int(n), pivots.ctypes.data_as(_INT),
           ctypes.byref(rank), ctypes.byref(ctypes.c_double(-1.0)), _ptr(work),
           ctypes.byref(info))  # fmt: skip
    if info.value < 0:
        raise np.linalg.LinAlgError(f"LAPACK dpstrf failed (info={info.value})")
    r = max(rank.value, 1)  # a zero matrix: one zero column, so rows still have a length
    lower = np.tril(factor[:, :r]) if rank.value else np.zeros((n, 1))
    rows = np.empty((n, r))
    rows[pivots - 1] = lower
    return rows
