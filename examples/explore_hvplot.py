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
# # Exploring persona space with hvplot
#
# pvx results are labelled xarray objects, so HoloViews draws them with a **layer widget**:
# drag it to watch personas rearrange from the first layer to the last. This notebook uses the
# shipped demo store (`stores/demo.zarr`: 320 generated personas, MiniLM, 7 layers × 384).
#
# Open it with `jupyter lab examples/explore_hvplot.py` (Jupytext) or run it as a script.

# %%
from pathlib import Path

import holoviews as hv

import pvx
import pvx.accessor  # registers da.pv (and da.pv.hvplot, da.pv.plot)
import pvx.hvplot
import pvx.plot

hv.extension("bokeh")

# the store lives at the repository root: found from this file, or from the working
# directory in Jupyter (where __file__ is undefined)
try:
    ROOT = Path(__file__).resolve().parents[1]
except NameError:
    ROOT = next(p for p in (Path.cwd(), Path.cwd().parent) if (p / "stores").exists())
STORE = ROOT / "stores" / "demo.zarr"
bio = pvx.load(STORE, "biography", mask_strategy="token_mean")
print(dict(bio.sizes))

# %% [markdown]
# ## PCA, coloured by an attribute
#
# One line: PCA per layer (centered, normalised vectors), drawn as a scatter with a layer
# widget. A numeric attribute gets a colour scale whose range is the same on every layer.

# %%
bio.pv.hvplot.pca(color="age", hover=["occupation", "education"])

# %% [markdown]
# ## Recolour without recomputing
#
# Compute the projection once and draw it as often as you like: `pvx.hvplot.projection` only
# draws. Ordinal attributes keep their order (lowest first); categorical ones show the most
# frequent categories and pool the rest as `Other`.

# %%
pca = bio.pv.pca(n_components=3).compute()
pvx.hvplot.projection(pca, color="education")

# %%
pvx.hvplot.projection(pca, color="occupation", max_categories=6, components=(1, 3))

# %% [markdown]
# k-means clusters (one labelling from each persona's mean direction over the layers):

# %%
bio.pv.hvplot.projection(pca, color="cluster", n_clusters=4)

# %% [markdown]
# ## UMAP
#
# The same scatter for a non-linear embedding, with axes fitted to each layer.

# %%
bio.pv.hvplot.umap(color="region", axes="per_layer")

# %% [markdown]
# ## Cosine similarity as an image
#
# Rows in the dendrogram leaf order of the last layer, kept for every layer so the image
# changes in place as the widget moves.

# %%
tree = bio.pv.linkage(layer=6).compute()
bio.pv.hvplot.cosine(order=tree)

# %% [markdown]
# ## Scree curves
#
# Explained-variance ratio per component, one curve per layer.

# %%
bio.pv.hvplot.scree(max_components=20)

# %%
bio.pv.hvplot.scree(cumulative=True, max_components=50)

# %% [markdown]
# ## Sharing a view as a page
#
# For a report, the Plotly views (`da.pv.plot.<analysis>`) export to self-contained HTML
# that works offline: plotly.js is embedded, or written once beside the pages.

# %%
out = Path("pvx-report") / "explore"  # /pvx-report/ is git-ignored
fig = pvx.plot.projection(pca, color="age", hover=["occupation"])
pvx.plot.write_html(fig, out / "pca.html", plotlyjs="directory")
pvx.plot.write_html(
    bio.pv.plot.cosine(order="dendrogram"), out / "cosine.html", plotlyjs="directory"
)
sorted(p.name for p in out.iterdir())
