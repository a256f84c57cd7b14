"""The report of ``pvx analyze`` in a real headless Chromium: every page renders every
figure, offline, without console errors, and the index links them all."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import same_personas

import pvx
import pvx.synthetic
from pvx import report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", params=["attributes", "no attributes"])
def report_dir(tmp_path_factory, request) -> Path:
    """A report of planted personas with attributes (every view but UMAP), and one of a
    store like those imported from the reference layout: names, no attributes, the default
    views."""
    tmp = tmp_path_factory.mktemp("report")
    store = tmp / "s.zarr"
    bare = request.param == "no attributes"
    first = None
    for i, variant in enumerate(("templated", "biography")):
        da = pvx.synthetic.planted_personas(
            n_persona=12, n_clusters=3, n_layer=3, n_hidden=24, seed=i, baseline=True
        )
        first = da if first is None else first
        da = same_personas(da, first)
        if bare:
            da = da.drop_vars([str(k) for k in pvx.store.attribute_names(da)])
        da = da.assign_coords(variant=variant)
        # markup in a name must stay text in every page
        names = da["name"].values.astype(object)  # not the fixed-width strings: no truncation
        names[0] = "<img src=x onerror=window.__pwned=true>"
        da = da.assign_coords(name=("persona", names))
        da.attrs.update(model="org/planted", mask_strategy="mean")
        pvx.write_variant(store, da)
    if bare:
        index = report.analyze(store, out=tmp / "out", progress=None)
    else:
        views = [v for v in report.VIEWS if v != "umap"]  # UMAP: in the other report
        index = report.analyze(store, views=views, n_clusters=3, out=tmp / "out", progress=None)
    return index.parent


def test_every_page_renders_offline_without_errors(browser, report_dir):
    page = browser.new_page()
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.add_init_script("window.__pwned = false;")
    page.goto((report_dir / "index.html").as_uri())
    links = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
    pages = [href for href in links if href.endswith(".html")]
    assert sorted(pages) == sorted(
        p.name for p in report_dir.glob("*.html") if p.name != "index.html"
    )
    for href in pages:
        page.goto((report_dir / href).as_uri())
        page.wait_for_function(
            "() => [...document.querySelectorAll('.plotly-graph-div')]"
            ".every(d => d._fullData && d._fullLayout)"
        )
        points = page.evaluate(
            "() => [...document.querySelectorAll('.plotly-graph-div')].map(d => d._fullData"
            ".reduce((n, t) => n + Math.max(t._length || 0, (t.x || []).length || 0,"
            " (t.z || []).length || 0), 0))"
        )
        assert points and all(n > 0 for n in points), href  # every figure draws data
        assert page.evaluate("() => window.__pwned") is False, href
        assert page.evaluate("() => document.querySelectorAll('img').length") == 0, href
    page.close()
    assert errors == []
    assert blocked == []
