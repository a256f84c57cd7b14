"""The first UMAP of a fresh process, with and without pvx's numba cache.

    python benchmarks/bench_umap_startup.py

Each line is a fresh subprocess sharing one new ``NUMBA_CACHE_DIR``, in this order:

1. umap-learn alone (what a process paid before pvx cached umap's functions), run twice:
   the second run has pynndescent's own cached functions but still compiles umap's;
2. ``pvx.manifold.prepare_umap()`` with umap's functions not yet in the cache (once per
   environment), then again from the cache (every later process);
3. in each pvx process, a 200-persona UMAP after ``prepare_umap``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

PLAIN = r"""
import json, time
import numpy as np
t0 = time.perf_counter()
import umap
t1 = time.perf_counter()
x = np.random.default_rng(0).standard_normal((200, 16))
d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
umap.UMAP(metric="precomputed", random_state=0, n_jobs=1).fit_transform(d)
print(json.dumps({"import": t1 - t0, "first_umap": time.perf_counter() - t1}))
"""

PVX = r"""
import json, time
import numpy as np
import pvx, pvx.manifold, pvx.synthetic
da = pvx.synthetic.planted_personas(n_persona=200, n_layer=1, n_hidden=64, seed=0)
prepare = pvx.manifold.prepare_umap()  # includes importing umap
t = time.perf_counter()
pvx.umap(da, layer=0).values
print(json.dumps({"prepare_umap": prepare, "umap_200": time.perf_counter() - t}))
"""


def run(code: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("umap-learn alone, empty cache", "umap-learn alone, again"):
            r = run(PLAIN, env)
            print(f"{label:38s} import {r['import']:5.1f} s, first UMAP {r['first_umap']:5.1f} s")
        for label in ("pvx, umap not yet cached", "pvx, from the cache"):
            r = run(PVX, env)
            print(
                f"{label:38s} prepare_umap {r['prepare_umap']:5.1f} s, "
                f"then 200 personas {r['umap_200']:.2f} s"
            )


if __name__ == "__main__":
    main()
