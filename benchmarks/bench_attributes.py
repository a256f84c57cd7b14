"""Attribute probes against the engine's Gram pass and against scikit-learn (issue 14).

    python benchmarks/bench_attributes.py [--personas 1000] [--layers 42] [--hidden 3584]
        [--folds 5] [--permutations 5] [--sklearn-layers 1]   (0: skip scikit-learn)

Builds persona vectors in memory (float16, chunked one layer per task as a store reads them)
with ten attributes: three numeric, two ordinal, three categorical (3 to 6 classes) and two
binary, each carried by a few hidden units so the probes have something to find. Times, in
the same process:

1. the engine's Gram pass over every layer (``pvx._engine.raw_gram(da).compute()``);
2. ``pvx.attributes.probe(da)`` for every attribute, folds and shuffled-label permutations
   (the Gram pass included);
3. scikit-learn pipelines (``StandardScaler(with_std=False)``, ``Normalizer``, then
   ``Ridge``, ``LogisticRegression(class_weight="balanced")`` or ``NearestCentroid``) on the
   raw vectors with the same folds and permutations, over ``--sklearn-layers`` layers,
   scaled to all layers.
"""

from __future__ import annotations

import argparse
import time

import dask.array
import numpy as np
import xarray as xr

import pvx
from pvx import _engine, attributes


def make_data(n: int, n_layer: int, hidden: int, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    attrs: dict[str, tuple[np.ndarray, dict]] = {}
    signal = np.zeros((n, hidden), dtype=np.float32)
    unit = 0

    def carry(values: np.ndarray, strength: float) -> None:
        nonlocal unit
        centred = (values - values.mean()) / (values.std() + 1e-9)
        signal[:, unit] += strength * centred
        unit += 1

    for i in range(3):
        values = rng.normal(40, 12, n)
        attrs[f"numeric_{i}"] = (values, {"kind": "numeric"})
        carry(values, 0.5 + 0.5 * i)
    levels = ["low", "mid", "high", "top"]
    for i in range(2):
        codes = rng.integers(0, 4, n)
        attrs[f"ordinal_{i}"] = (
            np.array(levels, dtype=object)[codes],
            {"kind": "ordinal", "order": levels},
        )
        carry(codes.astype(float), 0.8)
    for i, k in enumerate((3, 4, 6)):
        codes = rng.integers(0, k, n)
        attrs[f"category_{i}"] = (
            np.array([f"c{c}" for c in codes], dtype=object),
            {"kind": "categorical"},
        )
        for c in range(k):
            carry((codes == c).astype(float), 0.6)
    for i in range(2):
        codes = rng.integers(0, 2, n)
        attrs[f"binary_{i}"] = (
            np.where(codes, "yes", "no").astype(object),
            {"kind": "categorical"},
        )
        carry(codes.astype(float), 0.7)
    offset = rng.normal(size=hidden).astype(np.float32) * 20
    layers = []
    for layer in range(n_layer):
        noise = rng.normal(size=(n, hidden)).astype(np.float32)
        layers.append((offset + noise + signal * (0.5 + layer / n_layer)).astype(np.float16))
    data = dask.array.from_array(np.stack(layers, axis=1), chunks=(n, 1, hidden))
    return pvx.persona_vectors(
        data,
        ids=[f"p{i}" for i in range(n)],
        attributes={name: list(values) for name, (values, _) in attrs.items()},
        kinds={name: meta["kind"] for name, (_, meta) in attrs.items()},
        orders={name: meta["order"] for name, (_, meta) in attrs.items() if "order" in meta},
        model="bench/model",
        mask_strategy="mean",
        variant="biography",
    )


def sklearn_time(da: xr.DataArray, folds: int, permutations: int, n_layer: int) -> float:
    """Seconds for the scikit-learn pipelines on ``n_layer`` layers (same folds, shuffles)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    targets = [
        attributes._target(da, name, folds, permutations, 0)
        for name in attributes._attribute_names(da, None)[0]
    ]
    start = time.perf_counter()
    for layer in range(n_layer):
        x = np.asarray(da.isel(layer=layer).values, dtype=np.float64)
        for target in targets:
            rows = x[target.rows]
            for labels in np.vstack([target.y[None], target.permuted]):
                for test in target.test_folds:
                    train = np.setdiff1d(np.arange(len(rows)), test)
                    model = {
                        "ridge": Ridge(alpha=1.0),
                        "logistic": LogisticRegression(class_weight="balanced", max_iter=5000),
                        "diff_means": NearestCentroid(),
                    }[target.method]
                    pipe = make_pipeline(StandardScaler(with_std=False), Normalizer(), model)
                    pipe.fit(rows[train], labels[train])
                    pipe.predict(rows[test])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--personas", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--hidden", type=int, default=3584)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--permutations", type=int, default=5)
    parser.add_argument("--sklearn-layers", type=int, default=1)
    args = parser.parse_args()
    da = make_data(args.personas, args.layers, args.hidden)
    print(f"{args.personas} personas x {args.layers} layers x {args.hidden} hidden, float16")

    start = time.perf_counter()
    _engine.raw_gram(da).compute()
    gram = time.perf_counter() - start
    print(f"Gram pass: {gram:.1f} s")

    start = time.perf_counter()
    result = attributes.probe(da, folds=args.folds, permutations=args.permutations).compute()
    probes = time.perf_counter() - start
    n_attr = result.sizes["attribute"]
    print(
        f"probe(): {probes:.1f} s for {n_attr} attributes, {args.folds} folds, "
        f"{args.permutations} permutations ({probes / gram:.1f}x the Gram pass)"
    )
    for name in result["attribute"].values:
        row = result.sel(attribute=name)
        print(
            f"  {name:12s} {row['method'].item()!s:10s} score {float(row['score'].mean()):.3f}"
            f"  baseline {float(row['baseline'].mean()):.3f}"
        )

    if not args.sklearn_layers:  # --sklearn-layers 0: pvx alone
        return
    scikit = sklearn_time(da, args.folds, args.permutations, args.sklearn_layers)
    scaled = scikit * args.layers / args.sklearn_layers
    print(
        f"scikit-learn on raw vectors: {scikit:.1f} s for {args.sklearn_layers} layer(s), "
        f"{scaled:.0f} s scaled to {args.layers} ({scaled / probes:.1f}x probe())"
    )


if __name__ == "__main__":
    main()
