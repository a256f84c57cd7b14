"""The pvx Zarr v3 store: the only module that touches Zarr (DESIGN §3).

Layout::

    <store>/                            root attrs: {"pvx": {"format_version", "variants",
                                                            "models"}} (the catalog)
      <model_dir>/                      attrs: {"model": "<original/name>"}
        <mask_strategy>/                attrs: {"mask_strategy": ...}
          <variant>/                    vectors (persona, layer, hidden), layer, id, name, ...
            _tail/                      the same columns, one persona per chunk (the commit
                                        record names the current tail group)

Chunks of ``vectors`` hold a block of ``persona_block`` personas for one layer and the full
hidden axis. Appends never rewrite stored vector chunks: new personas go to the tail (one
persona per chunk) until a whole block is there, which then moves to the main arrays as new
chunks. Per-persona coordinates (ids, names, attributes, provenance) sit in a few large
chunks; writes only extend them, so committed values never change.

Every write follows one protocol: write vector chunks only outside the committed region (or
into new arrays), then commit by rewriting the variant group's ``zarr.json`` once. That file
holds the consolidated metadata of the variant's subtree (shapes included) and the commit
record, so a reader sees the variant before or after a write and a killed writer leaves
only invisible leftovers, which the next write clears. One writer at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous
import zarr.storage
from zarr.core.group import ConsolidatedMetadata, GroupMetadata
from zarr.core.metadata.io import save_metadata
from zarr.core.sync import sync

from pvx._construct import (
    PERSONA_COORDS,
    attribute_names,
    attribute_variable,
    decode_sample_ids,
    encode_sample_ids,
    validate_vectors,
)
from pvx._validate import BASELINE_ID

FORMAT_VERSION = 1
DEFAULT_PERSONA_BLOCK = 64
# Per-persona coordinates are tiny: few large chunks keep opening a store a handful of reads,
# even over HTTP. Writes only ever extend their last chunk, so committed values never change.
COLUMN_CHUNK = 4096
TAIL = "_tail"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_RESERVED = {"vectors", "layer", "hidden", "persona", "variant", *PERSONA_COORDS}

StoreLike = str | os.PathLike | xr.DataTree


class StoreError(ValueError):
    """A store is missing, malformed, or does not hold what was asked for."""


# --------------------------------------------------------------------------- reading


def open_store(path_or_url: str | os.PathLike, **storage_options: Any) -> xr.DataTree:
    """Open a pvx store lazily as a DataTree of ``model/mask_strategy/variant`` nodes.

    Only metadata and the small per-persona coordinates are read; ``vectors`` stay dask
    arrays over the store's chunks.

    Parameters
    ----------
    path_or_url
        A local path or any fsspec URL (``http(s)://``, ``s3://``, ``gs://``, ``memory://``).
    **storage_options
        Passed to fsspec, e.g. ``anon=True`` for public S3 buckets.

    Returns
    -------
    xarray.DataTree
        Each variant node holds a Dataset with ``vectors`` (dims ``persona, layer, hidden``).

    Raises
    ------
    StoreError
        If there is no store at the location or it is not a pvx store.
    """
    store = _zarr_store(path_or_url, storage_options, read_only=True)
    root = _open_root(store, path_or_url)
    nodes: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs={"pvx_format_version": FORMAT_VERSION})}
    paths = root.attrs["pvx"]["variants"]
    for path in paths:
        model_dir, mask, _ = path.split("/")
        for key in (model_dir, f"{model_dir}/{mask}"):
            if key not in nodes:
                nodes[key] = xr.Dataset(attrs=dict(root[key].attrs))
    opened = sync(
        _gather(
            *(
                zarr.api.asynchronous.open_group(store, path=path, mode="r", use_consolidated=True)
                for path in paths
            )
        )
    )
    arrays = _read_variants([zarr.Group(g) for g in opened])
    nodes.update({path: da.to_dataset() for path, da in zip(paths, arrays, strict=True)})
    tree = xr.DataTree.from_dict(nodes)
    tree.attrs["source"] = str(path_or_url)
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
        Select personas (by id) and layers (by label) before anything is read.
    include_baseline
        Keep the ``baseline_assistant`` persona (dropped by default).

    Returns
    -------
    xarray.DataArray
        Named ``vectors``, backed by dask until computed.

    Raises
    ------
    StoreError
        For an unknown model, mask strategy, variant, id or layer.

    Warns
    -----
    UserWarning
        Once, naming the personas and layers dropped by aligning several variants.
    """
    tree = store if isinstance(store, xr.DataTree) else open_store(store, **storage_options)
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
    if len(arrays) == 1:
        return arrays[0]
    return _join_variants(arrays, names)


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
) -> None:
    """Create a variant from labelled vectors (see :func:`pvx.persona_vectors`).

    ``model``, ``mask_strategy`` and ``variant`` default to ``da.attrs`` and the ``variant``
    coordinate. The store is created if absent. Everything is validated before the store
    is touched; the variant appears whole or not at all.

    Raises
    ------
    StoreError
        If the variant exists already (add personas with :func:`append_personas`).
    ValueError, TypeError
        For invalid vectors (dims, dtype, ids, layers, attributes, non-finite values).
    """
    da = validate_vectors(da, func="write_variant")
    model, mask_strategy, variant = _identity(da, model, mask_strategy, variant)
    if persona_block < 1:
        raise ValueError(f"persona_block must be a positive integer, got {persona_block!r}")
    zstore = _zarr_store(store, storage_options, read_only=False)
    root = _open_or_create_root(zstore, store)
    model_dir = _model_dir(root, model)
    path = f"{model_dir}/{mask_strategy}/{variant}"
    if path in root.attrs["pvx"]["variants"]:
        raise StoreError(
            f"variant {variant!r} of {model!r}/{mask_strategy!r} already exists in {store}; "
            "add personas with pvx.append_personas(...)"
        )
    if path in root:  # leftover of a writer killed before it registered the variant
        del root[path]
    for name, attrs in (
        (model_dir, {"model": model}),
        (f"{model_dir}/{mask_strategy}", {"mask_strategy": mask_strategy}),
    ):
        if name not in root:
            root.create_group(name, attributes=attrs)
    group = root.create_group(path)
    columns = _columns(da)
    created: list[zarr.Array | zarr.Group] = [tail := group.create_group(TAIL)]
    for sub, block, column_chunk in (
        (group, persona_block, COLUMN_CHUNK),
        (tail, 1, persona_block),
    ):
        created += _create_arrays(sub, da, columns, block, column_chunk)
    meta = {
        "model": model,
        "mask_strategy": mask_strategy,
        "variant": variant,
        "persona_block": persona_block,
        "n_main": 0,
        "n_tail": 0,
        "tail": TAIL,
        "columns": {name: name for name in columns},
    }
    _append_rows(group, meta, da, columns, created=created)
    catalog = root.attrs["pvx"]
    root.attrs["pvx"] = {
        **catalog,
        "variants": [*catalog["variants"], path],
        "models": {**catalog.get("models", {}), model_dir: model},
    }


def append_personas(
    store: str | os.PathLike,
    da: xr.DataArray,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    variant: str | None = None,
    **storage_options: Any,
) -> None:
    """Append personas to an existing variant without rewriting any stored chunk.

    ``da`` has the variant's layer labels and hidden size and only new ids. Attributes it
    lacks are stored as missing; unknown attributes must first be added with
    :func:`set_attribute`. Validated before the store is touched; a killed append leaves the
    variant as it was.
    """
    da = validate_vectors(da, func="append_personas")
    model, mask_strategy, variant = _identity(da, model, mask_strategy, variant)
    zstore = _zarr_store(store, storage_options, read_only=False)
    group, meta = _open_variant_for_write(zstore, store, model, mask_strategy, variant)
    # Only ids are read; attribute kinds and orders come from the committed metadata.
    stored = _read_variant(group, columns=["id"])
    column_attrs = {name: dict(group[key].attrs) for name, key in meta["columns"].items()}
    da = _conform(da, stored, column_attrs, func="append_personas")
    _append_rows(group, meta, da, _columns(da))


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
) -> None:
    """Add or replace a persona attribute in every variant of one model/mask.

    Parameters
    ----------
    name
        Attribute name (any string but the reserved ``id``, ``name``, ``sample_ids``, ...).
    values
        Values by persona id. Personas not listed get a missing value.
    kind, order
        As in :func:`pvx.persona_vectors`; inferred from the values when omitted.
    variants
        Restrict to these variants (default: all of the model/mask).
    """
    if name in _RESERVED:
        raise ValueError(f"{name!r} is reserved; choose another attribute name")
    values = dict(pd.Series(values).items()) if isinstance(values, pd.Series) else dict(values)
    tree = open_store(store, **storage_options)
    mask_node = _mask_node(tree, model, mask_strategy)
    targets = list(mask_node.children) if variants is None else list(variants)
    model = mask_node.parent.attrs["model"]
    mask_strategy = str(mask_node.name)
    known: set[str] = set()
    planned = {}
    for variant in targets:
        node = _variant_node(tree, variant, model, mask_strategy)
        ids = [str(i) for i in node["id"].values]
        known.update(ids)
        planned[variant] = attribute_variable([values.get(i) for i in ids], kind=kind, order=order)
    unknown = sorted(set(values) - known)
    if unknown:
        raise StoreError(f"set_attribute(): ids {unknown[:10]!r} are in none of {targets!r}")
    zstore = _zarr_store(store, storage_options, read_only=False)
    for variant, var in planned.items():
        group, meta = _open_variant_for_write(zstore, store, model, mask_strategy, variant)
        old = meta["columns"].get(name)
        stored_name = _fresh_column_name(group, name)
        n_main, n_tail = meta["n_main"], meta["n_tail"]
        created = []
        for sub, chunk, rows in (
            (group, COLUMN_CHUNK, slice(0, n_main)),
            (group[meta["tail"]], meta["persona_block"], slice(n_main, n_main + n_tail)),
        ):
            column = _create_column(sub, stored_name, var, chunk)
            column.resize((rows.stop - rows.start,))
            column[:] = _encode(var[rows].values, var.attrs["kind"])
            created.append(column)
        removed = [] if old is None else [old, f"{meta['tail']}/{old}"]
        columns = {**meta["columns"], name: stored_name}
        _commit(group, {**meta, "columns": columns}, changed=created, removed=removed)
        for key in removed:
            del group[key]


# --------------------------------------------------------------------------- internals


def _zarr_store(
    path_or_url: str | os.PathLike, storage_options: Mapping[str, Any], *, read_only: bool
) -> zarr.abc.store.Store:
    text = os.fspath(path_or_url)
    if "://" in text and not text.startswith("file://"):
        remote = zarr.storage.FsspecStore.from_url(
            text, storage_options=dict(storage_options) or None, read_only=read_only
        )
        return _CheckedStore(remote, text)
    if storage_options:
        raise TypeError(f"storage options {sorted(storage_options)} only apply to URLs")
    path = Path(text.removeprefix("file://"))
    if read_only and not path.exists():
        raise StoreError(
            f"no store at {text!r}; check the path, or create one with pvx.write_variant"
        )
    return _CheckedStore(zarr.storage.LocalStore(path, read_only=read_only), text)


class _CheckedStore(zarr.storage.WrapperStore):  # type: ignore[type-arg]
    """A store whose failed or missing reads of vector chunks are errors, not fill values.

    pvx writes every chunk of every committed row, so a vector chunk that cannot be read
    means a failing server or a damaged store: say so instead of computing on zeros.
    """

    def __init__(self, store: zarr.abc.store.Store, where: str) -> None:
        super().__init__(store)
        self._where = where

    def _with_store(self, store: zarr.abc.store.Store) -> _CheckedStore:
        return type(self)(store, self._where)

    async def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            value = await self._store.get(key, *args, **kwargs)
        except Exception as err:
            raise StoreError(f"reading {key!r} from {self._where!r} failed: {err}") from err
        if value is None and "/vectors/c/" in f"/{key}":
            raise StoreError(
                f"chunk {key!r} is missing from {self._where!r}: the store is damaged or the "
                "server is failing"
            )
        return value


def _open_root(store: zarr.abc.store.Store, where: Any, mode: str = "r") -> zarr.Group:
    try:
        root = zarr.open_group(store, mode=mode, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        raise StoreError(f"no pvx store at {os.fspath(where)!r} (no Zarr group found)") from None
    except OSError as err:
        raise StoreError(f"cannot read store {os.fspath(where)!r}: {err}") from None
    info = root.attrs.get("pvx")
    if not isinstance(info, dict) or "variants" not in info:
        raise StoreError(f"{os.fspath(where)!r} is a Zarr group but not a pvx store")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise StoreError(
            f"{os.fspath(where)!r} has pvx format {info['format_version']}; this pvx reads "
            f"up to {FORMAT_VERSION}: upgrade pvx"
        )
    return root


def _open_or_create_root(store: zarr.abc.store.Store, where: Any) -> zarr.Group:
    try:
        return _open_root(store, where, mode="r+")
    except StoreError:
        pass
    root = zarr.open_group(store, mode="a", zarr_format=3, use_consolidated=False)
    if "pvx" in root.attrs or any(True for _ in root.keys()):
        raise StoreError(
            f"{os.fspath(where)!r} holds data that is not a pvx store; pick a new path"
        )
    root.attrs["pvx"] = {"format_version": FORMAT_VERSION, "variants": []}
    return root


def _read_variant(group: zarr.Group, columns: Sequence[str] | None = None) -> xr.DataArray:
    """The committed content of a variant group opened from its consolidated metadata."""
    return _read_variants([group], columns)[0]


def _read_variants(
    groups: Sequence[zarr.Group], columns: Sequence[str] | None = None
) -> list[xr.DataArray]:
    """Variants as lazy DataArrays: main rows then tail rows, coordinates read eagerly.

    ``columns`` limits which per-persona coordinates are read (default: all). All
    coordinate reads of all variants go out at once: one round of requests, not one per
    array, which is what keeps opening a remote store fast.
    """
    plans = []
    for group in groups:
        meta = group.attrs["pvx"]
        parts = [(group, meta["n_main"]), (group[meta["tail"]], meta["n_tail"])]
        names = [n for n in meta["columns"] if columns is None or n in columns]
        reads = [("layer", group["layer"], None)]
        reads += [(name, g[meta["columns"][name]], n) for name in names for g, n in parts]
        plans.append((group, meta, parts, names, reads))
    everything = [
        array._async_array.getitem(slice(0, n)) for *_, reads in plans for _, array, n in reads
    ]
    values = iter(sync(_gather(*everything)))
    result = []
    for group, meta, parts, names, reads in plans:
        read: dict[str, list[np.ndarray]] = {}
        for name, _, _ in reads:
            read.setdefault(name, []).append(next(values))
        coords: dict[Hashable, Any] = {"layer": ("layer", read.pop("layer")[0])}
        for name in names:
            attrs = dict(group[meta["columns"][name]].attrs)
            coords[name] = _decode(name, np.concatenate(read[name]), attrs)
        vectors = dask.array.concatenate([dask.array.from_zarr(g["vectors"])[:n] for g, n in parts])
        da = xr.DataArray(
            vectors,
            dims=("persona", "layer", "hidden"),
            coords=coords,
            name="vectors",
            attrs={"model": meta["model"], "mask_strategy": meta["mask_strategy"]},
        )
        variant = np.array(meta["variant"], dtype=object)  # object: Zarr's specified string type
        result.append(da.assign_coords(variant=variant).set_xindex("id"))
    return result


async def _gather(*coroutines: Any) -> list[Any]:
    return list(await asyncio.gather(*coroutines))


def _open_variant_for_write(
    store: zarr.abc.store.Store, where: Any, model: str, mask: str, variant: str
) -> tuple[zarr.Group, dict[str, Any]]:
    """Open a variant at its last commit, for writing.

    Array handles carry the committed shapes, whatever a killed writer left in the arrays'
    own metadata; every write sets shapes from them, so leftovers are overwritten or
    stay invisible (never part of a commit).
    """
    root = _open_root(store, where)
    catalog = root.attrs["pvx"]
    model_dirs = catalog.get("models", {})
    path = next(
        (
            p
            for p in catalog["variants"]
            if p.split("/")[1:] == [mask, variant]
            and (model_dirs.get(p.split("/")[0]) or root[p.split("/")[0]].attrs["model"]) == model
        ),
        None,
    )
    if path is None:
        raise StoreError(
            f"variant {variant!r} of {model!r}/{mask!r} is not in {os.fspath(where)!r}; "
            "create it with pvx.write_variant(...)"
        )
    group = zarr.open_group(store, path=path, mode="r+", use_consolidated=True)
    return group, dict(group.attrs["pvx"])


def _append_rows(
    group: zarr.Group,
    meta: dict[str, Any],
    da: xr.DataArray,
    columns: Mapping[str, xr.Variable],
    created: Sequence[zarr.Array | zarr.Group] = (),
) -> None:
    """Write new personas beyond the committed rows, then commit.

    Whole blocks (committed tail rows + new rows) go to the main arrays as new chunks;
    the rest to the tail, after its committed rows.
    """
    block, n_main, n_tail = meta["persona_block"], meta["n_main"], meta["n_tail"]
    tail = group[meta["tail"]]
    total = n_tail + da.sizes["persona"]
    promote = total - total % block
    rest = total - promote
    changed: list[zarr.Array | zarr.Group] = list(created)
    removed = []
    if promote and rest and n_tail:
        # The leftover rows would land on committed tail rows: start a fresh tail instead.
        new_tail, fresh = _fresh_tail(group, tail)
        changed += fresh
        removed.append(meta["tail"])
    else:
        new_tail = tail
    names = ["vectors", *(meta["columns"][c] for c in columns)]
    new = {"vectors": np.asarray(da.data)}
    for column, var in columns.items():
        new[meta["columns"][column]] = _encode(var.values, var.attrs.get("kind", column))
    for name in names:
        if promote:
            # Committed tail rows plus new rows fill whole blocks: they become new main chunks.
            rows = np.concatenate([tail[name][:n_tail], new[name]])
            main = _every_chunk(group[name])
            main.resize((n_main + promote, *main.shape[1:]))
            main[n_main:] = rows[:promote]
            changed.append(main)
            rows, start = rows[promote:], 0
            if not len(rows):
                # Shrinking the tail now would delete committed rows; the commit below
                # hides them and the next write resizes the arrays.
                continue
        else:
            rows, start = new[name], n_tail
        target = _every_chunk(new_tail[name])
        target.resize((start + len(rows), *target.shape[1:]))
        target[start:] = rows
        changed.append(target)
    commit = {**meta, "n_main": n_main + promote, "n_tail": rest, "tail": new_tail.basename}
    _commit(group, commit, changed=changed, removed=removed)
    for key in removed:
        del group[key]


def _every_chunk(array: zarr.Array) -> zarr.Array:
    """Write chunks even when they hold only the fill value (e.g. all-zero activations), so
    that a missing vector chunk always means damage (see _CheckedStore). Not stored in the
    array's metadata, hence set on every handle that writes."""
    return array.with_config({"write_empty_chunks": True})


def _create_arrays(
    group: zarr.Group,
    da: xr.DataArray,
    columns: Mapping[str, xr.Variable],
    block: int,
    column_chunk: int,
) -> list[zarr.Array]:
    layer = group.create_array(
        "layer", data=da["layer"].values.astype(np.int64), dimension_names=["layer"]
    )
    vectors = group.create_array(
        "vectors",
        shape=(0, da.sizes["layer"], da.sizes["hidden"]),
        chunks=(block, 1, da.sizes["hidden"]),
        dtype=da.dtype,
        fill_value=0,
        dimension_names=list(da.dims),
        compressors=_vector_compressors(),
    )
    return [
        layer,
        vectors,
        *(_create_column(group, n, v, column_chunk) for n, v in columns.items()),
    ]


def _fresh_tail(group: zarr.Group, tail: zarr.Group) -> tuple[zarr.Group, list[Any]]:
    """An empty copy of the tail's structure under a new name (and its new nodes)."""
    names = set(group.group_keys())
    k = 1
    while f"{TAIL}{k}" in names:
        k += 1
    fresh = group.create_group(f"{TAIL}{k}", overwrite=True)
    nodes: list[Any] = [fresh]
    for name, array in tail.arrays():
        if name == "layer":
            nodes.append(
                fresh.create_array(name, data=array[:], dimension_names=["layer"], overwrite=True)
            )
            continue
        nodes.append(
            fresh.create_array(
                name,
                shape=(0, *array.shape[1:]),
                chunks=array.chunks,
                dtype=array.metadata.data_type,
                fill_value=array.metadata.fill_value,
                dimension_names=array.metadata.dimension_names,
                attributes=dict(array.attrs),
                compressors=array.compressors,
                overwrite=True,
            )
        )
    return fresh, nodes


def _commit(
    group: zarr.Group,
    meta: dict[str, Any],
    *,
    changed: Sequence[zarr.Array | zarr.Group] = (),
    removed: Sequence[str] = (),
) -> None:
    """Publish a write by rewriting the variant's ``zarr.json`` once.

    That one file carries the commit record and the consolidated metadata (array shapes)
    of the variant's subtree, in the form ``zarr.consolidate_metadata`` writes. It is
    built from the last commit plus the nodes this write changed, not from a listing, so
    leftovers of a killed writer never become visible.
    """
    previous = group.metadata.consolidated_metadata
    flat = dict(previous.flattened_metadata) if previous is not None else {}
    for node in changed:
        flat[node.path.removeprefix(group.path + "/")] = node.metadata
    for key in removed:
        flat = {k: v for k, v in flat.items() if k != key and not k.startswith(key + "/")}
    for key, metadata in flat.items():
        if isinstance(metadata, GroupMetadata):
            flat[key] = dataclasses.replace(
                metadata, consolidated_metadata=ConsolidatedMetadata(metadata={})
            )
    ConsolidatedMetadata._flat_to_nested(flat)
    metadata = dataclasses.replace(
        group.metadata,
        attributes={**group.metadata.attributes, "pvx": meta},
        consolidated_metadata=ConsolidatedMetadata(metadata=flat),
    )
    sync(save_metadata(group.store_path, metadata))
    # Later commits in this process build on this one.
    object.__setattr__(group._async_group, "metadata", metadata)


def _columns(da: xr.DataArray) -> dict[str, xr.Variable]:
    """The per-persona coordinates to store, by name (id, name, provenance, attributes)."""
    columns = {"id": da["id"].variable.to_base_variable()}
    columns["name"] = (da["name"] if "name" in da.coords else da["id"]).variable.to_base_variable()
    if "sample_ids" in da.coords:
        columns["sample_ids"] = da["sample_ids"].variable
    for key in attribute_names(da):
        columns[str(key)] = da[key].variable
    return columns


def _create_column(group: zarr.Group, name: str, var: xr.Variable, chunk: int) -> zarr.Array:
    numeric = var.attrs.get("kind") == "numeric"
    return group.create_array(
        name,
        shape=(0,),
        chunks=(chunk,),
        dtype="float64" if numeric else str,
        fill_value=np.nan if numeric else "",
        dimension_names=["persona"],
        attributes={k: v for k, v in var.attrs.items() if k in ("kind", "order")},
        overwrite=True,  # an uncommitted leftover of a killed writer may hold the name
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


def _vector_compressors() -> tuple[Any, ...]:
    # Byte-shuffled zstd packs float activations noticeably better than plain zstd.
    return (zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"),)


def _fresh_column_name(group: zarr.Group, name: str) -> str:
    base = name if _SAFE_NAME.match(name) and name != TAIL else "attr"
    existing = set(group.array_keys())
    candidate, k = base, 1
    while candidate in existing or candidate in _RESERVED:
        k += 1
        candidate = f"{base}~{k}"
    return candidate


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
    for what, value in (("mask_strategy", mask), ("variant", variant)):
        if not _SAFE_NAME.match(value) or value == TAIL:
            raise ValueError(
                f"{what} {value!r} must be a plain name (letters, digits, '._+=-', not "
                "starting with a punctuation mark)"
            )
    return str(model), str(mask), str(variant)


def _model_dir(root: zarr.Group, model: str) -> str:
    """A group name for a model: a safe rendering of its name, never parsed back."""
    base = re.sub(r"[^A-Za-z0-9._+=-]+", "--", model).strip(".-") or "model"
    candidate, k = base, 1
    while candidate in root and root[candidate].attrs.get("model") != model:
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def _conform(
    da: xr.DataArray,
    stored: xr.DataArray,
    column_attrs: Mapping[str, Mapping[str, Any]],
    *,
    func: str,
) -> xr.DataArray:
    """Check new personas against a stored variant; return them in its layout."""
    if da.sizes["hidden"] != stored.sizes["hidden"]:
        raise ValueError(
            f"{func}(): hidden size {da.sizes['hidden']} does not match the variant's "
            f"{stored.sizes['hidden']}"
        )
    new_layers, old_layers = da["layer"].values, stored["layer"].values
    if set(new_layers.tolist()) != set(old_layers.tolist()):
        raise ValueError(
            f"{func}(): layer labels {new_layers.tolist()} do not match the variant's "
            f"{old_layers.tolist()}"
        )
    da = da.sel(layer=old_layers)
    clash = sorted(set(da["id"].values.tolist()) & set(stored["id"].values.tolist()))
    if clash:
        raise ValueError(
            f"{func}(): ids {clash[:10]!r} are already in the variant; ids must be new"
        )
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
    if da.dtype != stored.dtype:
        with np.errstate(over="ignore"):  # overflow is reported below, with the fix
            cast = da.astype(stored.dtype).compute()
        if not np.isfinite(np.asarray(cast.data, dtype=np.float32)).all():
            raise ValueError(
                f"{func}(): values overflow the variant's {stored.dtype}; scale them or store "
                "float32"
            )
        da = cast
    return da


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
        missing = sorted(set(ids) - set(da["id"].values.tolist()))
        if missing:
            raise StoreError(f"ids {missing[:10]!r} are not in variant {variant!r}")
        da = da.sel(id=ids)
    if layers is not None:
        wanted = [layers] if np.ndim(layers) == 0 else list(layers)  # type: ignore[arg-type]
        missing = sorted(set(wanted) - set(da["layer"].values.tolist()))
        if missing:
            raise StoreError(
                f"layers {missing!r} are not in variant {variant!r}; it has layers "
                f"{da['layer'].values.tolist()}"
            )
        da = da.sel(layer=wanted)
    return da


def _drop_ids(da: xr.DataArray, ids: set[str]) -> xr.DataArray:
    """Drop personas by id with slices, so the kept runs keep the store's chunks (a
    boolean selection would re-chunk the whole persona axis)."""
    keep = ~np.isin(np.asarray(da["id"].values, dtype=object), list(ids))
    if keep.all():
        return da
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    runs = [da.isel(persona=slice(a, b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    if len(runs) == 1:
        return runs[0]
    return xr.concat(runs, "persona", coords="minimal", compat="override", join="override")


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


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes used by a local store."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
