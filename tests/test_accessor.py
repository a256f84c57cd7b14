"""The ``.pv`` accessor forwards to the topic functions."""

from __future__ import annotations

import pytest
import xarray as xr

import pvx.accessor
import pvx.synthetic
from pvx import cluster, decomposition, manifold, similarity


@pytest.fixture(scope="module")
def da() -> xr.DataArray:
    return pvx.synthetic.planted_personas(
        n_persona=8, n_layer=3, variants=["biography", "templated"], seed=0
    )


@pytest.mark.parametrize(
    ("method", "func", "args", "kwargs"),
    [
        ("cosine", similarity.cosine, (), {"layer": 1, "center": False}),
        ("cosine", similarity.cosine, (pvx.synthetic.planted_personas(seed=1),), {"layer": 0}),
        ("neighbors", similarity.neighbors, (2,), {"layer": [0, 2]}),
        ("pair_similarity", similarity.pair_similarity, ([("p0", "p5")],), {}),
        ("variant_similarity", similarity.variant_similarity, ("biography", "templated"), {}),
        ("pca", decomposition.pca, (), {"layer": 2, "n_components": 3, "loadings": True}),
        ("explained_variance", decomposition.explained_variance, (), {"normalize": False}),
        ("isomap", manifold.isomap, (), {"layer": 0}),
        ("umap", manifold.umap, (), {"layer": [1], "seed": 3}),
        ("twonn", manifold.twonn, (), {"discard_fraction": 0.0}),
        ("kmeans", cluster.kmeans, (2,), {"mode": "per_layer"}),
        ("linkage", cluster.linkage, (), {"method": "average"}),
    ],
)
def test_accessor_forwards(da, method, func, args, kwargs):
    xr.testing.assert_identical(getattr(da.pv, method)(*args, **kwargs), func(da, *args, **kwargs))


def test_accessor_is_registered_by_pvx_accessor():
    assert xr.DataArray.pv is pvx.accessor.PvAccessor
