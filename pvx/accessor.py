"""The ``.pv`` accessor: pvx's analyses as methods of a DataArray of persona vectors.

Importing this module registers ``da.pv``. Every method is a one-line call of the documented
function in a topic module, which holds the types, docs and tests; the accessor keeps no state
beyond the array. Further namespaces (e.g. plots) attach as properties returning their own
small classes, so this class stays a flat list of forwards.
"""

from __future__ import annotations

from typing import Any

import xarray as xr

from pvx._forward import forward

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

    cosine = forward("pvx.similarity:cosine")
    neighbors = forward("pvx.similarity:neighbors")
    pair_similarity = forward("pvx.similarity:pair_similarity")
    pair_change = forward("pvx.similarity:pair_change")
    variant_similarity = forward("pvx.similarity:variant_similarity")
    pca = forward("pvx.decomposition:pca")
    explained_variance = forward("pvx.decomposition:explained_variance")
    umap = forward("pvx.manifold:umap")
    isomap = forward("pvx.manifold:isomap")
    twonn = forward("pvx.manifold:twonn")
    kmeans = forward("pvx.cluster:kmeans")
    linkage = forward("pvx.cluster:linkage")
    probe = forward("pvx.attributes:probe")
    direction = forward("pvx.attributes:direction")
    association = forward("pvx.attributes:association")

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
