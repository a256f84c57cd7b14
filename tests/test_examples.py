"""Every example notebook runs in a real kernel, and its HTML export works offline.

Each example is a pair (``examples/X.ipynb`` to open in JupyterLab, ``examples/X.py`` in
Jupytext's percent format); the pairs must agree. Each notebook runs in a fresh Jupyter kernel
(nbclient) whose working directory is a temporary folder, so whatever it writes lands there
and never in the repository; then nbconvert exports it to HTML, which Chromium opens with
the network blocked: every figure the notebook displayed must be drawn, and moving a layer
slider must change what a Plotly figure and a HoloViews plot show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(p.stem for p in EXAMPLES.glob("*.ipynb"))

# Runs in its own process (nbclient's event loop stays apart from Playwright's): execute,
# then keep the executed notebook and its HTML export beside it.
EXECUTE = """
import sys, nbformat, nbclient
from nbconvert import HTMLExporter
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                        resources={"metadata": {"path": "."}}).execute()
nbformat.write(nb, path.replace(".ipynb", ".executed.ipynb"))
html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
open(path.replace(".ipynb", ".html"), "w", encoding="utf-8").write(html)
"""

# Kept out of reach of the page under test: everything but the file itself.
LOCAL = ("file:", "data:", "blob:", "about:")

pytestmark = pytest.mark.slow  # ~2 minutes together: kernels, UMAP compiles, a browser


def _top_level(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_examples_are_found() -> None:
    assert {"explore_one_variant", "compare_variants", "explore_hvplot"} <= set(NOTEBOOKS)
    assert {p.stem for p in EXAMPLES.glob("*.py")} == set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_and_script_agree(name: str) -> None:
    jupytext = pytest.importorskip("jupytext")
    script = jupytext.read(EXAMPLES / f"{name}.py")
    notebook = jupytext.read(EXAMPLES / f"{name}.ipynb")
    cells = [(c.cell_type, c.source) for c in notebook.cells]
    assert [(c.cell_type, c.source) for c in script.cells] == cells, (
        f"examples/{name}.py and .ipynb differ: run `jupytext --sync examples/{name}.ipynb`"
    )
    assert all(not c.get("outputs") for c in notebook.cells), "ship notebooks without outputs"


def _outputs(executed: dict, mime: str) -> int:
    return sum(
        mime in output.get("data", {})
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_a_kernel_and_its_export_works_offline(
    name: str, tmp_path: Path, browser
) -> None:
    # The notebooks find the demo store from their working directory.
    (tmp_path / "stores").symlink_to(ROOT / "stores", target_is_directory=True)
    notebook = tmp_path / f"{name}.ipynb"
    shutil.copy(EXAMPLES / notebook.name, notebook)
    before = (_top_level(ROOT), _top_level(EXAMPLES))
    proc = subprocess.run(
        [sys.executable, "-c", EXECUTE, str(notebook)],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"examples/{name}.ipynb failed in a kernel:\n{proc.stderr[-6000:]}"
    assert (_top_level(ROOT), _top_level(EXAMPLES)) == before, "the example wrote into the repo"
    executed = json.loads((tmp_path / f"{name}.executed.ipynb").read_text(encoding="utf-8"))
    n_plotly = _outputs(executed, "application/vnd.plotly.v1+json")
    n_holoviews = _outputs(executed, "application/vnd.holoviews_exec.v0+json")
    if not n_plotly + n_holoviews:
        return  # a notebook about computing, with no figure to export

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto((tmp_path / f"{name}.html").as_uri(), wait_until="load")
    page.wait_for_timeout(3000)
    try:
        drawn = page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length")
        assert drawn == n_plotly, f"{drawn} of {n_plotly} Plotly figures drawn offline"
        if n_plotly:
            _plotly_slider_changes_the_points(page)
        if n_holoviews:
            plots = page.evaluate("() => window.Bokeh ? Object.keys(Bokeh.index).length : 0")
            assert plots >= n_holoviews, f"{plots} of {n_holoviews} HoloViews plots drawn"
            assert _bokeh_slider_changes_the_points(page), "no HoloViews projection to slide"
        # Nothing the figures need comes from the network. Asked for and not needed: the
        # export template's MathJax and require.js, Panel's widget stylesheets (an open Panel
        # issue, holoviz/panel#6759) and the manager that would redraw the closed progress
        # bars (ipywidgets).
        optional = ("mathjax", "require.js", "panel/", "es-module-shims", "jupyter-widgets")
        needed = [u for u in blocked if not any(k in u for k in optional)]
        assert not needed, f"the export loads {needed[:3]} from the network"
    finally:
        page.close()


def _plotly_slider_changes_the_points(page) -> None:
    """Click the last step of the first layer slider; the first trace's points move."""
    index = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".findIndex(gd => gd.layout.sliders && gd.layout.sliders.length)"
    )
    if index < 0:
        return  # no layered figure
    points = (
        f"() => {{ const gd = document.querySelectorAll('.js-plotly-plot')[{index}];"
        " return Array.from(gd._fullData.find(t => t.mode === 'markers').x).slice(0, 5); }"
    )
    before = page.evaluate(points)
    figure = page.locator(".js-plotly-plot").nth(index)
    figure.scroll_into_view_if_needed()
    rail = figure.locator(".slider-rail-rect").first
    box = rail.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(800)
    assert page.evaluate(points) != before, "moving the Plotly layer slider changed nothing"


BOKEH_POINTS = """() => {
  const found = [];
  for (const doc of Bokeh.documents)
    for (const m of doc.all_models) {
      const data = m.data;
      if (!data || typeof data !== 'object') continue;
      // a Map in some Bokeh versions, a plain object in others
      const entries = data instanceof Map ? Array.from(data) : Object.entries(data);
      for (const [key, value] of entries)
        if (/^(PC|UMAP|Isomap)/.test(key) && value && value.length)
          found.push(...Array.from(value).slice(0, 5));
    }
  return found.length ? found : null;
}"""


def _bokeh_slider_changes_the_points(page) -> bool:
    """Step the first HoloViews layer slider with the keyboard; the points of the
    projections drawn change. False if there is no projection to check."""
    before = page.evaluate(BOKEH_POINTS)
    if before is None:
        return False
    handle = page.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_timeout(1500)
    assert page.evaluate(BOKEH_POINTS) != before, "moving the HoloViews slider changed nothing"
    return True
