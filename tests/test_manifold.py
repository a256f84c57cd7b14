"""Tests for pvx.manifold: Isomap and UMAP against scikit-learn / umap-learn, TwoNN."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import layer_slices, match_signs, prepared, stays_lazy, to_backend
from sklearn.manifold import TSNE, Isomap, trustworthiness

import pvx.synthetic
from pvx import _engine, _spectra, manifold

DEMO = Path(__file__).resolve().parents[1] / "stores" / "demo.zarr"


def test_isomap_equals_scikit_learn_up_to_sign(acts3):
    with stays_lazy():
        emb = manifold.isomap(acts3, n_components=3)
    assert emb.name == "isomap"
    assert emb.dims == ("layer", "persona", "component")
    emb = emb.compute()
    for i, x in enumerate(layer_slices(acts3)):
        expected = Isomap(n_neighbors=8, n_components=3).fit_transform(prepared(x))
        got = emb.isel(layer=i).values
        np.testing.assert_allclose(match_signs(got, expected), expected, atol=1e-6)
    # signs: deterministic on the first layer, then following the previous layer
    first = emb.isel(layer=0).values
    assert (first[np.abs(first).argmax(axis=0), [0, 1, 2]] > 0).all()
    agree = emb.isel(layer=slice(1, None)).values * emb.isel(layer=slice(None, -1)).values
    assert (agree.sum(axis=1) > 0).all()


def test_isomap_dask_equals_numpy_and_caps_neighbours(backend):
    da = pvx.synthetic.planted_personas(n_persona=6, n_layer=2, seed=3)
    expected = manifold.isomap(da)
    result = manifold.isomap(to_backend(da, backend))
    xr.testing.assert_allclose(result.compute(), expected)
    assert result.attrs["n_neighbors"] == 5  # min(8, personas - 1)


def test_umap_preserves_neighbourhoods(backend):
    # One test function for UMAP: numba compiles it once per session (~15 s).
    da = pvx.synthetic.planted_personas(
        n_persona=30, n_clusters=3, n_layer=2, n_hidden=32, noise=0.8, seed=4
    )
    with stays_lazy():
        emb = manifold.umap(to_backend(da, backend), seed=7)
    assert emb.name == "umap"
    assert emb.dims == ("layer", "persona", "component")
    emb = emb.compute()
    # seeded: the same input gives the same embedding (dask's float64 Gram may differ from
    # numpy's in the last bits, and UMAP's optimisation amplifies that, so compare per backend)
    again = manifold.umap(to_backend(da, backend), seed=7).compute()
    xr.testing.assert_identical(emb, again)
    import umap as umap_learn

    for i, x in enumerate(layer_slices(da)):
        u = prepared(x)
        ours = trustworthiness(u, emb.isel(layer=i).values, n_neighbors=5)
        direct = umap_learn.UMAP(n_neighbors=15, random_state=7, n_jobs=1).fit_transform(u)
        tsne = TSNE(perplexity=5, random_state=0, init="pca").fit_transform(u)
        assert ours > 0.9
        assert ours > trustworthiness(u, direct, n_neighbors=5) - 0.03
        assert ours > trustworthiness(u, tsne, n_neighbors=5) - 0.05
    # the planted clusters stay apart: every persona's nearest embedded neighbour shares it
    points = emb.isel(layer=0).values
    dist = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    cluster = da["planted_cluster"].values
    assert (cluster[dist.argmin(axis=1)] == cluster).all()
    # three personas are the minimum: spectral initialisation falls back to random
    three = manifold.umap(da.isel(persona=[0, 10, 20]), layer=0)
    assert three.shape == (3, 2) and three.attrs["init"] == "random"  # as it says


def _keeps_umaps_own_trustworthiness(da: xr.DataArray, share: float, **options) -> None:
    # over four seeds and every layer: umap-learn's own default moves by 1.3% between seeds
    # on the demo's layers, and one seed's share by 3% from machine to machine (0.968-1.006)
    shares = []
    for seed in (1, 2, 3, 4):
        ours = manifold.umap(da, seed=seed, **options)
        full = manifold.umap(da, seed=seed, n_epochs=None, init="spectral")
        assert ours.attrs["n_epochs"] == manifold.DEFAULT_UMAP_EPOCHS
        assert "n_epochs" not in full.attrs
        for i, x in enumerate(layer_slices(da)):
            u = prepared(x)
            fast = trustworthiness(u, ours.isel(layer=i).values, n_neighbors=15)
            default = trustworthiness(u, full.isel(layer=i).values, n_neighbors=15)
            shares.append(fast / default)
    assert np.mean(shares) >= share and min(shares) >= share - 0.03, shares


def test_umap_default_epochs_keep_umaps_own_trustworthiness():
    """pvx runs fewer epochs from a PCA start where umap-learn runs 500 from a spectral one:
    it must keep >= 0.98 of the quality on average (no fit below 0.95), on planted data and
    on the demo store's real embeddings (where 30 epochs, enough for planted clusters, kept
    only 0.91-0.95)."""
    da = pvx.synthetic.planted_personas(
        n_persona=240, n_clusters=6, n_layer=2, n_hidden=48, noise=1.2, seed=3
    )
    _keeps_umaps_own_trustworthiness(da, 0.98)
    demo = pvx.load(DEMO, "biography", mask_strategy="token_mean").isel(layer=[3, 6])
    _keeps_umaps_own_trustworthiness(demo.compute(), 0.98)
    with pytest.raises(ValueError, match="n_epochs=0"):
        manifold.umap(da, n_epochs=0)
    with pytest.raises(ValueError, match=r"init='tsne'; choose one of \['pca'"):
        manifold.umap(da, init="tsne")


def test_aligned_umap_keeps_umaps_own_trustworthiness():
    """pvx analyze's UMAP: every demo layer after the first from the layout before it, in
    40% of the epochs (80) at a quarter of the step, keeps >= 0.98 of umap-learn's default
    quality on average (at the full step 100 epochs kept 0.975)."""
    demo = pvx.load(DEMO, "biography", mask_strategy="token_mean").compute()
    _keeps_umaps_own_trustworthiness(demo, 0.98, aligned=True)


@pytest.mark.parametrize("init", ["pca", "spectral", "random"])
def test_umap_equals_umap_learn_on_the_dense_distances(init):
    """pvx hands umap-learn only the exact neighbours (and an empty sparse matrix for its
    shape): the layout is umap-learn's own on the full distance matrix, also with two
    far-apart groups (a disconnected neighbour graph for the spectral start)."""
    import scipy.spatial.distance

    da = pvx.synthetic.planted_personas(n_persona=60, n_clusters=2, n_layer=1, n_hidden=8,
                                        noise=0.3, seed=5).isel(layer=0)  # fmt: skip
    ours = manifold.umap(da, seed=3, init=init).values
    # the same distances as pvx's (the spectral start turns on differences of 1e-10)
    gram = _engine.prepared_gram(_engine.raw_gram(da), center=True, normalize=True).values
    distance = _engine._distance_kernel(gram)
    u = prepared(layer_slices(da)[0])
    np.testing.assert_allclose(
        distance, scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(u)), atol=1e-8
    )
    # pvx's start is the PCA of the same rows
    start = pvx.decomposition.pca(da, n_components=2)["scores"].values if init == "pca" else init
    model = manifold._load_umap().UMAP(
        n_neighbors=15, n_components=2, metric="precomputed", random_state=3, n_jobs=1,
        n_epochs=manifold.DEFAULT_UMAP_EPOCHS, init=start,
        precomputed_knn=manifold._exact_neighbors(distance, 15),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.fit_transform(distance)
    np.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("method", [manifold.umap, manifold.isomap])
def test_embedding_errors(method):
    da = pvx.synthetic.planted_personas(n_persona=6, seed=0)
    with pytest.raises(ValueError, match=r"needs at least 3 personas .* has 2"):
        method(da.isel(persona=[0, 1]))
    with pytest.raises(ValueError, match=r"n_components=6, but at most 5 are possible"):
        method(da, n_components=6)
    with pytest.raises(KeyError, match=r"unknown layer label\(s\) \[3\]"):
        method(da, layer=3)


def test_umap_of_personas_at_one_point_is_one_point(backend):
    """A layer where every persona is the same vector (as at a first-token layer) has no
    layout: zeros, as PCA and Isomap give, not a spread drawn from arbitrary ties; the other
    layers are unchanged."""
    da = pvx.synthetic.planted_personas(n_persona=30, n_layer=2, seed=0)
    da.values[:, 0] = da.values[0, 0]
    emb = manifold.umap(to_backend(da, backend)).compute()
    assert (emb.isel(layer=0) == 0).all()
    assert float(abs(emb.isel(layer=1)).max()) > 0
    xr.testing.assert_identical(emb.isel(layer=[1]), manifold.umap(da.isel(layer=[1])))


def test_umap_neighbour_errors():
    da = pvx.synthetic.planted_personas(n_persona=6, seed=0)
    with pytest.raises(ValueError, match=r"n_neighbors=6, but it must be between 2 and 5"):
        manifold.umap(da, n_neighbors=6)
    with pytest.raises(ValueError, match=r"n_neighbors=1, but it must be between 2 .*pass 2 or"):
        manifold.umap(da, n_neighbors=1)
    with pytest.raises(ValueError, match=r"n_epochs=0, .* between 1 and 100000 .*; pass 1 or"):
        manifold.umap(da, n_epochs=0)
    with pytest.raises(ValueError, match=r"n_epochs=100001, .*; pass fewer$"):
        manifold.umap(da, n_epochs=100_001)


def test_twonn_recovers_the_dimension_of_spheres(backend):
    # S^2 and S^5, rotated into 32 units under a large offset; centering and normalising
    # keep a sphere a sphere.
    da = pvx.synthetic.manifold_personas(dims=(2, 5), n_persona=1000, offset=300.0, seed=0)
    with stays_lazy():
        dim = manifold.twonn(to_backend(da, backend))
    assert dim.name == "intrinsic_dimension"
    assert dim.dims == ("layer",)
    np.testing.assert_allclose(dim.compute(), da["true_dimension"], rtol=0.15)


def test_twonn_on_a_plane_and_the_effect_of_normalising():
    da = pvx.synthetic.manifold_personas(dims=(2,), n_persona=1000, kind="plane", seed=1)
    np.testing.assert_allclose(manifold.twonn(da, layer=0, normalize=False), 2.0, rtol=0.15)
    # a flat disc through the mean becomes a circle once rows are normalised
    np.testing.assert_allclose(manifold.twonn(da, layer=0), 1.0, rtol=0.15)


def test_twonn_matches_a_direct_computation():
    da = pvx.synthetic.manifold_personas(dims=(3,), n_persona=300, seed=2)
    x = prepared(layer_slices(da)[0])
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    r = np.sort(d, axis=1)[:, :2]
    mu = np.sort(r[:, 1] / r[:, 0])
    keep = int(300 * 0.8)
    f = np.arange(1, 301) / 300
    expected = np.linalg.lstsq(np.log(mu[:keep])[:, None], -np.log(1 - f[:keep]), rcond=None)[0]
    np.testing.assert_allclose(manifold.twonn(da, discard_fraction=0.2), expected, rtol=1e-8)


def test_twonn_errors():
    da = pvx.synthetic.manifold_personas(dims=(2,), n_persona=20)
    with pytest.raises(ValueError, match=r"discard_fraction=1\.0; pass a fraction in \[0, 1\)"):
        manifold.twonn(da, discard_fraction=1.0)
    with pytest.raises(ValueError, match=r"twonn\(\) needs at least 3 personas"):
        manifold.twonn(da.isel(persona=[0, 1]))


@pytest.mark.parametrize("from_gram", [False, True])
def test_exact_neighbors_are_the_sorted_nearest_with_self_first(from_gram, monkeypatch):
    rng = np.random.default_rng(0)
    points = rng.standard_normal((40, 3))
    points[7] = points[3]  # a tie at distance 0: each still lists itself first
    distance = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    if from_gram:  # from the Gram, in blocks of 16 rows (the last one short)
        monkeypatch.setattr(manifold, "NEIGHBOR_ROWS", 16)
        indices, dists = manifold._neighbors_from_gram(points @ points.T, 6)
    else:
        indices, dists = manifold._exact_neighbors(distance, 6)
    assert indices.shape == dists.shape == (40, 6)
    np.testing.assert_array_equal(indices[:, 0], np.arange(40))
    for i in range(40):
        expected = np.sort(distance[i])[:6]
        np.testing.assert_allclose(dists[i], expected.astype(np.float32), atol=1e-6)
        np.testing.assert_allclose(distance[i, indices[i]], dists[i], rtol=1e-6, atol=1e-6)


UMAP_TWICE = """
import sys, umap.umap_
from pvx import manifold
manifold.prepare_umap()
hits = sum(f.stats.cache_hits.get(s, 0) for f in [umap.umap_.smooth_knn_dist,
           umap.umap_.compute_membership_strengths] for s in f.signatures)
print(hits)
"""


def test_umap_compiled_code_is_cached_across_processes():
    """A fresh process loads umap-learn's numba code from the disk cache pvx enables,
    instead of compiling it again (the ~10 s stall of a first UMAP). Without pvx's caching
    a fresh process never has hits; the environment's cache is usually warm from earlier
    tests, else the first process writes it (compiling, ~30 s) for the second."""
    import subprocess
    import sys

    def cache_hits() -> int:
        out = subprocess.run(
            [sys.executable, "-c", UMAP_TWICE], capture_output=True, text=True, check=True
        )
        return int(out.stdout.split()[-1])

    assert cache_hits() >= 2 or cache_hits() >= 2


@pytest.mark.parametrize("n_persona", [40, 260])  # Householder, then subspace eigensolver
def test_umap_starts_from_the_pca_it_shares_an_eigensolve_with(n_persona, monkeypatch):
    """UMAP's start is pvx's PCA of the same rows (scikit-learn's up to sign), from the
    eigensolve PCA and the scree computed with it use: one per layer for all three."""
    from sklearn.decomposition import PCA

    da = pvx.synthetic.planted_personas(n_persona=n_persona, n_layer=2, n_hidden=24, seed=2)
    starts = []
    chosen = manifold._umap_start

    def recorded(scores):
        found = chosen(scores)
        if scores.size:  # not dask's probe for the output type
            starts.append(found)
        return found

    solves = []
    for name in ("_tridiagonal_kernel", "_subspace_eigen_kernel"):
        solver = getattr(_spectra, name)

        def counted(k, *args, _solver=solver, **kwargs):
            if k.size:
                solves.append(k.shape)
            return _solver(k, *args, **kwargs)

        monkeypatch.setattr(_spectra, name, counted)
    monkeypatch.setattr(manifold, "_umap_start", recorded)
    lazy = da.chunk({"layer": 1})
    dask.compute(
        manifold.umap(lazy),
        pvx.decomposition.pca(lazy, n_components=3),
        pvx.decomposition.explained_variance(lazy),
    )
    assert len(solves) == da.sizes["layer"], solves
    assert len(starts) == da.sizes["layer"]
    for x in layer_slices(da):  # the layers' tasks ran in any order
        expected = np.abs(PCA(n_components=2, svd_solver="full").fit_transform(prepared(x)))
        assert any(np.allclose(np.abs(start), expected, rtol=0, atol=1e-8) for start in starts)
    for start in starts:
        # signs fixed as PCA's: each component's largest-magnitude entry is positive
        assert (start[np.abs(start).argmax(axis=0), [0, 1]] > 0).all()


def test_umap_starts_spectral_where_points_coincide_along_a_component():
    assert np.isnan(manifold._umap_start(np.zeros((5, 2)))).all()  # umap-learn's instead


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_killed_parent_takes_its_umap_worker_with_it(tmp_path):
    """After SIGKILL of its parent (a killed pvx analyze), a UMAP worker lingered for loky's
    5-minute idle timeout (review); it now ends within seconds."""
    script = (
        "import os, signal, pvx.manifold\n"
        "with pvx.manifold.umap_processes(1):\n"
        "    pool = pvx.manifold.worker_pool()\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = tmp_path / "out"
    with out.open("w") as stdout:  # a file, not a pipe: the worker holds it open too
        run = subprocess.Popen([sys.executable, "-c", script], stdout=stdout)
        assert run.wait(120) == -signal.SIGKILL
    worker = int(out.read_text().split()[0])

    def gone() -> bool:  # exited (a zombie until its new parent, init, reaps it)
        try:
            return "zombie" in Path(f"/proc/{worker}/status").read_text()
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone()


def test_umap_workers_outlive_the_thread_that_started_them():
    """A first version ended the workers with the thread that started them (the kernel's
    parent-death signal follows a thread): another thread's fit running in them then failed
    (review). Here the starting thread ends while the main thread's fit runs."""
    import threading

    small = pvx.synthetic.planted_personas(n_persona=12, n_layer=1, seed=0)
    big = pvx.synthetic.planted_personas(n_persona=1500, n_layer=1, n_hidden=16, seed=0)
    warm, running = threading.Event(), threading.Event()

    def starter() -> None:
        with manifold.umap_processes(1):
            manifold.umap(small).compute()  # the workers start from this thread
            warm.set()
            running.wait(60)
            time.sleep(0.5)  # the other fit is under way in the worker
        # and this thread ends

    thread = threading.Thread(target=starter)
    thread.start()
    assert warm.wait(120)
    with manifold.umap_processes(1):  # nested: the first block's pool serves
        running.set()
        out = manifold.umap(big, n_epochs=300).compute()
    thread.join()
    assert np.isfinite(out.values).all()


def _umap_learn_from(da: xr.DataArray, start: np.ndarray, *, seed: int, n_epochs: int, rate: float):
    """umap-learn on one layer's dense distances (pvx's own), from the layout ``start``."""
    gram = _engine.prepared_gram(_engine.raw_gram(da), center=True, normalize=True).values
    distance = _engine._distance_kernel(gram)
    model = manifold._load_umap().UMAP(
        n_neighbors=15, n_components=2, metric="precomputed", random_state=seed, n_jobs=1,
        n_epochs=n_epochs, init=start, precomputed_knn=manifold._exact_neighbors(distance, 15),
        learning_rate=rate,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit_transform(distance)


def test_aligned_umap_starts_each_layer_from_the_layout_before_it(backend):
    """aligned=True: the first layer as without it, each next one umap-learn's layout from
    the previous layer's, in 40% of the epochs at a quarter of the step; the variants are
    chains of their own; NumPy
    and dask (one chunk per layer) alike."""
    da = pvx.synthetic.planted_personas(
        n_persona=60, n_clusters=3, n_layer=3, n_hidden=12, noise=0.8, seed=2
    )
    both = xr.concat([da, da.isel(hidden=slice(None, None, -1)) * 1.5 + 0.1], "variant")
    both = both.assign_coords(variant=["a", "b"])
    with stays_lazy():
        emb = manifold.umap(to_backend(both, backend), aligned=True, seed=4)
    assert emb.attrs["aligned"] == 1 and emb.attrs["aligned_epochs"] == 80
    emb = emb.compute()
    assert emb.dims == manifold.umap(both, seed=4).dims
    for variant in ("a", "b"):
        one = both.sel(variant=variant)
        got = emb.sel(variant=variant)
        # the first layer: pvx's own UMAP of that layer alone
        first = manifold.umap(one.isel(layer=[0]), seed=4).isel(layer=0)
        np.testing.assert_allclose(got.isel(layer=0).values, first.values, atol=1e-4)
        for layer in (1, 2):
            expected = _umap_learn_from(
                one.isel(layer=layer),
                got.isel(layer=layer - 1).values,
                seed=4,
                n_epochs=80,
                rate=0.25,
            )
            np.testing.assert_allclose(got.isel(layer=layer).values, expected, atol=1e-4)
    # frames comparable: a persona moves less between layers than between independent fits
    independent = manifold.umap(both, seed=4)

    def moved(e: xr.DataArray) -> float:
        steps = e.isel(layer=slice(1, None)).values - e.isel(layer=slice(None, -1)).values
        return float(abs(steps).mean())

    assert moved(emb) < 0.5 * moved(independent)


def test_aligned_umap_goes_on_from_a_start_layout_and_restarts_after_one_point(backend):
    """Layers split in two calls (as pvx analyze computes groups of layers) give the layouts
    of one call; after a layer whose personas are at one point, the chain starts afresh."""
    da = pvx.synthetic.planted_personas(n_persona=40, n_layer=4, n_hidden=10, seed=1)
    whole = manifold.umap(da, aligned=True, seed=2)
    head = manifold.umap(to_backend(da.isel(layer=[0, 1]), backend), aligned=True, seed=2)
    tail = manifold.umap(
        to_backend(da.isel(layer=[2, 3]), backend),
        aligned=True,
        seed=2,
        start_layout=head.isel(layer=-1).compute(),
    )
    xr.testing.assert_identical(xr.concat([head, tail], "layer").compute(), whole)
    point = da.copy(data=da.values.copy())
    point.values[:, 1] = point.values[0, 1]
    chained = manifold.umap(to_backend(point, backend), aligned=True, seed=2).compute()
    assert (chained.isel(layer=1) == 0).all()
    # layer 2 from its own PCA start and all the epochs, as if first
    fresh = manifold.umap(point.isel(layer=[2, 3]), aligned=True, seed=2)
    xr.testing.assert_identical(chained.isel(layer=[2, 3]), fresh)
    # one layer by label: from the start layout, as the layer after it
    one = manifold.umap(da, layer=3, aligned=True, seed=2, start_layout=whole.isel(layer=2))
    np.testing.assert_array_equal(one.values, whole.isel(layer=3).values)


def test_aligned_umap_start_layout_errors():
    da = pvx.synthetic.planted_personas(n_persona=20, n_layer=2, seed=0)
    layout = manifold.umap(da, aligned=True).isel(layer=-1)
    with pytest.raises(ValueError, match="start_layout without aligned=True"):
        manifold.umap(da, start_layout=layout)
    with pytest.raises(ValueError, match=r"with 19 along 'persona' where the data has 20"):
        manifold.umap(da, aligned=True, start_layout=layout.isel(persona=slice(1, None)))
    with pytest.raises(ValueError, match="other personas"):
        manifold.umap(da, aligned=True, start_layout=layout.isel(persona=slice(None, None, -1)))
    with pytest.raises(ValueError, match=r"dims \('component',\)"):
        manifold.umap(da, aligned=True, start_layout=layout.isel(persona=0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        manifold.umap(da, aligned=True, start_layout=layout.where(layout.persona > 0))


def test_aligned_umap_keeps_a_one_layer_label_and_a_lazy_start_layout_lazy(backend):
    """One layer by label keeps its scalar ``layer`` coordinate (plot titles name it); a lazy
    start layout is computed once, with the layouts, not when the graph is built; with
    ``n_epochs=None`` later layers run 40% of umap-learn's own count (500 at this size)."""
    da = pvx.synthetic.planted_personas(n_persona=30, n_layer=4, n_hidden=10, seed=1)
    one = manifold.umap(to_backend(da, backend), layer=2, aligned=True)
    assert one.coords["layer"].item() == 2
    xr.testing.assert_identical(one.compute(), manifold.umap(da, layer=2, aligned=True))
    fits = []
    fit = manifold._umap_fit

    def counted(*args, **kwargs):
        fits.append(kwargs["n_epochs"])
        return fit(*args, **kwargs)

    lazy = da.chunk({"layer": 1})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(manifold, "_umap_fit", counted)
        head = manifold.umap(lazy.isel(layer=[0, 1]), aligned=True)
        tail = manifold.umap(
            lazy.isel(layer=[2, 3]), aligned=True, start_layout=head.isel(layer=-1)
        )
        assert fits == []
        got = xr.concat(dask.compute(head, tail), "layer")
    assert fits == [200, 80, 80, 80]
    xr.testing.assert_identical(got, manifold.umap(da, aligned=True))
    default = manifold.umap(da.isel(layer=[0, 1]), aligned=True, n_epochs=None)
    assert default.attrs["aligned_epochs"] == 200
    # too few personas for a start layout: every layer on its own, as without aligned
    tiny = da.isel(persona=slice(0, 3))
    xr.testing.assert_identical(
        manifold.umap(tiny, aligned=True).drop_attrs(), manifold.umap(tiny).drop_attrs()
    )
    with pytest.raises(ValueError, match=r"'variant' labels \['b', 'a'\] are not the data's"):
        two = xr.concat([da, da], "variant").assign_coords(variant=["a", "b"])
        layout = manifold.umap(two, aligned=True).isel(layer=-1)
        manifold.umap(two, aligned=True, start_layout=layout.isel(variant=[1, 0]))
