"""The drawing functions of each back end, by name, imported on first use."""

from __future__ import annotations

from types import SimpleNamespace


def backend_views(backend: str) -> SimpleNamespace:
    """The drawing functions of a back end (imported on first use)."""
    if backend == "plotly":
        from pvx.views import plotly_lines, plotly_matrix, plotly_projection

        return SimpleNamespace(
            projection=plotly_projection.projection,
            heatmap=plotly_matrix.heatmap,
            dendrogram=plotly_matrix.dendrogram,
            scree=plotly_lines.scree,
            variance_heatmap=plotly_lines.variance_heatmap,
            pair_trajectories=plotly_lines.pair_trajectories,
            variant_lines=plotly_lines.variant_lines,
            probe_lines=plotly_lines.probe_lines,
            probe_heatmap=plotly_lines.probe_heatmap,
        )
    if backend == "holoviews":
        from pvx.views import holoviews

        return SimpleNamespace(
            projection=holoviews.projection,
            heatmap=holoviews.heatmap,
            dendrogram=holoviews.dendrogram,
            scree=holoviews.scree,
            variance_heatmap=holoviews.variance_heatmap,
            pair_trajectories=holoviews.pair_trajectories,
            variant_lines=holoviews.variant_lines,
            probe_lines=holoviews.probe_lines,
            probe_heatmap=holoviews.probe_heatmap,
        )
    raise ValueError(f"unknown back end {backend!r}; choose 'plotly' or 'holoviews'")
