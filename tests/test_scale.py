"""Big-store paths give the in-memory answers: out of core (dask from Zarr), on a
dask.distributed cluster, and over HTTP; the synthetic store generator plants what it says."""

from __future__ import annotations

import collections
import functools
import pickle

import dask
import numpy as np
import pytest
import xarray as xr
from conftest import count_reads

import pvx
from pvx import _engine, _spectra
from pvx.synthetic_store import persona_block_for, write_synthetic_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "s.zarr"
    # 30 personas in blocks of 8: main arrays plus a tail, as appends leave them
    write_synthetic_store(
        path, n_persona=30, n_layer=5, n_hidden=96, n_clusters=3, persona_block=8, seed=1
    )
    return path


def analyses(da):
    return (
        pvx.cosine(da),
        pvx.pca(da, n_components=2),
        pvx.explained_variance(da),
    )


def test_generator_plants_clusters_offset_and_scale(store):
    da = pvx.load(store, "templated").compute()
    assert da.sizes == {"persona": 30, "layer": 5, "hidden": 96}
    assert da.dtype == np.float16
    mean_norm = np.linalg.norm(da.astype("f8").mean("persona"), axis=-1)
    np.testing.assert_allclose(mean_norm / np.linspace(1, 8, 5), 100, rtol=0.02)
    sim = pvx.cosine(da).sel(layer=4)
    cluster = da["cluster"].values
    same = cluster[:, None] == cluster[None, :]
    off_diagonal = ~np.eye(30, dtype=bool)
    assert sim.values[same & off_diagonal].mean() > 0.5
    assert sim.values[~same].mean() < 0.0
    biography = pvx.load(store, "biography").compute()
    assert not np.array_equal(da.values, biography.values)  # variants differ by noise


def test_persona_block_divides():
    assert persona_block_for(1000) == 125
    assert persona_block_for(200) == 100
    assert persona_block_for(97) == 97


def test_out_of_core_equals_in_memory(store):
    lazy = pvx.load(store, "templated")
    assert lazy.chunks is not None
    out_of_core = dask.compute(*analyses(lazy))
    in_memory = analyses(lazy.compute())
    for a, b in zip(out_of_core, in_memory, strict=True):
        xr.testing.assert_allclose(a, b)


def counted(func, name, calls):
    """``func``, counting its calls in ``calls[name]``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        calls[name] += 1
        return func(*args, **kwargs)

    return wrapper


def test_streaming_results_to_zarr_reads_and_reduces_each_layer_once(store, tmp_path, monkeypatch):
    """Cosine, PCA and the scree written by one DataTree.to_zarr (results bigger than memory
    stream to disk) share each layer's chunk reads, Gram and tridiagonal reduction."""
    calls: collections.Counter[str] = collections.Counter()
    for module, name in ((_engine, "_self_gram_kernel"), (_spectra, "_tridiagonal_kernel")):
        monkeypatch.setattr(module, name, counted(getattr(module, name), name, calls))
    lazy = pvx.load(store, "templated")
    cosine, pca, scree = analyses(lazy)
    tree = xr.DataTree.from_dict(
        {"cosine": cosine.to_dataset(), "pca": pca, "scree": scree.to_dataset()}
    )
    write = tree.to_zarr(tmp_path / "results.zarr", compute=False, consolidated=False)
    reads = count_reads(monkeypatch)
    write.compute(scheduler="threads")
    vector_reads = [key for key in reads if "/vectors/c/" in key]
    n_layer, block = lazy.sizes["layer"], lazy.encoding["chunks"][0]
    stored_chunks = n_layer * -(-(lazy.sizes["persona"] + 1) // block)  # + the baseline
    assert len(vector_reads) == len(set(vector_reads)) == stored_chunks  # each read once
    assert calls["_tridiagonal_kernel"] == n_layer
    assert calls["_self_gram_kernel"] == n_layer
    saved = xr.open_datatree(tmp_path / "results.zarr", engine="zarr", consolidated=False)
    xr.testing.assert_allclose(saved["pca"]["scores"], pca["scores"].compute())
    xr.testing.assert_allclose(saved["scree"].to_dataset()["explained_variance_ratio"], scree)


def graph_bytes(da):
    return len(pickle.dumps(dict(da.data.__dask_graph__())))


def test_graphs_hold_array_handles_not_data(store, tmp_path):
    """A cluster's workers read the chunks themselves: the task graph sent to them carries
    zarr handles, so its size does not grow with the data."""
    wide = tmp_path / "wide.zarr"
    write_synthetic_store(
        wide, n_persona=30, n_layer=5, n_hidden=9600, n_clusters=3, persona_block=8, seed=1
    )
    small, big = pvx.load(store, "templated"), pvx.load(wide, "templated")
    assert big.nbytes == 100 * small.nbytes
    assert graph_bytes(big) < 1.2 * graph_bytes(small)
    assert graph_bytes(big) < big.nbytes / 50


def test_distributed_equals_in_memory(store):
    distributed = pytest.importorskip("distributed")
    lazy = pvx.load(store, ["templated", "biography"])
    expected = analyses(lazy.compute())
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = client.compute(list(analyses(lazy)), sync=True)
    for a, b in zip(got, expected, strict=True):
        xr.testing.assert_allclose(a, b)
