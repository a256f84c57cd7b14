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
# `da.pv.hvplot` and `da.pv.plot` (Plotly) offer the same views with the same keywords.
# Open `examples/explore_hvplot.ipynb` in JupyterLab, or run this file as a script.

# %%
from pathlib import Path

import holoviews as hv
import panel as pn
import plotly.io as pio

import pvx
import pvx.accessor  # registers da.pv (and da.pv.hvplot, da.pv.plot)
import pvx.hvplot
import pvx.plot

# For a notebook that still works when exported to HTML (File > Save and Export, nbconvert)
# and opened offline: BokehJS is embedded instead of loaded from a CDN, the widgets' states
# are saved with each plot, and Plotly figures carry an HTML copy (plotly.js embedded once).
hv.extension("bokeh", inline=True)
pn.config.embed = True
pio.renderers.default = "plotly_mimetype+notebook"

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
# A list of colours draws one panel per attribute, all moved by the same widget (the
# PCA is computed once, with a progress bar while it runs; `pvx.set_options(progress=False)`
# turns bars off).

# %%
bio.pv.hvplot.pca(color=["age", "education"], layer=[1, 3, 5])

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
# ## Two variants: a variant widget
#
# Load both variants (joined on persona id) and the projection gets a second widget.

# %%
both = pvx.load(STORE, ["biography", "templated"], mask_strategy="token_mean")
both.pv.hvplot.pca(color="region", layer=[2, 6])

# %% [markdown]
# ## UMAP
#
# The same scatter for a non-linear embedding (three layers here), with axes fitted to each
# layer.

# %%
bio.pv.hvplot.umap(color="region", axes="per_layer", layer=[0, 3, 6])

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
# ## The same views in Plotly
#
# `da.pv.plot` takes the same keywords; Plotly draws the panels side by side with one layer
# slider (and a row per variant).

# %%
both.pv.plot.pca(color=["region", "age"], layer=[2, 6])

# %% [markdown]
# ## Sharing a view as a page
#
# Both kinds of view save as one HTML file that works offline: `pvx.hvplot.save` embeds
# BokehJS and every widget state, `pvx.plot.write_html` embeds plotly.js (or writes it once
# beside the pages).

# %%
out = Path("pvx-report") / "explore"  # /pvx-report/ is git-ignored
out.mkdir(parents=True, exist_ok=True)
pvx.hvplot.save(pvx.hvplot.projection(pca, color="education"), out / "pca-hvplot.html")
fig = pvx.plot.projection(pca, color="age", hover=["occupation"])
pvx.plot.write_html(fig, out / "pca.html", plotlyjs="directory")
pvx.plot.write_html(
    bio.pv.plot.cosine(order="dendrogram"), out / "cosine.html", plotlyjs="directory"
)
sorted(p.name for p in out.iterdir())
