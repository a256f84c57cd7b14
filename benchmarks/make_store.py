"""Write a synthetic persona-vector store of any size through pvx's writer.

    python benchmarks/make_store.py /tmp/pvx-S.zarr --size S     # 200 x 26 x 2304
    python benchmarks/make_store.py /tmp/pvx-M.zarr --size M     # 1000 x 42 x 3584
    python benchmarks/make_store.py /tmp/pvx-L.zarr --size L     # 1000 x 126 x 16384 float16
    python benchmarks/make_store.py OUT --personas N --layers L --hidden H [--dtype float32]

Planted clusters, a large shared offset per layer and a layer-dependent scale
(pvx.synthetic_store.write_synthetic_store); one block of personas in memory at a time.
"""

from __future__ import annotations

import argparse
import time

from pvx.store import size_on_disk
from pvx.synthetic_store import write_synthetic_store

SIZES = {"S": (200, 26, 2304), "M": (1000, 42, 3584), "L": (1000, 126, 16384)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--size", choices=sorted(SIZES))
    parser.add_argument("--personas", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--variants", default="templated,biography")
    args = parser.parse_args()
    n_persona, n_layer, n_hidden = SIZES[args.size] if args.size else (200, 26, 2304)
    n_persona = args.personas or n_persona
    n_layer = args.layers or n_layer
    n_hidden = args.hidden or n_hidden
    start = time.perf_counter()
    write_synthetic_store(
        args.out,
        n_persona=n_persona,
        n_layer=n_layer,
        n_hidden=n_hidden,
        dtype=args.dtype,
        variants=args.variants.split(","),
    )
    took = time.perf_counter() - start
    print(
        f"wrote {args.out}: {n_persona} personas x {n_layer} layers x {n_hidden} hidden "
        f"({args.dtype}), {size_on_disk(args.out) / 2**20:.0f} MiB on disk, in {took:.1f} s"
    )


if __name__ == "__main__":
    main()
