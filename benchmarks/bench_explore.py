"""``pvx explore`` on a report of 1,000 personas x 42 layers: time to the first drawn view and
to each redraw, in headless Chromium (issue 15).

    python benchmarks/bench_explore.py [--workdir /tmp/pvx-explore] [--personas 1000]
        [--layers 42] [--hidden 256] [--repeats 5]

Builds a store of planted personas (two variants, with attributes) and its report
(``pvx analyze --views pca,similarity,dendrogram``) unless the work folder has them, then
starts ``pvx explore REPORT`` and times, from the command:

- the first drawn projection (what a user waits for);
- in the same page, switching the layer and the colour (median of ``--repeats``).

For scale: ``python -c "import pvx.cli, panel"`` (the imports alone) in the same session.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

MAIN = (
    "() => { const d = window.__deep('.js-plotly-plot')[0];"
    " if (!d || !d._fullData || !d._fullData.length) return null;"
    " return d._fullLayout.title.text + '|' + d._fullData.map(t => t.name).join(','); }"
)
DEEP = (
    "window.__deep = (sel) => { const out = []; const walk = (root) => {"
    " root.querySelectorAll(sel).forEach(e => out.push(e));"
    " root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); }); };"
    " walk(document); return out; };"
)


def build(workdir: Path, n: int, layers: int, hidden: int) -> Path:
    import numpy as np

    import pvx
    import pvx.synthetic
    from pvx import report

    out = workdir / "report"
    if (out / "results.zarr").is_dir():
        return out
    store = workdir / "store.zarr"
    for i, variant in enumerate(("templated", "biography")):
        da = pvx.synthetic.planted_personas(
            n_persona=n, n_clusters=8, n_layer=layers, n_hidden=hidden, seed=i
        )
        da = da.assign_coords(variant=variant).astype(np.float32)
        da.attrs.update(model="bench/model", mask_strategy="mean")
        pvx.write_variant(store, da)
    report.analyze(store, views=["pca", "similarity", "dendrogram"], out=out, progress=None)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/pvx-explore")
    parser.add_argument("--personas", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = build(workdir, args.personas, args.layers, args.hidden)

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pvx.cli, panel"], check=True)
    imports = time.perf_counter() - start

    from playwright.sync_api import sync_playwright

    port = free_port()
    command = [sys.executable, "-m", "pvx.cli", "explore", str(out), "--port", str(port)]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(DEEP)
        start = time.perf_counter()
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            for line in server.stdout:
                if "serving at" in line:
                    break
            serving = time.perf_counter() - start
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function(MAIN, timeout=120_000)
            first = time.perf_counter() - start

            def redraw(action) -> float:
                before = page.evaluate(MAIN)
                t = time.perf_counter()
                action()
                page.wait_for_function(
                    f"() => {{ const s = ({MAIN})(); return s && s !== {json.dumps(before)}; }}",
                    timeout=60_000,
                )
                return time.perf_counter() - t

            slider = page.locator("input[type=range]").first
            layer_times = [
                redraw(lambda i=i: slider.fill(str(i % args.layers)))
                for i in range(1, args.repeats + 1)
            ]
            select = page.locator("select").nth(1)
            options = select.locator("option").all_inner_texts()
            colours = [o for o in options if o != "none"][: args.repeats + 1]
            colour_times = [redraw(lambda c=c: select.select_option(c)) for c in colours[1:]]
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()
    print(
        f"{args.personas} personas x {args.layers} layers, two variants (report: {out})\n"
        f"imports alone (pvx.cli, panel): {imports:.2f} s\n"
        f"command -> serving: {serving:.2f} s\n"
        f"command -> first drawn view: {first:.2f} s\n"
        f"layer switch, median of {len(layer_times)}: {statistics.median(layer_times):.3f} s\n"
        f"colour switch, median of {len(colour_times)}: {statistics.median(colour_times):.3f} s"
    )


if __name__ == "__main__":
    main()
