"""Reader for format-1 stores (pvx 0.1's own commit protocol), used only by ``pvx migrate``.

A format-1 variant group's ``zarr.json`` carries consolidated metadata and a commit record
``attrs["pvx"]``: ``n_main`` rows in the main arrays, ``n_tail`` rows in the tail group named
by ``tail``, and ``columns`` mapping coordinate names to stored array names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dask.array
import numpy as np
import xarray as xr
import zarr
import zarr.storage

from pvx._repository import StoreError


def read_variants(path: Path) -> Iterator[tuple[str, xr.DataArray]]:
    """Each committed variant of a format-1 store as a lazy DataArray (ids, names,
    provenance and attributes as stored); ``attrs["persona_block"]`` carries its block."""
    from pvx._store_format import _decode

    store = zarr.storage.LocalStore(path, read_only=True)
    try:
        root = zarr.open_group(store, mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        if (path / "snapshots").is_dir() and (path / "refs").is_dir():  # Icechunk's layout
            raise StoreError(
                f"{str(path)!r} is a current pvx store already (a repository); nothing to migrate"
            ) from None
        raise StoreError(f"no Zarr store at {str(path)!r}") from None
    info = root.attrs.get("pvx", {})
    if info.get("format_version") != 1:
        raise StoreError(f"{str(path)!r} is not a format-1 pvx store")
    for variant_path in info["variants"]:
        group = zarr.open_group(store, path=variant_path, mode="r", use_consolidated=True)
        meta = group.attrs["pvx"]
        parts = [(group, meta["n_main"]), (group[meta["tail"]], meta["n_tail"])]
        coords: dict = {"layer": ("layer", group["layer"][:])}
        for name, stored in meta["columns"].items():
            raw = np.concatenate([g[stored][:n] for g, n in parts])
            coords[name] = _decode(name, raw, dict(group[stored].attrs))
        vectors = dask.array.concatenate([dask.array.from_zarr(g["vectors"])[:n] for g, n in parts])
        da = xr.DataArray(
            vectors,
            dims=("persona", "layer", "hidden"),
            coords=coords,
            name="vectors",
            attrs={
                "model": meta["model"],
                "mask_strategy": meta["mask_strategy"],
                "persona_block": meta["persona_block"],
            },
        )
        da = da.assign_coords(variant=np.array(meta["variant"], dtype=object))
        yield variant_path, da.set_xindex("id")
