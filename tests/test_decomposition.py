"""Tests for pvx.decomposition: PCA and the scree against scikit-learn."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import layer_slices, match_signs, prepared, stays_lazy, to_backend
from sklearn.decomposition import PCA

import pvx.synthetic
from pvx import _engine, _spectra, decomposition


@pytest.mark.parametrize("normalize", [True, False])
def test_pca_equals_scikit_learn(acts3, normalize):
    with stays_lazy():
        res = decomposition.pca(acts3, n_components=3, normalize=normalize, loadings=True)
    assert res["scores"].dims == ("layer", "persona", "component")
    assert res["explained_variance_ratio"].dims == ("layer", "component")
    assert res["loadings"].dims == ("layer", "component", "hidden")
    assert res["component"].values.tolist() == [1, 2, 3]
    res = res.compute()
    for i, x in enumerate(layer_slices(acts3)):
        u = prepared(x, normalize=normalize)
        sk = PCA(n_components=3, svd_solver="full").fit(u)
        layer = res.isel(layer=i)
        np.testing.assert_allclose(
            layer["explained_variance_ratio"], sk.explained_variance_ratio_, atol=1e-5
        )
        np.testing.assert_allclose(layer["explained_variance"], sk.explained_variance_, rtol=1e-5)
        expected = sk.transform(u)
        scores = layer["scores"].values
        np.testing.assert_allclose(match_signs(scores, expected), expected, atol=1e-5)
        loadings = layer["loadings"].values.T
        np.testing.assert_allclose(
            match_signs(loadings, sk.components_.T), sk.components_.T, atol=1e-5
        )
        # the loadings are the same components as the scores, sign included
        np.testing.assert_allclose(
            (u - u.mean(0)) @ loadings, scores, atol=1e-5 * np.abs(scores).max()
        )


@pytest.mark.parametrize("normalize", [True, False])
def test_pca_and_scree_with_more_personas_than_hidden_units(backend, normalize, monkeypatch):
    """Many personas over a small hidden size take the subspace eigensolver (rank <= hidden)
    instead of the Householder reduction: same numbers as scikit-learn, and as the dense
    solver, with loadings and signs following layers."""
    da = pvx.synthetic.planted_personas(
        n_persona=120, n_clusters=3, n_layer=3, n_hidden=12, seed=4, noise=0.5
    )
    assert _spectra._use_subspace(120, 12)
    calls = []
    solver = _spectra._subspace_eigen_kernel

    def counted(k, **kwargs):
        if k.size:  # not dask's probe for the output type
            calls.append(k.shape)
        return solver(k, **kwargs)

    monkeypatch.setattr(_spectra, "_subspace_eigen_kernel", counted)
    # loadings: 1e-6 as the dense solver (the 3rd and 4th variances are close, 0.035/0.028)
    with stays_lazy():
        lazy = to_backend(da, backend)
        res = decomposition.pca(lazy, n_components=3, normalize=normalize, loadings=True)
        scree = decomposition.explained_variance(lazy, normalize=normalize)
    res, scree = dask.compute(res, scree)
    # computed together, PCA and the scree share one eigensolve per layer (numpy: eager)
    solves = sum(int(np.prod(shape[:-2])) for shape in calls)
    assert solves == (3 if backend == "dask" else 6), calls
    assert scree.sizes["component"] == 12
    for i, x in enumerate(layer_slices(da)):
        u = prepared(x, normalize=normalize)
        sk = PCA(svd_solver="full").fit(u)
        np.testing.assert_allclose(scree.isel(layer=i), sk.explained_variance_ratio_, atol=1e-9)
        layer = res.isel(layer=i)
        np.testing.assert_allclose(layer["explained_variance"], sk.explained_variance_[:3])
        expected = sk.transform(u)[:, :3]
        np.testing.assert_allclose(match_signs(layer["scores"].values, expected), expected,
                                   atol=1e-8 * np.abs(expected).max())  # fmt: skip
        loadings = layer["loadings"].values.T
        np.testing.assert_allclose(match_signs(loadings, sk.components_[:3].T),
                                   sk.components_[:3].T, atol=1e-6)  # fmt: skip
    kernel = _engine.prepared(da, center=True, normalize=normalize)
    dense, _ = _spectra.embedding(kernel, 3, center=normalize)  # no rank: the dense solver
    agree = (
        res["scores"].isel(layer=slice(1, None)).values
        * res["scores"].isel(layer=slice(None, -1)).values
    )
    assert (agree.sum(axis=1) > 0).all()  # consecutive layers positively correlated
    first = res["scores"].isel(layer=0).values
    np.testing.assert_allclose(first, dense.isel(layer=0).values, atol=1e-9)  # same signs
    # the personas' labels and attributes follow, as from the dense solver
    assert set(res["scores"].coords) == set(dense.coords) >= {"id", "name", "planted_cluster"}


def test_pca_dask_equals_numpy(backend):
    da = pvx.synthetic.planted_personas(n_persona=12, n_clusters=3, n_layer=4, seed=7)
    expected = decomposition.pca(da, n_components=4, loadings=True)
    with stays_lazy():
        result = decomposition.pca(to_backend(da, backend), n_components=4, loadings=True)
    xr.testing.assert_allclose(result.compute(), expected)
    assert result["planted_cluster"].dims == ("persona",)  # attributes carried through


def test_pca_signs_are_deterministic_and_follow_layers(acts3):
    res = decomposition.pca(acts3, n_components=3).compute()
    scores = res["scores"]
    first = scores.isel(layer=0).values
    assert (first[np.abs(first).argmax(axis=0), [0, 1, 2]] > 0).all()
    agree = scores.isel(layer=slice(1, None)).values * scores.isel(layer=slice(None, -1)).values
    assert (agree.sum(axis=1) > 0).all()  # consecutive layers positively correlated
    # the property is not free: independent per-layer signs would break it on this data
    flipped = -decomposition.pca(acts3, layer=11, n_components=3)["scores"]
    assert (flipped.values * scores.sel(layer=10).values).sum(0).min() < 0


def test_pca_on_one_layer_drops_the_dim(acts3):
    one = decomposition.pca(acts3, layer=12)
    assert one["scores"].dims == ("persona", "component")
    assert one["layer"].item() == 12


def test_explained_variance_is_the_full_scree(acts3):
    with stays_lazy():
        scree = decomposition.explained_variance(acts3)
    assert scree.name == "explained_variance_ratio"
    assert scree.dims == ("layer", "component")
    assert scree.sizes["component"] == 24
    scree = scree.compute()
    for i, x in enumerate(layer_slices(acts3)):
        sk = PCA(svd_solver="full").fit(prepared(x))
        np.testing.assert_allclose(scree.isel(layer=i), sk.explained_variance_ratio_, atol=1e-5)
    np.testing.assert_allclose(scree.sum("component"), 1.0, atol=1e-9)
    head = decomposition.pca(acts3, n_components=5)["explained_variance_ratio"]
    xr.testing.assert_allclose(head.compute(), scree.isel(component=slice(0, 5)))


@pytest.mark.parametrize("normalize", [True, False])
def test_pca_stays_accurate_under_a_large_offset(backend, normalize):
    da = pvx.synthetic.planted_personas(n_persona=10, n_hidden=64, offset=1e4, seed=11)
    res = decomposition.pca(
        to_backend(da, backend), n_components=3, normalize=normalize, loadings=True
    ).compute()
    for i, x in enumerate(layer_slices(da)):
        sk = PCA(n_components=3).fit(prepared(x, normalize=normalize))
        np.testing.assert_allclose(
            res["explained_variance_ratio"].isel(layer=i), sk.explained_variance_ratio_, atol=1e-6
        )
        # unnormalised loadings were off by 0.19 here (1e-5 normalised, from float32 input)
        # before their weights were centered again
        loadings = res["loadings"].isel(layer=i).values.T
        np.testing.assert_allclose(
            match_signs(loadings, sk.components_.T), sk.components_.T, atol=5e-5
        )


def test_pca_errors(acts):
    with pytest.raises(ValueError, match=r"n_components=9, but at most 8 are possible"):
        decomposition.pca(acts, n_components=9)
    with pytest.raises(ValueError, match=r"n_components=0"):
        decomposition.pca(acts, n_components=0)
    with pytest.raises(TypeError, match="integer n_components"):
        decomposition.pca(acts, n_components=2.5)
    narrow = pvx.synthetic.planted_personas(n_persona=8, n_hidden=3, n_clusters=2)
    with pytest.raises(ValueError, match=r"at most 3 are possible with 8 personas and 3 hidden"):
        decomposition.pca(narrow, n_components=4)
    with pytest.raises(ValueError, match=r"pca\(\) needs at least 2 personas"):
        decomposition.pca(acts.isel(persona=[0]))
    with pytest.raises(KeyError, match=r"explained_variance\(\) got unknown layer"):
        decomposition.explained_variance(acts, layer=[0, 5])


def test_pca_vectorises_over_variant(backend):
    da = pvx.synthetic.planted_personas(
        n_persona=10, n_clusters=2, variants=["biography", "templated"], seed=12
    )
    with stays_lazy():
        res = decomposition.pca(to_backend(da, backend), layer=[0, 2], n_components=3)
    assert res["scores"].dims == ("variant", "layer", "persona", "component")
    res = res.compute()
    for v in ("biography", "templated"):
        alone = decomposition.pca(da.sel(variant=v), layer=[0, 2], n_components=3)
        xr.testing.assert_allclose(res.sel(variant=v), alone)


@pytest.mark.parametrize("n", [3, 4, 27])
def test_pca_with_exactly_repeated_eigenvalues(backend, n):
    """Orthogonal personas of equal norm: every centered eigenvalue is the same (bisection
    fails there; the eigensolver must not)."""
    da = xr.DataArray(
        np.eye(n, 64),
        dims=("persona", "hidden"),
        coords={"id": ("persona", [f"p{i}" for i in range(n)])},
    )
    res = decomposition.pca(to_backend(da, backend), n_components=2).compute()
    expected = PCA(n_components=2).fit(prepared(da.values))
    np.testing.assert_allclose(
        res["explained_variance_ratio"], expected.explained_variance_ratio_, atol=1e-12
    )
    scores = res["scores"].values
    np.testing.assert_allclose(
        scores.T @ scores, np.diag(expected.explained_variance_ * (n - 1)), atol=1e-12
    )
