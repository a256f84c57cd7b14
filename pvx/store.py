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

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous
import zarr.storage

from pvx import _store_write
from pvx._construct import (
    attribute_names,
    attribute_variable,
    validate_vectors,
)
from pvx._repository import (
    Location,
    StoreError,
    _first_line,
    open_read,
    open_repository,
    run,
    transact,
)
from pvx._repository import (
    compact as _compact,
)
from pvx._store_format import (
    _EVERY_CHUNK,
    DEFAULT_PERSONA_BLOCK,
    _check_attribute_names,
    _compressors,
    _coordinates_attr,
    _encode,
    _identity,
    _model_dir,
    _variant_path,
    case_twins,
    path_prefixes,
)
from pvx._store_publish import publish
from pvx._store_read import (
    _catalog,
    _join_variants,
    _mask_node,
    _model_node,
    _node,
    _read_variants,
    _select,
    _variant_node,
)
from pvx._store_results import open_results, save_results
from pvx._store_write import (
    _append_rows,
    _columns,
    _conform,
    _create_column,
    _encode_rows,
    _init_root,
    _require_personas,
    _Stored,
    _writable,
)
from pvx._validate import BASELINE_ID, drop_baseline

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
    "open_results",
    "open_store",
    "persona_ids",
    "publish",
    "save_results",
    "set_attribute",
    "size_on_disk",
    "variants",
    "write_variant",
]


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
    **storage_options
        Options of the store's file system (e.g. credentials for ``s3://``); only with a
        path or URL.

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
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise StoreError(f"load() got variant(s) {repeated} more than once; name each once")
    mask_node = _mask_node(tree, model, mask_strategy)
    arrays = []
    for name in names:
        if name not in mask_node.children:
            raise StoreError(
                f"variant {name!r} not found for model {mask_node.parent.attrs['model']!r}, "
                f"mask strategy {mask_node.name!r}; available: {sorted(mask_node.children)}"
            )
        stored = mask_node[name].to_dataset()["vectors"]
        da = drop_baseline(stored, include_baseline=include_baseline)
        if da.sizes["persona"] == 0 < stored.sizes["persona"]:
            raise StoreError(
                f"variant {name!r} holds only the baseline persona {BASELINE_ID!r}, which "
                "load() leaves out unless asked: pass include_baseline=True"
            )
        selected = _select(
            da, ids=ids, layers=layers, variant=name, baseline_dropped=not include_baseline
        )
        arrays.append(selected)
    joined = arrays[0] if len(arrays) == 1 else _join_variants(arrays, names)
    # one label drops the dim, a list keeps it: as da.sel(layer=...) and layer= everywhere
    return joined.squeeze("layer") if layers is not None and np.ndim(layers) == 0 else joined


def _tree(store: StoreLike) -> xr.DataTree:
    return store if isinstance(store, xr.DataTree) else open_store(store)


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
    try:
        rows = [(s.id, s.written_at, s.message) for s in repo.ancestry(branch="main")]
    except icechunk.IcechunkError as err:
        raise StoreError(
            f"cannot list the versions of {location.text!r} ({_first_line(err)}); it "
            "is damaged: restore it from a copy"
        ) from None
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
    da, identity = _valid_variant(da, model, mask_strategy, variant, persona_block)
    location = _writable(store, storage_options)

    def change(session_store: zarr.abc.store.Store) -> str:
        path = _new_variant(session_store, da, *identity, persona_block, store=store)
        return f"write_variant {path} ({da.sizes['persona']} personas)"

    return transact(location, change, create=_init_root)


def _write_variants(
    store: str | os.PathLike,
    sources: Sequence[tuple[tuple[str, str, str], Callable[[], xr.DataArray]]],
    *,
    message: str,
    skip_existing: bool = False,
    func: str = "write_variant",
    persona_block: int = DEFAULT_PERSONA_BLOCK,
    **storage_options: Any,
) -> list[int | None]:
    """Create several variants in one commit (all or none): each source ((model, mask
    strategy, variant), reader) is read, validated and written in turn, so memory holds one
    variant at a time. Returns their persona counts (None: skipped, already stored)."""
    location = _writable(store, storage_options)
    written: list[int | None] = []

    def change(session_store: zarr.abc.store.Store) -> str:
        written.clear()  # a retried commit (another writer came first) starts again
        for (model, mask_strategy, variant), read in sources:
            # checked again under the lock: another writer may have created it since
            root = zarr.open_group(session_store, mode="r")
            path = f"{_model_dir(root, model)}/{mask_strategy}/{variant}"
            if path in root.attrs["pvx"]["variants"]:
                if skip_existing:
                    written.append(None)
                    continue
                raise StoreError(
                    f"{func}(): another writer created {(model, mask_strategy, variant)} in "
                    f"{os.fspath(store)!r} during this import; nothing was imported. Rerun "
                    "with skip_existing=True (--skip-existing) to import the others"
                )
            da, identity = _valid_variant(read(), model, mask_strategy, variant, persona_block)
            _new_variant(session_store, da, *identity, persona_block, store=store)
            written.append(da.sizes["persona"])
        return message

    transact(location, change, create=_init_root)
    return written


def _valid_variant(
    da: xr.DataArray,
    model: str | None,
    mask_strategy: str | None,
    variant: str | None,
    persona_block: int,
) -> tuple[xr.DataArray, tuple[str, str, str]]:
    """The vectors and (model, mask strategy, variant) of a new variant, all checked."""
    da = validate_vectors(da, func="write_variant")
    _require_personas(da, func="write_variant")
    _warn_unstored(da, func="write_variant", stacklevel=4)  # the caller of write_variant
    identity = _identity(da, model, mask_strategy, variant)
    _check_attribute_names(attribute_names(da), func="write_variant")
    twins = case_twins(attribute_names(da))
    if twins:  # a warning, not a refusal: a variant of an older store may hold them
        pairs = ", ".join(f"{a!r} and {b!r}" for a, b in twins)
        warnings.warn(
            f"write_variant(): attribute names {pairs} differ only in case; `pvx publish` "
            "will refuse this store and case-insensitive file systems cannot hold them "
            "apart: rename one first (da.rename({...}))",
            UserWarning,
            stacklevel=3,  # the caller of write_variant
        )
    if not isinstance(persona_block, int) or persona_block < 1:
        raise ValueError(f"persona_block must be a positive integer, got {persona_block!r}")
    return da, identity


def _warn_unstored(da: xr.DataArray, *, func: str, stacklevel: int) -> None:
    """Say which coordinates and attrs of ``da`` a store does not keep (a per-persona
    coordinate without ``attrs['kind']`` is the easy one to miss)."""
    kept = {"id", "name", "sample_ids", "layer", "variant", *map(str, attribute_names(da))}
    coords = sorted(str(name) for name in da.coords if str(name) not in kept)
    attrs = sorted(
        str(name) for name in da.attrs if name not in ("model", "mask_strategy", "variant")
    )
    if not coords and not attrs:
        return
    unkinded = [c for c in coords if da[c].dims == ("persona",)]
    parts = [f"coordinate(s) {coords}"] if coords else []
    parts += [f"attrs {attrs}"] if attrs else []
    hint = (
        f"; {unkinded} would be stored as attributes with attrs['kind'] ('numeric', 'ordinal' "
        "or 'categorical'), or add them with pvx.set_attribute"
        if unkinded
        else ""
    )
    message = f"{func}() does not store {' or '.join(parts)}{hint}"
    warnings.warn(message, UserWarning, stacklevel=stacklevel)  # at the user's line


def _new_variant(
    session_store: zarr.abc.store.Store,
    da: xr.DataArray,
    model: str,
    mask_strategy: str,
    variant: str,
    persona_block: int,
    *,
    store: Any,
) -> str:
    """Write a checked new variant into an open transaction; return its path."""
    columns = _columns(da)
    root = zarr.open_group(session_store, mode="r+")
    model_dir = _model_dir(root, model)
    path = f"{model_dir}/{mask_strategy}/{variant}"
    if path in root.attrs["pvx"]["variants"]:
        raise StoreError(
            f"variant {variant!r} of {model!r}/{mask_strategy!r} already exists in {store}; "
            "add personas with pvx.append_personas(...)"
        )
    stored = {prefix for other in root.attrs["pvx"]["variants"] for prefix in path_prefixes(other)}
    twins = case_twins(path_prefixes(path), taken=sorted(stored))
    if twins:
        raise StoreError(
            f"{path!r} differs from the stored {twins[0][0]!r} only in case, which "
            "case-insensitive file systems and published copies cannot tell apart; use the "
            "stored spelling or another name"
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
    return path


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
    _warn_unstored(da, func="append_personas", stacklevel=3)
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
    notes: list[str] = []  # what the commit changed of the vectors given, said once it is made

    async def change_async(session_store: Any) -> str:
        notes.clear()  # a retried commit conforms them again
        state = _store_write.APPEND_STATES.get(key)
        if state is None or state.snapshot != session_store.session.snapshot_id:
            state = await _store_write.read_append_state(session_store, store, key)
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
            spellings=state.spellings,
        )
        new = _conform(da, stored, func="append_personas", notes=notes)
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
    _store_write.APPEND_STATES[key] = written["state"].after(
        snapshot, written["metadata"], written["rows"]
    )
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return snapshot


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
    store
        The store's path or URL.
    name
        Attribute name: any text without ``/`` or control characters that does not start
        with ``_`` or ``.`` and is not one of pvx's own names (``id``, ``vectors``, ...).
    values
        Values by persona id (text). Personas not listed get a missing value.
    kind, order
        As in :func:`pvx.persona_vectors`; inferred from the values when omitted.
    model, mask_strategy
        Which model and mask strategy; may be omitted when the store has one.
    variants
        Restrict to these variants (default: all of the model/mask).
    **storage_options
        Options of the store's file system (e.g. credentials for ``s3://``).

    Returns
    -------
    str
        The snapshot id of the new version.
    """
    _check_attribute_names([name], func="set_attribute")
    if isinstance(values, pd.Series):
        repeated = values.index[values.index.duplicated()].unique().tolist()
        if repeated:  # a dict would keep the last silently
            raise ValueError(
                f"set_attribute(): persona ids {repeated[:5]} appear more than once in the "
                "values; give one value per id (e.g. values[~values.index.duplicated()])"
            )
        values = dict(values.items())
    else:
        values = dict(values)
    not_text = [key for key in values if not isinstance(key, str)]
    if not_text:  # the store's ids are text: 0 never matches "0"
        raise TypeError(
            f"set_attribute(): persona ids are text, got {not_text[:5]!r}; give the values "
            "by id as stored (e.g. values.rename(index=str))"
        )
    # One kind for every variant, from all the values (errors before anything is written)
    try:
        kind = attribute_variable(list(values.values()), kind=kind, order=order).attrs["kind"]
    except ValueError as error:
        raise ValueError(f"set_attribute(): attribute {name!r}: {error}") from None
    location = _writable(store, storage_options)
    tree = open_store(store, **storage_options)
    mask_node = _mask_node(tree, model, mask_strategy)
    model_name, mask = mask_node.parent.attrs["model"], str(mask_node.name)
    emptied = 0  # personas whose value this replacement drops (not in ``values``)

    def change(session_store: zarr.abc.store.Store) -> str:
        # what is replaced is read here, under the writer's lock: a persona or variant
        # another writer added meanwhile is counted (and given the attribute) too
        nonlocal emptied
        root = zarr.open_group(session_store, mode="r+")
        catalog = root.attrs["pvx"]
        targets = (
            list(variants) if variants is not None else _variants_of(catalog, model_name, mask)
        )
        emptied = 0
        known: set[str] = set()
        planned = []
        for target in targets:
            group = root[_variant_path(catalog, store, model_name, mask, target)]
            if name in group:
                old = group[name][:]
                kept = ~np.isnan(old) if old.dtype.kind == "f" else old != ""
                stored_ids = group["id"][:]
                emptied += sum(
                    bool(k) and str(i) not in values for i, k in zip(stored_ids, kept, strict=True)
                )
            twins = [] if name in group else case_twins([name], taken=list(group.array_keys()))
            if twins:
                raise ValueError(
                    f"set_attribute(): attribute names {twins[0][0]!r} and {name!r} differ "
                    "only in case, which "
                    "published copies and case-insensitive file systems cannot tell apart; "
                    "choose another name"
                )
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

    snapshot = transact(location, change)
    if emptied:
        warnings.warn(
            f"set_attribute(): {emptied} persona value(s) of {name!r} were replaced by missing "
            "values: the values replace the whole attribute, and those personas are not in "
            "them. The earlier values stay in the store's previous version (pvx.store.history) "
            "until compacted; to change some personas only, pass every persona's value",
            UserWarning,
            stacklevel=2,
        )
    return snapshot


def _variants_of(catalog: Mapping[str, Any], model: str, mask: str) -> list[str]:
    """The variants of one model/mask in a store's catalog (its root's ``pvx`` attrs)."""
    found = []
    for path in catalog["variants"]:
        model_dir, stored_mask, variant = path.split("/")
        if stored_mask == mask and catalog["models"].get(model_dir) == model:
            found.append(variant)
    return found


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
