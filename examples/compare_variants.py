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
# # Comparing prompt variants
#
# The same persona can be rendered by different prompts: `biography` tells a life story in
# prose, `templated` lists the attributes in a fixed form. How much does the prompt move each
# persona's vector, and does it change how personas relate to each other? This notebook loads
# both variants of the demo store as one array and compares them, layer by layer.

# %%
import tempfile
import warnings
from pathlib import Path

import numpy as np
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
# ## Several variants, one array
#
# Passing a list of variants stacks them along a leading `variant` dimension. Every analysis
# vectorises over it, so a single `pca()` call fits each variant and layer separately.

# %%
both = pvx.load(STORE, ["templated", "biography"], mask_strategy="token_mean")
print(dict(both.sizes), both["variant"].values)

pca = both.pv.pca(n_components=2).compute()
print(pca["explained_variance_ratio"].sel(component=1).round(3).to_pandas())

# %% [markdown]
# ## Alignment is a join on labels
#
# Variants are aligned by persona `id` and `layer` label (an inner join), never by position:
# a persona or layer missing from any variant is dropped, with one warning that says which.
# The demo store's variants are complete, so to see the join we write a small store in a
# temporary folder: all of `biography`, and a `templated` variant that lacks every tenth
# persona and layer 0, with its personas stored in reverse order.

# %%
tmp = tempfile.TemporaryDirectory()
small = Path(tmp.name) / "subset.zarr"
bio = pvx.load(STORE, "biography", mask_strategy="token_mean")
kept = [pid for i, pid in enumerate(bio["id"].values) if i % 10]
templated = pvx.load(
    STORE, "templated", mask_strategy="token_mean", ids=kept[::-1], layers=[1, 2, 3, 4, 5, 6]
)
pvx.write_variant(small, bio)
pvx.write_variant(small, templated)
print(pvx.variants(small), templated["id"].values[:3])

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    joined = pvx.load(small, ["templated", "biography"])
print(caught[0].message)
print(dict(joined.sizes), joined["id"].values[:3], joined["layer"].values)

# %% [markdown]
# The joined array is in one persona order for both variants, so a persona's two vectors sit
# side by side whatever order they were stored in:

# %%
pid = kept[0]
for variant in ("templated", "biography"):
    stored = pvx.load(small, variant, ids=[pid], layers=[6]).values.ravel()
    aligned = joined.sel(variant=variant, id=pid, layer=6).values
    print(variant, np.array_equal(stored, aligned))
tmp.cleanup()

# %% [markdown]
# ## How far does the prompt move each persona?
#
# `variant_similarity(a, b)` compares each persona with itself across the two variants, per
# layer:
#
# - `raw`: the cosine between its two vectors. It is inflated by the component every persona
#   shares, as raw cosines always are.
# - `centered`: the same after centering each variant by its own mean over personas. It asks
#   whether the persona stands out from the others in the same direction under both prompts.
# - `matrix_correlation`: per layer, the correlation between the two variants' persona ×
#   persona similarity matrices: do the variants agree on who resembles whom?

# %%
vs = both.pv.variant_similarity("templated", "biography").compute()
summary = vs[["raw", "centered"]].median("persona").to_pandas()
summary["matrix_correlation"] = vs["matrix_correlation"].to_pandas()
print(summary.round(3))

# %% [markdown]
# ## Which personas move most
#
# Average the centered cosine over layers and sort: the personas at the top look least alike
# under the two prompts. Because the result keeps the attributes, `groupby` asks whether some
# kind of persona moves more than others.

# %%
stability = vs["centered"].mean("layer")
movers = stability.sortby(stability).isel(persona=slice(0, 5))
for pid in movers["id"].values:
    row = movers.sel(id=pid)
    print(f"{pid} {row['name'].values!s:24} {row['occupation'].values!s:24} {float(row):.3f}")

# %%
by_occupation = stability.groupby("occupation").mean().sortby(lambda x: x)
print(by_occupation.round(3).to_pandas().head())

# %% [markdown]
# ## Can a persona be found again in the other variant?
#
# `cosine(other)` compares two arrays of personas (each centered by its own mean). If the
# prompt kept what makes a persona distinct, its nearest neighbour in the other variant is
# itself: the diagonal wins its row.

# %%
cross = both.sel(variant="templated").pv.cosine(both.sel(variant="biography")).compute()
found = cross.argmax("persona_other") == np.arange(cross.sizes["persona"])
print(found.mean("persona").round(3).to_pandas())

# %% [markdown]
# ## The figure
#
# `variant_similarity` draws the median and a 5–95 % band over personas of the centered
# cosine, the raw median and the matrix correlation per layer, plus chosen personas. The
# accessor runs the analysis; `pvx.plot.variant_lines` draws the result we already have.

# %%
chosen = movers["id"].values[:3].tolist()
fig = both.pv.plot.variant_similarity("templated", "biography", personas=chosen)
same = pvx.plot.variant_lines(vs, personas=chosen)
print([trace.name for trace in fig.data])
fig  # noqa: B018 (a cell's last expression is displayed in Jupyter)
