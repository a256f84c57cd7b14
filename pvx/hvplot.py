"""hvplot/HoloViews views of pvx results, for exploring in Jupyter with a ``layer`` widget.

pvx results are labelled arrays, so hvplot draws them almost directly; these helpers make the
usual views one-liners: a projection as a scatter coloured by a persona attribute
(:func:`projection`, :func:`pca`, :func:`umap`, :func:`isomap`), a cosine matrix as an image
(:func:`heatmap`, :func:`cosine`) and the scree as curves (:func:`scree`,
:func:`explained_variance`). Each returns a HoloViews object: a ``HoloMap`` over ``layer``
(Jupyter shows the layer widget) or an ``NdOverlay``. Like :mod:`pvx.plot`, drawing functions
never recompute a result, and functions named for an analysis run it once.

Colours follow the attribute's kind, as in :mod:`pvx.plot`: numeric on a colour scale fixed
across layers, ordinal as ordered colours, categorical as the most frequent categories plus
``Other``; missing values are grey. Bokeh escapes hover values, so strings are kept as data.
hvplot and HoloViews are imported inside the functions.

The code lives in :mod:`pvx.views.holoviews`; this module is its public face.
"""

from pvx.views.holoviews import (
    HvplotAccessor,
    cosine,
    explained_variance,
    heatmap,
    isomap,
    pca,
    projection,
    scree,
    umap,
)

__all__ = [
    "HvplotAccessor",
    "cosine",
    "explained_variance",
    "heatmap",
    "isomap",
    "pca",
    "projection",
    "scree",
    "umap",
]
