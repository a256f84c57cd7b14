"""Principal components of persona space, per layer, from the Gram engine.

PCA of the prepared rows ``U`` (centered, by default normalised, then centered again as PCA
does) is the eigendecomposition of their doubly centered Gram ``K = U Uᵀ``: with
``K = V Λ Vᵀ``, the scores are ``V sqrt(Λ)``, the explained variances ``Λ / (n - 1)`` and the
explained-variance ratios ``Λ / trace(K)``. Loadings over ``hidden`` need one more pass over
the vectors, so they are only computed when asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pvx import _engine, _spectra
from pvx._engine import H, P
from pvx._validate import LayerSelection, check_n_components

__all__ = ["explained_variance", "pca"]


def _loading_weights(
    scores: np.ndarray,
    vals: np.ndarray,
    centered_sq: np.ndarray,
    raw_sq: np.ndarray,
    *,
    normalize: bool,
) -> np.ndarray:
    """Weights ``A`` with ``loadings = Aᵀ X``: ``H D⁻¹ S / λ`` (``H S / λ`` unnormalised).

    ``H`` centers over personas, so ``X``'s mean drops out of ``Aᵀ X``. ``S`` (the scores)
    is centered in exact arithmetic, but not quite in floating point (a trace of the
    all-ones direction, which ``Aᵀ X`` would multiply by the offset), hence ``H`` in both
    cases. ``D`` scales by each persona's centered norm (from each row's squared norm,
    centered and raw, as the prepared Gram's kernel sees them).
    """
    weights = np.divide(
        scores, vals[..., None, :], out=np.zeros_like(scores), where=vals[..., None, :] > 0
    )
    if normalize:
        sq = centered_sq
        scale = raw_sq.max(axis=-1, keepdims=True)
        zero = _engine.zero_rows(sq, scale)
        inv = np.where(zero, 0.0, 1.0 / np.sqrt(np.where(zero, 1.0, sq)))
        weights = weights * inv[..., :, None]
    # centered again in both cases: scores from a float64-centered Gram keep a trace of the
    # all-ones direction (eps · offset² / spread²), which Aᵀ X multiplies by the offset
    return weights - weights.mean(axis=-2, keepdims=True)


def _weighted_sum(weights: Any, x: Any) -> Any:
    """``Wᵀ X`` over personas in float64, for numpy or dask arrays."""
    return weights.swapaxes(-1, -2).astype(np.float64) @ x.astype(np.float64)


def pca(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    n_components: int = 2,
    normalize: bool = True,
    loadings: bool = False,
    include_baseline: bool = False,
) -> xr.Dataset:
    """Principal component analysis of persona vectors, per layer.

    Rows are centered (each hidden unit's mean over personas removed) and, by default,
    normalised to unit length, then analysed as scikit-learn's ``PCA`` would.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden`` (and e.g. ``layer``, ``variant``).
    layer : label, list of labels or None
        Layers to analyse: one label drops the ``layer`` dim, a list keeps it, ``None`` keeps
        every layer. The signs are aligned between consecutive layers, so selecting one
        layer of the result (``pca(da).sel(layer=20)``) computes every layer; pass
        ``layer=20`` to compute that one alone.
    n_components : int
        Number of components, at most ``min(personas, hidden)``.
    normalize : bool
        Normalise the centered rows to unit length (default); ``False`` keeps magnitudes.
    loadings : bool
        Also return the components over ``hidden`` (needs a second pass over the vectors).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``scores`` (``(..., persona, component)``), ``explained_variance`` and
        ``explained_variance_ratio`` (``(..., component)``) and, if asked, ``loadings``
        (``(..., component, hidden)``, unit vectors). ``component`` is numbered from 1. Signs
        are deterministic (each component's largest-magnitude score is positive on the first
        layer) and, across layers, chosen so consecutive layers' scores correlate positively.

    Raises
    ------
    ValueError
        Fewer than 2 personas, ``n_components`` out of range, missing dims, or non-finite
        values (when computed, naming the persona ids).
    KeyError
        Unknown layer labels.

    See Also
    --------
    explained_variance : the full scree.

    Examples
    --------
    >>> import pvx.decomposition, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=3, seed=0)
    >>> res = pvx.decomposition.pca(da, layer=0)
    >>> res["scores"].dims, bool(res["explained_variance_ratio"][0] > 0.9)
    (('persona', 'component'), True)
    """
    func = "pca"
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2,
        why="PCA centers over personas",
    )
    n = da.sizes[P]
    k = check_n_components(n_components, n_persona=n, n_hidden=da.sizes[H], func=func)
    # Centering the rows makes their Gram doubly centered; normalising undoes that, so the
    # unit vectors are centered again (``center=``: implicitly where the solver allows).
    kernel = _engine.prepared(da, center=True, normalize=normalize)
    scores, vals = _spectra.embedding(kernel, k, rank=da.sizes[H], center=normalize)
    scores = _spectra.align_layers(scores).rename("scores")
    total = _spectra.trace(kernel, center=normalize)
    ratio = (vals / total.where(total > 0)).fillna(0.0)
    ds = xr.Dataset(
        {
            "scores": scores,
            "explained_variance": vals / (n - 1),
            "explained_variance_ratio": ratio,
        }
    )
    if loadings:
        # row norms from the vectors (a pass over them, which the loadings need anyway),
        # not a second Gram beside the prepared one
        x = da.astype(np.float64)
        centered_sq = ((x - x.mean(P, skipna=False)) ** 2).sum(H, skipna=False)
        raw_sq = (x**2).sum(H, skipna=False)
        weights = xr.apply_ufunc(
            _loading_weights,
            _engine.bare(scores),
            _engine.bare(vals),
            *(_engine.single_chunk(_engine.bare(sq), P) for sq in (centered_sq, raw_sq)),
            input_core_dims=[[P, "component"], ["component"], [P], [P]],
            output_core_dims=[[P, "component"]],
            kwargs={"normalize": normalize},
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        ds["loadings"] = xr.apply_ufunc(
            _weighted_sum,
            weights,
            _engine.bare(da),
            input_core_dims=[[P, "component"], [P, H]],
            output_core_dims=[["component", H]],
            dask="allowed",
        )
    ds.attrs = {"normalize": int(normalize), "n_personas": n}
    return ds


def explained_variance(
    da: xr.DataArray,
    *,
    layer: LayerSelection = None,
    normalize: bool = True,
    include_baseline: bool = False,
) -> xr.DataArray:
    """The full scree: explained-variance ratio of every principal component, per layer.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors with dims ``persona`` and ``hidden``.
    layer : label, list of labels or None
        Layers to analyse (see :func:`pca`).
    normalize : bool
        Normalise the centered rows to unit length (default), as in :func:`pca`.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.DataArray
        ``explained_variance_ratio`` with dims ``(..., component)``, ``min(personas, hidden)``
        components numbered from 1, in decreasing order, summing to 1.

    Examples
    --------
    >>> import pvx.decomposition, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> scree = pvx.decomposition.explained_variance(da)
    >>> scree.sizes["component"], bool(abs(scree.sum("component") - 1).max() < 1e-9)
    (8, True)
    """
    func = "explained_variance"
    da = _engine.prepare_input(
        da,
        func=func,
        layer=layer,
        include_baseline=include_baseline,
        min_personas=2,
        why="PCA centers over personas",
    )
    k = min(da.sizes[P], da.sizes[H])
    kernel = _engine.prepared(da, center=True, normalize=normalize)  # as in pca()
    vals = _spectra.spectrum(kernel, k, rank=da.sizes[H], center=normalize)
    total = _spectra.trace(kernel, center=normalize)
    return (vals / total.where(total > 0)).fillna(0.0).rename("explained_variance_ratio")
