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
# # Colouring persona space by attributes
#
# Which attributes organise persona space? A projection coloured by one attribute after
# another answers it by eye. Fitting is the expensive part and colouring is not, so the pattern
# is: compute the projection once, then draw it as often as you like with
# `pvx.plot.projection`, which only draws. How an attribute is coloured follows its kind:
#
# - numeric: a colour scale whose range is the same on every layer;
# - ordinal: an ordered scale whose ticks are the categories, lowest first;
# - categorical: a legend with the most frequent categories and the rest pooled as `Other`.
#
# The figures are Plotly figures with a layer slider; in Jupyter, a cell that ends with one
# displays it.

# %%
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.io as pio
import xarray as xr

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

bio = pvx.load(STORE, "biography", mask_strategy="token_mean")


def legend(fig):
    """The names of a figure's point traces (its legend entries)."""
    return [trace.name for trace in fig.data]


# %% [markdown]
# ## Fit once
#
# Three components, so we can also draw PC1 against PC3, or all three in 3-D.

# %%
pca = bio.pv.pca(n_components=3).compute()
print({str(c): bio[c].attrs["kind"] for c in bio.coords if "kind" in bio[c].attrs})

# %% [markdown]
# ## Numeric
#
# Age gets a continuous scale. Its range is fixed over all layers, so a colour means the same
# age whichever layer the slider shows.

# %%
fig = pvx.plot.projection(pca, color="age")
marker = fig.data[0].marker
print(legend(fig), marker.cmin, marker.cmax)
fig  # noqa: B018 (a cell's last expression is displayed in Jupyter)

# %% [markdown]
# ## Ordinal
#
# An ordinal attribute carries its order in `attrs["order"]`, lowest first, and the colour
# scale follows it.

# %%
print(bio["education"].attrs)
fig = pvx.plot.projection(pca, color="education", components=(1, 3))
print(list(fig.data[0].marker.colorbar.ticktext))

# %% [markdown]
# Any coordinate along `persona` with a `kind` can be coloured, so you can make your own:
# here urbanicity (stored as categorical) re-declared as ordinal, and age cut into bands.
# `assign_coords` on the computed result changes only the labels, not the projection.

# %%
urbanicity = pca["urbanicity"].assign_attrs(kind="ordinal", order=["rural", "suburban", "urban"])
bands = ["under 30", "30–44", "45–59", "60 and over"]
age_band = pd.cut(pca["age"].values, [0, 30, 45, 60, 200], right=False, labels=bands)
relabelled = pca.assign_coords(
    urbanicity=urbanicity,
    age_band=xr.Variable("persona", age_band.astype(str), {"kind": "ordinal", "order": bands}),
)
fig = pvx.plot.projection(relabelled, color="age_band")
print(list(fig.data[0].marker.colorbar.ticktext))
fig = pvx.plot.projection(relabelled, color="urbanicity")
print(list(fig.data[0].marker.colorbar.ticktext))

# %% [markdown]
# ## Categorical
#
# One legend entry per category, most frequent first. There are 19 occupations; past
# `max_categories` they are pooled as `Other` so the legend stays readable.

# %%
fig = pvx.plot.projection(pca, color="occupation", max_categories=6)
print(legend(fig))
fig  # noqa: B018

# %%
fig = pvx.plot.projection(pca, color="region")  # 10 regions: all fit
print(legend(fig))

# %% [markdown]
# ## Clusters
#
# `color="cluster"` runs k-means once (on the persona vectors, passed as `vectors=`; the
# accessor passes them for you) and colours by its labels. To colour by labels you already
# have, pass them as `groups=`: with `mode="per_layer"` each layer has its own labelling,
# matched between layers so a cluster keeps its colour where it can.

# %%
fig = bio.pv.plot.projection(pca, color="cluster", n_clusters=4)
print(legend(fig))

per_layer = bio.pv.kmeans(4, mode="per_layer").compute()
print(dict(per_layer.sizes))
fig = pvx.plot.projection(pca, groups=per_layer)
print(legend(fig))

# %% [markdown]
# ## Explicit groups and values
#
# Anything with one value per persona can colour the points: `groups=` for categories,
# `color_values=` for numbers. Plain arrays follow the result's persona order; DataArrays are
# matched by `id`, and may have a `layer` dimension to colour each layer differently. Here:
# a yes/no question, and how close each persona's five nearest neighbours are at each layer
# (a crowded neighbourhood is bright).

# %%
is_student = np.where(pca["occupation"].values == "student", "student", "not a student")
fig = pvx.plot.projection(pca, groups=is_student)
print(legend(fig))

nn = bio.pv.neighbors(5).compute()
crowding = nn["cosine"].mean("rank").rename("mean cosine to 5 nearest")
print(dict(crowding.sizes))
fig = pvx.plot.projection(pca, color_values=crowding)
fig  # noqa: B018

# %% [markdown]
# ## Recolour without refitting
#
# The projection above was computed once; every figure in this notebook reuses it. The same
# works for any projection result: here Isomap, fitted once and drawn twice.

# %%
iso = bio.pv.isomap(layer=[2, 4, 6]).compute()
by_gender = pvx.plot.projection(iso, color="gender")
by_income = pvx.plot.projection(iso, color="income_bracket")
print(legend(by_gender), [f.name for f in by_income.frames])

# %% [markdown]
# ## Hover
#
# Hovering a point shows its name and id, the colour attribute, and any persona coordinates
# you list in `hover=` (escaped, so names with `<` or `&` show as written).

# %%
fig = pvx.plot.projection(pca, color="region", hover=["occupation", "age", "city"])
print(fig.data[0].hovertext[0].replace("<br>", " | "))

# %% [markdown]
# ## The baseline persona
#
# `baseline_assistant` (the model's default voice) is left out of analyses unless you ask.
# Load it and pass `include_baseline=True` to the analysis to see where it sits. It has no
# attributes, so it is drawn in neutral grey as `missing`, whatever the colouring.

# %%
with_baseline = pvx.load(STORE, "biography", mask_strategy="token_mean", include_baseline=True)
fig = with_baseline.pv.plot.pca(color="education", include_baseline=True)
print(legend(fig), fig.data[-1].marker.color)
fig  # noqa: B018
