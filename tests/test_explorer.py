"""``pvx explore`` / ``pvx.explore``: the explorer's numbers against direct computations, and
the app itself driven in Chromium (network outside 127.0.0.1 blocked)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import html
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import same_personas
from scipy.cluster.hierarchy import fcluster

import pvx
import pvx.attributes
import pvx.synthetic
from pvx import decomposition, explorer, report, similarity
from pvx.cli import main

MARKUP = "<img src=x onerror=window.__pwned=true>"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A report of two variants of 30 planted personas over 4 layers; one persona is named
    with markup."""
    tmp = tmp_path_factory.mktemp("explore")
    store = tmp / "s.zarr"
    first = None
    for i, variant in enumerate(("templated", "biography")):
        da = pvx.synthetic.planted_personas(
            n_persona=30, n_clusters=3, n_layer=4, n_hidden=24, seed=i, baseline=True
        )
        first = da if first is None else first
        da = same_personas(da, first)
        names = da["name"].values.astype(object)
        names[1] = MARKUP
        da = da.assign_coords(variant=variant, name=("persona", names))
        da.attrs.update(model="org/planted", mask_strategy="mean")
        pvx.write_variant(store, da)
    views = ["attributes", "pca", "isomap", "similarity", "dendrogram"]
    report.analyze(store, views=views, folds=3, permutations=1, out=tmp / "out", progress=None)
    return tmp / "out"


@pytest.fixture(scope="module")
def data(report_dir) -> explorer.ExplorerData:
    return explorer.load_source(report_dir)


def test_from_a_report_nothing_is_recomputed(data, report_dir):
    results = report.open_results(report_dir / "results.zarr")
    assert data.methods == ["pca", "isomap"]
    assert data.variants == ["templated", "biography"] and data.layers == [0, 1, 2, 3]
    assert pvx.BASELINE_ID not in data.personas["templated"].index
    scores = results["pca"]["scores"].sel(variant="biography", layer=2)
    np.testing.assert_array_equal(data.projection("biography", 2, "pca"), scores.values)
    cosine = results["cosine"]["cosine"].sel(variant="biography", layer=2).values
    near = explorer.neighbours(data, "biography", 2, "p3", 4)
    row = cosine[3].copy()
    row[3] = -np.inf
    assert near["id"].tolist() == [f"p{i}" for i in np.argsort(-row, kind="stable")[:4]]
    np.testing.assert_allclose(near["cosine"], np.round(np.sort(row)[::-1][:4], 3))
    by_layer = explorer.neighbours_by_layer(data, "biography", "p3", 2)
    assert list(by_layer.columns) == [f"layer {i}" for i in range(4)]
    # clusters: the saved Ward tree cut in five, matched to personas by id
    tree = results["linkage"].to_dataset().sel(variant="biography", layer=2)
    cut = fcluster(tree["linkage"].values, explorer.N_CLUSTERS, criterion="maxclust")
    leaf_of = dict(zip(tree["leaf_id"].values, tree["order"].values, strict=True))
    ids = data.personas["biography"].index
    expected = np.array([cut[leaf_of[i]] for i in ids])
    got = data.clusters("biography", 2)
    assert len(set(zip(got, expected, strict=True))) == len(set(expected))  # same partition
    assert len(set(got)) == len(set(expected)) == explorer.N_CLUSTERS  # not one big cluster
    with pytest.raises(ValueError, match="no value for persona id"):
        explorer._by_ids(
            tree["leaf_id"]
            .isel(leaf=slice(1, None))
            .rename(leaf="persona")
            .assign_coords(id=("persona", tree["leaf_id"].values[1:])),
            ids,
        )
    names = data.cluster_names("biography", 2)
    assert len(set(names.values())) == len(names)  # unique
    probes = data.probes()
    assert probes is not None and set(probes["attribute"].values) >= {"age", "region"}


def test_figures_carry_ids_and_show_names_as_text(data):
    fig = explorer.projection_figure(
        data, "templated", 1, "pca", dims=3, colour="region", highlight="p1"
    )
    assert {t.type for t in fig.data} == {"scatter3d"}
    ids = [i for t in fig.data[:-1] for i in t.customdata]
    assert sorted(ids) == sorted(data.personas["templated"].index)  # every persona, once
    assert list(fig.data[-1].customdata) == ["p1"]  # the highlighted persona
    assert MARKUP not in json.dumps(fig.to_plotly_json(), default=str)
    assert "&lt;img src=x" in fig.data[-1].name
    flat = explorer.projection_figure(data, "templated", 1, "isomap", dims=3, colour="age")
    assert flat.data[0].type == "scatter"  # Isomap has two components: drawn in 2-D (SVG)
    heat = explorer.selection_figure(data, "templated", 1, ["p1", "p2", "p5", "p20"])
    assert sorted(heat.data[0].x) == sorted(heat.data[0].y) and MARKUP not in heat.data[0].x
    assert len(set(heat.data[0].x)) == 4  # rows by id: personas of one name stay two rows
    assert all(len(html.unescape(t)) <= 40 for t in heat.layout.xaxis.ticktext)
    summary = explorer.selection_summary(data, "templated", ["p0", "p1", "p2"])
    assert set(summary["attribute"]) == set(data.attrs)
    card = explorer.persona_card(data, "templated", "p1")
    assert card.loc["name", "value"] == MARKUP  # a pane shows it escaped (escape=True)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_from_vectors_computed_on_first_use(backend):
    da = pvx.synthetic.planted_personas(n_persona=24, n_clusters=3, n_layer=3, n_hidden=16)
    sources = [f"run-{i}" for i in range(24)]
    da = da.assign_coords(sample_source=("persona", sources))  # provenance, not an attribute
    da = da.chunk({"layer": 1}) if backend == "dask" else da
    data = explorer.load_source(da)
    card = explorer.persona_card(data, data.variants[0], "p4")
    assert card.loc["sample_source", "value"] == "run-4" and "sample_source" not in data.attrs
    expected = decomposition.pca(da, n_components=3)["scores"].sel(layer=2)
    np.testing.assert_allclose(
        data.projection(data.variants[0], 2, "pca"),
        expected.transpose("persona", "component").values,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        data.cosine(data.variants[0], 1), similarity.cosine(da, layer=1).values, atol=1e-12
    )
    labels = data.clusters(data.variants[0], 1)
    assert len(labels) == 24 and len(set(labels)) == explorer.N_CLUSTERS
    assert data.projection(data.variants[0], 1, "isomap").shape == (24, 2)
    # probes only when asked (a button in the Attributes tab), then kept
    app = explorer.Explorer(data)
    # 3-D where a projection has three components; else said (from a review: nothing was)
    app.dims.value = "3-D"
    assert app.plot.object["data"][0]["type"] == "scatter3d" and app.status.object == ""
    app.method.value = "isomap"
    assert "Isomap has 2 components here: drawn in 2-D" in app.status.object
    tabs = app.layout()[1][1]
    assert tabs._names[-1] == "Attributes" and data.probes() is None
    probes = data.compute_probes()
    expected = pvx.attributes.probe(da).compute()
    np.testing.assert_allclose(
        probes["score"].squeeze("variant", drop=True).transpose(*expected["score"].dims),
        expected["score"],
    )


def test_sources_and_cli_errors(report_dir, tmp_path, capsys):
    assert explorer.load_source(report_dir / "results.zarr").methods == ["pca", "isomap"]
    tree = report.open_results(report_dir / "results.zarr")
    assert isinstance(explorer.load_source(tree), explorer.ExplorerData)
    store = report_dir.parent / "s.zarr"
    from_store = explorer.load_source(store, variants=["biography"])
    assert from_store.variants == ["biography"] and from_store.methods == list(explorer.METHODS)
    assert main(["explore", str(tmp_path / "none")]) == 1
    said = capsys.readouterr()
    assert "no report folder or store" in said.err
    assert "serving at" not in said.out  # no address offered for a source that is not there
    with pytest.raises(SystemExit):
        main(["explore", str(report_dir), "--port", "99999"])
    assert "'99999' is not a port number" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is not a port number"):
        explorer.serve(report_dir, port=-5)
    for source in (report_dir, report_dir / "results.zarr"):
        assert main(["explore", str(source), "--variant", "biography"]) == 1
        assert "is a report: its model, mask and variants are fixed; drop --variant" in (
            capsys.readouterr().err
        )
    layout = pvx.explore(report_dir)
    assert "Row" in type(layout).__name__


def test_colours_by_a_direction_saved_or_computed(report_dir):
    store = report_dir.parent / "s.zarr"
    both = pvx.load(store, ["templated", "biography"])
    saved = pvx.attributes.direction(both, attribute="region", value="north").compute()
    tree = report.open_results(report_dir / "results.zarr")
    tree["direction"] = xr.DataTree(saved)
    data = explorer.load_source(tree)
    (colour,) = data.directions()
    assert colour == "direction: region = north vs region != north"
    positions = data.direction_positions("biography", 2, colour)
    expected = saved["projection"].sel(variant="biography", layer=2)
    by_id = pd.Series(expected.values, index=expected["id"].values.astype(str))
    np.testing.assert_allclose(positions, by_id.loc[data.personas["biography"].index].values)
    spec = explorer.projection_spec(data, "biography", 2, "pca", colour=colour)
    assert spec["data"][0]["marker"]["colorscale"]  # drawn as numbers
    # from vectors: one per two-valued attribute, computed when chosen
    parity = np.where(np.arange(30) % 2 == 0, "even", "odd").astype(object)
    da = both.sel(variant="biography").assign_coords(
        parity=("persona", parity, {"kind": "categorical"})
    )
    from_vectors = explorer.load_source(da)
    colour = "direction: parity = even vs odd"
    assert colour in from_vectors.directions()
    expected = pvx.attributes.direction(da, attribute="parity", value="even", other="odd")
    np.testing.assert_allclose(
        from_vectors.direction_positions(from_vectors.variants[0], 1, colour),
        expected["projection"].sel(layer=1).values,
    )


def test_a_report_without_similarities_says_so(tmp_path):
    da = pvx.synthetic.planted_personas(n_persona=10, n_clusters=2, n_layer=2, n_hidden=6)
    pvx.write_variant(tmp_path / "s.zarr", da.assign_coords(variant="v"))
    report.analyze(tmp_path / "s.zarr", views=["pca"], out=tmp_path / "r", progress=None)
    app = explorer.Explorer(explorer.load_source(tmp_path / "r"))
    app.layout()
    app.search.value = "P3"  # any case
    assert app.persona == "p3" and app.card.object is not None
    assert "no similarities" in app.status.object and app.near.object is None
    app.search.value = "<nobody>"
    assert "&lt;nobody&gt;" in app.status.object  # escaped


# --------------------------------------------------------------------------- the app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=["report", "demo store"])
def served(request, report_dir):
    """``pvx explore`` running on a free port; yields (url, seconds from the command)."""
    port = _free_port()
    source = str(report_dir) if request.param == "report" else str(REPO / "stores" / "demo.zarr")
    start = time.perf_counter()
    command = [sys.executable, "-m", "pvx.cli", "explore", source, "--port", str(port)]
    if request.param == "demo store":
        command += ["--mask-strategy", "token_mean"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "serving at" in line:
                break
        else:
            pytest.fail(f"pvx explore stopped: {process.wait()}")
        yield request.param, f"http://127.0.0.1:{port}/", start
    finally:
        process.terminate()
        process.wait(timeout=30)


# Finds elements inside Panel's shadow roots too.
DEEP = (
    "window.__deep = (sel) => { const out = []; const walk = (root) => {"
    " root.querySelectorAll(sel).forEach(e => out.push(e));"
    " root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); }); };"
    " walk(document); return out; }; window.__pwned = false;"
)
MAIN = (
    "() => { const d = window.__deep('.js-plotly-plot')[0];"
    " if (!d || !d._fullData || !d._fullData.length) return null;"
    " return JSON.stringify({title: d._fullLayout.title.text,"
    " names: d._fullData.map(t => t.name), x: Array.from(d._fullData[0].x || []).slice(0, 5)}); }"
)


@pytest.mark.browser
def test_the_app_in_a_browser(browser, served):
    kind, url, started = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.add_init_script(DEEP)
    page.goto(url)
    page.wait_for_function(MAIN, timeout=60_000)
    timings = {"first view (from the command)": time.perf_counter() - started}

    def state() -> dict:
        return json.loads(page.evaluate(MAIN))

    def redrawn(before: dict, what: str, until: str) -> dict:
        start = time.perf_counter()
        old = json.dumps(json.dumps(before))
        check = (
            f"() => {{ const s = ({MAIN})();"
            f" return s && s !== {old} && ({until})(JSON.parse(s)); }}"
        )
        page.wait_for_function(check, timeout=60_000)
        timings[what] = time.perf_counter() - start
        return state()

    first = state()
    assert first["title"].startswith("PCA")
    # the layer slider
    page.locator("input[type=range]").first.fill("1")
    now = redrawn(first, "layer", "s => s.title.endsWith('layer 1')")
    assert now["x"] != first["x"]
    # the projection
    page.get_by_role("button", name="Isomap").click()
    now = redrawn(now, "projection", "s => s.title.startsWith('Isomap')")
    # the colour
    colour = "education" if kind == "report" else "region"
    page.locator("select").nth(1).select_option(colour)
    names = json.dumps(json.dumps(now["names"]))
    now = redrawn(now, "colour", f"s => JSON.stringify(s.names) !== {names}")
    # a persona found by part of its name: highlighted, its card and neighbours shown
    box = page.get_by_placeholder("type part of a name or id")
    box.click()
    box.type("IMG" if kind == "report" else "mathieu", delay=30)
    page.wait_for_timeout(500)
    page.keyboard.press("Enter")
    now = redrawn(now, "search", "s => s.names.some(n => n.startsWith('selected: '))")
    expected = MARKUP if kind == "report" else "Mathieu"
    page.wait_for_function(
        f"() => window.__deep('table').some(t => t.innerText.includes({json.dumps(expected)}))"
    )
    page.wait_for_function("() => window.__deep('table').length >= 3")  # card and neighbours
    # a lasso selection: the selection's similarity heatmap
    plot = page.locator(".js-plotly-plot").first.bounding_box()
    page.mouse.move(plot["x"] + 60, plot["y"] + 60)
    page.mouse.down()
    for fx, fy in [(0.8, 0.1), (0.8, 0.9), (0.1, 0.9), (0.1, 0.12)]:
        page.mouse.move(plot["x"] + plot["width"] * fx, plot["y"] + plot["height"] * fy, steps=8)
    page.mouse.up()
    page.get_by_text("Selection", exact=True).click()
    page.wait_for_function(
        "() => window.__deep('.js-plotly-plot').some(d => d._fullData"
        " && d._fullData.some(t => t.type === 'heatmap' && t.z.length > 1))",
        timeout=60_000,
    )
    assert page.evaluate("() => window.__pwned") is False
    assert not errors, errors
    assert not outside, outside
    print(
        f"\npvx explore on the {kind}: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    )
    page.close()


def test_a_page_under_another_host_name_gets_no_session(served):
    """DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 is "same
    origin" for the server; it must get neither the page nor a websocket."""
    import http.client
    import urllib.parse

    from bokeh.util.token import generate_jwt_token, generate_session_id
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    _, url, _ = served
    port = urllib.parse.urlsplit(url).port

    def get(host: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("GET", "/", skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode()

    assert get(f"127.0.0.1:{port}")[0] == 200
    status, body = get(f"evil.example:{port}")
    assert status in (302, 403) and "token" not in body
    # nor does a token it makes itself open a websocket (sessions are signed)
    forged = generate_jwt_token(generate_session_id(), secret_key=None, signed=False)
    evil = f"evil.example:{port}"
    headers = {
        "Host": evil,
        "Origin": f"http://{evil}",
        "Sec-WebSocket-Protocol": f"bokeh, {forged}",
    }
    request = HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers=headers)
    # in a thread of its own: the browser tests' Playwright runs an event loop in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:

        async def connect() -> object:
            return await websocket_connect(request)

        opening = pool.submit(asyncio.run, connect())
        with pytest.raises(HTTPClientError, match="403"):
            opening.result(timeout=60)


def test_the_selection_file_keeps_ids_with_line_breaks_and_find_prefers_the_exact_id():
    import types

    da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, seed=0)
    ids = ["a\nb", "c\rd", "AB", "ab", 'q"', "x,y"]
    ids += [f"p{i}" for i in range(da.sizes["persona"] - len(ids))]
    da = da.drop_indexes("id").assign_coords(id=("persona", ids)).set_xindex("id")
    app = explorer.Explorer(explorer.load_source(da))
    app.selected = ids
    back = pd.read_csv(app._selection_file(), dtype=str, keep_default_na=False)["id"]
    assert back.tolist() == ids
    app._find(types.SimpleNamespace(new="ab"))
    assert app.persona == "ab"
    app._find(types.SimpleNamespace(new="AB"))
    assert app.persona == "AB"
    # a browser's input drops line breaks from the option it sends back: they show as ↵
    option = next(key for key, value in app.search.options.items() if value == "a\nb")
    assert "\n" not in option and "a\u21b5b" in option
    app._find(types.SimpleNamespace(new=option))
    assert app.persona == "a\nb"


def test_a_few_personas_a_variant_switch_and_probes_that_cannot_run():
    """From a review: k at least the persona count crashed the every-layer list (and listed
    the persona as its own neighbour); the selection kept the old variant's heatmap; a
    probe that cannot run left the Attributes tab blank."""

    first = pvx.synthetic.planted_personas(n_persona=4, n_clusters=2, n_layer=2, seed=0)
    second = pvx.synthetic.planted_personas(n_persona=4, n_clusters=2, n_layer=2, seed=1)
    both = xr.concat(
        [first.assign_coords(variant="a"), same_personas(second, first).assign_coords(variant="b")],
        "variant",
    )
    data = explorer.load_source(both)
    near = explorer.neighbours(data, "a", 1, "p0", k=10)
    assert sorted(near["id"]) == ["p1", "p2", "p3"]
    ids = list(both["id"].values)
    row = similarity.cosine(both.sel(variant="a"), layer=1).values[ids.index("p0")]
    expected = sorted((float(row[ids.index(i)]) for i in ids if i != "p0"), reverse=True)
    np.testing.assert_allclose(near["cosine"], expected, atol=1e-3)
    every = explorer.neighbours_by_layer(data, "a", "p0", k=10)
    assert every.shape == (3, 2)
    app = explorer.Explorer(data)
    app.selected = ["p0", "p1", "p2"]
    app._update_selection()
    before = np.array(app.heatmap.object.data[0].z, dtype=float)
    app.variant.value = "b"
    after = np.array(app.heatmap.object.data[0].z, dtype=float)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after, explorer.selection_figure(data, "b", app.layer.value, app.selected).data[0].z
    )
    # 4 personas, 5 folds: nothing can be probed; the tab says why
    holder = app._probe_views()
    holder[1].clicks += 1
    assert "No probes" in holder[0].object and "probe" in holder[0].object
