"""Where the whole-store analysis spends its time, task by task, and how busy the cores are.

    python benchmarks/bench_tasks.py /tmp/pvx-M.zarr [--variant V] [--layers 40]

Builds ``bench_scale.py``'s pvx job (centered cosine, PCA, full scree, streamed into one
Zarr store), runs it on the threaded scheduler and prints, for the computation alone (not
the graph building, which ``bench_scale.py`` also times), the wall time, the process's CPU
time over wall time and cores ("busy"), and each kind of task's summed time per layer. Summed task
time close to wall x threads with low "busy" means threads wait inside tasks (on the GIL,
or on Zarr's I/O).
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import tempfile
import time

from bench_scale import streaming_job  # this script's folder is on sys.path
from dask.callbacks import Callback
from dask.utils import key_split

import pvx


class TaskTimes(Callback):
    """Summed wall time of each kind of task (dask's key prefix)."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: collections.Counter[str] = collections.Counter()
        self._started: dict[object, float] = {}

    def _pretask(self, key, dsk, state):
        self._started[key] = time.perf_counter()

    def _posttask(self, key, result, dsk, state, id):
        self.totals[key_split(key)] += time.perf_counter() - self._started.pop(key)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("--variant", default="templated")
    parser.add_argument("--layers", type=int, default=0, help="only the first N layers")
    args = parser.parse_args()

    da = pvx.load(args.store, args.variant)
    if args.layers:
        da = da.isel(layer=slice(0, args.layers))
    n_layers = da.sizes["layer"]
    with tempfile.TemporaryDirectory() as workdir:
        job = streaming_job(da, pathlib.Path(workdir) / "results.zarr")
        times = TaskTimes()
        cpu, wall = time.process_time(), time.perf_counter()
        with times:
            job.compute()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    cores = os.cpu_count() or 1
    print(
        f"{args.store}: {dict(da.sizes)}; wall {wall:.2f} s, {wall / n_layers * 1e3:.0f} ms "
        f"per layer; CPU {cpu:.2f} s, cores {cpu / wall / cores:.0%} busy"
    )
    for name, seconds in times.totals.most_common():
        if seconds >= 0.01 * wall:
            print(f"  {name:45} {seconds / n_layers * 1e3:7.1f} ms per layer")
    total = sum(times.totals.values())
    print(f"  {'all tasks':45} {total / n_layers * 1e3:7.1f} ms per layer")


if __name__ == "__main__":
    main()
