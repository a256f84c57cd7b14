"""The store under attack from real processes: writers killed at any moment, two writers at
once, a reader looping while another process appends. Every acknowledged persona survives,
nothing partial or mismatched is ever seen, and the next writer carries on."""

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
    import icechunk, zarr
    import pvx, pvx.store  # pvx loads its store on first use: here, before "waiting"

    store, start, stop, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if start == "-":  # started ahead of time: imports done, wait for the first number
        print("waiting", flush=True)
        start = sys.stdin.readline()
    start = int(start)
    prefix = os.environ.get("PREFIX", "p")
    kill_at = os.environ.get("KILL_AT")  # "<site>:<n>": SIGKILL ourselves at the n-th call

    def vectors(numbers):
        ramp = np.arange(8, dtype="f4")
        data = np.stack([np.full((3, 8), float(i), "f4") + ramp for i in numbers])
        return pvx.persona_vectors(
            data, ids=[f"{prefix}{i}" for i in numbers], layers=[0, 1, 2],
            attributes={"n": [float(i) for i in numbers]},
            model="m/x", mask_strategy="mean", variant="v",
        )

    if kill_at:
        site, n = kill_at.split(":")
        calls = {"count": 0}
        def dying(original, after=False):
            def wrapper(*args, **kwargs):
                calls["count"] += 1
                if calls["count"] == int(n) and not after:
                    os.kill(os.getpid(), signal.SIGKILL)
                result = original(*args, **kwargs)
                if calls["count"] == int(n) and after:
                    os.kill(os.getpid(), signal.SIGKILL)
                return result
            return wrapper
        if site == "setitem":
            zarr.AsyncArray.setitem = dying(zarr.AsyncArray.setitem)
        elif site == "resize":
            zarr.AsyncArray.resize = dying(zarr.AsyncArray.resize)
        elif site == "commit":
            icechunk.Session.commit = dying(icechunk.Session.commit)
        elif site == "committed":
            icechunk.Session.commit = dying(icechunk.Session.commit, after=True)

    if start == 0 and not os.path.exists(store):
        pvx.write_variant(store, vectors([0]), persona_block=4)
        start = 1
    print("ready", flush=True)
    i = start
    while i < stop:
        numbers = list(range(i, min(i + batch, stop)))
        pvx.append_personas(store, vectors(numbers))
        i += len(numbers)
        print(i, flush=True)
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import pvx

    store, seconds = sys.argv[1], float(sys.argv[2])
    reads, errors, wrong, sizes = 0, 0, 0, set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            da = pvx.load(store, "v").compute()
        except Exception as err:
            errors += 1
            print("error", repr(err), flush=True)
            continue
        numbers = np.array([float(i[1:]) for i in da["id"].values])
        expected = numbers[:, None, None] + np.zeros((3, 8)) + np.arange(8)
        ok = np.array_equal(da.values, expected) and np.array_equal(da["n"].values, numbers)
        wrong += not ok
        reads += 1
        sizes.add(da.sizes["persona"])
    print("reads", reads, "errors", errors, "wrong", wrong, "sizes", len(sizes), flush=True)
    """
)


def start_writer(tmp_path, store, start, stop, batch, env=None):
    """A writer appending ``start..stop``; with ``start="-"`` it imports, prints "waiting" and
    reads its first number from stdin (so the next writer's imports overlap this one's run)."""
    script = tmp_path / "writer.py"
    if not script.exists():  # rewriting it could truncate it under a writer still starting
        partial = tmp_path / "writer.py.partial"
        partial.write_text(WRITER)
        partial.replace(script)
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(start), str(stop), str(batch)],
        stdin=subprocess.PIPE if start == "-" else None,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def check_intact(store, at_least, prefixes=("p",)):
    """Every visible persona is whole, correct and paired with its own id; return how many."""
    da = pvx.load(store, "v").compute()
    ids = da["id"].values.tolist()
    assert len(set(ids)) == len(ids)
    numbers = np.array([float(i[1:]) for i in ids])
    assert all(i[0] in prefixes for i in ids)
    expected = numbers[:, None, None] + np.zeros((3, 8)) + np.arange(8)
    np.testing.assert_array_equal(da.values, expected)
    np.testing.assert_array_equal(da["n"].values, numbers)
    assert len(ids) >= at_least
    return len(ids)


def last_acknowledged(out: str, default: int) -> int:
    numbers = [int(w) for w in out.split() if w.isdigit()]
    return numbers[-1] if numbers else default


@pytest.mark.parametrize("batch", [1, 3])  # 3 crosses persona blocks
@pytest.mark.parametrize("kill_at", ["setitem:9", "resize:14", "commit:6", "committed:4"])
def test_writer_killed_at_each_step_of_a_commit(tmp_path, kill_at, batch):
    store = tmp_path / "s.zarr"
    writer = start_writer(tmp_path, store, 0, 40, batch, env={"KILL_AT": kill_at})
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    if not store.exists():
        return  # killed while creating the store: it never appeared
    n = check_intact(store, last_acknowledged(out, 0))
    resumed = start_writer(tmp_path, store, n, n + 7, batch)
    resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert check_intact(store, n + 7) == n + 7


def test_writer_killed_at_twenty_random_times(tmp_path):
    store = tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    n = 0
    # writers started ahead, so their imports (~2 s each) overlap the rounds before them
    upcoming = [start_writer(tmp_path, store, "-", 10_000, 1 + i % 3) for i in range(3)]
    for round_ in range(20):
        writer = upcoming.pop(0)
        if round_ + len(upcoming) + 1 < 20:
            upcoming.append(start_writer(tmp_path, store, "-", 10_000, 1 + (round_ + 3) % 3))
        assert writer.stdout.readline().strip() == "waiting"
        writer.stdin.write(f"{n}\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "ready"  # appends run
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate(timeout=60)
        n = check_intact(store, last_acknowledged(out, n))
    assert n > 10


def test_two_writers_at_once_lose_nothing(tmp_path):
    store = tmp_path / "s.zarr"
    pvx.write_variant(store, pvx.persona_vectors(
        np.zeros((1, 3, 8), "f4") + np.arange(8, dtype="f4"),
        ids=["a0"], layers=[0, 1, 2], attributes={"n": [0.0]},
        model="m/x", mask_strategy="mean", variant="v",
    ))  # fmt: skip
    writers = [start_writer(tmp_path, store, 1, 101, 1, env={"PREFIX": prefix}) for prefix in "ab"]
    for writer in writers:
        writer.communicate(timeout=300)
        assert writer.returncode == 0
    assert check_intact(store, 201, prefixes="ab") == 201


def test_reader_never_sees_a_partial_or_wrong_persona(tmp_path):
    store = tmp_path / "s.zarr"
    writer = start_writer(tmp_path, store, 0, 200, 1)
    assert writer.stdout.readline().strip() == "ready"
    script = tmp_path / "reader.py"
    script.write_text(READER)
    reader = subprocess.run(
        [sys.executable, str(script), str(store), "8"], capture_output=True, text=True, timeout=120
    )
    writer.communicate(timeout=300)
    assert writer.returncode == 0
    summary = reader.stdout.strip().splitlines()[-1].split()
    stats = dict(zip(summary[::2], map(int, summary[1::2]), strict=True))
    assert stats["errors"] == 0 and stats["wrong"] == 0, reader.stdout[-2000:]
    assert stats["reads"] > 10 and stats["sizes"] > 3  # it really read during the appends
    assert check_intact(store, 200) == 200
