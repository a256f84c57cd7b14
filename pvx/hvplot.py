"""hvplot/HoloViews views of pvx results, for exploring in Jupyter with ``layer`` widgets.

The same views as :mod:`pvx.plot`, with the same keywords, as HoloViews objects: a
projection (:func:`projection`, :func:`pca`, :func:`umap`, :func:`isomap`) as a scatter
coloured by persona attributes (a list of colours gives one panel each, a ``variant``
dimension a second widget), a cosine matrix as an image (:func:`heatmap`, :func:`cosine`),
scree curves or a heatmap (:func:`scree`, :func:`variance_heatmap`,
:func:`explained_variance`), dendrograms (:func:`dendrogram`, :func:`linkage`), pair
trajectories (:func:`pair_trajectories`, :func:`pair_similarity`) and variant shifts
(:func:`variant_lines`, :func:`variant_similarity`). Drawing functions never recompute a
result; functions named for an analysis run it once.

Colours follow the attribute's kind, as in :mod:`pvx.plot`: numeric on a colour scale fixed
across layers, ordinal as ordered colours, categorical as the most frequent categories plus
``Other``; missing values are grey. Bokeh shows text as text, so names are kept as data.
Save a view for offline use with :func:`save` (JavaScript embedded). hvplot and HoloViews are
imported inside the functions.

The code lives in :mod:`pvx.views.holoviews`; this module is its public face.
"""

from pvx.views import analyses as _analyses
from pvx.views.holoviews import (
    association_heatmap,
    dendrogram,
    heatmap,
    pair_trajectories,
    probe_heatmap,
    probe_lines,
    projection,
    save,
    scree,
    variance_heatmap,
    variant_lines,
)

pca = _analyses.bind(_analyses.pca, "holoviews")
umap = _analyses.bind(_analyses.umap, "holoviews")
isomap = _analyses.bind(_analyses.isomap, "holoviews")
cosine = _analyses.bind(_analyses.cosine, "holoviews")
pair_similarity = _analyses.bind(_analyses.pair_similarity, "holoviews")
variant_similarity = _analyses.bind(_analyses.variant_similarity, "holoviews")
explained_variance = _analyses.bind(_analyses.explained_variance, "holoviews")
linkage = _analyses.bind(_analyses.linkage, "holoviews")
probe = _analyses.bind(_analyses.probe, "holoviews")

HvplotAccessor = _analyses.accessor_class(
    "holoviews",
    """HoloViews views of persona vectors for Jupyter, as ``da.pv.hvplot.<analysis>(...)``.

    The same methods and keywords as ``da.pv.plot`` (:mod:`pvx.plot`), returning HoloViews
    objects with layer (and variant) widgets.
    """,
)

__all__ = [
    "HvplotAccessor",
    "association_heatmap",
    "cosine",
    "dendrogram",
    "explained_variance",
    "heatmap",
    "isomap",
    "linkage",
    "pair_similarity",
    "pair_trajectories",
    "pca",
    "probe",
    "probe_heatmap",
    "probe_lines",
    "projection",
    "save",
    "scree",
    "umap",
    "variance_heatmap",
    "variant_lines",
    "variant_similarity",
]
