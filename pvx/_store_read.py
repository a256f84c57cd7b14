"""Reading a pvx store: the catalog, variants as lazy DataArrays, selections and joins."""

from __future__ import annotations

import collections
import warnings
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from dask.base import tokenize

from pvx._repository import ReadView, StoreError
from pvx._store_format import FORMAT_VERSION, PARTITION_BYTES, _decode
from pvx._validate import BASELINE_ID, keep_rows, select_layers


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


def _exists(store: zarr.abc.store.Store) -> bool:
    try:
        zarr.open_group(store, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        return False
    return True


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
    # a model's own name first: one model's folder can be named as another model is
    # ("x/y" is kept in "x--y", beside a model named "x--y" in "x--y-2")
    for node in nodes.values():
        if node.attrs["model"] == model:
            return node
    if model in nodes:
        return nodes[model]
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
    baseline_dropped: bool = False,
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
            hint = (
                f"; {BASELINE_ID} is left out unless asked for (include_baseline=True, "
                "--include-baseline)"
                if baseline_dropped and BASELINE_ID in missing
                else ""
            )
            raise StoreError(f"ids {missing[:10]!r} are not in variant {variant!r}{hint}")
        da = _take(da, pd.Index(da["id"].values).get_indexer(ids))
    if layers is not None:
        # the rule of every analysis's layer= (same errors); the dim is kept until the
        # variants are joined, then dropped for one label (see load)
        wanted = [layers] if np.ndim(layers) == 0 else list(layers)  # type: ignore[arg-type]
        # the error names the variant lacking them (others may have them)
        da = select_layers(da, wanted, func="load", holder=f"variant {variant!r}")
    return da


def require_shared(da: xr.DataArray, names: list[str]) -> None:
    """Refuse variants ``names`` that :func:`load` joined into nothing: they share no
    persona id or no layer label (an inner join on both)."""
    for dim, what in (("persona", "persona id"), ("layer", "layer")):
        if dim in da.dims and da.sizes[dim] == 0:
            raise ValueError(
                f"the variants {names} share no {what}; analyse them one at a time (--variant NAME)"
            )


def _take(da: xr.DataArray, positions: np.ndarray) -> xr.DataArray:
    """Rows at ``positions`` in that order, read as contiguous runs."""
    keep = np.zeros(da.sizes["persona"], dtype=bool)
    keep[positions] = True
    picked = keep_rows(da, keep)
    order = np.argsort(np.argsort(positions))  # rank of each wanted row among the kept ones
    return picked if np.array_equal(order, np.arange(len(order))) else picked.isel(persona=order)


def _join_variants(arrays: list[xr.DataArray], names: list[str]) -> xr.DataArray:
    sizes = {name: a.sizes["hidden"] for name, a in zip(names, arrays, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"variants of different hidden sizes cannot be loaded together: {sizes}; load "
            "them one at a time"
        )
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
    # Persona attributes describe the persona, not the rendering: take the first variant's,
    # and say so where another variant disagrees. Provenance is per rendering: keep each
    # variant's sample ids.
    _warn_disagreeing_personas(aligned, names)
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


def _warn_disagreeing_personas(aligned: Sequence[xr.DataArray], names: list[str]) -> None:
    first = aligned[0]
    for coord, values in first.coords.items():
        if values.dims != ("persona",) or coord in ("id", "sample_ids"):
            continue
        for name, other in zip(names[1:], aligned[1:], strict=True):
            if coord not in other.coords:
                continue
            ours, theirs = (np.asarray(v, dtype=object) for v in (values.values, other[coord]))
            same = (ours == theirs) | (pd.isna(ours) & pd.isna(theirs))
            differ = np.flatnonzero(~same)
            if len(differ):
                i = differ[0]
                warnings.warn(
                    f"variants {names[0]!r} and {name!r} disagree on {coord!r} for "
                    f"{len(differ)} persona(s) (e.g. {first['id'].values[i]!r}: "
                    f"{ours[i]!r} vs {theirs[i]!r}); the values of {names[0]!r} are "
                    "kept",
                    UserWarning,
                    stacklevel=4,
                )
