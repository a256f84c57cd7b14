"""Published stores served over HTTP by a real server on 127.0.0.1: lazy opening, reading
only the chunks asked for, and a StoreError naming the damage when the server fails, cuts a
body short or has lost a file."""

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
        if server.short_body and server.short_body in self.path:
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) - 3))
            self.end_headers()
            self.wfile.write(body[:-3])  # a body cut short, with a length that agrees
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
    server.short_body = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def make_store(path: Path) -> None:
    """A repository beside ``path`` published at ``path`` (what an HTTP server serves)."""
    repository = path.with_name(path.name + ".repo")
    rng = np.random.default_rng(0)
    for variant in ("biography", "templated"):
        da = pvx.persona_vectors(
            rng.normal(size=(21, 4, 8)).astype("float32"),
            ids=[f"p{i}" for i in range(21)],
            layers=[0, 2, 4, 6],
            attributes={"age": np.arange(21.0), "region": ["n", "s", "e"] * 7},
            sample_ids=[[f"s{i}"] for i in range(21)],
            model="org/m",
            mask_strategy="mean",
            variant=variant,
        )
        pvx.write_variant(repository, da, persona_block=8)  # blocks of 8, 8 and 5
    pvx.store.publish(repository, path)


def test_open_by_url_reads_no_vectors_and_matches_local(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    tree = pvx.open_store(f"{url}/s.zarr")
    assert server.requests and not [p for p in server.requests if "/vectors/c/" in p]
    remote = pvx.load(tree, ["biography", "templated"])
    local = pvx.load(tmp_path / "s.zarr.repo", ["biography", "templated"])
    xr.testing.assert_identical(remote.compute(), local.compute())
    assert tree.attrs["snapshot"] == pvx.store.history(tmp_path / "s.zarr.repo").snapshot[0]


def test_one_layer_fetches_only_that_layers_chunks(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    da = pvx.load(f"{url}/s.zarr", "templated", layers=[4])
    server.requests.clear()
    da.compute()
    chunks = sorted(p.split("/s.zarr/")[1] for p in server.requests)
    variant = "org--m/mean/templated"
    assert chunks == [f"{variant}/vectors/c/{block}/2/0" for block in (0, 1, 2)]


def test_server_failing_mid_read_is_a_clear_error(tmp_path, served):
    url, server = served
    make_store(tmp_path / "s.zarr")
    da = pvx.load(f"{url}/s.zarr", "biography")
    server.fail_vectors_after = 3
    with pytest.raises(pvx.StoreError, match=r"'http://.*': reading chunk .* of array '.*vectors'"):
        da.compute()


def test_missing_chunk_is_an_error_not_zeros(tmp_path, served):
    url, _ = served
    make_store(tmp_path / "s.zarr")
    (tmp_path / "s.zarr/org--m/mean/biography/vectors/c/1/3/0").unlink()
    with pytest.raises(pvx.StoreError, match=r"chunk 1\.3\.0 of array '.*/vectors' is missing"):
        pvx.load(f"{url}/s.zarr", "biography").compute()
    with pytest.raises(pvx.StoreError, match="is missing"):
        pvx.load(tmp_path / "s.zarr", "biography").compute()


@pytest.mark.parametrize("array", ["id", "name", "layer", "age", "region", "sample_ids"])
def test_a_404_on_any_coordinate_is_an_error(tmp_path, served, array):
    url, _ = served
    make_store(tmp_path / "s.zarr")
    (tmp_path / f"s.zarr/org--m/mean/biography/{array}/c/0").unlink()
    with pytest.raises(pvx.StoreError, match=rf"chunk 0 of array '.*/{array}' is missing"):
        pvx.open_store(f"{url}/s.zarr")


@pytest.mark.parametrize("target", ["vectors/c/2/1/0", "id/c/0", "age/c/0"])
def test_a_body_cut_short_is_an_error(tmp_path, served, target):
    url, server = served
    make_store(tmp_path / "s.zarr")
    server.short_body = f"/biography/{target}"
    with pytest.raises(pvx.StoreError, match="fails its checksum"):
        pvx.load(f"{url}/s.zarr", "biography").compute()


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


def test_a_repository_served_over_http_is_pointed_to_publish(tmp_path, served):
    # an Icechunk repository is not a Zarr hierarchy a plain HTTP server can offer
    base, _ = served
    make_store(tmp_path / "s.zarr")
    with pytest.raises(pvx.StoreError, match=r"no Zarr group found\); over HTTP .*pvx publish"):
        pvx.load(f"{base}/s.zarr.repo", "biography")


def test_storage_options_the_file_system_refuses_are_named(tmp_path, served):
    base, _ = served
    make_store(tmp_path / "s.zarr")
    with pytest.raises(pvx.StoreError, match=r"storage options \['bogus_key'\] were refused"):
        pvx.load(f"{base}/s.zarr", "biography", bogus_key=1)
