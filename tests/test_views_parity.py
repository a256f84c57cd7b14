"""The Plotly and HoloViews back ends: same kinds, same keywords, same data drawn."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import xarray as xr

import pvx.accessor
import pvx.attributes
import pvx.hvplot
import pvx.plot
import pvx.synthetic
import pvx.views
from pvx import cluster, decomposition, similarity

hv = pytest.importorskip("holoviews")

# Keywords only one back end has, and why.
PLOTLY_ONLY = {
    "heatmap": {"text_threshold", "precision"},  # Plotly prints cells / stores int8
}
DRAWING = [
    "projection",
    "heatmap",
    "dendrogram",
    "scree",
    "variance_heatmap",
    "pair_trajectories",
    "variant_lines",
    "probe_lines",
    "probe_heatmap",
    "association_heatmap",
]
ANALYSES = [
    "pca",
    "umap",
    "isomap",
    "cosine",
    "pair_similarity",
    "variant_similarity",
    "explained_variance",
    "linkage",
    "probe",
]


@pytest.fixture(scope="module")
def stacked() -> xr.DataArray:
    """Two variants of 12 personas (3 planted clusters), 3 layers labelled 10..12."""
    return pvx.synthetic.planted_personas(
        n_persona=12,
        n_clusters=3,
        n_layer=3,
        n_hidden=16,
        seed=3,
        first_layer=10,
        variants=["biography", "templated"],
    )


@pytest.fixture(scope="module")
def one(stacked: xr.DataArray) -> xr.DataArray:
    return stacked.sel(variant="biography")


@pytest.mark.parametrize("name", DRAWING + ANALYSES)
def test_both_back_ends_take_the_same_keywords(name):
    plotly = set(inspect.signature(getattr(pvx.plot, name)).parameters)
    holo = set(inspect.signature(getattr(pvx.hvplot, name)).parameters)
    assert plotly - PLOTLY_ONLY.get(name, set()) == holo
    assert {"width", "height", "title"} <= holo


def test_accessors_offer_the_same_methods():
    def methods(cls):
        return {n: inspect.signature(m) for n, m in vars(cls).items() if not n.startswith("_")}

    assert methods(pvx.plot.PlotAccessor) == methods(pvx.hvplot.HvplotAccessor)


def _plotly_points(fig, frame: int) -> dict[str, tuple[float, float]]:
    """Persona id -> (x, y) in one frame, over every point trace."""
    out = {}
    base = [t for t in fig.data if t.mode == "markers"]
    frame_traces = [t for t in fig.frames[frame].data if t.mode != "lines"] if fig.frames else base
    for trace, drawn in zip(base, frame_traces, strict=False):
        for text, x, y in zip(trace.hovertext, drawn.x, drawn.y, strict=True):
            out[text.split("id: ")[1].split("<br>")[0]] = (x, y)
    return out


def test_projection_panels_points_and_colours_agree(stacked):
    result = decomposition.pca(stacked).compute()
    fig = pvx.plot.projection(result, color=["region", "age"])
    view = pvx.hvplot.projection(result, color=["region", "age"])
    # one panel per colour and a row per variant in Plotly; panels and a variant widget in hv
    assert len([k for k in fig.layout if k.startswith("xaxis")]) == 4
    assert isinstance(view, hv.Layout) and len(view) == 2
    panel = view.values()[0]
    assert [d.name for d in panel.kdims] == ["variant", "layer"]
    for v_index, variant in enumerate(["biography", "templated"]):
        element = panel[variant, 11]
        drawn = dict(
            zip(
                element.data["id"],
                zip(element.data["PC1"], element.data["PC2"], strict=False),
                strict=False,
            )
        )
        # Plotly's traces for this variant's region panel: row v_index, column 0
        traces = [
            t
            for t in fig.data
            if t.mode == "markers" and t.xaxis == ("x" if v_index == 0 else "x3")
        ]
        assert traces, "no points in the variant's panel"
        for trace in traces:
            frame = fig.frames[1]
            index = list(fig.data).index(trace)
            points = frame.data[frame.traces.index(index)]
            for text, x, y in zip(trace.hovertext, points.x, points.y, strict=True):
                pid = text.split("id: ")[1].split("<br>")[0]
                np.testing.assert_allclose((x, y), drawn[pid], rtol=1e-5, atol=1e-6)
        plotly_regions = {t.name for t in traces}
        assert plotly_regions == set(element.data["region"].astype(str))


def test_cluster_colour_from_the_vectors_agrees(one):
    fig = one.pv.plot.pca(color="cluster", n_clusters=3, layer=[10, 11])
    view = one.pv.hvplot.pca(color="cluster", n_clusters=3, layer=[10, 11])
    plotly = {}
    for trace in fig.data:
        for text in trace.hovertext:
            plotly[text.split("id: ")[1].split("<br>")[0]] = trace.name
    element = view[10]
    holo = dict(zip(element.data["id"], element.data["cluster"].astype(str), strict=False))
    assert plotly == holo and set(holo.values()) == {"cluster 0", "cluster 1", "cluster 2"}


def _groups_drawn(fig, view) -> tuple[dict, dict]:
    plotly = {}
    for trace in fig.data:
        for text in trace.hovertext:
            plotly[text.split("id: ")[1].split("<br>")[0]] = trace.name
    element = view[10]
    column = element.data.columns[-1]  # the colour column comes last
    holo = dict(zip(element.data["id"], element.data[column].astype(str), strict=False))
    return plotly, holo


def test_groups_as_a_series_by_id_and_a_category_named_missing(one):
    """From a review: a Series indexed by id was read by position (personas in other
    groups); a category named "missing" crashed hvplot and read as the missing values."""
    import pandas as pd

    shuffled = one.isel(persona=np.random.default_rng(3).permutation(one.sizes["persona"]))
    ids = one["id"].values
    series = pd.Series([f"G{c}" for c in one["planted_cluster"].values], index=ids)
    fig = shuffled.pv.plot.pca(groups=series, layer=[10, 11])
    view = shuffled.pv.hvplot.pca(groups=series, layer=[10, 11])
    for drawn in _groups_drawn(fig, view):
        assert drawn == series.to_dict()
    status = np.array(["ok"] * 5 + ["missing"] * 5 + [None] * 2, dtype=object)
    marked = one.assign_coords(status=("persona", status, {"kind": "categorical"}))
    fig = marked.pv.plot.pca(color="status", layer=[10, 11])
    view = marked.pv.hvplot.pca(color="status", layer=[10, 11])
    shown = ["ok"] * 5 + ["missing"] * 5 + ["missing (no value)"] * 2
    expected = dict(zip(ids, shown, strict=True))
    for drawn in _groups_drawn(fig, view):
        assert drawn == expected
    for shown_fig in (fig, marked.pv.plot.pca(color="status", hover=["status"], layer=[10])):
        hover = {
            text.split("id: ")[1].split("<br>")[0]: text.split("status: ")[1].split("<br>")[0]
            for trace in shown_fig.data
            for text in trace.hovertext
        }
        assert hover == expected


def test_heatmaps_agree(one):
    sim, tree = similarity.cosine(one), cluster.linkage(one, layer=12)
    fig = pvx.plot.heatmap(sim, order=tree, precision="float32")
    view = pvx.hvplot.heatmap(sim, order=tree)
    ordered = pvx.hvplot.cosine(one, order="dendrogram")[11]  # the last layer's tree
    np.testing.assert_array_equal(ordered.dimension_values(2), view[11].dimension_values(2))
    for i, layer in enumerate([10, 11, 12]):
        grid = view[layer].dimension_values("cosine", flat=False)
        np.testing.assert_allclose(fig.frames[i].data[0].z, grid, atol=1e-4)
    ticks = [label for _, label in view[10].opts.get().kwargs["xticks"]]
    assert ticks == list(fig.data[0].x)


def _curves(overlay) -> dict[str, np.ndarray]:
    return {
        el.label: el.dimension_values(1)
        for el in overlay
        if isinstance(el, hv.Curve) and not isinstance(el, hv.Area)
    }


def _lines(fig) -> dict[str, np.ndarray]:
    return {t.name: np.asarray(t.y) for t in fig.data if t.fill != "toself"}


@pytest.mark.parametrize(
    "kind, call",
    [
        ("scree", lambda m, da: m.explained_variance(da, max_components=5)),
        ("pairs", lambda m, da: m.pair_similarity(da, top=3)),
        (
            "variants",
            lambda m, da: m.variant_similarity(da, "biography", "templated", personas=["p0", "p5"]),
        ),
    ],
)
def test_line_views_draw_the_same_series(stacked, one, kind, call):
    da = stacked if kind == "variants" else one
    fig, view = call(pvx.plot, da), call(pvx.hvplot, da)
    plotly, holo = _lines(fig), _curves(view)
    assert list(plotly) == list(holo)
    for name in plotly:
        np.testing.assert_allclose(plotly[name], holo[name], rtol=1e-5, atol=1e-6)
    bands = [t for t in fig.data if t.fill == "toself"]
    areas = [el for el in view if isinstance(el, hv.Area)]
    assert [t.name for t in bands] == [a.label for a in areas]


def test_dendrograms_show_the_same_leaves(one):
    fig = pvx.plot.linkage(one)
    view = pvx.hvplot.linkage(one)
    for i, layer in enumerate([10, 11, 12]):
        plotly_ticks = list(fig.frames[i].layout.xaxis.ticktext)
        holo_ticks = [label for _, label in view[layer].opts.get().kwargs["xticks"]]
        assert plotly_ticks == holo_ticks


def test_sizes_and_titles_reach_both(one):
    fig = pvx.plot.explained_variance(one, width=500, height=300, title="Scree <b>")
    view = pvx.hvplot.explained_variance(one, width=500, height=300, title="Scree <b>")
    assert (fig.layout.width, fig.layout.height) == (500, 300)
    # Plotly renders markup, so its text is escaped; Bokeh shows text as text
    assert fig.layout.title.text == "Scree &lt;b&gt; · biography"
    options = view.opts.get().kwargs
    assert (options["width"], options["height"]) == (500, 300)
    assert options["title"] == "Scree <b> · biography"


@pytest.mark.parametrize("module", [pvx.plot, pvx.hvplot])
def test_a_cluster_attribute_is_drawn_as_it_is_unless_k_means_is_asked_for(one, module):
    labels = [["red", "blue"][i % 2] for i in range(one.sizes["persona"])]
    da = one.assign_coords(cluster=("persona", labels, {"kind": "categorical"}))
    as_stored = module.pca(da, color="cluster", layer=[10, 11])
    with_kmeans = module.pca(da, color="cluster", n_clusters=3, layer=[10, 11])
    if module is pvx.plot:
        assert {t.name for t in as_stored.data} == {"red", "blue"}
        assert {t.name for t in with_kmeans.data} == {"cluster 0", "cluster 1", "cluster 2"}
    else:
        assert set(as_stored[10].data["cluster"].astype(str)) == {"red", "blue"}
        assert set(with_kmeans[10].data["cluster"].astype(str)) == {
            "cluster 0",
            "cluster 1",
            "cluster 2",
        }


def test_probe_views_draw_the_same_scores(one):
    result = pvx.attributes.probe(one, ["region", "age"], folds=3, permutations=2).compute()
    fig, view = pvx.plot.probe_lines(result), pvx.hvplot.probe_lines(result)
    plotly, holo = _lines(fig), _curves(view)
    assert list(plotly) == list(holo) == ["region (balanced accuracy)", "age (r2)"]
    np.testing.assert_allclose(
        plotly["region (balanced accuracy)"], result["score"].sel(attribute="region")
    )
    assert [t.name for t in fig.data if t.fill == "toself"] == [
        a.label for a in view if isinstance(a, hv.Area)
    ]
    # no shuffles: no band of NaN (from a review)
    bare = pvx.attributes.probe(one, ["region"], folds=3, permutations=0).compute()
    bare_fig, bare_view = pvx.plot.probe_lines(bare), pvx.hvplot.probe_lines(bare)
    assert [t.name for t in bare_fig.data] == ["region (balanced accuracy)"]
    assert not [a for a in bare_view if isinstance(a, hv.Area)]
    heat, grid = pvx.plot.probe_heatmap(result), pvx.hvplot.probe_heatmap(result)
    np.testing.assert_allclose(heat.data[0].z, result["gain"].values, rtol=1e-6)
    np.testing.assert_allclose(
        np.sort(grid.dimension_values("gain")), np.sort(result["gain"].values.ravel())
    )
    drawn = one.pv.plot.probe(["region", "age"], folds=3, permutations=2)
    assert [t.name for t in drawn.data] == [t.name for t in fig.data]


def test_association_heatmaps_agree(one):
    v = one.pv.association()
    fig, view = pvx.plot.association_heatmap(v), pvx.hvplot.association_heatmap(v)
    np.testing.assert_allclose(fig.data[0].z, v.values, rtol=1e-6)
    np.testing.assert_allclose(
        np.sort(view.dimension_values("cramers_v")), np.sort(v.values.ravel())
    )
    assert list(fig.data[0].x) == [str(a) for a in v["attribute"].values]


@pytest.mark.parametrize("module", [pvx.plot, pvx.hvplot])
def test_named_clusters_colour_a_projection(one, module):
    labels = one.pv.kmeans(4).compute()
    named = pvx.attributes.name_clusters(labels, one, ["region", "education"])
    result = pvx.views.with_clusters(decomposition.pca(one).compute(), labels, names=named)
    view = module.projection(result, color="cluster")
    drawn = (
        {t.name for t in view.data}
        if module is pvx.plot
        else set(view[10].data["cluster"].astype(str))
    )
    assert drawn == {str(n) for n in named["name"].values}
    with pytest.raises(ValueError, match="one label per persona"):
        per_layer = one.pv.kmeans(4, mode="per_layer").compute()
        pvx.views.with_clusters(result, per_layer, names=named)
