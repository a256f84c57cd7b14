"""Big-store paths give the in-memory answers: out of core (dask from Zarr), on a
dask.distributed cluster, and over HTTP; the synthetic store generator plants what it says."""

from __future__ import annotations

import collections
import pickle

import dask
import dask.callbacks
import numpy as np
import pytest
import xarray as xr

import pvx
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


class TaskCounter(dask.callbacks.Callback):
    """Counts executed tasks by the function name leading their key."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def _posttask(self, key, result, dsk, state, id):
        name = key[0] if isinstance(key, tuple) else key
        self.counts[str(name).rsplit("-", 1)[0]] += 1


def test_streaming_results_to_zarr_reads_and_reduces_each_layer_once(store, tmp_path):
    """Cosine, PCA and the scree written by one DataTree.to_zarr (results bigger than memory
    stream to disk) share each layer's chunk reads, Gram and tridiagonal reduction."""
    lazy = pvx.load(store, "templated")
    cosine, pca, scree = analyses(lazy)
    tree = xr.DataTree.from_dict(
        {"cosine": cosine.to_dataset(), "pca": pca, "scree": scree.to_dataset()}
    )
    write = tree.to_zarr(tmp_path / "results.zarr", compute=False, consolidated=False)
    with TaskCounter() as counter:
        write.compute(scheduler="threads")
    n_layer, n_chunks = lazy.sizes["layer"], lazy.data.npartitions
    fused = {name: count for name, count in counter.counts.items() if "pvx-vectors" in name}
    assert sum(fused.values()) == n_chunks, fused  # each vector chunk read once
    assert counter.counts["tridiagonal_kernel"] == n_layer
    assert sum(c for name, c in counter.counts.items() if "gram" in name) == n_layer
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
