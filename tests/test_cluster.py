"""Tests for pvx.cluster: k-means and linkage against scikit-learn and SciPy."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import scipy.cluster.hierarchy
import xarray as xr
from conftest import layer_slices, prepared, stays_lazy, to_backend
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

import pvx.decomposition
import pvx.synthetic
from pvx import _spectra, cluster


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings split the items the same way (labels may differ)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def _sklearn_kmeans(x: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    return KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(x)


@pytest.fixture
def overlapping(backend: str) -> xr.DataArray:
    """Clusters noisy enough that k-means partitions are not simply the planted ones."""
    da = pvx.synthetic.planted_personas(
        n_persona=30, n_clusters=4, n_layer=3, n_hidden=16, noise=2.5, seed=8
    )
    return to_backend(da, backend)


def test_same_partition_can_fail():
    assert same_partition(np.array([0, 0, 1, 2]), np.array([2, 2, 0, 1]))
    assert not same_partition(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))


@pytest.mark.parametrize("mode", ["first_layer", "per_layer"])
def test_kmeans_equals_scikit_learn_per_layer(overlapping, mode):
    with stays_lazy():
        labels = cluster.kmeans(overlapping, 4, mode=mode, seed=3)
    assert labels.name == "cluster"
    assert labels.dims == (("layer", "persona") if mode == "per_layer" else ("persona",))
    labels = labels.compute()
    slices = layer_slices(overlapping)
    if mode == "first_layer":
        slices, labels = slices[:1], labels.expand_dims(layer=1)
    for i, x in enumerate(slices):
        expected = _sklearn_kmeans(prepared(x), 4, seed=3)
        assert same_partition(labels.isel(layer=i).values, expected)
    planted = pvx.synthetic.planted_personas(n_persona=30, n_clusters=4, n_layer=3, noise=2.5)
    assert not same_partition(labels.isel(layer=0).values, planted["planted_cluster"].values)


def test_kmeans_labels_are_not_shadowed_by_an_attribute_named_cluster(overlapping):
    # pvx's synthetic stores label personas with a "cluster" attribute
    da = overlapping.rename(planted_cluster="cluster")
    labels = cluster.kmeans(da, 4, mode="per_layer", seed=3)
    assert "cluster" not in labels.coords
    dataset = labels.to_dataset()  # failed: a variable named like one of its coordinates
    expected = cluster.kmeans(overlapping, 4, mode="per_layer", seed=3)
    np.testing.assert_array_equal(dataset["cluster"].values, expected.values)


def test_kmeans_mean_across_layers_equals_scikit_learn(overlapping):
    with stays_lazy():
        labels = cluster.kmeans(overlapping, 4, layer=[0, 2], seed=1)
    assert labels.dims == ("persona",)
    mean = np.mean([prepared(x) for x in layer_slices(overlapping.sel(layer=[0, 2]))], axis=0)
    assert same_partition(labels.values, _sklearn_kmeans(mean, 4, seed=1))
    assert labels.attrs["mode"] == "mean_across_layers"


def _sklearn_kmeans_on_components(x: np.ndarray, n_clusters: int, q: int, seed: int):
    scores = PCA(n_components=q, svd_solver="full").fit_transform(x)
    return KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(scores)


@pytest.mark.parametrize("mode", ["per_layer", "mean_across_layers"])
def test_kmeans_on_principal_components_equals_scikit_learn(overlapping, mode):
    q = 3  # of 16 dims: the partitions differ from those of the vectors themselves
    with stays_lazy():
        labels = cluster.kmeans(overlapping, 4, mode=mode, seed=3, n_components=q)
    assert labels.attrs["n_components"] == q
    labels = labels.compute()
    rows = [prepared(x) for x in layer_slices(overlapping)]
    if mode == "mean_across_layers":
        rows, labels = [np.mean(rows, axis=0)], labels.expand_dims(layer=1)
    differs = False
    for i, x in enumerate(rows):
        expected = _sklearn_kmeans_on_components(x, 4, q, seed=3)
        assert same_partition(labels.isel(layer=i).values, expected)
        differs |= not same_partition(expected, _sklearn_kmeans(x, 4, seed=3))
    assert differs


def test_kmeans_on_principal_components_shares_pcas_eigendecomposition(monkeypatch):
    da = pvx.synthetic.planted_personas(n_persona=12, n_layer=3, n_hidden=40, seed=1)
    calls = []
    reduce = _spectra._tridiagonal_one
    monkeypatch.setattr(_spectra, "_tridiagonal_one", lambda k: calls.append(1) or reduce(k))
    lazy = to_backend(da, "dask")
    dask.compute(
        pvx.decomposition.pca(lazy, n_components=2),
        cluster.kmeans(lazy, 3, mode="per_layer", n_components=5),
    )
    assert len(calls) == 3  # one reduction per layer, not one per analysis


def test_kmeans_components_beyond_the_rank_are_clipped(acts):
    labels = cluster.kmeans(acts, 2, n_components=10**6, mode="per_layer")
    assert labels.attrs["n_components"] == min(acts.sizes["persona"] - 1, acts.sizes["hidden"])
    one = to_backend(acts.isel(persona=[0]), "dask")  # no reduction to share: the vectors
    assert cluster.kmeans(one, 1, n_components=5, mode="per_layer").values.tolist() == [[0]] * 3
    for data in (acts, one):  # checked whatever the persona count
        with pytest.raises(ValueError, match=r"n_components=0"):
            cluster.kmeans(data, 1, n_components=0)


def test_kmeans_recovers_planted_clusters_with_stable_labels(acts3):
    for mode in ("mean_across_layers", "first_layer", "per_layer"):
        for n_components in (None, 2):
            labels = cluster.kmeans(acts3, 3, mode=mode, n_components=n_components).compute()
            expected = acts3["planted_cluster"].values
            np.testing.assert_array_equal(labels.values, np.broadcast_to(expected, labels.shape))


def test_per_layer_labels_follow_their_groups():
    layers = np.array(
        [
            [0, 0, 1, 1, 2, 2],
            [2, 2, 0, 0, 1, 1],  # same groups, permuted labels
            [1, 1, 0, 2, 2, 2],  # persona 2 moved into another group
        ]
    )
    matched = cluster._match_layers(layers, n_clusters=3)
    np.testing.assert_array_equal(matched[1], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(matched[2], [0, 0, 1, 2, 2, 2])


def test_kmeans_dask_equals_numpy_over_variants(backend):
    da = pvx.synthetic.planted_personas(
        n_persona=12, n_clusters=3, variants=["biography", "templated"], noise=1.5, seed=2
    )
    expected = cluster.kmeans(da, 3, mode="per_layer")
    result = cluster.kmeans(to_backend(da, backend), 3, mode="per_layer")
    assert result.dims == ("variant", "layer", "persona")
    xr.testing.assert_equal(result.compute(), expected)


def test_kmeans_errors(acts):
    with pytest.raises(ValueError, match=r"n_clusters=9, but it must be between 1 and 8"):
        cluster.kmeans(acts, 9)
    with pytest.raises(ValueError, match=r"unknown mode 'per_persona'; choose one of"):
        cluster.kmeans(acts, 2, mode="per_persona")
    bad = pvx.synthetic.planted_personas(n_persona=8, seed=0)
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"found non-finite .* \['p2'\]"):
        cluster.kmeans(to_backend(bad, "dask"), 2).compute()


@pytest.mark.parametrize("method", ["ward", "average", "complete", "single"])
def test_linkage_equals_scipy(acts3, method):
    with stays_lazy():
        tree = cluster.linkage(acts3, method=method)
    assert tree["linkage"].dims == ("layer", "merge", "field")
    assert tree["order"].dims == ("layer", "leaf")
    tree = tree.compute()
    ids = acts3["id"].values
    for i, x in enumerate(layer_slices(acts3)):
        expected = scipy.cluster.hierarchy.linkage(prepared(x), method=method)
        np.testing.assert_allclose(tree["linkage"].isel(layer=i), expected, atol=1e-8)
        leaves = scipy.cluster.hierarchy.leaves_list(expected)
        np.testing.assert_array_equal(tree["order"].isel(layer=i), leaves)
        np.testing.assert_array_equal(tree["leaf_id"].isel(layer=i), ids[leaves])


def test_linkage_errors(acts):
    with pytest.raises(ValueError, match=r"unknown method 'median'; choose one of \['ward'"):
        cluster.linkage(acts, method="median")
    with pytest.raises(ValueError, match=r"linkage\(\) needs at least 2 personas"):
        cluster.linkage(acts.isel(persona=[0]))


def test_pivoted_cholesky_rows_reproduce_a_rank_deficient_gram():
    from pvx import _lapack

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    x -= x.mean(axis=0)
    k = x @ x.T  # rank 6
    rows = _lapack.dpstrf_rows(k)
    assert rows.shape == (40, 6)
    np.testing.assert_allclose(rows @ rows.T, k, atol=1e-10)
    assert _lapack.dpstrf_rows(np.zeros((4, 4))).shape == (4, 1)


def test_matching_groups_of_layers_again_equals_matching_all_layers_at_once():
    """pvx analyze computes k-means a group of layers at a time and matches the joined
    labels again: the same labels as matching every layer in one pass."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4, size=40)
    layers = []
    for _ in range(7):  # each layer: the clusters relabelled, a few personas moved
        labels = rng.permutation(4)[base]
        moved = rng.choice(40, size=4, replace=False)
        labels[moved] = rng.integers(0, 4, size=4)
        layers.append(labels)
    raw = xr.DataArray(np.stack(layers), dims=("layer", "persona"), attrs={"n_clusters": 4})
    assert not (raw[1:].values == raw[:-1].values).all(axis=1).any()  # matching has work
    whole = cluster.match_layers(raw)
    groups = [cluster.match_layers(raw.isel(layer=slice(i, i + 3))) for i in range(0, 7, 3)]
    joined = cluster.match_layers(xr.concat(groups, "layer"))
    xr.testing.assert_identical(joined, whole)
    # matched: consecutive layers agree on most personas
    assert ((whole[1:].values == whole[:-1].values).mean(axis=1) >= 0.75).all()


def test_kmeans_across_layers_keeps_a_persona_at_the_mean_at_zero(backend):
    # a persona at the mean under a large offset: its centred rows are rounding noise, which
    # cosine() treats as zero; scaled to unit length they would place it at random
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 2, 16)) + 1000.0
    x[-1] = x[:-1].mean(axis=0)
    da = pvx.persona_vectors(x.astype(np.float32), ids=[f"p{i}" for i in range(12)])
    means = cluster._mean_unit_vectors(to_backend(da, backend)).compute()
    np.testing.assert_array_equal(means.sel(id="p11").values, 0.0)
    expected = np.mean([prepared(s)[:-1] for s in layer_slices(da)], axis=0)
    np.testing.assert_allclose(means.values[:-1], expected, atol=1e-9)
