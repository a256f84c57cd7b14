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
# # Exploring one prompt variant with the `.pv` accessor
#
# One variant of one model and mask strategy is a single labelled `DataArray` with dims
# `(persona, layer, hidden)`. Every analysis is a method of its `.pv` namespace, runs on every
# layer at once, keeps the persona labels (`id`, `name` and the attributes) and stays lazy
# until you compute. This notebook walks through them on the shipped demo store
# (`stores/demo.zarr`: 320 generated personas, MiniLM, 7 layers × 384 hidden units).
#
# Open `examples/explore_one_variant.ipynb` in JupyterLab, or run this file as a script.

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio

import pvx
import pvx.plot

# Figures also carry an HTML copy (plotly.js embedded once), so this notebook exported to
# HTML (File > Save and Export, nbconvert) shows them offline.
pio.renderers.default = "plotly_mimetype+notebook"

try:  # run as a script: the store sits at the repository root, one level up
    ROOT = Path(__file__).resolve().parents[1]
except NameError:  # in Jupyter the working directory is the notebook's folder (or the root)
    ROOT = Path.cwd().parent if Path.cwd().name == "examples" else Path.cwd()
STORE = ROOT / "stores" / "demo.zarr"

# %% [markdown]
# ## What the store holds
#
# A store is a hierarchy `model / mask strategy / variant`. Listing it reads only metadata.

# %%
print(pvx.models(STORE))
print(pvx.mask_strategies(STORE))
print(pvx.variants(STORE, mask_strategy="token_mean"))

# %% [markdown]
# ## Load one variant
#
# `pvx.load` returns a dask-backed array: nothing but the small per-persona coordinates has
# been read yet. The `baseline_assistant` persona (the model's default voice) is left out
# unless you ask for it with `include_baseline=True`.

# %%
bio = pvx.load(STORE, "biography", mask_strategy="token_mean")
print(dict(bio.sizes), bio.dtype, type(bio.data).__name__)
print(bio.attrs)

# %% [markdown]
# Personas carry their attributes as coordinates; each one knows its kind (numeric, ordinal
# with an order, or categorical). Note that `bio["name"]` is the persona names, while
# `bio.name` is the array's own name (`"vectors"`).

# %%
kinds = {str(c): bio[c].attrs["kind"] for c in bio.coords if "kind" in bio[c].attrs}
print(kinds)
print(bio["education"].attrs["order"])
print(bio["name"].values[:3])

# %% [markdown]
# ## Cosine similarity: why centering matters
#
# Every persona's vector shares a large common component (the residual stream's mean), so raw
# cosines crowd near 1 and say little. `cosine()` centers by default: it subtracts each hidden
# unit's mean over personas first. The result is `persona × persona_other`, labelled on both
# axes, so you can select a pair by id.

# %%
raw = bio.pv.cosine(layer=6, center=False).compute()
sim = bio.pv.cosine(layer=6).compute()
off_diagonal = ~np.eye(sim.sizes["persona"], dtype=bool)
print(f"raw cosine, mean over pairs:      {raw.values[off_diagonal].mean():.3f}")
print(f"centered cosine, mean over pairs: {sim.values[off_diagonal].mean():.3f}")
print(float(sim.sel(id="p000", id_other="p001")))

# %% [markdown]
# The most similar pair at the last layer, found by label:

# %%
upper = sim.where(np.triu(off_diagonal))
best = upper.argmax(dim=["persona", "persona_other"])
pair = sim.isel(best)
print(pair["name"].values, "<->", pair["name_other"].values, f"{float(pair):.3f}")

# %% [markdown]
# ## PCA and the scree
#
# `pca()` fits every layer (centered, unit-length rows) and returns scores per persona and
# component plus the explained-variance ratio per component. Signs are chosen so consecutive
# layers agree, which keeps a layer slider from flipping the picture. `explained_variance()`
# gives the full scree: every component, summing to 1 per layer.

# %%
pca = bio.pv.pca(n_components=5).compute()
print(pca["explained_variance_ratio"].round(3).to_pandas())

# %%
scree = bio.pv.explained_variance().compute()
needed = (scree.cumsum("component") < 0.5).sum("component") + 1
print("components for half the variance, per layer:", needed.values.tolist())

# %% [markdown]
# Scores keep the attributes, so `groupby` asks whether an attribute lines up with a
# component. At layer 3, PC1 mostly falls with education (listed in its order, lowest
# first) and separates occupations: students and cashiers at one end, scientists at the other.

# %%
pc1 = pca["scores"].sel(layer=3, component=1)
by_education = pc1.groupby("education").mean().to_pandas()
print(by_education.reindex(bio["education"].attrs["order"]).round(3))
by_occupation = pc1.groupby("occupation").mean().to_pandas().sort_values()
print(by_occupation.iloc[[0, 1, 2, -3, -2, -1]].round(3))

# %% [markdown]
# ## UMAP
#
# A non-linear 2-D embedding per layer. UMAP is slow to start the first time in a process
# (numba compiles it), so we fit two layers and reuse the result for the figure below.

# %%
emb = bio.pv.umap(layer=[3, 6]).compute()
print(emb.dims, dict(emb.sizes))

# %% [markdown]
# ## Clusters, dendrogram order and neighbours
#
# `kmeans()` gives one labelling from each persona's mean direction over the layers (other
# modes: `first_layer`, `per_layer` with labels matched between layers). A cross-tabulation
# shows which attributes the clusters follow.

# %%
clusters = bio.pv.kmeans(4).compute()
print(pd.crosstab(clusters.to_pandas(), bio["occupation"].to_pandas()).iloc[:, :6])

# %% [markdown]
# `linkage()` is hierarchical (Ward) clustering per layer; its leaf order is reusable to
# order a similarity matrix so that blocks of similar personas sit together.

# %%
tree = bio.pv.linkage(layer=6).compute()
ordered = sim.isel(persona=tree["order"].values, persona_other=tree["order"].values)
print(tree["leaf_id"].values[:8])
print(ordered["id"].values[:8])

# %% [markdown]
# `neighbors(k)` lists each persona's k most similar personas, nearest first.

# %%
nn = bio.pv.neighbors(5, layer=6).compute()
who = "p000"
print(str(bio["name"].sel(id=who).values), "->")
for rank in nn["rank"].values:
    other = str(nn["neighbor_id"].sel(id=who, rank=rank).values)
    cos = float(nn["cosine"].sel(id=who, rank=rank))
    print(f"  {rank}. {bio['name'].sel(id=other).values} ({cos:.3f})")

# %% [markdown]
# ## Intrinsic dimension
#
# TwoNN (Facco et al. 2017) estimates how many dimensions the personas really span at each
# layer, from the ratio of every persona's two nearest-neighbour distances.

# %%
print(bio.pv.twonn().compute().round(1).to_pandas())

# %% [markdown]
# ## Figures
#
# `bio.pv.plot.<analysis>(...)` runs the analysis once and returns a Plotly figure with a
# layer slider (display `fig` in Jupyter; `fig.show()` in a script opens a browser).
# `pvx.plot.projection` draws a result you already computed, so the UMAP above is not refit.

# %%
fig = bio.pv.plot.pca(color="education", hover=["occupation", "age"])
print(len(fig.frames), "frames:", [f.name for f in fig.frames])
fig  # noqa: B018 (a cell's last expression is displayed in Jupyter)

# %%
umap_fig = pvx.plot.projection(emb, color="region", max_categories=6)
scree_fig = pvx.plot.scree(scree, max_components=20)
heat_fig = pvx.plot.heatmap(sim, order=tree)  # cosine heatmap in dendrogram order
umap_fig  # noqa: B018

# %% [markdown]
# ## Writing a figure to HTML
#
# `write_html` writes a self-contained page that works offline (plotly.js is embedded, or
# written once beside the pages with `plotlyjs="directory"`). We write into a temporary
# folder here; use your own path.

# %%
with tempfile.TemporaryDirectory() as tmp:
    page = pvx.plot.write_html(fig, Path(tmp) / "pca.html")
    pvx.plot.write_html(umap_fig, Path(tmp) / "umap.html", plotlyjs="directory")
    pvx.plot.write_html(heat_fig, Path(tmp) / "cosine.html", plotlyjs="directory")
    for path in sorted(Path(tmp).iterdir()):
        print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB")
