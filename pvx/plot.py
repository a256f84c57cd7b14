"""Interactive Plotly views of pvx results: layered projections, heatmaps, trajectories, trees.

Every figure draws what the analysis layer computed (DESIGN §5). Functions named for a view
(:func:`projection`, :func:`heatmap`, :func:`pair_trajectories`, :func:`scree`,
:func:`variance_heatmap`, :func:`dendrogram`, :func:`variant_lines`) take analysis results,
compute them once if lazy and draw them; they never call an analysis function. Functions
named for an analysis (:func:`pca`, :func:`umap`, :func:`isomap`, :func:`cosine`, ...) take the
persona vectors, run that analysis once (everything they need in one ``dask.compute``) and
draw it; they are what ``da.pv.plot.<kind>(...)`` calls.

Figures with a ``layer`` dimension get one animation frame per layer, named by the layer label,
a layer slider and Play/Pause buttons. Frames carry only what changes between layers
(coordinates as float32, shared hover text stays in the base traces), so a 1000-persona,
42-layer projection stays a few MB. Every string taken from the data is HTML-escaped, because
Plotly renders hover text, legend entries and tick labels as HTML-like markup.

Plotly is imported inside the functions, so ``import pvx`` does not pay for it. Use
:func:`write_html` to export: it embeds plotly.js (or writes it once beside the pages) and
never points at a CDN, so the pages work offline.

The code lives in :mod:`pvx.views` (one module per concern); this module is its public
face for Plotly.
"""

from pvx.views import analyses as _analyses
from pvx.views._common import LABEL_LIMIT
from pvx.views.html import html_div, write_html
from pvx.views.plotly_lines import (
    association_heatmap,
    pair_trajectories,
    probe_heatmap,
    probe_lines,
    scree,
    variance_heatmap,
    variant_lines,
)
from pvx.views.plotly_matrix import dendrogram, heatmap
from pvx.views.plotly_projection import projection

pca = _analyses.bind(_analyses.pca, "plotly")
umap = _analyses.bind(_analyses.umap, "plotly")
isomap = _analyses.bind(_analyses.isomap, "plotly")
cosine = _analyses.bind(_analyses.cosine, "plotly")
pair_similarity = _analyses.bind(_analyses.pair_similarity, "plotly")
variant_similarity = _analyses.bind(_analyses.variant_similarity, "plotly")
explained_variance = _analyses.bind(_analyses.explained_variance, "plotly")
linkage = _analyses.bind(_analyses.linkage, "plotly")
probe = _analyses.bind(_analyses.probe, "plotly")

PlotAccessor = _analyses.accessor_class(
    "plotly",
    """Plotly views of a DataArray of persona vectors, as ``da.pv.plot.<analysis>(...)``.

    ``da.pv.plot.X(...)`` draws ``da.pv.X(...)``: each method runs that analysis once and
    returns a :class:`plotly.graph_objects.Figure` (``linkage`` draws a dendrogram,
    ``explained_variance`` or ``scree`` scree curves or a heatmap). ``projection`` recolours
    a computed projection. ``da.pv.hvplot`` offers the same methods and keywords.
    """,
)

__all__ = [
    "LABEL_LIMIT",
    "PlotAccessor",
    "association_heatmap",
    "cosine",
    "dendrogram",
    "explained_variance",
    "heatmap",
    "html_div",
    "isomap",
    "linkage",
    "pair_similarity",
    "pair_trajectories",
    "pca",
    "probe",
    "probe_heatmap",
    "probe_lines",
    "projection",
    "scree",
    "umap",
    "variance_heatmap",
    "variant_lines",
    "variant_similarity",
    "write_html",
]
