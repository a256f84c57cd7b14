"""hvplot/HoloViews helpers: inspect the returned HoloViews objects; never render."""

from __future__ import annotations

import base64
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import pvx.accessor
import pvx.hvplot
import pvx.synthetic
from pvx import _colors, cluster, decomposition, manifold, similarity

hv = pytest.importorskip("holoviews")
pytest.importorskip("hvplot")


@pytest.fixture(scope="module")
def da() -> xr.DataArray:
    return pvx.synthetic.planted_personas(
        n_persona=15, n_clusters=3, n_layer=3, n_hidden=24, seed=2, first_layer=10, baseline=True
    )


@pytest.fixture(scope="module")
def scores(da: xr.DataArray) -> xr.Dataset:
    return decomposition.pca(da, include_baseline=True).compute()


@pytest.fixture
def no_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a view recomputed an analysis")

    for module, name in [
        (decomposition, "pca"),
        (decomposition, "explained_variance"),
        (manifold, "umap"),
        (manifold, "isomap"),
        (cluster, "kmeans"),
        (cluster, "linkage"),
        (similarity, "cosine"),
    ]:
        monkeypatch.setattr(module, name, refuse)


def test_projection_is_a_holomap_over_layers(scores):
    view = pvx.hvplot.projection(scores, hover=["region"])
    assert isinstance(view, hv.HoloMap) and view.kdims[0].name == "layer"
    assert list(view.keys()) == [10, 11, 12]
    element = view[11]
    assert isinstance(element, hv.Scatter)
    assert [d.name for d in element.kdims] == ["PC1"]
    assert {"PC2", "id", "name", "region"} <= {d.name for d in element.vdims}
    np.testing.assert_allclose(
        element.data["PC2"], scores["scores"].sel(layer=11, component=2), rtol=1e-12
    )
    norm = hv.Store.lookup_options("bokeh", element, "norm").kwargs
    assert norm["framewise"] is False  # fixed axes unless axes="per_layer"
    per = pvx.hvplot.projection(scores, axes="per_layer")[10]
    assert hv.Store.lookup_options("bokeh", per, "norm").kwargs["framewise"] is True


def test_numeric_colour_has_one_range_for_all_layers(da, scores):
    view = pvx.hvplot.projection(scores, color="age")
    age = da["age"].values
    for layer in view.keys():
        element = view[layer]
        assert element.get_dimension("age").range == (np.nanmin(age), np.nanmax(age))
        assert hv.Store.lookup_options("bokeh", element, "style").kwargs["cmap"] == "viridis"
        plot = hv.Store.lookup_options("bokeh", element, "plot").kwargs
        assert plot["colorbar"] and plot["clipping_colors"]["NaN"] == _colors.MISSING_COLOR


def test_ordinal_and_categorical_colours(da, scores):
    view = pvx.hvplot.projection(scores, color="education")
    cmap = hv.Store.lookup_options("bokeh", view[10], "style").kwargs["cmap"]
    assert list(cmap) == [*da["education"].attrs["order"], "missing"]
    assert cmap["missing"] == _colors.MISSING_COLOR
    view = pvx.hvplot.projection(scores, color="region", max_categories=1)
    column = view[12].data["region"]
    assert set(column) == {"north", "Other", "missing"}
    assert (column == "Other").sum() == 10 and (column == "missing").sum() == 1


def test_clusters_from_vectors(da):
    from dask.callbacks import Callback

    starts = []

    class Count(Callback):
        def _start(self, dsk) -> None:
            starts.append(dsk)

    with Count():
        view = pvx.hvplot.pca(da.chunk({"layer": 1}), color="cluster", n_clusters=3)
    assert len(starts) == 1  # PCA and k-means in one pass
    assert sorted(set(view[10].data["cluster"])) == ["cluster 0", "cluster 1", "cluster 2"]
    assert "baseline_assistant" not in set(view[10].data["id"])


def test_recolouring_does_not_refit(scores, no_analysis):
    for color in ("age", "education", "region", None):
        assert list(pvx.hvplot.projection(scores, color=color).keys()) == [10, 11, 12]


def test_single_layer_is_a_plain_scatter(da):
    view = pvx.hvplot.projection(decomposition.pca(da, layer=11), color="age")
    assert isinstance(view, hv.Scatter)


def test_cosine_is_an_image_per_layer_in_leaf_order(da):
    acts = da.isel(persona=slice(0, 15))
    tree = cluster.linkage(acts, layer=12)
    sim = similarity.cosine(acts)
    view = pvx.hvplot.heatmap(sim, order=tree)
    assert isinstance(view, hv.HoloMap) and list(view.keys()) == [10, 11, 12]
    image = view[11]
    assert isinstance(image, hv.Image) and image.vdims[0].name == "cosine"
    order = tree["order"].values
    expected = sim.sel(layer=11).values[np.ix_(order, order)]
    grid = image.dimension_values("cosine", flat=False)
    np.testing.assert_allclose(grid, expected)  # row i of the grid is persona order[i]
    assert pvx.hvplot.cosine(acts, layer=[10, 11]).keys() == [10, 11]


def test_scree_is_one_curve_per_layer(da):
    evr = decomposition.explained_variance(da)
    view = pvx.hvplot.scree(evr)
    curves = [el for el in view if isinstance(el, hv.Curve)]
    assert [c.label for c in curves] == ["layer 10", "layer 11", "layer 12"]
    np.testing.assert_allclose(curves[0].dimension_values(1), evr.sel(layer=10))
    cumulative = pvx.hvplot.scree(evr, cumulative=True, max_components=4)
    cum = [el for el in cumulative if isinstance(el, hv.Curve)][-1].dimension_values(1)
    assert len(cum) == 4 and np.all(np.diff(cum) >= 0)


def test_errors(scores):
    with pytest.raises(KeyError, match="shoe_size"):
        pvx.hvplot.projection(scores, color="shoe_size")
    with pytest.raises(ValueError, match="2 components"):
        pvx.hvplot.projection(scores, components=(1, 2, 3))
    with pytest.raises(ValueError, match="cosine"):
        pvx.hvplot.heatmap(scores["scores"])


def test_accessor_forwards(da):
    acts = da.isel(persona=slice(0, 15))
    view = acts.pv.hvplot.pca(color="age", layer=[10, 11])
    direct = pvx.hvplot.pca(acts, color="age", layer=[10, 11])
    assert list(view.keys()) == [10, 11]
    assert view[11].data.equals(direct[11].data)
    assert len(acts.pv.hvplot.scree()) == 6  # a curve and its markers per layer
    assert isinstance(acts.pv.hvplot.cosine(layer=10), hv.Image)
    result = decomposition.pca(acts)
    recoloured = acts.pv.hvplot.projection(result, color="cluster", n_clusters=3)
    assert sorted(set(recoloured[12].data["cluster"])) == ["cluster 0", "cluster 1", "cluster 2"]


def test_views_drawn_without_hvplot_need_no_extension_loaded_first():
    """linkage, pairs and scree draw HoloViews elements directly: in a fresh session (no
    hv.extension) they must work whichever view comes first."""
    code = (
        "import pvx, pvx.synthetic; pvx.set_options(progress=False);"
        "da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0);"
        "[getattr(da.pv.hvplot, v)() for v in ('linkage', 'pair_similarity', 'explained_variance')]"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_a_saved_page_fetches_nothing(tmp_path, da):
    import re

    page = pvx.hvplot.save(da.pv.hvplot.pca(), tmp_path / "pca.html")
    text = page.read_text()
    # stylesheets and icons the page links (BokehJS's own code names URLs it never loads here)
    assert not re.findall(r'"url":"https?://|<link[^>]+href="https?://', text)
    assert "cdn.holoviz.org" not in text
    # the embedded stylesheets' own images (the loading spinners) are embedded too
    sheets = re.findall(r"data:text/css;base64,([A-Za-z0-9+/=]+)", text)
    assert sheets and not any(b"../assets" in base64.b64decode(css) for css in sheets)


def _frames(view):
    """Each frame of a view (key -> every dimension's values of every element in it)."""

    def flat(el):
        if isinstance(el, hv.Overlay | hv.NdOverlay | hv.Layout):
            return [x for part in el.values() for x in flat(part)]
        return [np.asarray(el.dimension_values(d)).astype(str).tolist() for d in el.dimensions()]

    if isinstance(view, hv.HoloMap):
        return {k if isinstance(k, tuple) else (k,): flat(v) for k, v in view.data.items()}
    return {(): flat(view)}


@pytest.mark.parametrize(
    ("view", "options"),
    [
        ("cosine", {"order": "dendrogram"}),
        ("explained_variance", {}),
        ("linkage", {}),
        ("pair_similarity", {}),
        ("probe", {"attributes": "planted_cluster", "folds": 3, "permutations": 1}),
    ],
)
def test_every_view_of_two_variants_has_a_variant_widget(view, options):
    da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0, variants=["a", "b"])
    both = getattr(da.pv.hvplot, view)(**options)
    assert isinstance(both, hv.HoloMap) and both.kdims[0].name == "variant"
    frames = _frames(both)
    for variant in ("a", "b"):
        alone = _frames(getattr(da.sel(variant=variant).pv.hvplot, view)(**options))
        assert {k[1:]: f for k, f in frames.items() if k[0] == variant} == alone


def test_heatmap_hover_names_the_row_and_column_personas(da):
    """From a review: the image's hover showed float positions, so above 60 rows (no tick
    labels) no cell could be traced to a persona."""
    from bokeh.models import HoverTool

    sim = similarity.cosine(da)
    tree = cluster.linkage(da, layer=int(da["layer"].values[-1]))
    view = pvx.hvplot.heatmap(sim, order=tree)
    plot = hv.render(view.last, backend="bokeh")
    hover = next(t for t in plot.tools if isinstance(t, HoverTool))
    expected = [str(i) for i in tree["leaf_id"].values]
    assert expected != sorted(expected)  # the dendrogram's order, not the ids'
    for axis in ("$x", "$y"):
        assert list(hover.formatters[axis].args["labels"]) == expected
    assert [label for label, _ in hover.tooltips] == ["row", "column", "cosine"]
