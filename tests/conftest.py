"""Shared fixtures and helpers for the analysis tests: backends, laziness, numpy references."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import dask
import numpy as np
import pytest
import xarray as xr

import pvx.synthetic


def _refuse_to_compute(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a dask graph was computed inside stays_lazy() (keys {keys!r:.200})")


@contextlib.contextmanager
def stays_lazy() -> Iterator[None]:
    """Fail if anything computes a dask graph inside the block (no-op for numpy arrays)."""
    with dask.config.set(scheduler=_refuse_to_compute):
        yield


def to_backend(da: xr.DataArray, backend: str) -> xr.DataArray:
    """The array as numpy or as dask, chunked like a store: several persona blocks per layer."""
    if backend == "numpy":
        return da
    chunks = {"layer": 1, "persona": 3} if "layer" in da.dims else {"persona": 3}
    return da.chunk(chunks)


@pytest.fixture(params=["numpy", "dask"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test on in-memory numpy arrays and on lazy dask arrays."""
    return request.param


@pytest.fixture
def acts(backend: str) -> xr.DataArray:
    """8 personas in 2 planted clusters (along hidden e0 / e1), 3 layers, offset 500x."""
    da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=3, seed=0)
    return to_backend(da, backend)


@pytest.fixture
def acts3(backend: str) -> xr.DataArray:
    """24 personas in 3 planted clusters, 4 layers labelled 10..13, 32 hidden units."""
    da = pvx.synthetic.planted_personas(
        n_persona=24, n_clusters=3, n_layer=4, n_hidden=32, seed=1, noise=0.6, first_layer=10
    )
    return to_backend(da, backend)


def prepared(x: np.ndarray, *, center: bool = True, normalize: bool = True) -> np.ndarray:
    """Reference preparation of ``(persona, hidden)`` rows, directly in float64."""
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0)
    if normalize:
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return x


def layer_slices(da: xr.DataArray) -> list[np.ndarray]:
    """Each layer's ``(persona, hidden)`` slice as a float64 numpy array."""
    da = da.compute().transpose(..., "persona", "hidden")
    if "layer" not in da.dims:
        return [da.values.astype(np.float64)]
    return [da.isel(layer=i).values.astype(np.float64) for i in range(da.sizes["layer"])]


def match_signs(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Flip columns of ``actual`` to agree in sign with ``expected`` (compare up to sign)."""
    signs = np.sign((actual * expected).sum(axis=0))
    signs[signs == 0] = 1
    return actual * signs


# --------------------------------------------------------------------------- a real browser

CHROMIUM = os.environ.get("PVX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (never a browser Playwright downloads).

    Skipped when either is missing, except in CI, which installs both (``.ci/run``): a skip
    there would hide a failure.
    """
    if os.environ.get("CI"):
        import playwright.sync_api as sync_api

        assert os.path.exists(CHROMIUM), f"CI needs Chromium at {CHROMIUM}"
    else:
        sync_api = pytest.importorskip(
            "playwright.sync_api", reason="browser tests need the Python package playwright"
        )
        if not os.path.exists(CHROMIUM):
            pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        # launch() gives a fresh temporary profile; headless, no sandbox (root in CI)
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every key pvx reads from a store from now on."""
    import pvx._repository

    requested: list[str] = []
    original = pvx._repository.CheckedStore.get

    async def counting_get(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        requested.append(key)
        return await original(self, key, *args, **kwargs)

    monkeypatch.setattr(pvx._repository.CheckedStore, "get", counting_get)
    return requested


def same_personas(da: xr.DataArray, first: xr.DataArray) -> xr.DataArray:
    """``da`` with the persona coordinates (names, attributes) of ``first``: another
    rendering of the same personas, as a store holds them (loading variants that disagree
    on a persona warns)."""
    names = [
        name
        for name, coord in first.coords.items()
        if coord.dims == ("persona",) and name not in ("id", "sample_ids")
    ]
    assert (da["id"].values == first["id"].values).all()
    return da.assign_coords({name: first[name] for name in names})
