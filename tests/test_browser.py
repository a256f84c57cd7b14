"""Exported views in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The pages must work offline: every request other than ``file://`` is blocked and recorded.
Needs ``pip install playwright`` (the Python package only; the browser is the system's
``/usr/bin/chromium``, never a Playwright download). Skipped when either is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import pvx.plot
import pvx.synthetic
from pvx import cluster, decomposition, similarity

pytestmark = pytest.mark.browser

MARKUP = "<img src=x onerror=window.__pwned=true>"


class Page:
    """A loaded page, with its console errors and any blocked network requests."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page = browser.new_page(viewport={"width": 1100, "height": 800})
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)
        # a script in a persona name would set this flag (or call alert)
        self.page.add_init_script(
            "window.__pwned = false; window.alert = () => { window.__pwned = true; };"
            "window.gd = () => document.querySelector('.plotly-graph-div');"
        )
        self.page.goto(path.as_uri())
        self.page.wait_for_function("() => gd() && gd()._fullData && gd()._fullLayout")

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def eval(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def settle(self) -> None:
        self.page.wait_for_timeout(300)

    def close(self) -> None:
        assert not self.errors, self.errors
        assert not self.blocked, f"the page tried to load {self.blocked!r}"
        self.page.close()


@pytest.fixture(scope="module")
def da() -> xr.DataArray:
    da = pvx.synthetic.planted_personas(
        n_persona=30, n_clusters=3, n_layer=4, n_hidden=16, seed=3, first_layer=20
    )
    names = da["name"].values.astype(object)
    names[0] = MARKUP
    return da.assign_coords(name=("persona", names))


@pytest.fixture(scope="module")
def scores(da: xr.DataArray) -> xr.Dataset:
    return decomposition.pca(da).compute()


@pytest.mark.parametrize("plotlyjs", ["embed", "directory"])
def test_projection_page_renders_points_and_slides(browser, tmp_path, da, scores, plotlyjs):
    fig = pvx.plot.projection(scores, color="age", hover=["region"])
    page = Page(browser, pvx.plot.write_html(fig, tmp_path / "pca.html", plotlyjs=plotlyjs))
    full = page.eval(
        "() => gd()._fullData.map(t => ({type: t.type, n: t.x.length, x: Array.from(t.x)}))"
    )
    assert full[0]["type"] == "scattergl" and full[0]["n"] == 30
    np.testing.assert_allclose(full[0]["x"], scores["scores"].isel(layer=0, component=0), rtol=1e-5)
    assert page.eval("() => document.querySelectorAll('.plotly-graph-div canvas').length") > 0
    assert page.eval("() => gd()._fullLayout.sliders[0].active") == 0

    # click the far end of the slider rail: the last layer's frame is shown
    rail = page.page.locator(".slider-rail-rect").bounding_box()
    page.page.mouse.click(rail["x"] + rail["width"] - 2, rail["y"] + rail["height"] / 2)
    page.page.wait_for_function("() => gd().layout.sliders[0].active === 3")
    page.settle()
    x = page.eval("() => Array.from(gd()._fullData[0].x)")
    np.testing.assert_allclose(x, scores["scores"].isel(layer=3, component=0), rtol=1e-5)

    # and Plotly.animate to a frame by its layer label
    page.eval(
        "() => Plotly.animate(gd(), ['21'], {frame: {duration: 0, redraw: true},"
        " transition: {duration: 0}, mode: 'immediate'})"
    )
    page.settle()
    x = page.eval("() => Array.from(gd()._fullData[0].x)")
    np.testing.assert_allclose(x, scores["scores"].isel(layer=1, component=0), rtol=1e-5)
    # the slider's step for that layer animates to the same frame, so Plotly moves the
    # slider with it (checked as configuration: waiting for Plotly's asynchronous
    # plotly_animatingframe on a loaded two-core machine timed out now and then)
    step = page.eval("() => gd().layout.sliders[0].steps[1]")
    assert step["label"] == "21" and step["args"][0] == ["21"] and step["method"] == "animate"
    page.close()


def test_markup_in_a_persona_name_stays_text(browser, tmp_path, da, scores):
    regions = da["region"].values.astype(object)
    regions[1] = MARKUP  # also a legend entry
    result = scores.assign_coords(region=("persona", regions, {"kind": "categorical"}))
    fig = pvx.plot.projection(result, color="region")
    page = Page(browser, pvx.plot.write_html(fig, tmp_path / "xss.html"))
    # move the mouse onto the persona with the markup name, as a user would
    xy = page.eval(
        """() => {
            const g = gd(), fl = g._fullLayout;
            const c = g._fullData.findIndex(t => t.hovertext && t.hovertext.length
                && t.hovertext.some(h => h.includes('id: p0<')));
            const t = g._fullData[c];
            const i = t.hovertext.findIndex(h => h.includes('id: p0<'));
            const box = g.querySelector('.nsewdrag').getBoundingClientRect();
            return [box.left + fl.xaxis.l2p(t.x[i]), box.top + fl.yaxis.l2p(t.y[i])];
        }"""
    )
    page.page.mouse.move(*xy)
    page.page.wait_for_function("() => document.querySelector('.hoverlayer .hovertext')")
    hover = page.eval("() => document.querySelector('.hoverlayer').textContent")
    assert MARKUP in hover  # shown literally, as text
    legend = page.eval("() => document.querySelector('.legend').textContent")
    assert MARKUP in legend
    page.settle()
    assert page.eval("() => window.__pwned") is False
    assert page.eval("() => document.querySelectorAll('img').length") == 0
    page.close()


def test_heatmap_page_renders_and_slides(browser, tmp_path, da):
    sim = similarity.cosine(da)
    tree = cluster.linkage(da, layer=23)
    fig = pvx.plot.heatmap(sim, order=tree)
    page = Page(browser, pvx.plot.write_html(fig, tmp_path / "cosine.html", plotlyjs="directory"))
    order = tree["order"].values
    z0 = page.eval("() => gd()._fullData[0].z.map(r => Array.from(r))")
    np.testing.assert_allclose(z0, sim.isel(layer=0).values[np.ix_(order, order)], atol=1e-3)
    assert page.eval("() => document.querySelectorAll('.heatmaplayer image').length") == 1
    page.eval(
        "() => Plotly.animate(gd(), ['22'], {frame: {duration: 0, redraw: true},"
        " transition: {duration: 0}, mode: 'immediate'})"
    )
    page.settle()
    z2 = page.eval("() => gd()._fullData[0].z.map(r => Array.from(r))")
    np.testing.assert_allclose(z2, sim.isel(layer=2).values[np.ix_(order, order)], atol=1e-3)
    page.page.wait_for_function("() => gd().layout.sliders[0].active === 2", timeout=10_000)
    page.close()


def test_knn_overlay_and_3d_pages_render(browser, tmp_path, da, scores):
    fig = pvx.plot.projection(scores, neighbors=similarity.neighbors(da, 3), color="region")
    page = Page(browser, pvx.plot.write_html(fig, tmp_path / "knn.html"))
    n = page.eval("() => gd()._fullData[0].x.length")
    assert n == 30 * 3 * 3  # start, end, gap per edge
    page.close()
    fig3 = pvx.plot.projection(decomposition.pca(da, n_components=3), components=(1, 2, 3))
    page = Page(browser, pvx.plot.write_html(fig3, tmp_path / "pca3d.html"))
    assert page.eval("() => gd()._fullData[0].type") == "scatter3d"
    page.close()


def test_other_views_render(browser, tmp_path, da):
    both = pvx.synthetic.planted_personas(n_persona=12, variants=["a", "b"], seed=1)
    figs = {
        "pairs": pvx.plot.pair_similarity(da),
        "scree": pvx.plot.explained_variance(da),
        "variance": pvx.plot.explained_variance(da, heatmap=True),
        "tree": pvx.plot.linkage(da),
        "variants": pvx.plot.variant_similarity(both, "a", "b"),
    }
    for name, fig in figs.items():
        page = Page(
            browser, pvx.plot.write_html(fig, tmp_path / f"{name}.html", plotlyjs="directory")
        )
        assert page.eval("() => gd()._fullData.length") == len(fig.data)
        page.close()
