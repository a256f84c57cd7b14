"""pvx's views: figures drawn from analysis results, one module per concern.

- :mod:`pvx.views._common`: preparation shared by every back end (labels, layers,
  colouring, hover text, projection checks);
- :mod:`pvx.views.charts`: line, matrix and tree data prepared once for both back ends;
- :mod:`pvx.views.plotly_projection`, :mod:`pvx.views.plotly_matrix`,
  :mod:`pvx.views.plotly_lines`: the Plotly figures;
- :mod:`pvx.views.holoviews`: the HoloViews figures;
- :mod:`pvx.views.html`: offline HTML export and the report's pages;
- :mod:`pvx.views.analyses` and :mod:`pvx.views.analyses_projection`: analyse-then-draw
  functions, one per analysis, bound to a back end (``da.pv.plot``, ``da.pv.hvplot``);
  :mod:`pvx.views._backends` names each back end's drawing functions.

Import the public functions from :mod:`pvx.plot` (Plotly) and :mod:`pvx.hvplot`
(HoloViews).
"""

from pvx.views._common import with_clusters

__all__ = ["with_clusters"]
