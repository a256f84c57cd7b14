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
# # Which layers encode which persona attributes?
#
# A linear probe per layer answers it: if a cross-validated linear model can read an
# attribute from the persona vectors of a layer, that layer encodes it. `da.pv.probe`
# fits one per attribute and layer (5 folds), and the same probe on shuffled labels as the
# chance level, so the answer is the **gain** over that baseline:
#
# - two classes: difference of the class means (nearest class mean), balanced accuracy;
# - more classes: class-balanced logistic regression, balanced accuracy;
# - numbers and ordered levels (as ranks): ridge regression, R².
#
# Each fold prepares the vectors (centring, normalising) from its training personas only,
# and every probe is fitted from the layer's Gram matrix, so the vectors are read once.

# %%
from pathlib import Path

import plotly.io as pio

import pvx
import pvx.attributes
import pvx.plot

# Figures also carry an HTML copy (plotly.js embedded once), so this notebook exported to
# HTML (File > Save and Export, nbconvert) shows them offline.
pio.renderers.default = "plotly_mimetype+notebook"

try:  # run as a script: the store sits at the repository root, one level up
    ROOT = Path(__file__).resolve().parents[1]
except NameError:  # in Jupyter the working directory is the notebook's folder (or the root)
    ROOT = Path.cwd().parent if Path.cwd().name == "examples" else Path.cwd()
STORE = ROOT / "stores" / "demo.zarr"

both = pvx.load(STORE, ["biography", "templated"], mask_strategy="token_mean")
print(both.sizes)

# %% [markdown]
# ## The layer-by-layer answer
#
# Four attributes of different kinds, in both prompt variants. The result is a labelled
# Dataset over `attribute`, `variant` and `layer`; it is lazy until computed.

# %%
ATTRIBUTES = ["age", "education", "gender", "region"]
probes = both.pv.probe(ATTRIBUTES, permutations=3).compute()
print(probes["method"].to_series())
probes["gain"].sel(variant="biography").round(2).to_pandas()

# %% [markdown]
# Where each attribute is read best, and how much better than chance:

# %%
best = probes["gain"].idxmax("layer")
summary = best.transpose("attribute", "variant").to_pandas()
summary.columns = [f"best layer ({v})" for v in summary.columns]
summary["gain there (biography)"] = probes["gain"].sel(variant="biography").max("layer").values
summary.round(2)

# %% [markdown]
# The scores by layer over their shuffled-label bands, and the gain as a heatmap. In the
# templated variant the attributes are written into the prompt, so they are read at every
# layer; the biographies leave the model more to infer.

# %%
pvx.plot.probe_lines(probes.sel(variant="biography"), title="Probe score by layer")

# %%
pvx.plot.probe_heatmap(probes.sel(variant="biography"), title="Gain over shuffled labels")

# %%
pvx.plot.probe_heatmap(probes.sel(variant="templated"), title="Gain over shuffled labels")

# %% [markdown]
# ## How the attributes go together
#
# A probe can read an attribute that merely goes with another one. Cramér's V (bias
# corrected) between the attributes, and the value pairs that co-occur most:

# %%
association = pvx.attributes.association(both, ATTRIBUTES)
pvx.plot.association_heatmap(association, title="Cramér's V")

# %%
pvx.attributes.associated_values(both, ATTRIBUTES).head()

# %% [markdown]
# ## A direction: one attribute as a vector
#
# The difference of the group means per layer, the analysis side of steering vectors:
# its norm, each persona's position along it, and how similar the directions of two layers
# are.

# %%
bio = both.sel(variant="biography")
gender = bio.pv.direction(attribute="gender", value="woman", other="man").compute()
print(gender.attrs)
gender["norm"].to_pandas().round(2)

# %%
gender["layer_cosine"].round(2).to_pandas()

# %% [markdown]
# ## Clusters named by their attributes
#
# k-means clusters of one layer, each named by its most over-represented attribute values
# (with the evidence), drawn on the PCA of that layer.

# %%
clusters = bio.pv.kmeans(5, layer=6).compute()
names = pvx.attributes.name_clusters(clusters, bio)
names.to_dataframe()[["name", "size", "evidence"]]

# %%
from pvx.views import with_clusters  # noqa: E402

pca = bio.pv.pca(n_components=2, layer=6).compute()
pvx.plot.projection(with_clusters(pca, clusters, names=names), color="cluster")
