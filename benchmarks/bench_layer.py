"""Where one layer's time goes: each step of cosine + PCA + scree, on one core.

    python benchmarks/bench_layer.py /tmp/pvx-L.zarr [--layer 60] [--repeat 5]

Times (best of ``--repeat``) each step pvx runs per layer, with BLAS on one thread as in a
dask worker thread, next to floor (b)'s product on every BLAS thread. The sum of the steps
no analysis can skip (read, convert, Gram product, Householder reduction) over two cores,
divided by floor (b), is the best ratio this design can reach on the machine.
"""

from __future__ import annotations

import argparse
import time

import dask
import numpy as np
import threadpoolctl

import pvx
from pvx import _engine, _spectra


def best(step, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--variant", default="templated")
    parser.add_argument("--layer", type=int, default=None, help="label; default: the middle")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    da = pvx.load(args.store, args.variant)
    layer = args.layer if args.layer is not None else int(da["layer"][da.sizes["layer"] // 2])
    one = da.sel(layer=layer)
    ids = tuple(range(one.sizes["persona"]))
    with dask.config.set(scheduler="synchronous"):
        x = one.values
    x32 = x.astype(np.float32)
    steps: dict[str, float] = {}
    floor = best(lambda: x32 @ x32.T, args.repeat)  # floor (b): every BLAS thread
    with (
        threadpoolctl.threadpool_limits(1, user_api="blas"),
        dask.config.set(scheduler="synchronous"),
    ):
        steps["read + decompress"] = best(lambda: one.values, args.repeat)
        ref = x[0].astype(np.float32)
        steps["convert to float32"] = best(
            lambda: np.subtract(x, ref, dtype=np.float32), args.repeat
        )
        y = np.subtract(x, ref, dtype=np.float32)
        steps["Gram product (syrk)"] = best(lambda: y @ y.T, args.repeat)
        gram = _engine._gram_kernel(x, x)
        steps["Gram, whole kernel"] = best(lambda: _engine._gram_kernel(x, x), args.repeat)
        cosine = _engine._prepare_kernel(gram, center=True, normalize=True, ids=ids)
        kernel = _engine._double_center(cosine)
        steps["center + normalise + double-center"] = best(
            lambda: _engine._double_center(
                _engine._prepare_kernel(gram, center=True, normalize=True, ids=ids)
            ),
            args.repeat,
        )
        steps["Householder reduction"] = best(
            lambda: _spectra._tridiagonal_kernel(kernel), args.repeat
        )
        packed, tau = _spectra._tridiagonal_kernel(kernel)
        steps["scree: all eigenvalues"] = best(
            lambda: _spectra._eigvals_kernel(packed, n_top=len(ids)), args.repeat
        )
        steps["PCA: top 2 eigenvectors"] = best(
            lambda: _spectra._embedding_kernel(packed, tau, n_top=2), args.repeat
        )

    n, h = x.shape
    print(f"{args.store}: layer {layer}, {n} personas x {h} hidden, {x.dtype}, one core")
    for name, seconds in steps.items():
        print(f"  {name:38s} {seconds * 1e3:7.1f} ms")
    essential = sum(
        steps[k]
        for k in (
            "read + decompress",
            "convert to float32",
            "Gram product (syrk)",
            "Householder reduction",
        )
    )
    print(f"floor (b): float32 X @ X.T on every BLAS thread: {floor * 1e3:.1f} ms")
    print(
        f"unavoidable steps on one core: {essential * 1e3:.1f} ms; over two cores "
        f"{essential / 2 * 1e3:.1f} ms per layer = {essential / 2 / floor:.2f}x floor (b)"
    )


if __name__ == "__main__":
    main()
