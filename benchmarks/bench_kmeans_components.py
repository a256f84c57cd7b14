"""The report's k-means on the first principal components against k-means on the vectors.

    python benchmarks/bench_kmeans_components.py [--store stores/demo.zarr] [--components 20]

Quality: for every variant and layer of the store and seeds 0-3, the k-means objective
(within-cluster sum of squares on the centered, normalised vectors themselves) of the
report's clusters (``pvx.cluster.kmeans(..., n_components=20, n_init=3)``), divided by that
of k-means on the vectors (``n_components=None``, same seed and starts); beside it the same
ratio between two seeds of k-means on the vectors, for scale.

Cost: one layer of 1000 personas x 3584 (planted clusters), the part that differs between
the two: the exact path's embedding and k-means, against the top eigenvectors from the
Householder reduction PCA makes anyway, and k-means on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import threadpoolctl
from bench_layer import best  # this script's folder is on sys.path

import pvx
from pvx import _engine, _spectra, cluster

DEMO = Path(__file__).resolve().parents[1] / "stores" / "demo.zarr"


def objective(rows: np.ndarray, labels: np.ndarray) -> float:
    return sum(((rows[labels == c] - rows[labels == c].mean(0)) ** 2).sum() for c in set(labels))


def prepared_rows(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float64) - x.mean(axis=0)
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default=str(DEMO))
    parser.add_argument("--mask-strategy", default="token_mean")
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=5)
    args = parser.parse_args()
    k, q = args.clusters, args.components
    for variant in pvx.variants(args.store, mask_strategy=args.mask_strategy):
        da = pvx.load(args.store, variant, mask_strategy=args.mask_strategy).compute()
        rows = [prepared_rows(da.isel(layer=i).values) for i in range(da.sizes["layer"])]
        ours, seeds = [], []
        for seed in range(4):
            options = {"mode": "per_layer", "n_init": 3, "seed": seed}
            exact = cluster.kmeans(da, k, **options).values
            reduced = cluster.kmeans(da, k, n_components=q, **options).values
            other = cluster.kmeans(da, k, **{**options, "seed": seed + 10}).values
            for i, x in enumerate(rows):
                ours.append(objective(x, reduced[i]) / objective(x, exact[i]))
                seeds.append(objective(x, other[i]) / objective(x, exact[i]))
        print(
            f"{variant} ({da.sizes['persona']} personas, {len(rows)} layers, seeds 0-3): "
            f"objective of k-means on {q} components / on the vectors: mean "
            f"{np.mean(ours):.4f}, max {np.max(ours):.4f}; another seed on the vectors: "
            f"mean {np.mean(seeds):.4f}, max {np.max(seeds):.4f}"
        )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 3584)).astype(np.float32)
    x += np.repeat(rng.standard_normal((k, 3584)) * 0.3, 1000 // k, axis=0)
    rows = prepared_rows(x)
    gram = _engine._double_center(rows @ rows.T)
    options = {"n_clusters": k, "seed": 0, "n_init": 3}
    with threadpoolctl.threadpool_limits(1):
        packed, tau = _spectra._tridiagonal_one(gram.copy())
        exact = best(lambda: cluster._kmeans_one(gram.copy(), center=False, **options), 5)

        def reduced() -> None:
            points, _ = _spectra._embedding_kernel(packed, tau, n_top=q)
            cluster._kmeans_points(points, **options)

        ours = best(reduced, 5)
        shared = best(lambda: _spectra._tridiagonal_one(gram.copy()), 5)
    print(
        f"one layer, 1000 x 3584, one thread: on the vectors {exact * 1e3:.0f} ms, on {q} "
        f"components {ours * 1e3:.0f} ms (the Householder reduction both PCA and these share: "
        f"{shared * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
