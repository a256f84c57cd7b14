"""The main job as a new user runs it on their own data (issue 12).

    python benchmarks/bench_main_job.py [--personas 1000] [--layers 42] [--hidden 3584]
        [--workdir /tmp/pvx-mainjob] [--keep] [--store EXISTING_STORE]

1. Writes a store in the ``persona-vectors`` directory layout (bfloat16 safetensors + a
   manifest per variant, names but no attributes, two variants), from planted clusters with
   a shared offset per layer, one persona at a time.
2. ``pvx import dir`` into a pvx store (timed).
3. ``pvx analyze STORE`` with the default views, in a child process: wall time, peak RSS
   of that process and of its whole process tree (it and its UMAP workers, summed), report
   folder size, figures per page.
4. The floor, in this process: NumPy's ``X @ X.T`` per layer (float32, in memory) over both
   variants.
5. The UMAP page's fits alone, in this process: umap-learn's fits inside an aligned
   ``pvx.manifold.umap`` of a few layers (the first of each variant from its PCA start, the
   others from the layout before them), times every layer of every variant, spread over
   every core: the least the default report's UMAP page can cost on this machine.

Defaults are Gemma-2-9B's shape (1000 x 42 x 3584).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pvx

VARIANTS = ("templated", "biography")


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors_bf16(path: Path, bits: np.ndarray) -> None:
    header = json.dumps(
        {
            "activations": {
                "dtype": "BF16",
                "shape": list(bits.shape),
                "data_offsets": [0, bits.nbytes],
            }
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.astype("<u2").tobytes())


def write_reference_layout(root: Path, n: int, n_layer: int, n_hidden: int) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, n_layer, n_hidden)).astype(np.float32)
    offset = 20 * rng.normal(size=(n_layer, n_hidden)).astype(np.float32)
    for k, variant in enumerate(VARIANTS):
        vdir = root / "gemma-2-9b-it" / "answer_mean" / variant
        vdir.mkdir(parents=True)
        ids = ["baseline_assistant", *(f"persona-{i:05d}" for i in range(n))]
        manifest = {
            "model": "google/gemma-2-9b-it",
            "num_layers": n_layer,
            "hidden_size": n_hidden,
            "personas": {
                pid: {"name": f"Persona {i}", "sample_ids": [f"{pid}:{variant}"]}
                for i, pid in enumerate(ids)
            },
        }
        (vdir / "manifest.json").write_text(json.dumps(manifest))
        for i, pid in enumerate(ids):
            noise = rng.normal(size=(n_layer, n_hidden)).astype(np.float32)
            x = offset + centers[i % 8] * (1 + 0.1 * k) + 0.8 * noise
            write_safetensors_bf16(vdir / f"{pid}.safetensors", bf16_bits(x))


def pvx_command(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("pvx")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "pvx.cli", *args]


def floor_seconds(store: Path) -> float:
    """NumPy's X @ X.T per layer over every variant, float32 in memory: each layer is loaded
    on its own (an L store does not fit in memory) and multiplied 3 times; the best of each
    layer's times are summed."""
    total = 0.0
    tree = pvx.open_store(store)
    for variant in pvx.variants(tree):
        da = pvx.load(tree, variant)
        for j in range(da.sizes["layer"]):
            x = np.ascontiguousarray(da.isel(layer=j).values.astype(np.float32))
            best = np.inf
            for _ in range(3):
                start = time.perf_counter()
                x @ x.T
                best = min(best, time.perf_counter() - start)
            total += best
    return total


def umap_seconds(store: Path, sample: int = 4) -> tuple[float, float, int, int]:
    """Seconds of UMAP's fits as the default report runs them: ``pvx.manifold.umap`` aligned
    across layers (the first layer from its PCA start, each next one from the layout before
    it in 40% of the epochs) on ``sample`` consecutive layers of the first variant (after
    loading umap-learn's code), timing only umap-learn's fits (the neighbours and PCA start
    come from the Gram the report shares). Returns the first fit's seconds, the median of
    the others', and how many of each the report makes (per variant one first, then one per
    other layer)."""
    import dask

    import pvx.manifold as manifold

    tree = pvx.open_store(store)
    variants = pvx.variants(tree)
    da = pvx.load(tree, variants[0])
    n_layer = da.sizes["layer"]
    manifold.prepare_umap()
    times: list[float] = []
    fit = manifold._umap_fit

    def timed(*args: object, **kwargs: object) -> object:
        began = time.perf_counter()
        out = fit(*args, **kwargs)
        times.append(time.perf_counter() - began)
        return out

    middle = max(0, n_layer // 2 - sample // 2)
    manifold._umap_fit = timed
    try:
        with dask.config.set(scheduler="synchronous"):
            picks = list(range(middle, min(n_layer, middle + sample)))
            manifold.umap(da.isel(layer=picks), aligned=True).compute()
    finally:
        manifold._umap_fit = fit
    later = float(np.median(times[1:])) if len(times) > 1 else 0.0
    return times[0], later, len(variants), (n_layer - 1) * len(variants)


def run_measured(command: list[str]) -> tuple[float, float, float, str]:
    """Run ``command``; return its wall time (s), the peak RSS of its main process and the
    peak of the summed RSS of its whole process tree (GiB, sampled every 0.1 s), and its
    output."""
    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        proc = psutil.Process(child.pid)
        peak = tree_peak = 0
        while child.poll() is None:
            try:
                members = [proc, *proc.children(recursive=True)]
                rss = [m.memory_info().rss for m in members]
            except psutil.Error:
                continue
            peak, tree_peak = max(peak, rss[0]), max(tree_peak, sum(rss))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        log.seek(0)
        output = log.read()
    if child.returncode:
        sys.exit(output[-6000:])
    return wall, peak / 2**30, tree_peak / 2**30, output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=42)
    parser.add_argument("--hidden", type=int, default=3584)
    parser.add_argument("--workdir", default="/tmp/pvx-mainjob")
    parser.add_argument("--keep", action="store_true", help="keep the source and store")
    parser.add_argument("--store", help="analyse this existing store instead (e.g. an L store)")
    args = parser.parse_args()
    work = Path(args.workdir)
    source, store, out = work / "source", work / "store.zarr", work / "report"
    if args.store:
        store = Path(args.store)
        work.mkdir(parents=True, exist_ok=True)
    elif not (args.keep and store.exists()):
        shutil.rmtree(work, ignore_errors=True)
        start = time.perf_counter()
        write_reference_layout(source, args.personas, args.layers, args.hidden)
        print(f"wrote the reference layout in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        command = pvx_command("import", "dir", str(source), str(store))
        subprocess.run(command, check=True, capture_output=True)
        print(f"pvx import dir: {time.perf_counter() - start:.1f} s")
    shutil.rmtree(out, ignore_errors=True)
    analyze, peak, tree_peak, stdout = run_measured(
        pvx_command("analyze", str(store), "--out", str(out))
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    floor = floor_seconds(store)
    first_fit, later_fit, firsts, laters = umap_seconds(store)
    cores = os.cpu_count() or 1
    shape = dict(pvx.load(store, pvx.variants(store)[0]).sizes)
    print(f"store {store}: {shape}" + ("" if args.store else ", bf16 source"))
    print(
        f"pvx analyze (default views): {analyze:.1f} s, peak RSS {peak:.2f} GiB "
        f"(with its UMAP worker processes: {tree_peak:.2f} GiB)"
    )
    print(f"floor, NumPy X @ X.T per layer of every variant: {floor:.2f} s")
    print(f"ratio: {analyze / floor:.1f}x the floor")
    serial = first_fit * firsts + later_fit * laters
    least = serial / cores
    print(
        f"UMAP page's fits alone: {firsts} x {first_fit:.2f} s + {laters} x {later_fit:.2f} s "
        f"= {serial:.1f} s, over {cores} cores {least:.1f} s at the least "
        f"({least / floor:.1f}x the floor)"
    )
    print(f"report folder: {size:.0f} MiB")
    for name in sorted(p.name for p in out.iterdir()):
        path = out / name
        bytes_ = (
            sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
        )
        print(f"  {name}: {bytes_ / 2**20:.1f} MiB")
    pages = re.findall(r"  (\w+): (\d+) figure", stdout)
    print("figures per page:", ", ".join(f"{view} {n}" for view, n in pages))
    if not args.keep and not args.store:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
