"""Publishing a store: one version as a plain, consolidated, read-only Zarr v3 hierarchy
(:func:`publish`, part of :mod:`pvx.store`'s API)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zarr
import zarr.storage

from pvx._report_folder import process_alive
from pvx._repository import Location, StoreError, open_read, write_checksums
from pvx._store_format import case_twins
from pvx._store_read import _catalog, _exists


def publish(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    version: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    out_options: Mapping[str, Any] | None = None,
) -> str:
    """Write one version of a store as a plain, consolidated, read-only Zarr v3 hierarchy.

    The copy is what HTTP servers, the Hugging Face Hub and any Zarr reader serve: open it
    with :func:`open_store` or ``xr.open_datatree(out, engine="zarr")``. A local ``out`` is
    written beside its path and renamed into place. Elsewhere the checksums of the metadata
    (``pvx-checksums.json``) are written last, so pvx refuses a half-written copy with a
    ``StoreError``; delete it before publishing to that URL again. ``out`` must not exist.

    Returns
    -------
    str
        The snapshot id published.
    """
    target = Location.parse(out, out_options or {})
    if target.path is None and target.text.split("://", 1)[0].lower() in ("http", "https"):
        raise StoreError(
            f"cannot publish to {target.text!r}: HTTP servers are read-only here; publish to a "
            "local folder or to object storage (s3://, gs://) and serve that"
        )
    view = open_read(Location.parse(store, storage_options or {}), version)
    catalog = _catalog(view)
    groups = _all_groups(view.root)
    keys = [
        *groups,
        *(f"{path}/{name}" for path in groups for name in view.root[path].array_keys()),
    ]
    twins = case_twins(keys, taken=())
    if twins:  # Zarr's consolidated metadata would lose one of each pair on reading
        clash, key = twins[0]
        raise StoreError(
            f"cannot publish {os.fspath(store)!r}: {clash!r} and {key!r} differ only in "
            "case, which a published copy (and a case-insensitive file system) cannot "
            "tell apart; write one of them under another name first"
        )
    if target.path is not None:
        if target.path.exists():
            raise StoreError(f"{os.fspath(out)!r} exists; publish to a new path")
        source = Location.parse(store, storage_options or {}).path
        if source is not None and source.resolve() in target.path.resolve().parents:
            # the copy would be a folder of the repository: counted in its size, copied
            # along when it is, and gone with it
            raise StoreError(
                f"cannot publish {os.fspath(store)!r} into a folder inside it "
                f"({os.fspath(out)!r}); publish to a path outside the store"
            )
        _remove_abandoned_staging(target.path)
        staging = target.path.with_name(
            f".{target.path.name}.publishing-{socket.gethostname()}-{os.getpid()}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        dest: zarr.abc.store.Store = zarr.storage.LocalStore(staging)
    else:
        dest = zarr.storage.FsspecStore.from_url(
            target.text, storage_options=dict(target.storage_options) or None
        )
        if _exists(dest):
            raise StoreError(f"{target.text!r} exists; publish to a new path")
    try:
        out_root = zarr.create_group(dest, zarr_format=3)
        for path in groups:
            group = view.root[path]
            out_root.create_group(path, attributes=dict(group.attrs))
            for name, array in group.arrays():
                _copy_array(array, out_root, f"{path}/{name}")
        published = {
            "source": view.where,
            "snapshot": view.snapshot,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        out_root.attrs["pvx"] = {**catalog, "published": published}
        with warnings.catch_warnings():
            # Zarr says consolidated metadata is not in the v3 spec yet; it is how every Zarr
            # reader, xarray's included, opens a remote hierarchy in one request.
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            zarr.consolidate_metadata(dest)
        write_checksums(target, staging if target.path is not None else None)
        if target.path is not None:
            os.rename(staging, target.path)
    finally:
        if target.path is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return str(view.snapshot)


def _remove_abandoned_staging(path: Path) -> None:
    """Delete the half-written copies of publishes to ``path`` whose process died."""
    for staging in path.parent.glob(f".{glob.escape(path.name)}.publishing-*-*-*"):
        # only this machine's processes can be checked (a shared disk serves others too)
        host, pid, _ = staging.name.split(".publishing-", 1)[1].rsplit("-", 2)
        if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _all_groups(root: zarr.Group) -> list[str]:
    found = []
    for path in root.attrs["pvx"]["variants"]:
        parts = path.split("/")
        for k in range(1, len(parts) + 1):
            key = "/".join(parts[:k])
            if key not in found:
                found.append(key)
    return found


def _copy_array(array: zarr.Array, out_root: zarr.Group, path: str) -> None:
    meta = array.metadata
    copy = out_root.create_array(
        path,
        shape=array.shape,
        chunks=array.chunks,
        dtype=meta.data_type,
        fill_value=meta.fill_value,
        compressors=array.compressors,
        serializer=array.serializer,
        filters=array.filters,
        dimension_names=meta.dimension_names,
        attributes=dict(array.attrs),
        config={"write_empty_chunks": True},
    )
    if array.ndim == 3:  # vectors: one layer at a time bounds memory
        for layer in range(array.shape[1]):
            copy[:, layer] = array[:, layer]
    else:
        copy[...] = array[...]
