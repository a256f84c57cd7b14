"""The ``.pv`` accessor forwards to the topic functions."""

from __future__ import annotations

import dask
import pytest
import xarray as xr

import pvx.accessor
import pvx.synthetic
from pvx import attributes, cluster, decomposition, manifold, similarity
from pvx.views import analyses


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


def test_all_analyses_compute_together(da):
    # One dask.compute of every analysis (as `pvx analyze` does) shares the reads and must
    # give what each gives alone on numpy.
    lazy = da.chunk({"layer": 1, "persona": 3})
    calls = {
        "cosine": lambda x: x.pv.cosine(),
        "pca": lambda x: x.pv.pca(loadings=True),
        "scree": lambda x: x.pv.explained_variance(),
        "isomap": lambda x: x.pv.isomap(),
        "twonn": lambda x: x.pv.twonn(),
        "kmeans": lambda x: x.pv.kmeans(2, mode="per_layer"),
        "kmeans_mean": lambda x: x.pv.kmeans(2),
        "linkage": lambda x: x.pv.linkage(),
        "neighbors": lambda x: x.pv.neighbors(3),
        "pairs": lambda x: x.pv.pair_similarity([("p0", "p1")]),
        "variants": lambda x: x.pv.variant_similarity("biography", "templated"),
    }
    together = dask.compute(*(call(lazy) for call in calls.values()))
    for name, result in zip(calls, together, strict=True):
        expected = calls[name](da)
        compare = xr.testing.assert_equal if name in ("kmeans", "kmeans_mean") else None
        (compare or xr.testing.assert_allclose)(result, expected)


def test_every_accessor_method_shows_its_functions_parameters_and_docs():
    """help(), inspect.signature and Shift-Tab show the real parameters, not **kwargs."""
    import inspect

    import pvx.hvplot
    import pvx.plot

    checked = 0
    for cls, module in (
        (pvx.accessor.PvAccessor, None),
        (pvx.plot.PlotAccessor, pvx.plot),
        (pvx.hvplot.HvplotAccessor, pvx.hvplot),
    ):
        for name, raw in vars(cls).items():
            if name.startswith("_") or isinstance(raw, property):
                continue
            method = getattr(cls, name)  # the .pv methods are built on first access
            if module is None:
                source = next(
                    getattr(m, name)
                    for m in (similarity, decomposition, manifold, cluster, attributes)
                    if hasattr(m, name)
                )
            elif name == "projection":  # recolours with the vectors (k-means for "cluster")
                backend = "plotly" if module is pvx.plot else "holoviews"
                source = analyses.bind(analyses.projection, backend)
            else:
                source = getattr(module, "explained_variance" if name == "scree" else name)
            assert method.__doc__ == source.__doc__, (cls.__name__, name)
            shown = list(inspect.signature(method).parameters)
            own = list(inspect.signature(source).parameters)
            expected = [p for p in own if p != "vectors"] if name == "projection" else own[1:]
            assert shown == ["self", *expected], (cls.__name__, name)
            checked += 1
    assert checked == 15 + 11 + 11


def test_import_pvx_leaves_the_analysis_libraries_for_first_use():
    """``import pvx`` (and the command line) registers ``da.pv`` without importing scipy,
    dask, zarr or the store, so ``pvx explore`` serves its page while they load; the first
    method call imports what it needs."""
    import subprocess
    import sys

    code = (
        "import sys, pvx, pvx.cli, xarray as xr\n"
        "heavy = [m for m in ('scipy', 'dask', 'zarr', 'icechunk', 'sklearn', 'pvx.store')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import pvx.synthetic\n"
        "da = pvx.synthetic.planted_personas(n_persona=6, n_clusters=2, seed=0)\n"
        "assert da.pv.cosine().shape[-1] == 6 and 'pvx.similarity' in sys.modules\n"
        "assert pvx.load.__module__ == 'pvx.store' and pvx.StoreError.__name__ == 'StoreError'\n"
        "assert 'write_variant' in dir(pvx)\n"
        "assert pvx.store.size_on_disk and pvx.attributes.probe and pvx.options.get_options\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pvx.nope  # noqa: B018


def test_plot_accessors_forward(da):
    import pvx.plot

    one = da.sel(variant="biography")
    scores = one.pv.pca()
    a = one.pv.plot.projection(scores, color="planted_cluster")
    b = pvx.plot.projection(scores, color="planted_cluster")
    assert a.to_json() == b.to_json()
    assert one.pv.plot.pca(layer=[0, 1]).to_json() == pvx.plot.pca(one, layer=[0, 1]).to_json()
