"""Stores served over HTTP by a real server on 127.0.0.1: lazy opening, reading only the
chunks asked for, and clear errors when the server fails mid-read."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import pvx

pytest.importorskip("aiohttp")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(self.path)
        if server.fail_vectors_after is not None and "/vectors/c/" in self.path:
            if sum("/vectors/c/" in p for p in server.requests) > server.fail_vectors_after:
                self.send_error(500, "disk on fire")
                return
        super().do_GET()


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # aiohttp opens many connections at once
    daemon_threads = True


@pytest.fixture
def served(tmp_path):
    """Serve tmp_path over HTTP; yields (base_url, server)."""
    handler = functools.partial(_Handler, directory=str(tmp_path))
    server = _Server(("127.0.0.1", 0), handler)
    server.requests = []
    server.fail_vectors_after = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def make_store(path: Path) -> None:
    rng = np.random.default_rng(0)
    for variant in ("biography", "templated"):
        da = pvx.persona_vectors(
            rng.normal(size=(21, 4, 8)).astype("float32"),
            ids=[f"p{i}" for i in range(21)],
            layers=[0, 2, 4, 6],
            attributes={"age": np.arange(21.0), "region": ["n", "s", "e"] * 7},
            model="org/m",
            mask_strategy="mean",
            variant=variant,
        )
        pvx.write_variant(path, da, persona_block=8)  # 2 blocks of 8 + a tail of 5


def test_open_by_url_reads_no_vectors_and_matches_local(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    tree = pvx.open_store(f"{url}/s.zarr")
    assert server.requests and not [p for p in server.requests if "/vectors/c/" in p]
    remote = pvx.load(tree, ["biography", "templated"])
    local = pvx.load(tmp_path / "s.zarr", ["biography", "templated"])
    xr.testing.assert_identical(remote.compute(), local.compute())


def test_one_layer_fetches_only_that_layers_chunks(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    da = pvx.load(f"{url}/s.zarr", "templated", layers=[4])
    server.requests.clear()
    da.compute()
    chunks = sorted(p.split("/s.zarr/")[1] for p in server.requests)
    variant = "org--m/mean/templated"
    main = [f"{variant}/vectors/c/{block}/2/0" for block in (0, 1)]
    tail = [f"{variant}/_tail/vectors/c/{row}/2/0" for row in range(5)]
    assert chunks == sorted(main + tail)


def test_server_failing_mid_read_is_a_clear_error(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    da = pvx.load(f"{url}/s.zarr", "biography")
    server.fail_vectors_after = 3
    with pytest.raises(pvx.StoreError, match=r"reading '.*vectors/c/.*' from 'http://.*' failed"):
        da.compute()


def test_missing_chunk_is_an_error_not_zeros(tmp_path, served):
    url, _ = served
    make_store(tmp_path / "s.zarr")
    (tmp_path / "s.zarr/org--m/mean/biography/vectors/c/1/3/0").unlink()
    with pytest.raises(pvx.StoreError, match=r"chunk '.*vectors/c/1/3/0' is missing"):
        pvx.load(f"{url}/s.zarr", "biography").compute()
    with pytest.raises(pvx.StoreError, match="is missing"):
        pvx.load(tmp_path / "s.zarr", "biography").compute()


def test_unreachable_url_is_a_clear_error():
    with pytest.raises(pvx.StoreError, match=r"http://127.0.0.1:9/nowhere.zarr"):
        pvx.open_store("http://127.0.0.1:9/nowhere.zarr")


def test_analyses_over_http_equal_local(tmp_path, served):
    url, _ = served
    make_store(tmp_path / "s.zarr")
    remote = pvx.load(f"{url}/s.zarr", ["biography", "templated"])
    local = pvx.load(tmp_path / "s.zarr", ["biography", "templated"]).compute()
    for func in (pvx.cosine, pvx.pca, pvx.explained_variance):
        xr.testing.assert_allclose(func(remote).compute(), func(local))
