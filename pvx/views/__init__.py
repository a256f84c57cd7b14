"""pvx's views: figures drawn from analysis results, one module per concern.

- :mod:`pvx.views._common`: preparation shared by every back end (labels, layers,
  colouring, hover text);
- :mod:`pvx.views.plotly_projection`, :mod:`pvx.views.plotly_matrix`,
  :mod:`pvx.views.plotly_lines`: the Plotly figures;
- :mod:`pvx.views.holoviews`: the HoloViews figures;
- :mod:`pvx.views.html`: offline HTML export;
- :mod:`pvx.views.analyses`: analyse-then-draw wrappers (``da.pv.plot``).

Import the public functions from :mod:`pvx.plot` (Plotly) and :mod:`pvx.hvplot`
(HoloViews).
"""

from pvx.views._common import with_clusters

__all__ = ["with_clusters"]
