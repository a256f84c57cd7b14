"""The ``.pv`` accessor: pvx's analyses as methods of a DataArray of persona vectors.

Importing this module registers ``da.pv``. Every method is a one-line call of the documented
function in a topic module, which holds the types, docs and tests; the accessor keeps no state
beyond the array. Further namespaces (e.g. plots) attach as properties returning their own
small classes, so this class stays a flat list of forwards.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import xarray as xr

from pvx import cluster, decomposition, manifold, similarity
from pvx._validate import LayerSelection

__all__ = ["PvAccessor"]


@xr.register_dataarray_accessor("pv")
class PvAccessor:
    """pvx analysis on a DataArray of persona vectors, as ``da.pv.<method>``.

    Examples
    --------
    >>> import pvx.accessor, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, seed=0)
    >>> da.pv.pca(layer=0)["scores"].dims
    ('persona', 'component')
    """

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    def cosine(
        self, other: xr.DataArray | None = None, *, layer: LayerSelection = None, **kwargs: Any
    ) -> xr.DataArray:
        """Call :func:`pvx.similarity.cosine` on this array."""
        return similarity.cosine(self._da, other, layer=layer, **kwargs)

    def neighbors(self, k: int, *, layer: LayerSelection = None, **kwargs: Any) -> xr.Dataset:
        """Call :func:`pvx.similarity.neighbors` on this array."""
        return similarity.neighbors(self._da, k, layer=layer, **kwargs)

    def pair_similarity(
        self,
        pairs: Sequence[tuple[Hashable, Hashable]] | None = None,
        *,
        layer: LayerSelection = None,
        **kwargs: Any,
    ) -> xr.Dataset:
        """Call :func:`pvx.similarity.pair_similarity` on this array."""
        return similarity.pair_similarity(self._da, pairs, layer=layer, **kwargs)

    def variant_similarity(
        self, a: Hashable, b: Hashable, *, layer: LayerSelection = None, **kwargs: Any
    ) -> xr.Dataset:
        """Call :func:`pvx.similarity.variant_similarity` on this array."""
        return similarity.variant_similarity(self._da, a, b, layer=layer, **kwargs)

    def pca(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.Dataset:
        """Call :func:`pvx.decomposition.pca` on this array."""
        return decomposition.pca(self._da, layer=layer, **kwargs)

    def explained_variance(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.DataArray:
        """Call :func:`pvx.decomposition.explained_variance` on this array."""
        return decomposition.explained_variance(self._da, layer=layer, **kwargs)

    def umap(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.DataArray:
        """Call :func:`pvx.manifold.umap` on this array."""
        return manifold.umap(self._da, layer=layer, **kwargs)

    def isomap(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.DataArray:
        """Call :func:`pvx.manifold.isomap` on this array."""
        return manifold.isomap(self._da, layer=layer, **kwargs)

    def twonn(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.DataArray:
        """Call :func:`pvx.manifold.twonn` on this array."""
        return manifold.twonn(self._da, layer=layer, **kwargs)

    def kmeans(
        self, n_clusters: int, *, layer: LayerSelection = None, **kwargs: Any
    ) -> xr.DataArray:
        """Call :func:`pvx.cluster.kmeans` on this array."""
        return cluster.kmeans(self._da, n_clusters, layer=layer, **kwargs)

    def linkage(self, *, layer: LayerSelection = None, **kwargs: Any) -> xr.Dataset:
        """Call :func:`pvx.cluster.linkage` on this array."""
        return cluster.linkage(self._da, layer=layer, **kwargs)

    @property
    def plot(self) -> Any:
        """Plotly views as ``da.pv.plot.<analysis>(...)`` (:mod:`pvx.plot`)."""
        from pvx.plot import PlotAccessor  # plotting code loads on first use

        return PlotAccessor(self._da)

    @property
    def hvplot(self) -> Any:
        """HoloViews views as ``da.pv.hvplot.<analysis>(...)`` (:mod:`pvx.hvplot`)."""
        from pvx.hvplot import HvplotAccessor

        return HvplotAccessor(self._da)
