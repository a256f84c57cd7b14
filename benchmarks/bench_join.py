"""Variants joined by label keep their chunks (issue 13).

    python benchmarks/bench_join.py [--personas 640] [--layers 24] [--hidden 3584]
        [--store /tmp/pvx-join.zarr] [--repeat 3]

Writes one store with four variants of the same planted personas (float16): ``base``, the
same rows again (``same``), the rows in reverse order (``reversed``) and all but one
persona (``dropped``). Then, in this process, loads ``base`` with each of the others and
times PCA (3 components) and the variant comparison over every layer, computed together
(threaded scheduler, best of ``--repeat``), with the dask partitions the join leaves. The
baseline is the aligned case (``base`` with ``same``); the target is <= 1.2x for the others.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings

import dask
import numpy as np

import pvx
from pvx import decomposition, similarity, synthetic

OTHERS = ("same", "reversed", "dropped")


def write_store(path: str, personas: int, layers: int, hidden: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    da = synthetic.planted_personas(
        n_persona=personas, n_layer=layers, n_hidden=hidden, seed=0
    ).astype(np.float16)
    options = {"model": "org/planted", "mask_strategy": "mean"}
    pvx.write_variant(path, da, variant="base", **options)
    pvx.write_variant(path, da, variant="same", **options)
    pvx.write_variant(path, da.isel(persona=slice(None, None, -1)), variant="reversed", **options)
    pvx.write_variant(path, da.drop_isel(persona=personas // 2), variant="dropped", **options)


def timed(path: str, other: str, repeat: int) -> tuple[float, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped persona is announced
        da = pvx.load(path, ["base", other])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        dask.compute(
            decomposition.pca(da, n_components=3),
            similarity.variant_similarity(da, "base", other),
        )
        best = min(best, time.perf_counter() - start)
    return best, da.data.npartitions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=640)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=3584)
    parser.add_argument("--store", default="/tmp/pvx-join.zarr")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    write_store(args.store, args.personas, args.layers, args.hidden)
    print(f"{args.personas} personas x {args.layers} layers x {args.hidden} hidden, float16")
    print("| join | partitions | PCA + variant similarity (best) | ratio to aligned |")
    print("|---|---:|---:|---:|")
    aligned = None
    for other in OTHERS:
        seconds, partitions = timed(args.store, other, args.repeat)
        aligned = aligned or seconds
        print(f"| base + {other} | {partitions} | {seconds:.2f} s | {seconds / aligned:.2f} |")
    shutil.rmtree(args.store, ignore_errors=True)


if __name__ == "__main__":
    main()
