"""Writing a pvx store: new variants' arrays, appends (remembered between commits in a
process), checks of new personas against the stored variant."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
import zarr.api.asynchronous
import zarr.storage

from pvx._construct import (
    _label,
    _missing,
    attribute_names,
    attribute_variable,
    decode_sample_ids,
)
from pvx._repository import CheckedStore, Location, StoreError, open_read
from pvx._store_format import (
    _EVERY_CHUNK,
    COLUMN_CHUNK,
    FORMAT_VERSION,
    _compressors,
    _encode,
    _variant_path,
)
from pvx._store_read import _catalog


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
    spellings: Mapping[str, Mapping[str, str]]  # categorical attributes': see _older_spellings

    def after(
        self, snapshot: str, metadata: Mapping[str, Any], rows: Mapping[str, np.ndarray]
    ) -> _AppendState:
        tails = {}
        for name, tail in self.tails.items():
            values = np.concatenate([tail, rows[name]])
            chunk = metadata[name].chunks[0]
            # a copy: a view would keep the whole last batch alive until the next append
            tails[name] = values[len(values) - metadata[name].shape[0] % chunk :].copy()
        return _AppendState(
            snapshot=snapshot,
            path=self.path,
            metadata={**self.metadata, **metadata},
            layers=self.layers,
            ids=self.ids | frozenset(rows["id"].tolist()),
            tails=tails,
            spellings=self.spellings,  # appends write the stored spellings (see _conform)
        )


# Largest last chunk of vectors an append state keeps in memory (all layers)
VECTOR_TAIL_BYTES = 16 * 2**20

# Last append's state per (store, model, mask strategy, variant) in this process.
APPEND_STATES: dict[tuple[str, str, str, str], _AppendState] = {}


async def read_append_state(session_store: Any, store: Any, key: tuple[str, ...]) -> _AppendState:
    # read through the checks readers get: a damaged tail is an error that names it
    checked = CheckedStore(session_store, str(store), checksums=True)
    root = await zarr.api.asynchronous.open_group(store=checked, mode="r", use_consolidated=False)
    path = _variant_path(root.attrs["pvx"], store, *key[1:])
    group = await root.getitem(path)
    names = ["vectors", "layer", *group.attrs["pvx"]["columns"]]
    arrays = dict(zip(names, await asyncio.gather(*map(group.getitem, names)), strict=True))

    async def tail(name: str) -> np.ndarray:
        n, chunk = arrays[name].shape[0], arrays[name].chunks[0]
        return np.asarray(await arrays[name].getitem(slice(n - n % chunk, n)))

    # Vectors too where their last chunk is small: zarr would read it back on every append
    vectors = arrays["vectors"]
    tail_bytes = vectors.chunks[0] * math.prod(vectors.shape[1:]) * vectors.dtype.itemsize
    tailed = names[2:] + (["vectors"] if tail_bytes <= VECTOR_TAIL_BYTES else [])
    categorical = [
        name for name in names[2:] if arrays[name].metadata.attributes.get("kind") == "categorical"
    ]
    partial = [name for name in tailed if name not in categorical]  # those read whole: cut
    layer, ids, *read = await asyncio.gather(
        arrays["layer"].getitem(()),
        arrays["id"].getitem(()),
        *map(tail, partial),
        *(arrays[name].getitem(()) for name in categorical),
    )
    labels = [np.asarray(values) for values in read[len(partial) :]]
    whole = dict(zip(categorical, labels, strict=True))
    got = dict(zip(partial, read[: len(partial)], strict=True))
    chunk_start = {
        name: arrays[name].shape[0] - arrays[name].shape[0] % arrays[name].chunks[0]
        for name in categorical
    }
    tails = [got[name] if name in got else whole[name][chunk_start[name] :] for name in tailed]
    return _AppendState(
        snapshot=session_store.session.snapshot_id,
        path=path,
        metadata={name: array.metadata for name, array in arrays.items()},
        layers=np.asarray(layer),
        ids=frozenset(np.asarray(ids).tolist()),
        tails=dict(zip(tailed, tails, strict=True)),
        spellings={
            name: _older_spellings(np.asarray(values).tolist())
            for name, values in zip(categorical, labels, strict=True)
        },
    )


def _older_spellings(labels: Any) -> dict[str, str]:
    """Labels that earlier pvx wrote for values it now spells otherwise, by today's
    spelling, for those of ``labels`` (stored) whose today's spelling is not stored too: an
    append then writes the stored one, and a value stays one class. Whole-number floats
    were "3.0" (now "3"); dates were ``str`` of their type ("2020-01-01 00:00:00" of a
    Timestamp, "2020-01-01T00:00:00.000000000" of a datetime64[ns]; now "2020-01-01")."""
    present = {label for label in labels if isinstance(label, str)}
    older: dict[str, str] = {}
    for label in sorted(present):
        today = _today_spelling(label)
        if today is not None and today != label and today not in present:
            older.setdefault(today, label)
    return older


def _today_spelling(label: str) -> str | None:
    if re.fullmatch(r"-?[0-9]+\.0", label):
        return label[:-2]
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?", label):
        try:
            return _label(pd.Timestamp(label))
        except (ValueError, OverflowError):
            return None
    return None


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


@dataclass(frozen=True)
class _Stored:
    """What an append is checked against: the variant as committed."""

    hidden: int
    dtype: np.dtype
    n: int
    layers: np.ndarray
    ids: frozenset[str]
    columns: Mapping[str, Mapping[str, Any]]  # persona arrays' attrs, by name
    spellings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


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


def _create_column(group: zarr.Group, name: str, var: xr.Variable) -> zarr.Array:
    numeric = var.attrs.get("kind") == "numeric"
    return group.create_array(
        name,
        shape=(0,),
        chunks=(COLUMN_CHUNK,),
        dtype="float64" if numeric else str,
        fill_value=np.nan if numeric else "",
        dimension_names=["persona"],
        attributes={
            k: [_label(level) for level in v] if k == "order" else v  # as the values: text
            for k, v in var.attrs.items()
            if k in ("kind", "order")
        },
        compressors=_compressors(),
        config=_EVERY_CHUNK,
    )


def _require_personas(da: xr.DataArray, *, func: str) -> None:
    if da.sizes["persona"] == 0:
        raise ValueError(f"{func}() got no personas; pass at least one")


def _conform(da: xr.DataArray, stored: _Stored, *, func: str, notes: list[str]) -> xr.DataArray:
    """Check new personas against a stored variant; return them in its layout. What the
    layout changes of the values given (rounding to a narrower dtype) is added to ``notes``."""
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
    if not np.array_equal(new_layers, old_layers):  # a selection costs more than the check
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
        # a batch with no value of an attribute infers no kind from it: stored as missing
        if key in da.coords and not all(_missing(v) for v in da[key].values):
            if da[key].attrs.get("kind") != kind:
                hint = (
                    f"orders={{{str(key)!r}: {list(attrs['order'])!r}}}"
                    if kind == "ordinal"
                    else f"kinds={{{str(key)!r}: {kind!r}}}"
                )
                raise ValueError(
                    f"{func}(): attribute {key!r} is {da[key].attrs.get('kind')!r} here but "
                    f"{kind!r} in the variant; build the new personas with {hint} "
                    "(pvx.persona_vectors)"
                )
            older = (
                _older_spellings([_label(v) for v in attrs["order"]])
                if kind == "ordinal"
                else stored.spellings.get(str(key), {})
            )
            given = [v for v in da[key].values if isinstance(v, str) and v in older]
            if given:  # the stored spelling of a whole number ("3.0"), not another class
                values = [older.get(v, v) if isinstance(v, str) else v for v in da[key].values]
                da = da.assign_coords({key: da[key].copy(data=np.array(values, dtype=object))})
                rewritten = {v: older[v] for v in sorted(set(given))}
                notes.append(
                    f"{func}(): values of attribute {key!r} were written as the variant "
                    f"spells them ({rewritten!r}: earlier pvx spelled whole-number floats and "
                    "dates so), to stay one class; if they are other values, set them with "
                    "pvx.set_attribute(...)"
                )
            unknown_values = (
                sorted(
                    {_label(v) for v in da[key].values if not _missing(v)}
                    - {_label(v) for v in attrs["order"]}
                )
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
    if extra:
        da = da.assign_coords(extra)
    if "sample_ids" in da.coords and "sample_ids" not in column_attrs:
        if any(len(ids) for ids in da["sample_ids"].values):
            raise ValueError(
                f"{func}(): the variant was written without sample_ids, so these personas' "
                "would be lost; drop them (da.drop_vars('sample_ids')) or write the variant "
                "anew with sample_ids for every persona"
            )
        da = da.drop_vars("sample_ids")
    if da.dtype != stored_dtype:
        da = da.compute()  # once: the rounding check below compares with these values
        with np.errstate(over="ignore"):  # overflow is reported below, with the fix
            cast = da.astype(stored_dtype)
        if not np.isfinite(np.asarray(cast.data, dtype=np.float32)).all():
            raise ValueError(
                f"{func}(): values overflow the variant's {stored_dtype}; scale them or store "
                "float32"
            )
        if np.dtype(stored_dtype).itemsize < da.dtype.itemsize and not (cast == da).all():
            notes.append(
                f"{func}(): the variant stores {stored_dtype}, so these {da.dtype} vectors are "
                f"rounded to {stored_dtype} as they are written; to keep {da.dtype}, write "
                "them to a variant of their own (or write the variant anew in float32)"
            )
        da = cast
    return da
