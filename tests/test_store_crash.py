"""A writer killed in the middle of an append leaves a store that opens, with every earlier
persona intact and no partial persona visible. Real subprocesses, really killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import pvx

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import zarr
    import pvx, pvx.store

    store, start, stop, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    kill_at = os.environ.get("KILL_AT")  # "<site>:<n>": SIGKILL ourselves at the n-th call

    def vectors(ids):
        ramp = np.arange(8, dtype="f4")
        data = np.stack([np.full((3, 8), float(i[1:]), "f4") + ramp for i in ids])
        return pvx.persona_vectors(
            data, ids=ids, layers=[0, 1, 2], attributes={"n": [float(i[1:]) for i in ids]},
            model="m/x", mask_strategy="mean", variant="v",
        )

    if kill_at:
        site, n = kill_at.split(":")
        calls = {"count": 0}
        def dying(original):
            def wrapper(*args, **kwargs):
                calls["count"] += 1
                if calls["count"] == int(n):
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)
            return wrapper
        if site == "setitem":
            zarr.Array.__setitem__ = dying(zarr.Array.__setitem__)
        elif site == "resize":
            zarr.Array.resize = dying(zarr.Array.resize)
        elif site == "commit":
            pvx.store._commit = dying(pvx.store._commit)

    if start == 0:
        pvx.write_variant(store, vectors(["p0"]), persona_block=4)
        start = 1
    i = start
    while i < stop:
        ids = [f"p{j}" for j in range(i, min(i + batch, stop))]
        pvx.append_personas(store, vectors(ids))
        i += len(ids)
        print(i, flush=True)
    """
)


def run_writer(tmp_path, store, start, stop, batch, env=None):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(start), str(stop), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def check_intact(store, at_least):
    """Every visible persona is whole and correct; they are p0..p{n-1}; return n."""
    da = pvx.load(store, "v").compute()
    ids = da["id"].values.tolist()
    n = len(ids)
    assert ids == [f"p{j}" for j in range(n)]
    assert n >= at_least
    expected = np.stack([np.full((3, 8), float(j), "f4") + np.arange(8) for j in range(n)])
    np.testing.assert_array_equal(da.values, expected)
    np.testing.assert_array_equal(da["n"].values, np.arange(n, dtype=float))
    return n


@pytest.mark.parametrize("batch", [1, 3])  # 3 crosses persona blocks with leftovers
@pytest.mark.parametrize(
    "kill_at",
    ["setitem:3", "setitem:17", "setitem:40", "resize:9", "resize:30", "commit:6", "commit:11"],
)
def test_writer_killed_at_a_chosen_step(tmp_path, kill_at, batch):
    store = tmp_path / "s.zarr"
    writer = run_writer(tmp_path, store, 0, 40, batch, env={"KILL_AT": kill_at})
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    if not store.exists() or not pvx.open_store(store).children:
        return  # killed while creating the store or the variant: it never appeared
    committed = int(out.split()[-1]) if out.split() else 0
    n = check_intact(store, committed)
    # the next writer clears the leftovers and carries on
    resumed = run_writer(tmp_path, store, n, n + 9, batch)
    resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert check_intact(store, n + 9) == n + 9


def test_writer_killed_at_random_times(tmp_path):
    store = tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    n = 0
    for round_ in range(6):
        writer = run_writer(tmp_path, store, n, 10_000, 1 + round_ % 3)
        time.sleep(2.0 + rng.uniform(0, 1.5))  # imports take ~1.5 s; then appends run
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=60)
        committed = int(out.split()[-1]) if out.split() else n
        n = check_intact(store, committed)
    assert n > 10
