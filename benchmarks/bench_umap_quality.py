"""UMAP's layout quality by epoch count, against umap-learn's own default (issue 12).

    python benchmarks/bench_umap_quality.py [--store stores/demo.zarr]
        [--mask-strategy token_mean] [--epochs 30,100,150,200]

For every variant and layer of the store: the trustworthiness (scikit-learn, 15
neighbours) of pvx's UMAP from its PCA start at each epoch count, seeds 1 and 2, divided by
that of umap-learn's default (500 epochs from its spectral start, seed 1) on the same
prepared rows; prints the smallest and mean share per variant and epoch count, and the mean
time of one fit; then the same for the aligned UMAP ``pvx analyze`` draws (every layer after
the first from the layout of the layer before it). The issue asks for at least 0.98 of
umap-learn's quality.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.manifold import trustworthiness

import pvx
from pvx import manifold

DEMO = Path(__file__).resolve().parents[1] / "stores" / "demo.zarr"


def prepared_rows(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float64) - x.mean(axis=0)
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default=str(DEMO))
    parser.add_argument("--mask-strategy", default="token_mean")
    parser.add_argument("--epochs", default="30,100,150,200")
    args = parser.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    for variant in pvx.variants(args.store, mask_strategy=args.mask_strategy):
        da = pvx.load(args.store, variant, mask_strategy=args.mask_strategy).compute()
        shares: dict[int, list[float]] = {e: [] for e in epochs}
        seconds: dict[int, list[float]] = {e: [] for e in epochs}
        references = []
        for layer in range(da.sizes["layer"]):
            one = da.isel(layer=[layer])
            rows = prepared_rows(one.isel(layer=0).values)
            default = manifold.umap(one, seed=1, n_epochs=None, init="spectral")
            reference = trustworthiness(rows, default.isel(layer=0).values, n_neighbors=15)
            references.append((rows, reference))
            for e in epochs:
                for seed in (1, 2):
                    start = time.perf_counter()
                    layout = manifold.umap(one, seed=seed, n_epochs=e).isel(layer=0).values
                    seconds[e].append(time.perf_counter() - start)
                    shares[e].append(trustworthiness(rows, layout, n_neighbors=15) / reference)
        print(f"{variant}: {da.sizes['persona']} personas x {da.sizes['layer']} layers")
        for e in epochs:
            print(
                f"  {e:4d} epochs: share of umap-learn's trustworthiness min "
                f"{min(shares[e]):.3f}, mean {np.mean(shares[e]):.3f}; "
                f"{1e3 * np.mean(seconds[e]):.0f} ms per layer"
            )
        # as pvx analyze runs it: each layer after the first from the layout before it
        aligned, took = [], []
        for seed in (1, 2):
            start = time.perf_counter()
            layouts = manifold.umap(da, seed=seed, aligned=True)
            took.append((time.perf_counter() - start) / da.sizes["layer"])
            for layer, (rows, reference) in enumerate(references):
                layout = layouts.isel(layer=layer).values
                aligned.append(trustworthiness(rows, layout, n_neighbors=15) / reference)
        print(
            f"  aligned (200 epochs, then {layouts.attrs['aligned_epochs']} from the layer "
            f"before): share min {min(aligned):.3f}, mean {np.mean(aligned):.3f}; "
            f"{1e3 * np.mean(took):.0f} ms per layer"
        )


if __name__ == "__main__":
    main()
