# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Big stores: lazy loading, chunks and a dask cluster
#
# Real stores reach tens of GB (thousands of personas, a 126-layer × 16384 model). pvx never
# loads them whole: `pvx.load` returns a dask array over the store's chunks, analyses build a
# task graph, and the data is read chunk by chunk, one layer at a time, only when you compute.
# The same code then runs on a dask.distributed cluster.
#
# To stay self-contained this notebook first writes a moderately big synthetic store
# (400 personas × 12 layers × 1024 hidden units, float32, about 20 MB) into a temporary
# folder, the way an extraction job would: one block of personas at a time.
#
# **Running it as a script.** The cluster's worker processes start by importing the main
# script again (Python's `spawn`), so every cell below sits under
# `if __name__ == "__main__":`, which is true in Jupyter and false in those workers.

# %%
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

import pvx


def refuse_to_compute(dsk, keys, **kwargs):
    """A dask scheduler that fails: inside it, any read of the vectors would raise."""
    raise AssertionError(f"something computed {len(keys)} key(s)")


def variable_length_strings(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width strings as variable-length ones, the only string type Zarr v3 specifies."""
    fixed = {k: v.astype(object) for k, v in ds.variables.items() if v.dtype.kind == "U"}
    return ds.assign_coords({k: v for k, v in fixed.items() if k in ds.coords}).assign(
        {k: v for k, v in fixed.items() if k in ds.data_vars}
    )


# %% [markdown]
# ## Write a store the way extraction does
#
# `write_variant` creates the variant from the first block; `append_personas` adds the rest.
# Each write is validated before it touches disk and appears whole or not at all, so a reader
# never sees half a persona. (Here the vectors come from `pvx.synthetic`: four planted
# clusters on top of a large shared offset, plus the `baseline_assistant` persona.)

# %%
if __name__ == "__main__":
    workdir = tempfile.TemporaryDirectory()
    STORE = Path(workdir.name) / "big.zarr"
    vectors = pvx.synthetic.planted_personas(
        n_persona=400, n_clusters=4, n_layer=12, n_hidden=1024, noise=0.5, first_layer=20
    )
    # categorical labels are stored as strings
    vectors = vectors.assign_coords(planted_cluster=vectors["planted_cluster"].astype(str))
    start = time.perf_counter()
    for first in range(0, vectors.sizes["persona"], 100):
        block = vectors.isel(persona=slice(first, first + 100))
        if first == 0:
            pvx.write_variant(STORE, block)
        else:
            pvx.append_personas(STORE, block)
    print(f"wrote {vectors.nbytes / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s")
    print(pvx.models(STORE), pvx.variants(STORE), len(pvx.persona_ids(STORE, "biography")))

# %% [markdown]
# ## Open lazily: nothing is read
#
# `open_store` reads metadata and the small per-persona coordinates (ids, names,
# attributes); `vectors` stays a dask array. To prove that nothing else is read, we set a
# dask scheduler that fails on any computation, then load the variant and *build* three
# analyses: all of it works, because no vector chunk is touched until something computes.

# %%
if __name__ == "__main__":
    tree = pvx.open_store(STORE)
    print(tree.groups)
    with dask.config.set(scheduler=refuse_to_compute):
        vec = pvx.load(tree, "biography")
        sim = vec.pv.cosine()
        pca = vec.pv.pca(n_components=5)
        scree = vec.pv.explained_variance()
    print(type(vec.data).__name__, type(sim.data).__name__, type(pca["scores"].data).__name__)
    print(f"{len(sim.data.__dask_graph__())} tasks in the cosine graph, none run yet")

# %% [markdown]
# ## Chunks follow the access pattern
#
# One chunk holds a block of 64 personas for **one layer** and the full hidden axis, however
# the personas were written (here 400 = 6 × 64 + 16: the last block is partly filled, and the
# next append completes it as a new version of those chunks). An analysis works layer by
# layer, so it holds a few chunks at a time: memory stays bounded however many layers the
# store has. Selecting
# a layer keeps only its chunks in the graph; the other layers are never read.

# %%
if __name__ == "__main__":
    print("chunk shape:", vec.data.chunksize)
    print("chunks along (persona, layer, hidden):", vec.data.numblocks)
    print(f"one chunk: {np.prod(vec.data.chunksize) * vec.dtype.itemsize / 1e3:.0f} kB")
    one_layer = vec.sel(layer=31)
    print(f"layer 31 alone: {one_layer.data.npartitions} of {vec.data.npartitions} chunks")

# %% [markdown]
# ## A local dask.distributed cluster
#
# Two worker processes with one thread each (the dashboard is off here; drop
# `dashboard_address=None` to watch the work at http://localhost:8787). Creating a `Client`
# makes it dask's default scheduler, so `.compute()` and `dask.compute` run on the cluster.
# The workers open the store themselves and read the chunks they need.

# %%
if __name__ == "__main__":
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    print(f"{len(client.scheduler_info()['workers'])} workers")

# %% [markdown]
# ## Compute several results together
#
# Cosine, PCA and the scree all derive from each layer's persona × persona Gram matrix.
# Computed in **one** `dask.compute` call, the shared work (and the read of the store) is done
# once; three separate `.compute()` calls would read the store three times.

# %%
if __name__ == "__main__":
    start = time.perf_counter()
    sim, pca, scree = dask.compute(sim, pca, scree)
    print(f"computed in {time.perf_counter() - start:.1f} s")
    print(dict(sim.sizes), dict(pca["scores"].sizes), dict(scree.sizes))
    print(pca["explained_variance_ratio"].sel(layer=[20, 25, 31]).round(3).to_pandas())

# %% [markdown]
# The planted structure is there: four clusters of personas, so three components (four
# centered cluster directions span three dimensions) carry most of the variance, and
# personas of the same cluster have high centered cosine.

# %%
if __name__ == "__main__":
    same = sim["planted_cluster"] == sim["planted_cluster_other"]
    print(f"same cluster: {float(sim.where(same).mean()):.2f}")
    print(f"other cluster: {float(sim.where(~same).mean()):.2f}")

# %% [markdown]
# Neighbours and hierarchical clustering are computed the same way, and also share their
# layer's read and Gram when computed together.

# %%
if __name__ == "__main__":
    nn, tree31 = dask.compute(vec.pv.neighbors(5, layer=31), vec.pv.linkage(layer=31))
    print(nn["neighbor_id"].sel(id="p0").values, tree31["leaf_id"].values[:5])

# %% [markdown]
# ## Save the results
#
# Results are labelled xarray objects, so they save to Zarr and reopen without recomputing.
# A `DataTree` keeps them together, one group per analysis. (Zarr v3 specifies only
# variable-length strings, so fixed-width string labels are converted first.)
#
# Results bigger than memory (the cosines of 1000 personas over 126 layers are 1 GB) can
# skip the in-memory step: build the tree from the *lazy* results and write it with
# `tree.to_zarr(path, compute=False).compute()`. Layers stream to disk as they finish, and
# because it is one write, the analyses still share each layer's read and Gram (separate
# `to_zarr(compute=False)` calls are optimised one by one and would each redo them).

# %%
if __name__ == "__main__":
    results = xr.DataTree.from_dict(
        {
            "cosine": variable_length_strings(sim.to_dataset()),
            "pca": variable_length_strings(pca),
            "scree": variable_length_strings(scree.to_dataset()),
        }
    )
    path = Path(workdir.name) / "results.zarr"
    results.to_zarr(path, consolidated=False)
    reopened = xr.open_datatree(path, engine="zarr", consolidated=False)
    print(list(reopened.children))
    np.testing.assert_allclose(reopened["pca/scores"].values, pca["scores"].values)
    print(f"{pvx.store.size_on_disk(path) / 1e6:.1f} MB of results")

# %%
if __name__ == "__main__":
    client.close()
    cluster.close()
    workdir.cleanup()

# %% [markdown]
# ## The same on a real store and a real cluster
#
# Stores open by local path or by any fsspec URL, and keyword arguments are passed to
# fsspec as storage options (S3, GCS and the Hugging Face Hub need `s3fs`, `gcsfs` or
# `huggingface_hub` installed beside pvx):
#
# ```python
# pvx.open_store("https://example.org/personas.zarr")         # read-only HTTP(S)
# pvx.load("s3://bucket/personas.zarr", "biography", anon=True)  # public S3 bucket
# pvx.load("gs://bucket/personas.zarr", "biography", token="cloud")  # Google Cloud
# ```
#
# For a cluster near the data, connect a `Client` to its scheduler's address instead of a
# `LocalCluster`; the code above does not change. The main job does the same from the command
# line, computing every analysis in one pass and writing the report and `results.zarr`:
#
# ```bash
# pvx analyze s3://bucket/personas.zarr --workers 8                      # 8 local processes
# pvx analyze s3://bucket/personas.zarr --scheduler tcp://10.0.0.5:8786  # an existing cluster
# ```
