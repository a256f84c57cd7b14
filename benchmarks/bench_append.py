"""Single-persona appends: pvx.append_personas vs a plain Zarr append, in one process.

    python benchmarks/bench_append.py [--n 2000] [--layers 7] [--hidden 384]

The baseline appends the same rows to one bare ``zarr.Array`` (``Array.append``) with no
ids, attributes, validation or commit: the floor for "add one row to a Zarr array". pvx
adds validation, ids and attributes, and the atomic commit. Reported: mean time per
append over the first and last 10% (constant cost means no rewrite of earlier data), the
ratio to the baseline, and how many stored vector chunks later appends rewrote (must be 0;
the small coordinate arrays are only ever extended).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

import pvx


def persona(i: int, rng: np.random.Generator, n_layer: int, n_hidden: int):
    return pvx.persona_vectors(
        rng.normal(size=(1, n_layer, n_hidden)).astype("float32"),
        ids=[f"persona-{i}"],
        names=[f"Persona {i}"],
        attributes={"age": [20.0 + i % 50], "region": [["north", "south"][i % 2]]},
        sample_ids=[[f"s{i}"]],
        model="bench/model",
        mask_strategy="mean",
        variant="biography",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=7)
    parser.add_argument("--hidden", type=int, default=384)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [persona(i, rng, args.layers, args.hidden) for i in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        pvx.write_variant(store, rows[0])
        times = []
        main_chunks: dict[Path, int] = {}
        rewritten = 0
        for da in rows[1:]:
            start = time.perf_counter()
            pvx.append_personas(store, da)
            times.append(time.perf_counter() - start)
        for chunk in store.rglob("vectors/c/*/*/*"):
            if "_tail" not in str(chunk):
                main_chunks[chunk] = chunk.stat().st_mtime_ns
        # A main chunk is written once, when its block is promoted; count any written twice
        # by appending one more block and checking earlier chunks kept their mtime.
        for i, da in enumerate(rows[1 : 1 + pvx.store.DEFAULT_PERSONA_BLOCK]):
            pvx.append_personas(
                store, da.assign_coords(id=("persona", [f"extra-{i}"])).set_xindex("id")
            )
        rewritten = sum(
            1 for chunk, stamp in main_chunks.items() if chunk.stat().st_mtime_ns != stamp
        )
        got = pvx.load(store, "biography")
        assert got.sizes["persona"] == args.n + pvx.store.DEFAULT_PERSONA_BLOCK

        base = zarr.open_array(
            Path(tmp) / "plain.zarr",
            mode="w",
            shape=(0, args.layers, args.hidden),
            chunks=(64, 1, args.hidden),
            dtype="float32",
        )
        base_times = []
        for da in rows:
            start = time.perf_counter()
            base.append(da.values, axis=0)
            base_times.append(time.perf_counter() - start)

    tenth = max(1, len(times) // 10)
    first, last = np.mean(times[:tenth]), np.mean(times[-tenth:])
    print(f"{args.n} single-persona appends, {args.layers} layers x {args.hidden} hidden")
    print(
        f"pvx:   total {sum(times):.1f} s, {1e3 * np.mean(times):.1f} ms/append "
        f"(first 10%: {1e3 * first:.1f} ms, last 10%: {1e3 * last:.1f} ms)"
    )
    print(f"plain: total {sum(base_times):.1f} s, {1e3 * np.mean(base_times):.1f} ms/append")
    print(f"ratio pvx/plain: {np.mean(times) / np.mean(base_times):.1f}x")
    print(f"vector chunks rewritten by later appends: {rewritten} of {len(main_chunks)}")


if __name__ == "__main__":
    main()
