"""The pvx store (DESIGN §3): the only public module that reads and writes stores.

Layout, the same in both forms of a store::

    <store>/                            root attrs: {"pvx": {"format_version", "variants",
                                                            "models"}} (the catalog)
      <model_dir>/                      attrs: {"model": "<original/name>"}
        <mask_strategy>/                attrs: {"mask_strategy": ...}
          <variant>/                    an xarray Dataset: vectors (persona, layer, hidden),
                                        layer, id, name, sample_ids, one array per attribute

Chunks of ``vectors`` hold a block of ``persona_block`` personas for one layer and the full
hidden axis; every chunk of every array ends in a CRC32C checksum.

A *repository* (the writable form) is an Icechunk repository: each write (create a variant,
append personas, set an attribute across variants) is one commit, readers are pinned to the
snapshot they opened, and writers queue (see ``pvx._repository``). A *published* store is a
plain, consolidated, read-only Zarr v3 copy of one snapshot (:func:`publish`), for HTTP
servers and any Zarr reader. Format-1 stores (pvx 0.1's own commit protocol) are converted
by :func:`migrate`.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import unicodedata
import uuid
import warnings
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous
import zarr.storage
from dask.base import tokenize

from pvx._construct import (
    attribute_names,
    attribute_variable,
    decode_sample_ids,
    encode_sample_ids,
    validate_vectors,
)
from pvx._repository import (
    METADATA_KEYS,
    Location,
    ReadView,
    StoreError,
    open_read,
    open_repository,
    run,
    transact,
    write_checksums,
)
from pvx._repository import (
    compact as _compact,
)
from pvx._validate import BASELINE_ID, select_layers

__all__ = [
    "StoreError",
    "append_personas",
    "compact",
    "history",
    "layers",
    "load",
    "mask_strategies",
    "migrate",
    "models",
    "open_store",
    "persona_ids",
    "publish",
    "set_attribute",
    "size_on_disk",
    "variants",
    "write_variant",
]

FORMAT_VERSION = 2
DEFAULT_PERSONA_BLOCK = 64
# Per-persona coordinates are tiny: few chunks keep opening a store a handful of reads, even
# over HTTP; an append rewrites only the last one.
COLUMN_CHUNK = 4096
PARTITION_BYTES = 128 * 2**20
# Chunks equal to the fill value are written too, so a missing chunk always means damage.
_EVERY_CHUNK = {"write_empty_chunks": True}
NAME_LIMIT = 128  # characters: names become file names, which most systems cap at 255 bytes
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
PVX_ARRAYS = ("vectors", "layer", "hidden", "persona", "variant", "id", "name", "sample_ids")
RESERVED_PREFIXES = ("_", ".")

StoreLike = str | os.PathLike | xr.DataTree


# --------------------------------------------------------------------------- reading


def open_store(
    path_or_url: str | os.PathLike, *, version: str | None = None, **storage_options: Any
) -> xr.DataTree:
    """Open a pvx store lazily as a DataTree of ``model/mask_strategy/variant`` nodes.

    Only metadata and the small per-persona coordinates are read; ``vectors`` stay dask
    arrays over the store's chunks. The tree is pinned to one version of the store: it and
    every array taken from it keep returning that version's data, whatever is written later.

    Parameters
    ----------
    path_or_url
        A local path or a URL: ``memory://``, ``s3://``, ``gs://`` repositories, or a
        published store at any fsspec URL (``http(s)://``, ``s3://``, ...).
    version
        A snapshot id from :func:`history` (repositories only); default the latest.
    **storage_options
        Passed to fsspec (published stores) or Icechunk's storage (repositories).

    Returns
    -------
    xarray.DataTree
        Each variant node holds a Dataset with ``vectors`` (dims ``persona, layer, hidden``).
        ``tree.attrs`` has ``source``, ``form`` (``repository`` or ``published``) and
        ``snapshot``, the version read.

    Raises
    ------
    StoreError
        If there is no store at the location, it is not a pvx store, or it is damaged.
    """
    view = open_read(Location.parse(path_or_url, storage_options), version)
    catalog = _catalog(view)
    paths = catalog["variants"]
    nodes: dict[str, xr.Dataset] = {
        "/": xr.Dataset(attrs={"pvx_format_version": catalog["format_version"]})
    }
    for path in paths:
        model_dir, mask, _ = path.split("/")
        for key in (model_dir, f"{model_dir}/{mask}"):
            if key not in nodes:
                nodes[key] = xr.Dataset(attrs=dict(_node(view, key).attrs))
    nodes.update(
        {path: da.to_dataset() for path, da in zip(paths, _read_variants(view, paths), strict=True)}
    )
    tree = xr.DataTree.from_dict(nodes)
    tree.attrs.update(source=str(path_or_url), form=view.form, snapshot=view.snapshot)
    return tree


def load(
    store: StoreLike,
    variants: str | Sequence[str],
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    ids: Sequence[str] | None = None,
    layers: Sequence[int] | int | None = None,
    include_baseline: bool = False,
    version: str | None = None,
    **storage_options: Any,
) -> xr.DataArray:
    """Load persona vectors of one model/mask as one labelled, lazy DataArray.

    Parameters
    ----------
    store
        A path, URL or a tree from :func:`open_store`.
    variants
        One variant name (dims ``persona, layer, hidden``) or several (a leading
        ``variant`` dim; personas and layers are inner-joined by label across variants).
    model, mask_strategy
        May be omitted when the store holds only one.
    ids, layers
        Select personas (by id) and layers (by label) before anything is read. As ``layer=``
        of every analysis: one label drops the ``layer`` dim, a list keeps it.
    include_baseline
        Keep the ``baseline_assistant`` persona (dropped by default).
    version
        A snapshot id (see :func:`open_store`); only with a path or URL.

    Returns
    -------
    xarray.DataArray
        Named ``vectors``, backed by dask until computed, pinned to the version opened.

    Raises
    ------
    StoreError
        For an unknown model, mask strategy, variant or id.
    KeyError
        For an unknown layer label (as ``layer=`` of every analysis).

    Warns
    -----
    UserWarning
        Once, naming the personas and layers dropped by aligning several variants.
    """
    if isinstance(store, xr.DataTree):
        if version is not None or storage_options:
            raise TypeError(
                "load() got an opened tree: it is already pinned to its version; pass version= "
                "and storage options to pvx.open_store(...) instead"
            )
        tree = store
    else:
        tree = open_store(store, version=version, **storage_options)
    names = [variants] if isinstance(variants, str) else list(variants)
    if not names:
        raise StoreError("load() needs at least one variant name")
    mask_node = _mask_node(tree, model, mask_strategy)
    arrays = []
    for name in names:
        if name not in mask_node.children:
            raise StoreError(
                f"variant {name!r} not found for model {mask_node.parent.attrs['model']!r}, "
                f"mask strategy {mask_node.name!r}; available: {sorted(mask_node.children)}"
            )
        da = mask_node[name].to_dataset()["vectors"]
        if not include_baseline:
            da = _drop_ids(da, {BASELINE_ID})
        arrays.append(_select(da, ids=ids, layers=layers, variant=name))
    joined = arrays[0] if len(arrays) == 1 else _join_variants(arrays, names)
    # one label drops the dim, a list keeps it: as da.sel(layer=...) and layer= everywhere
    return joined.squeeze("layer") if layers is not None and np.ndim(layers) == 0 else joined


def models(store: StoreLike) -> list[str]:
    """The models a store holds (their original names, e.g. ``google/gemma-2-9b-it``)."""
    tree = _tree(store)
    return [node.attrs["model"] for node in tree.children.values()]


def mask_strategies(store: StoreLike, *, model: str | None = None) -> list[str]:
    """The mask strategies stored for one model."""
    return list(_model_node(_tree(store), model).children)


def variants(
    store: StoreLike, *, model: str | None = None, mask_strategy: str | None = None
) -> list[str]:
    """The prompt variants stored for one model and mask strategy."""
    return list(_mask_node(_tree(store), model, mask_strategy).children)


def persona_ids(
    store: StoreLike,
    variant: str,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
) -> list[str]:
    """The persona ids of one variant, in stored order (baseline included)."""
    node = _variant_node(_tree(store), variant, model, mask_strategy)
    return [str(i) for i in node["id"].values]


def layers(
    store: StoreLike,
    variant: str,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
) -> list[int]:
    """The layer labels of one variant."""
    node = _variant_node(_tree(store), variant, model, mask_strategy)
    return [int(v) for v in node["layer"].values]


def history(store: str | os.PathLike, **storage_options: Any) -> pd.DataFrame:
    """The versions of a repository, newest first: ``snapshot``, ``written_at``, ``message``.

    Any of them opens with ``open_store(store, version=snapshot)``.
    """
    location = Location.parse(store, storage_options)
    repo = open_repository(location)
    if repo is None:
        raise StoreError(f"{location.text!r} is not a pvx repository; it has no history")
    rows = [(s.id, s.written_at, s.message) for s in repo.ancestry(branch="main")]
    return pd.DataFrame(rows, columns=["snapshot", "written_at", "message"])


# --------------------------------------------------------------------------- writing


def write_variant(
    store: str | os.PathLike,
    da: xr.DataArray,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    variant: str | None = None,
    persona_block: int = DEFAULT_PERSONA_BLOCK,
    **storage_options: Any,
) -> str:
    """Create a variant from labelled vectors (see :func:`pvx.persona_vectors`).

    ``model``, ``mask_strategy`` and ``variant`` default to ``da.attrs`` and the ``variant``
    coordinate. The store is created if absent. Everything is validated before the store
    is touched; the variant appears whole (one commit) or not at all.

    Returns
    -------
    str
        The snapshot id of the new version.

    Raises
    ------
    StoreError
        If the variant exists already (add personas with :func:`append_personas`).
    ValueError, TypeError
        For invalid vectors (dims, dtype, ids, layers, attributes, names, non-finite values).
    """
    da = validate_vectors(da, func="write_variant")
    _require_personas(da, func="write_variant")
    model, mask_strategy, variant = _identity(da, model, mask_strategy, variant)
    _check_attribute_names(attribute_names(da), func="write_variant")
    if not isinstance(persona_block, int) or persona_block < 1:
        raise ValueError(f"persona_block must be a positive integer, got {persona_block!r}")
    columns = _columns(da)
    location = _writable(store, storage_options)

    def change(session_store: zarr.abc.store.Store) -> str:
        root = zarr.open_group(session_store, mode="r+")
        model_dir = _model_dir(root, model)
        path = f"{model_dir}/{mask_strategy}/{variant}"
        if path in root.attrs["pvx"]["variants"]:
            raise StoreError(
                f"variant {variant!r} of {model!r}/{mask_strategy!r} already exists in {store}; "
                "add personas with pvx.append_personas(...)"
            )
        for name, attrs in (
            (model_dir, {"model": model}),
            (f"{model_dir}/{mask_strategy}", {"mask_strategy": mask_strategy}),
        ):
            if name not in root:
                root.create_group(name, attributes=attrs)
        group = root.create_group(
            path,
            attributes={
                "model": model,
                "mask_strategy": mask_strategy,
                "variant": variant,
                "pvx": {"persona_block": persona_block, "columns": list(columns)},
            },
        )
        group.create_array(
            "layer",
            data=da["layer"].values.astype(np.int64),
            dimension_names=["layer"],
            compressors=_compressors(),
            config=_EVERY_CHUNK,
        )
        group.create_array(
            "vectors",
            shape=(0, da.sizes["layer"], da.sizes["hidden"]),
            chunks=(persona_block, 1, da.sizes["hidden"]),
            dtype=da.dtype,
            fill_value=0,
            dimension_names=list(da.dims),
            compressors=_compressors(vectors=True),
            attributes={"coordinates": _coordinates_attr(columns)},
        )
        for name, var in columns.items():
            _create_column(group, name, var)
        run(_append_rows(session_store, path, 0, _encode_rows(da, columns)))
        catalog = root.attrs["pvx"]
        root.attrs["pvx"] = {
            **catalog,
            "variants": [*catalog["variants"], path],
            "models": {**catalog["models"], model_dir: model},
        }
        return f"write_variant {path} ({da.sizes['persona']} personas)"

    return transact(location, change, create=_init_root)


def append_personas(
    store: str | os.PathLike,
    da: xr.DataArray,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    variant: str | None = None,
    **storage_options: Any,
) -> str:
    """Append personas to an existing variant, as one commit; return its snapshot id.

    ``da`` has the variant's layer labels and hidden size and only new ids. Attributes it
    lacks are stored as missing; unknown attributes must first be added with
    :func:`set_attribute`. Validated before anything is written; readers of earlier
    versions keep seeing them unchanged.
    """
    da = validate_vectors(da, func="append_personas")
    _require_personas(da, func="append_personas")
    model, mask_strategy, variant = _identity(da, model, mask_strategy, variant)
    _check_attribute_names(attribute_names(da), func="append_personas")
    location = _writable(store, storage_options)
    key = (
        location.text if location.path is None else str(location.path.absolute()),
        model,
        mask_strategy,
        variant,
    )
    written: dict[str, Any] = {}

    async def change_async(session_store: Any) -> str:
        state = _APPEND_STATES.get(key)
        if state is None or state.snapshot != session_store.session.snapshot_id:
            state = await _read_append_state(session_store, store, key)
        arrays = {
            name: zarr.AsyncArray(
                metadata, zarr.storage.StorePath(session_store, state.path) / name
            )
            for name, metadata in state.metadata.items()
        }
        stored = _Stored(
            hidden=arrays["vectors"].shape[2],
            dtype=arrays["vectors"].dtype,
            n=arrays["vectors"].shape[0],
            layers=state.layers,
            ids=state.ids,
            columns={
                name: dict(metadata.attributes)
                for name, metadata in state.metadata.items()
                if name not in ("vectors", "layer")
            },
        )
        new = _conform(da, stored, func="append_personas")
        rows = _encode_rows(new, _columns(new))
        written.update(
            state=state,
            rows=rows,
            metadata=await _append_rows(
                session_store, state.path, stored.n, rows, arrays, state.tails
            ),
        )
        return f"append_personas {state.path} ({da.sizes['persona']} personas)"

    snapshot = transact(location, lambda session_store: run(change_async(session_store)))
    _APPEND_STATES[key] = written["state"].after(snapshot, written["metadata"], written["rows"])
    return snapshot


@dataclass(frozen=True)
class _AppendState:
    """What an append needs to know of a variant at one snapshot: its arrays' metadata, its
    ids and layers, and the stored values of each column's last chunk. Snapshots never
    change, so the state the last append left is exact for the next one in this process
    while nobody else has committed; it spares re-reading every array's metadata and ids."""

    snapshot: str
    path: str
    metadata: Mapping[str, Any]  # zarr array metadata, by array name
    layers: np.ndarray
    ids: frozenset[str]
    tails: Mapping[str, np.ndarray]  # per-persona arrays: values from their last chunk's start

    def after(
        self, snapshot: str, metadata: Mapping[str, Any], rows: Mapping[str, np.ndarray]
    ) -> _AppendState:
        tails = {}
        for name, tail in self.tails.items():
            values = np.concatenate([tail, rows[name]])
            chunk = metadata[name].chunks[0]
            tails[name] = values[len(values) - metadata[name].shape[0] % chunk :]
        return _AppendState(
            snapshot=snapshot,
            path=self.path,
            metadata={**self.metadata, **metadata},
            layers=self.layers,
            ids=self.ids | frozenset(rows["id"].tolist()),
            tails=tails,
        )


# Last append's state per (store, model, mask strategy, variant) in this process.
_APPEND_STATES: dict[tuple[str, str, str, str], _AppendState] = {}


async def _read_append_state(session_store: Any, store: Any, key: tuple[str, ...]) -> _AppendState:
    root = await zarr.api.asynchronous.open_group(
        store=session_store, mode="r+", use_consolidated=False
    )
    path = _variant_path(root.attrs["pvx"], store, *key[1:])
    group = await root.getitem(path)
    names = ["vectors", "layer", *group.attrs["pvx"]["columns"]]
    arrays = dict(zip(names, await asyncio.gather(*map(group.getitem, names)), strict=True))

    async def tail(name: str) -> np.ndarray:
        n, chunk = arrays[name].shape[0], arrays[name].chunks[0]
        return np.asarray(await arrays[name].getitem(slice(n - n % chunk, n)))

    layer, ids, *tails = await asyncio.gather(
        arrays["layer"].getitem(()), arrays["id"].getitem(()), *map(tail, names[2:])
    )
    return _AppendState(
        snapshot=session_store.session.snapshot_id,
        path=path,
        metadata={name: array.metadata for name, array in arrays.items()},
        layers=np.asarray(layer),
        ids=frozenset(np.asarray(ids).tolist()),
        tails=dict(zip(names[2:], tails, strict=True)),
    )


def set_attribute(
    store: str | os.PathLike,
    name: str,
    values: Mapping[str, Any] | pd.Series,
    *,
    kind: str | None = None,
    order: Sequence[str] | None = None,
    model: str | None = None,
    mask_strategy: str | None = None,
    variants: Sequence[str] | None = None,
    **storage_options: Any,
) -> str:
    """Add or replace a persona attribute in every variant of one model/mask, in one commit.

    Parameters
    ----------
    name
        Attribute name: any text without ``/`` or control characters that does not start
        with ``_`` or ``.`` and is not one of pvx's own names (``id``, ``vectors``, ...).
    values
        Values by persona id. Personas not listed get a missing value.
    kind, order
        As in :func:`pvx.persona_vectors`; inferred from the values when omitted.
    variants
        Restrict to these variants (default: all of the model/mask).

    Returns
    -------
    str
        The snapshot id of the new version.
    """
    _check_attribute_names([name], func="set_attribute")
    values = dict(pd.Series(values).items()) if isinstance(values, pd.Series) else dict(values)
    # One kind for every variant, from all the values (errors before anything is written)
    kind = attribute_variable(list(values.values()), kind=kind, order=order).attrs["kind"]
    location = _writable(store, storage_options)
    tree = open_store(store, **storage_options)
    mask_node = _mask_node(tree, model, mask_strategy)
    model_name, mask = mask_node.parent.attrs["model"], str(mask_node.name)
    targets = list(mask_node.children) if variants is None else list(variants)
    for target in targets:
        _variant_node(tree, target, model_name, mask)

    def change(session_store: zarr.abc.store.Store) -> str:
        root = zarr.open_group(session_store, mode="r+")
        known: set[str] = set()
        planned = []
        for target in targets:
            group = root[_variant_path(root.attrs["pvx"], store, model_name, mask, target)]
            ids = [str(i) for i in group["id"][:]]
            known.update(ids)
            planned.append(
                (group, attribute_variable([values.get(i) for i in ids], kind=kind, order=order))
            )
        unknown = sorted(set(values) - known)
        if unknown:
            raise StoreError(f"set_attribute(): ids {unknown[:10]!r} are in none of {targets!r}")
        for group, var in planned:
            if name in group:
                del group[name]
            column = _create_column(group, name, var)
            column.resize((var.size,))
            column[:] = _encode(var.values, var.attrs["kind"])
            meta = group.attrs["pvx"]
            columns = [*(c for c in meta["columns"] if c != name), name]
            group.attrs["pvx"] = {**meta, "columns": columns}
            group["vectors"].attrs["coordinates"] = _coordinates_attr(columns)
        return f"set_attribute {name!r} on {mask_node.parent.name}/{mask} {targets}"

    return transact(location, change)


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
    view = open_read(Location.parse(store, storage_options or {}), version)
    catalog = _catalog(view)
    target = Location.parse(out, out_options or {})
    if target.path is not None:
        if target.path.exists():
            raise StoreError(f"{os.fspath(out)!r} exists; publish to a new path")
        staging = target.path.with_name(f".{target.path.name}.publishing-{uuid.uuid4().hex[:8]}")
        dest: zarr.abc.store.Store = zarr.storage.LocalStore(staging)
    else:
        dest = zarr.storage.FsspecStore.from_url(
            target.text, storage_options=dict(target.storage_options) or None
        )
        if _exists(dest):
            raise StoreError(f"{target.text!r} exists; publish to a new path")
    try:
        out_root = zarr.create_group(dest, zarr_format=3)
        for path in _all_groups(view.root):
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


def migrate(old: str | os.PathLike, new: str | os.PathLike) -> list[str]:
    """Convert a format-1 store (pvx 0.1) into a new repository; return the variant paths.

    The old store is only read. Each variant is copied in blocks of personas, ids, names,
    provenance and attributes included.
    """
    from pvx import _legacy

    location = Location.parse(old, {})
    if location.path is None or not location.path.exists():
        raise StoreError(f"no store at {os.fspath(old)!r}")
    if Location.parse(new, {}).path is not None and Path(new).exists():
        raise StoreError(f"{os.fspath(new)!r} exists; migrate into a new path")
    done = []
    for path, da in _legacy.read_variants(location.path):
        block = int(da.attrs.pop("persona_block", DEFAULT_PERSONA_BLOCK))
        step = max(block, 4 * 1024**3 // max(1, da[0].nbytes) // 16)  # ~256 MB per commit
        for start in range(0, da.sizes["persona"], step):
            part = da.isel(persona=slice(start, start + step)).compute()
            if start == 0:
                write_variant(new, part, persona_block=block)
            else:
                append_personas(new, part)
        done.append(path)
    return done


def compact(
    store: str | os.PathLike, *, keep: timedelta = timedelta(days=7), **storage_options: Any
) -> int:
    """Delete versions older than ``keep`` and the chunks only they used; return bytes freed.

    Each append rewrites the last persona block of every layer as a new chunk, and every
    version stays readable (pinned readers, :func:`history`) until compacted. Readers still
    holding a version older than ``keep`` fail with a ``StoreError`` after this.
    """
    location = Location.parse(store, storage_options)
    return _compact(location, datetime.now(UTC) - keep)


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes used by a local store."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# --------------------------------------------------------------------------- internals


def _catalog(view: ReadView) -> dict[str, Any]:
    info = view.root.attrs.get("pvx")
    if not isinstance(info, dict) or "variants" not in info:
        raise StoreError(f"{view.where!r} is a Zarr store but not a pvx store")
    found = info.get("format_version", 0)
    if found == 1:
        raise StoreError(
            f"{view.where!r} uses pvx's format 1, which has no transactions; convert it with "
            "`pvx migrate OLD NEW` (or pvx.store.migrate) and use the new store"
        )
    if found > FORMAT_VERSION:
        raise StoreError(
            f"{view.where!r} has pvx format {found}; this pvx reads up to {FORMAT_VERSION}: "
            "upgrade pvx"
        )
    return dict(info)


def _node(view: ReadView, path: str) -> Any:
    try:
        return view.root[path]
    except KeyError:
        raise StoreError(
            f"{view.where!r}: group {path!r} is in the catalog but missing; the store is "
            "damaged: restore it from a copy"
        ) from None


def _read_variants(view: ReadView, paths: Sequence[str]) -> list[xr.DataArray]:
    """Variants as lazy DataArrays; their coordinates are read eagerly, all at once."""
    plans = []
    for path in paths:
        group = _node(view, path)
        names = ["vectors", "layer", *group.attrs["pvx"]["columns"]]
        arrays = dict(zip(names, _open_arrays(view, group, path, names), strict=True))
        columns = {name: arrays[name] for name in names[2:]}
        plans.append((path, group, arrays["vectors"], arrays["layer"], columns))
    reads = [a for *_, layer, columns in plans for a in (layer, *columns.values())]
    # Concurrent reads: one round of requests for all coordinates of all variants.
    with ThreadPoolExecutor(max_workers=16) as pool:
        values = iter(list(pool.map(lambda a: a[...], reads)))
    result = []
    for path, group, vectors, _, columns in plans:
        n = vectors.shape[0]
        coords: dict[Hashable, Any] = {"layer": ("layer", next(values))}
        for name, array in columns.items():
            raw = next(values)
            if raw.shape != (n,):
                raise StoreError(
                    f"{view.where!r}: {path}/{name} has {raw.shape[0]} rows for {n} personas; "
                    "the store is damaged: restore it from a copy"
                )
            coords[name] = _decode(name, raw, dict(array.attrs))
        data = dask.array.from_zarr(
            vectors,
            chunks=_partitions(vectors),
            name=f"pvx-vectors-{tokenize(view.where, view.snapshot, path, vectors.shape)}",
        )
        attrs = group.attrs
        da = xr.DataArray(
            data,
            dims=("persona", "layer", "hidden"),
            coords=coords,
            name="vectors",
            attrs={"model": attrs["model"], "mask_strategy": attrs["mask_strategy"]},
        )
        da.encoding = {
            "chunks": vectors.chunks,
            "preferred_chunks": dict(zip(da.dims, vectors.chunks, strict=True)),
        }
        variant = np.array(attrs["variant"], dtype=object)  # object: Zarr's string type
        result.append(da.assign_coords(variant=variant).set_xindex("id"))
    return result


def _partitions(vectors: zarr.Array) -> tuple[int, int, int]:
    """Dask chunks of a variant: whole stored blocks of one layer, grouped up to
    PARTITION_BYTES. A task per stored chunk costs more in scheduling and zarr calls than
    reading it (2.2x a raw read on the M store); slices of a partition still read only the
    blocks they touch (dask fuses them into the read)."""
    block, _, hidden = vectors.chunks
    n_blocks = max(1, -(-vectors.shape[0] // block))
    per_block = block * hidden * vectors.dtype.itemsize
    return (block * max(1, min(n_blocks, PARTITION_BYTES // per_block)), 1, hidden)


def _open_arrays(view: ReadView, group: zarr.Group, path: str, names: list[str]) -> list[Any]:
    def one(name: str) -> Any:
        try:
            return group[name]
        except KeyError:
            raise StoreError(
                f"{view.where!r}: array {path}/{name} is missing; the store is damaged: "
                "restore it from a copy"
            ) from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, names))


def _init_root(root: zarr.Group) -> None:
    root.attrs["pvx"] = {"format_version": FORMAT_VERSION, "variants": [], "models": {}}


def _writable(store: Any, storage_options: Mapping[str, Any]) -> Location:
    if isinstance(store, xr.DataTree):
        raise TypeError("writes need the store's path or URL, not an opened tree")
    location = Location.parse(store, storage_options)
    if location.path is not None and (location.path / "zarr.json").exists():
        view = open_read(location)
        version = view.root.attrs.get("pvx", {}).get("format_version")
        if version == 1:
            _catalog(view)  # raises with the migration hint
        raise StoreError(
            f"{location.text!r} is a published (read-only) store or not a pvx store; write to "
            "the repository it was published from"
        )
    return location


def _variant_path(
    catalog: Mapping[str, Any], where: Any, model: str, mask: str, variant: str
) -> str:
    for path in catalog["variants"]:
        model_dir, stored_mask, stored_variant = path.split("/")
        if (stored_mask, stored_variant) == (mask, variant) and catalog["models"].get(
            model_dir
        ) == model:
            return str(path)
    raise StoreError(
        f"variant {variant!r} of {model!r}/{mask!r} is not in {os.fspath(where)!r}; "
        "create it with pvx.write_variant(...)"
    )


@dataclass(frozen=True)
class _Stored:
    """What an append is checked against: the variant as committed."""

    hidden: int
    dtype: np.dtype
    n: int
    layers: np.ndarray
    ids: frozenset[str]
    columns: Mapping[str, Mapping[str, Any]]  # persona arrays' attrs, by name


def _encode_rows(da: xr.DataArray, columns: Mapping[str, xr.Variable]) -> dict[str, np.ndarray]:
    rows = {"vectors": np.asarray(da.data)}
    for name, var in columns.items():
        rows[name] = _encode(var.values, var.attrs.get("kind", name))
    return rows


async def _append_rows(
    store: zarr.abc.store.Store,
    path: str,
    n: int,
    rows: Mapping[str, np.ndarray],
    arrays: Mapping[str, Any] | None = None,
    tails: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write rows after the ``n`` stored ones, all arrays at once; return the arrays' new
    metadata. The last partial chunk is written as a new chunk version; earlier versions
    keep theirs. Where ``tails`` holds an array's stored values from its last chunk's start,
    that chunk is written whole instead of read back first."""
    if arrays is None:
        group = await zarr.api.asynchronous.open_group(store=store, path=path, mode="r+")
        arrays = {name: array async for name, array in group.arrays()}
    tails = tails or {}

    async def write(name: str, values: np.ndarray) -> tuple[str, Any]:
        array = arrays[name].with_config(_EVERY_CHUNK)
        await array.resize((n + len(values), *array.shape[1:]))
        if name in tails:  # the whole last chunk: zarr then writes it without reading it
            await array.setitem(
                slice(n - len(tails[name]), None), np.concatenate([tails[name], values])
            )
        else:
            await array.setitem(slice(n, None), values)
        return name, array.metadata

    return dict(await asyncio.gather(*(write(name, values) for name, values in rows.items())))


def _columns(da: xr.DataArray) -> dict[str, xr.Variable]:
    """The per-persona coordinates to store, by name (id, name, provenance, attributes)."""
    columns = {"id": da["id"].variable.to_base_variable()}
    columns["name"] = (da["name"] if "name" in da.coords else da["id"]).variable.to_base_variable()
    if "sample_ids" in da.coords:
        columns["sample_ids"] = da["sample_ids"].variable
    for key in attribute_names(da):
        columns[str(key)] = da[key].variable
    return columns


def _coordinates_attr(names: Any) -> str:
    # xarray's CF decoding reads this space-separated list; names with spaces stay variables.
    return " ".join(str(n) for n in names if not any(c.isspace() for c in str(n)))


def _compressors(*, vectors: bool = False) -> tuple[Any, ...]:
    # Byte-shuffled zstd packs float activations better than plain zstd; the CRC32C last
    # makes every damaged chunk detectable (see pvx._repository.CheckedStore).
    first = (
        zarr.codecs.BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
        if vectors
        else zarr.codecs.ZstdCodec(level=3)
    )
    return (first, zarr.codecs.Crc32cCodec())


def _create_column(group: zarr.Group, name: str, var: xr.Variable) -> zarr.Array:
    numeric = var.attrs.get("kind") == "numeric"
    return group.create_array(
        name,
        shape=(0,),
        chunks=(COLUMN_CHUNK,),
        dtype="float64" if numeric else str,
        fill_value=np.nan if numeric else "",
        dimension_names=["persona"],
        attributes={k: v for k, v in var.attrs.items() if k in ("kind", "order")},
        compressors=_compressors(),
        config=_EVERY_CHUNK,
    )


def _encode(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "numeric":
        return np.asarray(values, dtype="float64")
    if kind == "sample_ids":
        return encode_sample_ids(values)
    # Labels are strings; missing ones are stored as "" (the string type has no NaN).
    return np.array(["" if _is_missing(v) else str(v) for v in values], dtype=object)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _decode(name: str, raw: np.ndarray, attrs: dict[str, Any]) -> xr.Variable:
    if name == "sample_ids":
        return xr.Variable("persona", decode_sample_ids(raw))
    if attrs.get("kind") == "numeric":
        return xr.Variable("persona", np.asarray(raw, dtype=float), attrs)
    values = np.asarray(raw, dtype=object)
    if "kind" in attrs:
        values = np.array([v if v else np.nan for v in values], dtype=object)
    return xr.Variable("persona", values, attrs)


def _require_personas(da: xr.DataArray, *, func: str) -> None:
    if da.sizes["persona"] == 0:
        raise ValueError(f"{func}() got no personas; pass at least one")


def _check_attribute_names(names: Sequence[Hashable], *, func: str) -> None:
    """Refuse attribute names that would clash with pvx's arrays or break a Zarr path."""
    for name in names:
        problem = _name_problem(name)
        if problem:
            raise ValueError(f"{func}(): attribute name {name!r} {problem}; try {_suggest(name)!r}")


def _name_problem(name: Hashable) -> str | None:
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name.strip():
        return "is empty"
    if "/" in name:
        return "contains '/' (a path separator in the store)"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        return "contains control characters"
    if name.startswith(RESERVED_PREFIXES):
        return f"starts with {name[0]!r}, which pvx and Zarr reserve"
    if name in PVX_ARRAYS:
        return "is reserved: pvx stores its own data under that name"
    if name in METADATA_KEYS:
        return "is the name of Zarr's metadata files"
    if len(name) > NAME_LIMIT:
        return f"is longer than {NAME_LIMIT} characters"
    return None


def _suggest(name: Hashable) -> str:
    text = "".join(
        "_" if c == "/" or unicodedata.category(c) in ("Cc", "Cf") else c for c in str(name)
    )
    text = text.lstrip("_.").strip()[:NAME_LIMIT] or "attribute"
    return f"{text}_attr" if text in PVX_ARRAYS or text in METADATA_KEYS else text


def _identity(
    da: xr.DataArray, model: str | None, mask: str | None, variant: str | None
) -> tuple[str, str, str]:
    model = model or da.attrs.get("model")
    mask = mask or da.attrs.get("mask_strategy")
    if variant is None and "variant" in da.coords and da["variant"].ndim == 0:
        variant = str(da["variant"].values)
    missing = [
        k for k, v in (("model", model), ("mask_strategy", mask), ("variant", variant)) if not v
    ]
    if missing:
        raise ValueError(
            f"which {', '.join(missing)}? pass {missing[0]}=... or set it on the array "
            "(pvx.persona_vectors(..., model=, mask_strategy=, variant=))"
        )
    if not isinstance(model, str) or any(unicodedata.category(c) == "Cc" for c in model):
        raise ValueError(f"model {model!r} must be text without control characters")
    for what, value in (("mask_strategy", mask), ("variant", variant)):
        if (
            not isinstance(value, str)
            or not _SAFE_NAME.fullmatch(value)
            or value in METADATA_KEYS
            or len(value) > NAME_LIMIT
        ):
            suggestion = re.sub(r"[^A-Za-z0-9._+=-]+", "-", str(value)).strip("._+=-") or what
            suggestion = f"{suggestion[:NAME_LIMIT]}{'_' if suggestion in METADATA_KEYS else ''}"
            raise ValueError(
                f"{what} {value!r} must be a plain name of at most {NAME_LIMIT} characters "
                "(letters, digits, '._+=-', not starting with a punctuation mark, not "
                f"'zarr.json'); try {suggestion!r}"
            )
    return str(model), str(mask), str(variant)


def _model_dir(root: zarr.Group, model: str) -> str:
    """A group name for a model: a safe rendering of its name, never parsed back."""
    models = root.attrs["pvx"]["models"]
    for model_dir, name in models.items():
        if name == model:
            return str(model_dir)
    base = re.sub(r"[^A-Za-z0-9._+=-]+", "--", model).strip("._+=-")[:NAME_LIMIT] or "model"
    if base in METADATA_KEYS:
        base = "model"
    candidate, k = base, 1
    while candidate in models or candidate in root:
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def _conform(da: xr.DataArray, stored: _Stored, *, func: str) -> xr.DataArray:
    """Check new personas against a stored variant; return them in its layout."""
    hidden, stored_dtype = stored.hidden, stored.dtype
    if da.sizes["hidden"] != hidden:
        raise ValueError(
            f"{func}(): hidden size {da.sizes['hidden']} does not match the variant's {hidden}"
        )
    new_layers, old_layers = da["layer"].values, stored.layers
    if set(new_layers.tolist()) != set(old_layers.tolist()):
        raise ValueError(
            f"{func}(): layer labels {new_layers.tolist()} do not match the variant's "
            f"{old_layers.tolist()}"
        )
    da = da.sel(layer=old_layers)
    clash = sorted(set(da["id"].values.tolist()) & stored.ids)
    if clash:
        raise ValueError(
            f"{func}(): ids {clash[:10]!r} are already in the variant; ids must be new"
        )
    column_attrs = stored.columns
    stored_attrs = {k: a for k, a in column_attrs.items() if "kind" in a}
    unknown = sorted(str(k) for k in attribute_names(da) if str(k) not in stored_attrs)
    if unknown:
        raise ValueError(
            f"{func}(): attributes {unknown!r} are not in the variant; add them first with "
            "pvx.set_attribute(...)"
        )
    extra: dict[Hashable, Any] = {}
    for key, attrs in stored_attrs.items():
        kind = attrs["kind"]
        if key in da.coords:
            if da[key].attrs.get("kind") != kind:
                raise ValueError(
                    f"{func}(): attribute {key!r} is {da[key].attrs.get('kind')!r} here but "
                    f"{kind!r} in the variant"
                )
            unknown_values = (
                sorted({v for v in da[key].values if isinstance(v, str)} - set(attrs["order"]))
                if kind == "ordinal"
                else []
            )
            if unknown_values:
                raise ValueError(
                    f"{func}(): values {unknown_values!r} of ordinal attribute {key!r} are not "
                    f"in its stored order {attrs['order']!r}; update it with "
                    "pvx.set_attribute(...)"
                )
        else:
            extra[key] = attribute_variable(
                [None] * da.sizes["persona"], kind=kind, order=attrs.get("order")
            )
    if "sample_ids" in column_attrs and "sample_ids" not in da.coords:
        extra["sample_ids"] = ("persona", decode_sample_ids([""] * da.sizes["persona"]))
    da = da.assign_coords(extra)
    if "sample_ids" in da.coords and "sample_ids" not in column_attrs:
        da = da.drop_vars("sample_ids")
    if da.dtype != stored_dtype:
        with np.errstate(over="ignore"):  # overflow is reported below, with the fix
            cast = da.astype(stored_dtype).compute()
        if not np.isfinite(np.asarray(cast.data, dtype=np.float32)).all():
            raise ValueError(
                f"{func}(): values overflow the variant's {stored_dtype}; scale them or store "
                "float32"
            )
        da = cast
    return da


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


def _exists(store: zarr.abc.store.Store) -> bool:
    try:
        zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return False
    return True


def _tree(store: StoreLike) -> xr.DataTree:
    return store if isinstance(store, xr.DataTree) else open_store(store)


def _model_node(tree: xr.DataTree, model: str | None) -> xr.DataTree:
    nodes = dict(tree.children)
    if not nodes:
        raise StoreError("the store holds no variants yet; write one with pvx.write_variant(...)")
    if model is None:
        if len(nodes) != 1:
            raise StoreError(
                f"the store holds {len(nodes)} models; pass model= one of "
                f"{[n.attrs['model'] for n in nodes.values()]}"
            )
        return next(iter(nodes.values()))
    for key, node in nodes.items():
        if model in (node.attrs["model"], key):
            return node
    raise StoreError(
        f"model {model!r} not in the store; available: {[n.attrs['model'] for n in nodes.values()]}"
    )


def _mask_node(tree: xr.DataTree, model: str | None, mask: str | None) -> xr.DataTree:
    model_node = _model_node(tree, model)
    if mask is None:
        if len(model_node.children) != 1:
            raise StoreError(
                f"model {model_node.attrs['model']!r} has mask strategies "
                f"{sorted(model_node.children)}; pass mask_strategy="
            )
        return next(iter(model_node.children.values()))
    if mask not in model_node.children:
        raise StoreError(
            f"mask strategy {mask!r} not stored for model {model_node.attrs['model']!r}; "
            f"available: {sorted(model_node.children)}"
        )
    return model_node[mask]


def _variant_node(
    tree: xr.DataTree, variant: str, model: str | None, mask: str | None
) -> xr.DataTree:
    mask_node = _mask_node(tree, model, mask)
    if variant not in mask_node.children:
        raise StoreError(f"variant {variant!r} not found; available: {sorted(mask_node.children)}")
    return mask_node[variant]


def _select(
    da: xr.DataArray,
    *,
    ids: Sequence[str] | None,
    layers: Sequence[int] | int | None,
    variant: str,
) -> xr.DataArray:
    if ids is not None:
        ids = [ids] if isinstance(ids, str) else list(ids)
        if not ids:
            raise StoreError("ids= is empty; pass at least one persona id, or ids=None for all")
        repeated = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
        if repeated:
            raise StoreError(f"ids {repeated[:10]!r} are repeated in ids=; list each id once")
        missing = sorted(set(ids) - set(da["id"].values.tolist()))
        if missing:
            raise StoreError(f"ids {missing[:10]!r} are not in variant {variant!r}")
        da = _take(da, pd.Index(da["id"].values).get_indexer(ids))
    if layers is not None:
        # the rule of every analysis's layer= (same errors); the dim is kept until the
        # variants are joined, then dropped for one label (see load)
        wanted = [layers] if np.ndim(layers) == 0 else list(layers)  # type: ignore[arg-type]
        da = select_layers(da, wanted, func="load")
    return da


def _drop_ids(da: xr.DataArray, ids: set[str]) -> xr.DataArray:
    """Drop personas by id with slices, so the kept runs keep the store's chunks (a
    boolean selection would re-chunk the whole persona axis)."""
    keep = ~np.isin(np.asarray(da["id"].values, dtype=object), list(ids))
    if keep.all():
        return da
    return _runs(da, keep)


def _runs(da: xr.DataArray, keep: np.ndarray) -> xr.DataArray:
    """``da`` where ``keep``, as slices of contiguous rows: each slice reads only the stored
    blocks it touches (a fancy index would read every block of its partition)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    runs = [da.isel(persona=slice(a, b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    if len(runs) == 1:
        return runs[0]
    return xr.concat(runs, "persona", coords="minimal", compat="override", join="override")


def _take(da: xr.DataArray, positions: np.ndarray) -> xr.DataArray:
    """Rows at ``positions`` in that order, read as contiguous runs."""
    keep = np.zeros(da.sizes["persona"], dtype=bool)
    keep[positions] = True
    picked = _runs(da, keep)
    order = np.argsort(np.argsort(positions))  # rank of each wanted row among the kept ones
    return picked if np.array_equal(order, np.arange(len(order))) else picked.isel(persona=order)


def _join_variants(arrays: list[xr.DataArray], names: list[str]) -> xr.DataArray:
    aligned = xr.align(*arrays, join="inner")
    kept_ids = set(aligned[0]["id"].values.tolist())
    kept_layers = set(aligned[0]["layer"].values.tolist())
    dropped_ids = sorted({i for a in arrays for i in a["id"].values.tolist()} - kept_ids)
    dropped_layers = sorted({v for a in arrays for v in a["layer"].values.tolist()} - kept_layers)
    if dropped_ids or dropped_layers:
        parts = []
        if dropped_ids:
            shown = ", ".join(map(repr, dropped_ids[:20])) + (
                " ..." if len(dropped_ids) > 20 else ""
            )
            parts.append(f"{len(dropped_ids)} persona(s) missing from some variant: {shown}")
        if dropped_layers:
            parts.append(
                f"{len(dropped_layers)} layer(s) missing from some variant: {dropped_layers}"
            )
        warnings.warn(
            f"aligning variants {names} dropped " + "; ".join(parts), UserWarning, stacklevel=3
        )
    # Persona attributes describe the persona, not the rendering: take the first variant's.
    # Provenance is per rendering: keep each variant's sample ids.
    provenance = [a["sample_ids"].values for a in aligned if "sample_ids" in a.coords]
    joined = xr.concat(
        [a.drop_vars(["variant", "sample_ids"], errors="ignore") for a in aligned],
        dim=pd.Index(names, dtype=object, name="variant"),  # object: Zarr-specified strings
        coords="minimal",
        compat="override",
        join="override",
    )
    if len(provenance) == len(aligned):
        stacked = np.empty((len(names), joined.sizes["persona"]), dtype=object)
        for i, values in enumerate(provenance):
            stacked[i, :] = values
        joined = joined.assign_coords(sample_ids=(("variant", "persona"), stacked))
    return joined
