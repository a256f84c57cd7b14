"""Plotly views: inspect the returned figures (traces, frames, colours, hover); never render."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr

import pvx.accessor
import pvx.plot
import pvx.synthetic
from pvx import _colors, cluster, decomposition, manifold, similarity
from pvx.views import plotly_matrix

pytest.importorskip("plotly")

MARKUP = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def da() -> xr.DataArray:
    """15 personas in 3 planted clusters, 4 layers labelled 10..13, plus the baseline."""
    return pvx.synthetic.planted_personas(
        n_persona=15, n_clusters=3, n_layer=4, n_hidden=24, seed=2, first_layer=10, baseline=True
    )


@pytest.fixture(scope="module")
def scores(da: xr.DataArray) -> xr.Dataset:
    return decomposition.pca(da, n_components=3, include_baseline=True).compute()


@pytest.fixture
def no_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every analysis function raise: drawing a computed result must not refit it."""

    def refuse(*args, **kwargs):
        raise AssertionError("a view recomputed an analysis")

    for module, names in [
        (decomposition, ["pca", "explained_variance"]),
        (manifold, ["umap", "isomap", "twonn"]),
        (cluster, ["kmeans", "linkage"]),
        (similarity, ["cosine", "neighbors", "pair_similarity", "variant_similarity"]),
    ]:
        for name in names:
            monkeypatch.setattr(module, name, refuse)


def frame_names(fig) -> list[str]:
    return [f.name for f in fig.frames]


def all_points(trace) -> np.ndarray:
    return np.column_stack([np.asarray(trace.x), np.asarray(trace.y)])


# --------------------------------------------------------------------------- projection


def test_projection_has_one_frame_per_layer_with_slider_and_play(scores):
    fig = pvx.plot.projection(scores)
    assert frame_names(fig) == ["10", "11", "12", "13"]
    assert [t.type for t in fig.data] == ["scattergl"]
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["10", "11", "12", "13"]
    assert [list(s.args[0]) for s in steps] == [["10"], ["11"], ["12"], ["13"]]
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["Play", "Pause"]
    # each frame holds that layer's scores, as float32
    for i, frame in enumerate(fig.frames):
        expected = scores["scores"].isel(layer=i).sel(component=[1, 2]).values
        np.testing.assert_allclose(all_points(frame.data[0]), expected, rtol=1e-6, atol=1e-6)
        assert np.asarray(frame.data[0].x).dtype == np.float32


def test_projection_three_components_is_3d(scores):
    fig = pvx.plot.projection(scores, components=(1, 2, 3))
    assert {t.type for t in fig.data} == {"scatter3d"}
    assert fig.layout.scene.zaxis.title.text.startswith("PC3")
    np.testing.assert_allclose(
        fig.frames[2].data[0].z, scores["scores"].isel(layer=2).sel(component=3), rtol=1e-6
    )


def test_projection_single_layer_has_no_frames(da):
    fig = pvx.plot.projection(decomposition.pca(da, layer=11))
    assert not fig.frames and not fig.layout.sliders
    assert "layer 11" in fig.layout.title.text


def test_numeric_colour_bar_is_fixed_across_layers_and_missing_is_grey(da, scores):
    fig = pvx.plot.projection(scores, color="age")
    main, missing = fig.data
    age = da["age"].values
    assert main.marker.colorbar.title.text == "age"
    assert main.marker.cmin == np.nanmin(age) and main.marker.cmax == np.nanmax(age)
    assert main.marker.colorscale is not None and main.marker.showscale
    assert not main.showlegend
    # the baseline has no age: one grey point, never on the colour scale
    assert missing.name == "missing" and missing.marker.color == _colors.MISSING_COLOR
    assert len(missing.x) == 1 and len(main.x) == 15
    for frame in fig.frames:  # frames move points only: colours and range stay put
        assert frame.data[0].marker.color is None and frame.data[0].marker.cmin is None


def test_ordinal_colour_uses_the_order_as_ticks_and_hover(da, scores):
    fig = pvx.plot.projection(scores, color="education")
    bar = fig.data[0].marker.colorbar
    order = da["education"].attrs["order"]
    assert list(bar.ticktext) == order and list(bar.tickvals) == list(range(len(order)))
    codes = np.asarray(fig.data[0].marker.color)
    shown = [order[int(c)] for c in codes]
    assert shown == list(da["education"].values[:15])
    assert all(f"education: {e}" in t for e, t in zip(shown, fig.data[0].hovertext, strict=True))
    assert fig.data[0].marker.cmin == -0.5 and fig.data[0].marker.cmax == len(order) - 0.5


def test_categorical_colour_keeps_top_categories_and_other(da):
    jobs = ["cook"] * 6 + ["nurse"] * 4 + ["pilot"] * 3 + ["poet", "mime"] + [None]
    acts = da.assign_coords(job=("persona", jobs, {"kind": "categorical"}))
    result = decomposition.pca(acts, include_baseline=True)
    fig = pvx.plot.projection(result, color="job", max_categories=2)
    assert [t.name for t in fig.data] == ["cook", "nurse", "Other", "missing"]
    assert [len(t.x) for t in fig.data] == [6, 4, 5, 1]
    assert all(t.showlegend for t in fig.data)
    assert fig.data[2].marker.color == _colors.OTHER_COLOR
    assert fig.layout.legend.title.text == "job"
    assert len({t.marker.color for t in fig.data}) == 4


@pytest.mark.parametrize(
    "values",
    [
        np.array([[3, 1, 1], [2, 3, 1]]),
        np.array([1.0, np.nan, 2.5, -0.0, 1e9, 2.5]),
        np.array(["b", "", "a", "b"]),
        np.array([True, False, True]),
        np.array([True, 1, 1.0, None, np.nan, "", "a", b"x", (1, 2), [3], 2.5], dtype=object),
        np.array(["2020-01-01", "NaT", "2020-01-01"], dtype="datetime64[D]"),
    ],
)
def test_labels_are_each_value_formatted(values):
    # each distinct value is formatted once: the result must equal formatting every element
    expected = [_colors.format_value(v) for v in values.ravel()]
    assert _colors._labels(values).ravel().tolist() == expected


def test_cluster_colour_runs_kmeans_once(monkeypatch, da, scores):
    calls = []
    real = cluster.kmeans

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "kmeans", counting)
    fig = da.pv.plot.projection(scores, color="cluster", n_clusters=3)
    assert len(calls) == 1 and calls[0]["include_baseline"] is True
    assert [t.name for t in fig.data] == ["cluster 0", "cluster 1", "cluster 2"]
    # the planted clusters are recovered: each legend entry is one planted block
    for trace in fig.data:
        members = [t.split("id: ")[1].split("<br>")[0] for t in trace.hovertext]
        planted = {int(da["planted_cluster"].sel(id=m)) for m in members if m.startswith("p")}
        assert len(planted) == 1


def test_views_never_run_an_analysis(monkeypatch, scores):
    def refuse(*args, **kwargs):
        raise AssertionError("a view ran k-means")

    monkeypatch.setattr(cluster, "kmeans", refuse)
    for draw in (pvx.plot.projection, pvx.hvplot.projection):
        with pytest.raises(KeyError, match=r"n_clusters=k.*groups=pvx.cluster.kmeans"):
            draw(scores, color="cluster")


def test_per_layer_clusters_change_membership_per_frame(da):
    acts = da.isel(persona=slice(0, 15))
    labels = cluster.kmeans(acts, 3, mode="per_layer")
    fig = pvx.plot.projection(decomposition.pca(acts), groups=labels)
    assert [t.name for t in fig.data] == ["cluster 0", "cluster 1", "cluster 2"]
    for i, frame in enumerate(fig.frames):
        sizes = [len(t.x) for t in frame.data]
        expected = np.bincount(labels.isel(layer=i).values, minlength=3).tolist()
        assert sizes == expected
        assert all(len(t.hovertext) == len(t.x) for t in frame.data)


def test_explicit_groups_and_values(scores):
    n = scores.sizes["persona"]
    fig = pvx.plot.projection(scores, groups=[("a", "b", "c")[i % 3] for i in range(n)])
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    values = np.linspace(0, 1, n)
    fig = pvx.plot.projection(scores, color_values=values)
    assert fig.data[0].marker.cmin == 0 and fig.data[0].marker.cmax == 1
    with pytest.raises(ValueError, match="one value per persona"):
        pvx.plot.projection(scores, color_values=values[:-1])
    with pytest.raises(ValueError, match="pass one of"):
        pvx.plot.projection(scores, color="age", groups=values)


def test_groups_dataarray_is_matched_by_id(scores):
    ids = scores["id"].values
    groups = xr.DataArray(
        [f"g{i % 2}" for i in range(len(ids))][::-1],
        dims="persona",
        coords={"id": ("persona", ids[::-1])},
    )
    fig = pvx.plot.projection(scores, groups=groups)
    first = fig.data[0]
    members = [t.split("id: ")[1].split("<br>")[0] for t in first.hovertext]
    expected = groups.set_xindex("id").sel(id=members).values
    assert set(expected) == {first.name}


def test_hover_escapes_every_string_from_the_data(da):
    names = da["name"].values.astype(object)
    names[0] = MARKUP
    region = da["region"].values.astype(object)
    region[1] = "<b>bold</b> & co"
    acts = da.assign_coords(
        name=("persona", names), region=("persona", region, {"kind": "categorical"})
    )
    fig = pvx.plot.projection(decomposition.pca(acts), color="region", hover=["education", "age"])
    text = [t for trace in fig.data for t in trace.hovertext]
    assert any("&lt;img src=x onerror=alert(1)&gt;" in t for t in text)
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in [t.name for t in fig.data]
    dumped = fig.to_json()
    assert "<img" not in dumped and "<b>bold" not in dumped


def test_quotes_stay_as_written_and_long_values_are_shortened(da):
    region = da["region"].values.astype(object)
    region[1] = 'the "north"'
    region[2] = "x" * 10_000
    names = da["name"].values.astype(object)
    names[0] = 'Ada "the first"'
    acts = da.assign_coords(
        name=("persona", names), region=("persona", region, {"kind": "categorical"})
    )
    fig = pvx.plot.projection(decomposition.pca(acts), color="region")
    legend = [t.name for t in fig.data]
    assert 'the "north"' in legend and not any("&quot;" in n for n in legend)
    assert max(len(n) for n in legend) <= pvx.plot.LABEL_LIMIT
    assert "x" * 39 + "…" in legend
    hover = [t for trace in fig.data for t in trace.hovertext]
    assert any("x" * 10_000 in t for t in hover)  # the full value on hover
    assert any('Ada "the first"' in t for t in hover)


def test_hover_shows_id_name_and_chosen_attributes(scores):
    fig = pvx.plot.projection(scores, hover=["age", "region"])
    first = fig.data[0].hovertext[0]
    assert first.startswith("<b>Ada</b><br>id: p0<br>age: ")
    assert "region: " in first
    assert fig.data[0].hovertext[-1].endswith("region: missing")  # the baseline
    with pytest.raises(KeyError, match="hover="):
        pvx.plot.projection(scores, hover=["shoe_size"])


def test_recolouring_a_computed_projection_does_not_refit(scores, no_analysis):
    for kwargs in ({"color": "age"}, {"color": "region"}, {"groups": np.arange(16) % 2}):
        fig = pvx.plot.projection(scores, hover=["education"], **kwargs)
        assert frame_names(fig) == ["10", "11", "12", "13"]


def test_knn_overlay_links_exactly_the_k_nearest(da):
    acts = da.isel(persona=slice(0, 15))
    result = decomposition.pca(acts)
    nn = similarity.neighbors(acts, 3)
    fig = pvx.plot.projection(result, neighbors=nn)
    edges_trace, points = fig.data
    assert edges_trace.mode == "lines" and points.mode == "markers"
    ids = list(points.hovertext)
    ids = [t.split("id: ")[1].split("<br>")[0] for t in ids]
    for i, frame in enumerate(fig.frames):
        xy = all_points(frame.data[1])
        where = {tuple(p): j for j, p in enumerate(xy)}
        seg = all_points(frame.data[0]).reshape(-1, 3, 2)
        assert np.isnan(seg[:, 2]).all()
        drawn = {(ids[where[tuple(s[0])]], ids[where[tuple(s[1])]]) for s in seg}
        layer_nn = nn.isel(layer=i)
        expected = {
            (str(p), str(q))
            for p, row in zip(layer_nn["id"].values, layer_nn["neighbor_id"].values, strict=True)
            for q in row
        }
        assert drawn == expected and len(seg) == 15 * 3
        assert all(a != b for a, b in drawn)


def test_axes_fixed_or_per_layer(scores):
    xy = scores["scores"].sel(component=[1, 2]).values
    fixed = pvx.plot.projection(scores.drop_vars("explained_variance_ratio"))
    lo, hi = fixed.layout.xaxis.range
    assert lo < xy[..., 0].min() and hi > xy[..., 0].max()
    assert all(f.layout.xaxis.range is None for f in fixed.frames)
    per = pvx.plot.projection(scores, axes="per_layer")
    for i, frame in enumerate(per.frames):
        lo, hi = frame.layout.xaxis.range
        assert lo <= xy[i, :, 0].min() and hi >= xy[i, :, 0].max()
        assert hi - lo < 1.2 * np.ptp(xy[i, :, 0]) + 1e-6
    # PCA axis titles carry each layer's explained variance
    ratio = float(scores["explained_variance_ratio"].isel(layer=3, component=0))
    assert per.frames[3].layout.xaxis.title.text == f"PC1 ({100 * ratio:.1f}%)"


def test_projection_errors_name_the_fix(da, scores):
    with pytest.raises(ValueError, match=r"sample=\.\.\."):
        pvx.plot.projection(scores.expand_dims(sample=2))
    with pytest.raises(KeyError, match="'age'"):
        pvx.plot.projection(scores, color="shoe_size")
    with pytest.raises(KeyError, match="n_clusters"):
        pvx.plot.projection(scores, color="cluster")
    with pytest.raises(ValueError, match="n_clusters"):
        pvx.plot.pca(da, color="cluster")
    with pytest.raises(KeyError, match="component"):
        pvx.plot.projection(scores, components=(1, 5))
    with pytest.raises(ValueError, match="axes"):
        pvx.plot.projection(scores, axes="loose")


@pytest.mark.filterwarnings("ignore:using precomputed metric:UserWarning")
@pytest.mark.parametrize("method", ["pca", "umap", "isomap"])
def test_from_vectors_draws_the_analysis(da, method):
    acts = da.chunk({"layer": 1})
    fig = getattr(pvx.plot, method)(acts, color="region", layer=[11, 12])
    assert frame_names(fig) == ["11", "12"]
    expected = {"pca": decomposition.pca, "umap": manifold.umap, "isomap": manifold.isomap}[method](
        da, layer=[11, 12]
    )
    expected = expected["scores"] if method == "pca" else expected
    north = expected.sel(layer=12).isel(persona=da["region"].values[:15] == "north")
    np.testing.assert_allclose(
        all_points(fig.frames[1].data[0]), north.values, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_from_vectors_computes_clusters_and_neighbours_together(da, backend):
    acts = da.chunk({"layer": 1, "persona": 4}) if backend == "dask" else da
    fig = pvx.plot.pca(acts, color="cluster", n_clusters=3, k=2, hover=["age"])
    assert [t.name for t in fig.data][1:] == ["cluster 0", "cluster 1", "cluster 2"]
    assert fig.data[0].mode == "lines"
    hover = [list(t.hovertext) for t in fig.data if t.hovertext is not None]
    assert "baseline_assistant" not in json.dumps(hover)


# --------------------------------------------------------------------------- export


def test_write_html_embeds_plotlyjs_and_never_uses_a_cdn(tmp_path, scores):
    fig = pvx.plot.projection(scores, color="age")
    page = pvx.plot.write_html(fig, tmp_path / "pca.html")
    text = page.read_text()
    assert "cdn.plot.ly/plotly" not in text.split("</script>", 1)[1]
    assert '<script src="http' not in text
    assert text.count("Plotly.newPlot") >= 1 and len(text) > 1_000_000  # bundle inside


def test_write_html_shows_a_figure_title_as_text_in_the_page_title(tmp_path, scores):
    fig = pvx.plot.projection(scores)
    fig.update_layout(title="<b>PCA</b> &amp; x</title><script>window.__pwned=1</script>")
    text = pvx.plot.write_html(fig, tmp_path / "t.html").read_text()
    page_title = text.split("<title>", 1)[1].split("</title>", 1)[0]
    assert page_title == "PCA &amp; x window.__pwned=1"  # tags dropped, the rest escaped


def test_report_render_replaces_a_plotlyjs_that_is_not_this_plotlys(tmp_path):
    from pvx.views.html import write_plotly_bundle

    (tmp_path / "plotly.min.js").write_text("/* left by an earlier run */")
    write_plotly_bundle(tmp_path)
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_write_html_directory_writes_plotlyjs_once(tmp_path, scores):
    for name in ("a.html", "b.html"):
        page = pvx.plot.write_html(
            pvx.plot.projection(scores), tmp_path / name, plotlyjs="directory"
        )
        text = page.read_text()
        assert 'src="plotly.min.js"' in text and len(text) < 500_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html", "plotly.min.js"]
    bundle = tmp_path / "plotly.min.js"
    written = bundle.stat().st_mtime_ns
    pvx.plot.write_html(pvx.plot.projection(scores), tmp_path / "c.html", plotlyjs="directory")
    assert bundle.stat().st_mtime_ns == written  # once per folder
    bundle.write_text("/* another plotly version */")
    pvx.plot.write_html(pvx.plot.projection(scores), tmp_path / "c.html", plotlyjs="directory")
    assert bundle.stat().st_size > 1_000_000
    with pytest.raises(ValueError, match="CDN"):
        pvx.plot.write_html(pvx.plot.projection(scores), tmp_path / "d.html", plotlyjs="cdn")


# --------------------------------------------------------------------------- heatmap


@pytest.fixture(scope="module")
def acts(da: xr.DataArray) -> xr.DataArray:
    """The 15 planted personas without the baseline."""
    return da.isel(persona=slice(0, 15))


def test_heatmap_one_frame_per_layer_in_dendrogram_order(acts):
    sim = similarity.cosine(acts)
    tree = cluster.linkage(acts, layer=13)
    fig = pvx.plot.heatmap(sim, order=tree)
    assert [t.type for t in fig.data] == ["heatmap"] and frame_names(fig) == [
        "10",
        "11",
        "12",
        "13",
    ]
    order = tree["order"].values
    ids = acts["id"].values[order].tolist()
    assert list(fig.data[0].x) == ids and list(fig.data[0].y) == ids  # rows fixed for all frames
    for i, frame in enumerate(fig.frames):
        assert frame.data[0].x is None  # frames only swap values
        expected = sim.isel(layer=i).values[np.ix_(order, order)]
        np.testing.assert_allclose(np.asarray(frame.data[0].z), expected, atol=1e-4)
    assert fig.data[0].zmin == -1 and fig.data[0].zmax == 1
    assert fig.data[0].texttemplate  # few personas: values printed, computed in the browser


def test_heatmap_order_by_ids_and_from_vectors(acts):
    ids = acts["id"].values[::-1]
    fig = pvx.plot.heatmap(similarity.cosine(acts, layer=12), order=ids)
    assert list(fig.data[0].y) == ids.tolist() and not fig.frames
    fig = pvx.plot.cosine(acts.chunk({"layer": 1}), order="dendrogram", layer=[10, 11])
    leaves = cluster.linkage(acts, layer=11)["leaf_id"].values.tolist()
    assert list(fig.data[0].x) == leaves
    with pytest.raises(ValueError, match="each of the 15 personas once"):
        pvx.plot.heatmap(similarity.cosine(acts), order=[0, 1, 2])


def test_missing_cosines_are_never_drawn_as_zero(monkeypatch):
    """int8 has no NaN: a missing cosine (results joined by hand) read 0 in the compact
    path. Automatic precision keeps float32 then; int8 asked for is refused."""
    sim = similarity.cosine(pvx.synthetic.planted_personas(n_persona=8, n_layer=1, seed=0))
    sim = sim.where(sim["id"] != "p3")  # a persona missing from these results
    with pytest.raises(ValueError, match="cannot show missing cosines"):
        pvx.plot.heatmap(sim, precision="int8")
    monkeypatch.setattr(plotly_matrix, "COMPACT_CELLS", 10)  # 64 cells are many
    z = np.asarray(pvx.plot.heatmap(sim, precision="auto").data[0].z)
    assert z.dtype == np.float32 and np.isnan(z[3]).all()
    whole = np.asarray(pvx.plot.heatmap(sim.fillna(0), precision="auto").data[0].z)
    assert whole.dtype == np.int8  # without a missing cosine, the compact path


def test_heatmap_for_many_personas_is_compact():
    big = pvx.synthetic.planted_personas(n_persona=120, n_layer=2, n_hidden=8, seed=0)
    sim = similarity.cosine(big)
    fig = pvx.plot.heatmap(sim, max_rows=40, precision="int8", text_threshold=25)
    z = np.asarray(fig.frames[1].data[0].z)
    assert z.shape == (40, 40) and z.dtype == np.int8
    assert fig.data[0].texttemplate is None  # no per-cell text for many rows
    assert fig.data[0].x[0] == "p0 … p2"
    # each block is the mean of its cells
    np.testing.assert_allclose(
        z[0, 1], round(100 * float(sim.isel(layer=1)[:3, 3:6].mean())), atol=1
    )
    assert '"dtype":"i1"' in fig.to_json()


def test_heatmap_escapes_labels(acts):
    ids = acts["id"].values.astype(object)
    ids[0] = MARKUP
    sim = similarity.cosine(acts.assign_coords(id=("persona", ids)).set_xindex("id"), layer=10)
    fig = pvx.plot.heatmap(sim, labels="name")
    assert fig.data[0].x[0] == "Ada (&lt;img src=x onerror=alert(1)&gt;)"
    assert "<img" not in fig.to_json()


def test_labels_shortened_alike_stay_apart(da):
    # Plotly merges equal categories: labels cut to the same text must not draw as one row
    prefix = "organisation-member-persona-record-number-"  # longer than the label limit
    ids = [prefix + f"{i:03d}" for i in range(da.sizes["persona"])]
    long_ids = da.assign_coords(id=("persona", ids)).set_xindex("id")
    fig = pvx.plot.heatmap(similarity.cosine(long_ids, layer=10))
    x, axis = list(fig.data[0].x), fig.layout.xaxis
    assert len(set(x)) == len(x) == da.sizes["persona"] and x == list(fig.data[0].y)
    assert prefix + "003" in x  # whole on hover
    assert list(axis.tickvals) == x and list(fig.layout.yaxis.tickvals) == x
    assert all(len(t) <= pvx.plot.LABEL_LIMIT for t in axis.ticktext)

    attributes = {a: prefix + a for a in ("age", "education", "region")}
    renamed = da.rename(attributes)
    v = renamed.pv.association()
    fig = pvx.plot.association_heatmap(v)
    drawn = list(fig.data[0].x)
    assert set(attributes.values()) <= set(drawn) and len(set(drawn)) == len(drawn)
    assert all(len(t) <= pvx.plot.LABEL_LIMIT for t in fig.layout.yaxis.ticktext)
    result = renamed.pv.probe(list(attributes.values()), folds=2, permutations=1).compute()
    fig = pvx.plot.probe_heatmap(result)
    assert sorted(fig.data[0].y) == sorted(attributes.values())
    assert all(len(t) <= pvx.plot.LABEL_LIMIT for t in fig.layout.yaxis.ticktext)


# --------------------------------------------------------------------------- lines


def test_pair_trajectories_draw_chosen_pairs_against_the_band(acts):
    ps = similarity.pair_similarity(acts, [("p0", "p1"), ("p0", "p14")])
    fig = pvx.plot.pair_trajectories(ps)
    band, median, *pairs = fig.data
    assert band.fill == "toself" and median.name == "median of all pairs"
    assert [p.name for p in pairs] == ["Ada (p0) – Bea (p1)", "Ada (p0) – Cal (p14)"]
    np.testing.assert_allclose(pairs[1].y, ps["cosine"].isel(pair=1), rtol=1e-6)
    np.testing.assert_allclose(median.y, ps["median"], rtol=1e-6)
    np.testing.assert_allclose(band.y[:4], ps["high"], rtol=1e-6)
    assert list(band.x[:4]) == [10, 11, 12, 13]


def test_pair_trajectories_pick_the_most_changing_pairs_never_all(acts):
    ps = similarity.pair_similarity(acts)  # all 105 pairs
    fig = pvx.plot.pair_trajectories(ps, top=3)
    assert len(fig.data) == 2 + 3
    change = ps["cosine"].max("layer") - ps["cosine"].min("layer")
    best = change.argsort().values[::-1][:3]
    expected = [f"{ps['id'].values[i]}) – " for i in best]
    assert all(e in t.name for e, t in zip(expected, fig.data[2:], strict=True))
    assert len(pvx.plot.pair_trajectories(ps).data) == 2 + 5
    assert len(pvx.plot.pair_similarity(acts).data) == 2 + 5


def test_scree_and_variance_heatmap(acts):
    evr = decomposition.explained_variance(acts)
    fig = pvx.plot.scree(evr)
    assert [t.name for t in fig.data] == ["layer 10", "layer 11", "layer 12", "layer 13"]
    np.testing.assert_allclose(fig.data[2].y, evr.isel(layer=2), rtol=1e-6)
    cum = pvx.plot.scree(evr, cumulative=True, max_components=5)
    assert len(cum.data[0].y) == 5 and np.all(np.diff(cum.data[0].y) >= 0)
    heat = pvx.plot.variance_heatmap(decomposition.pca(acts, n_components=4))
    assert heat.data[0].type == "heatmap" and np.asarray(heat.data[0].z).shape == (4, 4)
    assert list(heat.data[0].y) == ["10", "11", "12", "13"]
    assert pvx.plot.explained_variance(acts, heatmap=True).data[0].type == "heatmap"


def test_dendrogram_layered_with_shared_height(acts):
    tree = cluster.linkage(acts)
    fig = pvx.plot.dendrogram(tree, names=acts["name"])
    assert frame_names(fig) == ["10", "11", "12", "13"]
    top = fig.layout.yaxis.range[1]
    assert top >= float(tree["linkage"].sel(field="distance").max())
    for i, frame in enumerate(fig.frames):
        lines, leaves = frame.data
        assert np.nanmax(lines.y) == pytest.approx(
            float(tree["linkage"].isel(layer=i).sel(field="distance").max()), rel=1e-5
        )
        leaf_ids = tree["leaf_id"].isel(layer=i).values.tolist()
        assert [t.split("id: ")[1] for t in leaves.hovertext] == leaf_ids
        assert frame.layout.yaxis.range is None  # one height range for every layer
    single = pvx.plot.dendrogram(cluster.linkage(acts, layer=12))
    assert not single.frames and len(single.layout.xaxis.ticktext) == 15


@pytest.mark.parametrize("method", ["ward", "average", "single"])
def test_dendrogram_lines_are_scipys(method):
    """The links drawn are SciPy's dendrogram's (same leaf order, same segments), built
    without its recursive walk; ties in height included."""
    import scipy.cluster.hierarchy

    from pvx.views.charts import _tree_lines

    rng = np.random.default_rng(1)
    for points in (rng.normal(size=(40, 4)), np.repeat(rng.normal(size=(6, 2)), 3, axis=0)):
        z = scipy.cluster.hierarchy.linkage(points, method)
        x, y, leaves = _tree_lines(z)
        theirs = scipy.cluster.hierarchy.dendrogram(z, no_plot=True, color_threshold=-1)
        assert leaves == theirs["leaves"]
        links = np.column_stack([x.reshape(-1, 5)[:, :4], y.reshape(-1, 5)[:, :4]])
        expected = np.column_stack([theirs["icoord"], theirs["dcoord"]]).astype(np.float32)
        assert np.isnan(x.reshape(-1, 5)[:, 4]).all()
        assert sorted(map(tuple, links.tolist())) == sorted(map(tuple, expected.tolist()))


def test_variant_lines(acts):
    both = pvx.synthetic.planted_personas(
        n_persona=10, n_layer=3, variants=["biography", "templated"], seed=0
    )
    vs = similarity.variant_similarity(both, "biography", "templated")
    fig = pvx.plot.variant_lines(vs, personas=["p3"])
    names = [t.name for t in fig.data]
    assert names[1:] == [
        "median persona, centered",
        "median persona, raw",
        "cosine-matrix correlation",
        "Dee (p3)",
    ]
    np.testing.assert_allclose(fig.data[3].y, vs["matrix_correlation"], rtol=1e-6)
    np.testing.assert_allclose(fig.data[1].y, vs["centered"].median("persona"), rtol=1e-6)
    assert "biography vs templated" in fig.layout.title.text
    assert [t.name for t in pvx.plot.variant_similarity(both, "biography", "templated").data] == (
        names[:4]
    )


@pytest.fixture(scope="module")
def results(acts: xr.DataArray) -> dict[str, xr.Dataset | xr.DataArray]:
    both = pvx.synthetic.planted_personas(n_persona=6, variants=["a", "b"], seed=0)
    return {
        "heatmap": similarity.cosine(acts),
        "pair_trajectories": similarity.pair_similarity(acts),
        "scree": decomposition.explained_variance(acts),
        "variance_heatmap": decomposition.pca(acts),
        "dendrogram": cluster.linkage(acts),
        "variant_lines": similarity.variant_similarity(both, "a", "b"),
    }


@pytest.mark.parametrize(
    "view",
    ["heatmap", "pair_trajectories", "scree", "variance_heatmap", "dendrogram", "variant_lines"],
)
def test_views_of_computed_results_do_not_recompute(results, view, no_analysis):
    fig = getattr(pvx.plot, view)(results[view])
    assert fig.data


def test_layered_views_name_frames_by_layer_and_slide(results):
    for view in ("heatmap", "dendrogram"):
        fig = getattr(pvx.plot, view)(results[view])
        assert frame_names(fig) == ["10", "11", "12", "13"]
        assert [s.label for s in fig.layout.sliders[0].steps] == frame_names(fig)


def test_line_views_need_layers(acts):
    with pytest.raises(ValueError, match="no 'layer' dimension"):
        pvx.plot.pair_trajectories(similarity.pair_similarity(acts, layer=10))
    with pytest.raises(ValueError, match="pair_similarity"):
        pvx.plot.pair_trajectories(xr.Dataset())


@pytest.fixture(scope="module")
def two_variants() -> xr.DataArray:
    return pvx.synthetic.planted_personas(
        n_persona=12, n_layer=3, variants=["biography", "tem<b>plated"], seed=1
    )


@pytest.mark.parametrize(
    ("view", "analysis"),
    [
        ("scree", decomposition.explained_variance),
        ("variance_heatmap", decomposition.pca),
        (
            "pair_trajectories",
            lambda da: similarity.pair_similarity(da, [("p0", "p1"), ("p2", "p5")]),
        ),
        ("probe_lines", lambda da: pvx.attributes.probe(da, permutations=2)),
        ("probe_heatmap", lambda da: pvx.attributes.probe(da, permutations=2)),
        ("heatmap", similarity.cosine),
        ("dendrogram", cluster.linkage),
    ],
)
def test_line_views_of_two_variants_draw_a_panel_each(two_variants, view, analysis):
    result = analysis(two_variants).compute()
    fig = getattr(pvx.plot, view)(result, title="both")
    alone = [
        getattr(pvx.plot, view)(result.sel(variant=v).drop_vars("variant"))
        for v in result["variant"].values
    ]
    # each panel holds exactly what that variant drawn alone holds, on its own axes
    assert len(fig.data) == sum(len(f.data) for f in alone)
    drawn = iter(fig.data)
    for col, figure in enumerate(alone, start=1):
        for trace in figure.data:
            panel = next(drawn)
            assert panel.xaxis == ("x" if col == 1 else f"x{col}")
            for key in ("x", "y", "z"):
                if getattr(trace, key, None) is not None:
                    np.testing.assert_array_equal(getattr(panel, key), getattr(trace, key))
    # a layer's frame moves every panel, each as that variant's own frame would
    assert [f.name for f in fig.frames] == [f.name for f in alone[0].frames]
    for i, frame in enumerate(fig.frames):
        parts = [t for f in alone for t in f.frames[i].data]
        assert len(frame.traces) == len(parts) == len(frame.data)
        offsets = np.cumsum([0] + [len(f.data) for f in alone])
        moved = [o + t for o, f in zip(offsets, alone, strict=False) for t in f.frames[i].traces]
        assert list(frame.traces) == moved  # each panel's own traces
        for trace, part in zip(frame.data, parts, strict=True):
            for key in ("x", "y", "z"):
                if getattr(part, key, None) is not None:
                    np.testing.assert_array_equal(getattr(trace, key), getattr(part, key))
        if alone[0].frames[i].layout.xaxis.ticktext is not None:  # the dendrogram's leaves
            assert list(frame.layout.xaxis2.ticktext) == list(
                alone[1].frames[i].layout.xaxis.ticktext
            )
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["biography", "tem&lt;b&gt;plated"]  # escaped, as every label
    assert fig.layout.title.text == "both"
    heat = [t for t in fig.data if t.type == "heatmap"]
    if heat:  # one colour range, one colour bar
        assert len({(t.zmin, t.zmax) for t in heat}) == 1
        assert [t.showscale for t in heat] == [False, True]
        assert heat[0].zmin <= min(float(np.nanmin(t.z)) for t in heat)
    else:  # one legend entry per series, toggling both panels
        shown = [t.name for t in fig.data if t.showlegend is not False]
        assert sorted(shown) == sorted(t.name for t in alone[0].data)


def test_pair_panels_of_two_variants_draw_the_same_pairs(two_variants):
    ps = similarity.pair_similarity(two_variants).compute()  # 66 pairs: the 5 that change most
    cos = ps["cosine"].transpose("variant", "layer", "pair").values
    change = (cos.max(axis=1) - cos.min(axis=1)).max(axis=0)  # in either variant
    expected = [pvx.views.charts.pair_label(ps, int(i)) for i in np.argsort(-change)[:5]]
    fig = pvx.plot.pair_trajectories(ps)
    for col in ("x", "x2"):
        pairs = [t for t in fig.data if t.xaxis == col and t.mode == "lines+markers"]
        assert [t.name for t in pairs] == expected
    colours = {t.name: t.line.color for t in fig.data if t.mode == "lines+markers"}
    assert all(t.line.color == colours[t.name] for t in fig.data if t.mode == "lines+markers")


def test_heatmap_of_two_variants_orders_each_panel_by_its_own_linkage(two_variants):
    cos, tree = similarity.cosine(two_variants, layer=1), cluster.linkage(two_variants, layer=1)
    fig = pvx.plot.heatmap(cos, order=tree)
    for col, variant in enumerate(two_variants["variant"].values):
        own = pvx.plot.heatmap(cos.sel(variant=variant), order=tree.sel(variant=variant))
        np.testing.assert_array_equal(fig.data[col].z, own.data[0].z)
        assert list(fig.data[col].y) == list(own.data[0].y)
    assert list(fig.data[0].y) != list(fig.data[1].y)  # the orders differ: y is not shared


def test_one_variant_kept_as_a_dim_draws_as_before(two_variants):
    one = two_variants.isel(variant=[0])
    fig = pvx.plot.scree(decomposition.explained_variance(one).compute())
    assert not fig.layout.annotations and fig.layout.title.text.endswith("· biography")
    # its arguments with a variant dim too (the review: order= kept the dim and was refused)
    fig = pvx.plot.heatmap(similarity.cosine(one, layer=1), order=cluster.linkage(one, layer=1))
    assert fig.data[0].type == "heatmap"


def test_panels_share_one_range_whatever_a_panel_holds(two_variants):
    result = pvx.attributes.probe(two_variants, permutations=2).compute()
    result["score"][{"variant": 0}] = np.nan  # a first panel with no value at all
    fig = pvx.plot.probe_heatmap(result)
    assert len({(t.zmin, t.zmax) for t in fig.data}) == 1 and np.isfinite(fig.data[0].zmin)
    # dendrograms: one merge-distance axis spanning every panel's own
    tree = cluster.linkage(two_variants)
    fig = pvx.plot.dendrogram(tree)
    tops = [
        pvx.plot.dendrogram(tree.sel(variant=v)).layout.yaxis.range[1]
        for v in tree["variant"].values
    ]
    assert fig.layout.yaxis.range[1] == max(tops) and fig.layout.yaxis2.matches == "y"


def test_write_html_keeps_typed_arrays_compact_and_exact(tmp_path):
    import base64
    import re

    values = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)  # every byte: "/" in base64
    fig = pvx.plot.heatmap(
        xr.DataArray(values / 100, dims=("persona", "persona_other")), text_threshold=0
    )
    text = pvx.plot.write_html(fig, tmp_path / "z.html", plotlyjs="directory").read_text()
    (bdata,) = re.findall(r'"bdata":"([^"]*)"', text)
    assert "\\u002f" not in bdata and "/" in bdata
    decoded = np.frombuffer(base64.b64decode(bdata), dtype=np.float32).reshape(16, 16)
    np.testing.assert_allclose(decoded, values / 100, atol=1e-6)
    assert "</" not in bdata


# --------------------------------------------------------------------------- accessor


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("pca", (), {"color": "age", "layer": [10, 12]}),
        ("isomap", (), {"color": "region", "hover": ["age"]}),
        ("cosine", (), {"order": "dendrogram"}),
        ("pair_similarity", ([("p0", "p3")],), {}),
        ("explained_variance", (), {"heatmap": True}),
        ("linkage", (), {"layer": 11}),
    ],
)
def test_accessor_forwards_to_the_functions(acts, method, args, kwargs):
    via_accessor = getattr(acts.pv.plot, method)(*args, **kwargs)
    direct = getattr(pvx.plot, method)(acts, *args, **kwargs)
    assert via_accessor.to_json() == direct.to_json()


def test_accessor_projection_recolours_with_the_vectors(acts):
    result = decomposition.pca(acts)
    fig = acts.pv.plot.projection(result, color="cluster", n_clusters=3)
    assert [t.name for t in fig.data] == ["cluster 0", "cluster 1", "cluster 2"]


def test_per_layer_numbers_keep_one_colour_range(scores):
    values = xr.DataArray(
        np.arange(4 * 16, dtype=float).reshape(4, 16),
        dims=("layer", "persona"),
        coords={"layer": scores["layer"].values, "id": ("persona", scores["id"].values)},
        name="norm",
    )
    values[2, 5] = np.nan  # missing on one layer only
    fig = pvx.plot.projection(scores, color_values=values)
    main = fig.data[0]
    assert (main.marker.cmin, main.marker.cmax) == (0.0, 63.0)
    assert main.marker.colorbar.title.text == "norm"
    for i, frame in enumerate(fig.frames):
        shown = np.asarray(frame.data[0].marker.color)
        expected = values.isel(layer=i).values
        np.testing.assert_allclose(shown, expected[np.isfinite(expected)])
        assert (frame.data[0].marker.cmin, frame.data[0].marker.cmax) == (0.0, 63.0)
        assert len(frame.data[1].x) == (1 if i == 2 else 0)  # the grey 'missing' trace


def test_lazy_results_are_computed_in_one_pass(da):
    from dask.callbacks import Callback

    class CountComputes(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def _start(self, dsk) -> None:
            self.count += 1

    acts = da.chunk({"layer": 1, "persona": 4})
    lazy = decomposition.pca(acts)
    with CountComputes() as counter:
        pvx.plot.projection(lazy, color="age")
    assert counter.count == 1
    with CountComputes() as counter:
        pvx.plot.pca(acts, color="cluster", n_clusters=3, k=2)
    assert counter.count == 1  # PCA, k-means and neighbours together
    with CountComputes() as counter:
        pvx.plot.cosine(acts, order="dendrogram")
    assert counter.count == 1


def test_html_div_composes_pages(scores):
    div = pvx.plot.html_div(pvx.plot.projection(scores, color="age"), div_id="figure-0")
    assert (
        div.startswith("<div")
        and div.endswith("</div>")
        and 'id="figure-0"' in div
        and "Plotly.newPlot" in div
    )
    assert "\\u002f" not in "".join(re.findall(r'"bdata":"([^"]*)"', div))
    assert "<script src=" not in div and len(div) < 200_000


def test_an_ordinal_value_outside_its_order_is_drawn_last_with_a_warning():
    """From a review: an undeclared level was ranked above the highest without a word."""
    da = pvx.synthetic.planted_personas(n_persona=8, n_layer=2, seed=0)
    levels = np.array(["low", "mid", "high", "low", "MID", "high", "low", None], dtype=object)
    da = da.assign_coords(
        level=("persona", levels, {"kind": "ordinal", "order": ["low", "mid", "high"]})
    )
    with pytest.warns(UserWarning, match=r"values \['MID'\] of ordinal attribute 'level'"):
        fig = da.pv.plot.pca(color="level")
    ticks = fig.data[0].marker.colorbar.ticktext
    assert list(ticks) == ["low", "mid", "high", "MID"]


def test_long_categories_that_shorten_alike_keep_distinct_legend_entries():
    """From a review: two values sharing their first 40 characters drew two legend entries
    of one name."""
    da = pvx.synthetic.planted_personas(n_persona=6, n_layer=1, seed=0)
    stem = "a category name longer than the legend shows, "
    values = np.array([stem + "first"] * 3 + [stem + "second"] * 3, dtype=object)
    da = da.assign_coords(long=("persona", values, {"kind": "categorical"}))
    names = [t.name for t in da.pv.plot.pca(color="long").data]
    assert len(set(names)) == 2 and all(n.endswith(("(1)", "(2)")) for n in names)
