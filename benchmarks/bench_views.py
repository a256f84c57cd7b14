"""HTML size and build time of every view for 1000 personas x 42 layers (run by hand).

    python benchmarks/bench_views.py [--personas 1000] [--layers 42] [--out DIR]

Computes the analyses once on planted data (pvx.synthetic), then builds each figure and writes
it with :func:`pvx.plot.write_html`, both with plotly.js embedded and with plotly.js written
once beside the pages ("directory"). The baseline, measured in the same run, is the same
projection drawn the plain way (float64 coordinate lists and hover text repeated in every
frame), and for each view the raw float32 bytes of the numbers it shows. Budgets (issue 4):
the layered projection under 10 MB, the heatmap under 50 MB, both with plotly.js embedded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import pvx.plot
import pvx.synthetic
from pvx import cluster, decomposition, similarity

MB = 1e6


def plain_projection(scores, hover):
    """The baseline: a straightforward Plotly animation (float64 lists, text in every frame)."""
    import plotly.graph_objects as go

    xy = scores.sel(component=[1, 2]).transpose("layer", "persona", "component").values
    frames = [
        go.Frame(
            name=str(label),
            data=[
                go.Scattergl(
                    x=xy[i, :, 0].tolist(), y=xy[i, :, 1].tolist(), text=hover, mode="markers"
                )
            ],
        )
        for i, label in enumerate(scores["layer"].values)
    ]
    return go.Figure(data=frames[0].data, frames=frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--personas", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="keep the pages here")
    args = parser.parse_args()
    n, n_layer = args.personas, args.layers
    out = args.out or Path(tempfile.mkdtemp(prefix="pvx-views-"))
    out.mkdir(parents=True, exist_ok=True)

    da = pvx.synthetic.planted_personas(
        n_persona=n, n_clusters=8, n_layer=n_layer, n_hidden=args.hidden, seed=0, noise=0.8
    )
    t0 = time.perf_counter()
    results = {
        "pca": decomposition.pca(da, n_components=3),
        "cosine": similarity.cosine(da),
        "tree": cluster.linkage(da, layer=int(da["layer"].values[-1])),
        "trees": cluster.linkage(da),
        "pairs": similarity.pair_similarity(da),
        "scree": decomposition.explained_variance(da),
        "knn": similarity.neighbors(da, 5),
    }
    results = {k: v.compute() for k, v in results.items()}
    print(f"analyses of {n} personas x {n_layer} layers: {time.perf_counter() - t0:.1f} s")

    scores = results["pca"]
    figures = {
        "projection (PCA, colour=age)": lambda: pvx.plot.projection(
            scores, color="age", hover=["education", "region"]
        ),
        "projection 3-D (colour=region)": lambda: pvx.plot.projection(
            scores, color="region", components=(1, 2, 3)
        ),
        "projection + kNN overlay (k=5)": lambda: pvx.plot.projection(
            scores, color="region", neighbors=results["knn"]
        ),
        "similarity heatmap (dendrogram order)": lambda: pvx.plot.heatmap(
            results["cosine"], order=results["tree"]
        ),
        "pair trajectories (top 5 of all pairs)": lambda: pvx.plot.pair_trajectories(
            results["pairs"], top=5
        ),
        "scree (all components, 42 curves)": lambda: pvx.plot.scree(results["scree"]),
        "variance heatmap": lambda: pvx.plot.variance_heatmap(results["scree"]),
        "dendrogram (layered)": lambda: pvx.plot.dendrogram(results["trees"], names=da["name"]),
    }
    raw = {
        "projection (PCA, colour=age)": n * n_layer * 2 * 4,
        "projection 3-D (colour=region)": n * n_layer * 3 * 4,
        "projection + kNN overlay (k=5)": n * n_layer * 2 * 4,
        "similarity heatmap (dendrogram order)": n * n * n_layer * 4,
    }
    rows = []
    for name, build in figures.items():
        t0 = time.perf_counter()
        fig = build()
        t_build = time.perf_counter() - t0
        stem = name.split(" (")[0].replace(" ", "_").replace("+", "").replace("__", "_")
        t0 = time.perf_counter()
        embed = pvx.plot.write_html(fig, out / f"{stem}.embed.html")
        t_write = time.perf_counter() - t0
        shared = pvx.plot.write_html(fig, out / "dir" / f"{stem}.html", plotlyjs="directory")
        rows.append((name, embed.stat().st_size / MB, shared.stat().st_size / MB, t_build, t_write))

    hover = [f"{i} {a}" for i, a in zip(da["name"].values, da["age"].values, strict=True)]
    t0 = time.perf_counter()
    plain = plain_projection(scores["scores"], hover)
    baseline = pvx.plot.write_html(plain, out / "baseline_projection.embed.html")
    t_plain = time.perf_counter() - t0
    bundle = (out / "dir" / "plotly.min.js").stat().st_size / MB

    print(f"\npages in {out}; plotly.min.js (written once for 'directory'): {bundle:.2f} MB\n")
    print("| view | HTML, plotly.js embedded | HTML, plotly.js beside | build | write |")
    print("|---|---:|---:|---:|---:|")
    for name, size_embed, size_dir, t_build, t_write in rows:
        print(
            f"| {name} | {size_embed:.2f} MB | {size_dir:.2f} MB | {t_build:.2f} s "
            f"| {t_write:.2f} s |"
        )
    base_size = baseline.stat().st_size / MB
    print(
        f"| baseline: plain Plotly projection (float64 lists) | {base_size:.2f} MB | "
        f"{base_size - bundle:.2f} MB | {t_plain:.2f} s (build + write) | |"
    )
    print("\nratios (data part of the page, i.e. without plotly.js):")
    projection_data = rows[0][2]
    print(f"- projection vs plain Plotly baseline: {projection_data / (base_size - bundle):.2f}x")
    for name, _, size_dir, *_ in rows:
        if name in raw:
            print(
                f"- {name} vs raw float32 data ({raw[name] / MB:.1f} MB): "
                f"{size_dir / (raw[name] / MB):.2f}x"
            )
    budgets = {"projection (PCA, colour=age)": 10, "similarity heatmap (dendrogram order)": 50}
    for name, limit in budgets.items():
        size = next(r[1] for r in rows if r[0] == name)
        status = "ok" if size < limit else "OVER BUDGET"
        print(f"- budget {name}: {size:.1f} MB < {limit} MB: {status}")
    assert np.isfinite(base_size)


if __name__ == "__main__":
    main()
