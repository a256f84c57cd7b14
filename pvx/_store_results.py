"""Saved analysis results (``results.zarr``): written and read back as labelled data.

A results tree holds one node per analysis (:func:`pvx.report.compute_results`). Written to
Zarr v3 with strings as variable-length UTF-8; the cosine matrices, most of the bytes, are
saved as their upper triangle (diagonal included) CF-packed in int16, which any xarray
reader decodes, within 1.6e-5 of the float32 values. pvx's readers unpack them straight from
the int16 steps. Part of the store layer: :mod:`pvx.store` re-exports :func:`save_results`
and :func:`open_results`.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr

from pvx import _engine

__all__ = ["open_results", "save_results"]


def _cosine_steps(cos: xr.DataArray) -> xr.DataArray:
    """The cosines' packed int16 triangles, one chunk per layer and variant (lazy)."""
    n = cos.sizes["persona"]
    return xr.apply_ufunc(
        _packed_steps,
        cos.chunk({d: 1 for d in cos.dims if d not in ("persona", "persona_other")}),
        input_core_dims=[["persona", "persona_other"]],
        output_core_dims=[["pair"]],
        dask="parallelized",
        output_dtypes=[np.int16],
        dask_gufunc_kwargs={"output_sizes": {"pair": n * (n + 1) // 2}},
    )


def cosine_node(cos: xr.DataArray, path: str | os.PathLike) -> zarr.Array:
    """Create ``path``'s ``cosine`` node for the lazy ``cos`` as saved by
    :func:`save_results` (packed upper triangle, one chunk per layer and variant):
    metadata and coordinates only. Returns the array :func:`cosine_writes` fills."""
    steps = _cosine_steps(cos)
    ds = _storable(cos.isel(layer=0, drop=True).to_dataset(name="cosine").drop_vars("cosine"))
    ds["cosine_upper"] = steps.variable.copy()
    ds["cosine_upper"].attrs = _triangle_attrs(cos.attrs)
    ds["cosine_upper"].encoding = _triangle_encoding()
    for name in ("variant", "layer"):
        ds = ds.assign_coords({name: cos[name].values})
    # coordinates in memory (an input chunked with .chunk() has lazy ones): a lazy one would
    # be written by the returned write, which is never run
    lazy = {name: coord.variable for name, coord in ds.coords.items() if coord.chunks is not None}
    ds = ds.assign_coords(dict(zip(lazy, dask.compute(*lazy.values()), strict=True)))
    # the returned write of the data is left unused: cosine_writes does it
    with _spaced_names_stored():
        ds.to_zarr(
            path, group="cosine", mode="w-", compute=False, consolidated=False, zarr_format=3
        )
    return zarr.open_array(store=os.fspath(path), path="cosine/cosine_upper", mode="r+")


def cosine_writes(cos: xr.DataArray, target: zarr.Array, layer_start: int) -> Any:
    """A lazy write of the cosines of some layers into ``target``, from ``layer_start``:
    one task per layer and variant, holding the count of layers written.

    A dask array, not the ``Delayed`` of ``to_zarr(compute=False)``, whose graph is
    optimised (fused and renamed) on its own, so the Gram it starts from would be computed
    a second time instead of shared with the other analyses in one ``dask.compute``.
    """
    steps = _cosine_steps(cos)
    offset = [0] * steps.ndim
    offset[steps.get_axis_num("layer")] = layer_start
    data = steps.data
    return data.map_blocks(
        _write_block,
        target=target,
        offset=tuple(offset),
        dtype=np.int64,
        chunks=tuple((1,) * len(c) for c in data.chunks),
    )


def _write_block(
    block: np.ndarray, *, target: zarr.Array, offset: tuple[int, ...], block_info: Any = None
) -> np.ndarray:
    """Write one block where it belongs in ``target``, shifted by ``offset`` (a whole Zarr
    chunk: no two tasks write the same chunk); return a count of 1."""
    location = block_info[0]["array-location"]
    where = tuple(
        slice(start + shift, stop + shift)
        for (start, stop), shift in zip(location, offset, strict=True)
    )
    target[where] = block
    return np.ones((1,) * block.ndim, dtype=np.int64)


def _packed_steps(square: np.ndarray) -> np.ndarray:
    """The int16 steps of each matrix's upper triangle (diagonal included, row-major),
    a block of rows at a time: no index arrays or full-size temporaries, which at
    thousands of personas are hundreds of MB each."""
    n = square.shape[-1]
    out = np.empty((*square.shape[:-2], n * (n + 1) // 2), dtype=np.int16)
    starts = _engine.row_starts(n)
    for index in np.ndindex(*square.shape[:-2]):
        for first in range(0, n, TRIANGLE_ROWS):
            block = _quantised(np.asarray(square[index][first : first + TRIANGLE_ROWS], "f4"))
            for i, row in enumerate(block, start=first):
                out[index][starts[i] : starts[i + 1]] = row[i:]
    return out


def open_node(path: str | os.PathLike, name: str) -> xr.Dataset:
    ds = xr.open_dataset(
        path, group=name, engine="zarr", consolidated=False, chunks={}, mask_and_scale=False
    )
    return _restore(_decoded_keeping_steps(ds))


def _decoded_keeping_steps(ds: xr.Dataset) -> xr.Dataset:
    """CF-decode a node opened with ``mask_and_scale=False``, but keep the packed cosines as
    their int16 steps: unpacking those directly is 2.6x faster than re-quantising the
    float64 values xarray decodes them to (which is what any other reader gets)."""
    steps = ds.get("cosine_upper")
    ds = xr.decode_cf(ds)
    return ds if steps is None else ds.assign(cosine_upper=steps)


def save_results(
    results: xr.DataTree, path: str | os.PathLike, *, skip: Sequence[str] = ()
) -> None:
    """Write a results tree to Zarr v3 (strings as variable-length UTF-8); nodes named in
    ``skip`` are already there (written while computing)."""
    if skip:
        kept = {f"/{k}": v.to_dataset() for k, v in results.children.items() if k not in skip}
        trimmed = xr.DataTree.from_dict({"/": results.to_dataset(), **kept})
        trimmed.attrs = dict(results.attrs)
        results = trimmed
    clean = results.map_over_datasets(_storable)
    clean.attrs = dict(results.attrs)
    with _spaced_names_stored():
        clean.to_zarr(path, mode="a" if skip else "w-", consolidated=False, zarr_format=3)
    with warnings.catch_warnings():
        # Zarr says consolidated metadata is not in the v3 spec yet; xarray readers look for
        # it first and warn (RuntimeWarning) when a store has none
        warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
        zarr.consolidate_metadata(path)


@contextlib.contextmanager
def _spaced_names_stored() -> Iterator[None]:
    """Attribute names with spaces are stored as variables (xarray warns); _restore makes
    them coordinates again."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coordinate .* has a space in its name")
        yield


def open_results(path: str | os.PathLike, nodes: Sequence[str] | None = None) -> xr.DataTree:
    """Open a ``results.zarr`` written by :func:`save_results` (or ``pvx analyze``).

    Everything is loaded except the cosines, which stay lazy (dask, one chunk per layer and
    variant): they are most of the results' size. ``nodes`` opens only those analyses (the
    ones present), for a reader that needs a few.
    """
    # Opened without dask: loading a variable is then one zarr read of all its chunks (fetched
    # concurrently), not a dask task per chunk: the explorer's nodes of a 1,000 personas x 42
    # layers x 2 variants report open in 0.38 s instead of 0.67 s.
    tree = xr.open_datatree(
        path, engine="zarr", consolidated=False, chunks=None, mask_and_scale=False
    )
    if nodes is not None:
        kept = {f"/{k}": v.to_dataset() for k, v in tree.children.items() if k in nodes}
        subset = xr.DataTree.from_dict({"/": tree.to_dataset(), **kept})
        subset.attrs = dict(tree.attrs)
        tree = subset

    def load(ds: xr.Dataset) -> xr.Dataset:
        ds = _decoded_keeping_steps(ds)
        if "cosine_upper" not in ds:
            return _restore(ds.load())
        stored = ds["cosine_upper"].encoding["chunks"]  # one chunk per variant and layer
        return _restore(ds.chunk(dict(zip(ds["cosine_upper"].dims, stored, strict=True))))

    return tree.map_over_datasets(load)


# The cosine matrices are most of the results (personas² x layers x variants): saved as their
# upper triangle (diagonal included), CF-packed in int16: within 1.6e-5 of the float32 values,
# far below what a figure or a hover label shows, in an eighth of the bytes.
COSINE_SCALE = 1 / 32767


COSINE_FILL = -32768


# rows of a cosine matrix quantised at once when packing its triangle
TRIANGLE_ROWS = 256


def _quantised(cos: np.ndarray) -> np.ndarray:
    """Cosines as int16 steps of COSINE_SCALE (missing as COSINE_FILL), one layer at a time
    so no float64 copy of every matrix is made."""
    out = np.empty(cos.shape, dtype=np.int16)
    for index in np.ndindex(*cos.shape[:-2]):
        layer = np.rint(np.clip(cos[index], -1.0, 1.0) / np.float32(COSINE_SCALE))
        out[index] = np.where(np.isnan(layer), COSINE_FILL, layer)
    return out


def _dequantised(steps: np.ndarray, out: np.ndarray) -> np.ndarray:
    for index in np.ndindex(*steps.shape[:-1]):
        # into out directly: no float32 temporaries (tens of MB a layer at 5,000 personas)
        np.multiply(steps[index], np.float32(COSINE_SCALE), out=out[index], dtype=np.float32)
        out[index][steps[index] == COSINE_FILL] = np.nan
    return out


def as_saved(cos: xr.DataArray) -> xr.DataArray:
    """The cosines as ``results.zarr`` gives them back, so pages drawn now and pages
    redrawn from the saved results are the same."""
    values = np.asarray(cos.values, dtype=np.float32)
    return cos.copy(data=_dequantised(_quantised(values), values))


def _cosine_triangle(ds: xr.Dataset) -> xr.Dataset:
    cos = ds["cosine"]
    n = cos.sizes["persona"]
    lead = [d for d in cos.dims if d not in ("persona", "persona_other")]
    steps = _packed_steps(cos.transpose(*lead, "persona", "persona_other").values)
    encoding = _triangle_encoding()
    per_layer = (1 if d in ("variant", "layer") else cos.sizes[d] for d in lead)
    encoding["chunks"] = (*per_layer, n * (n + 1) // 2)
    triangle = xr.Variable(
        (*lead, "pair"), steps, attrs=_triangle_attrs(cos.attrs), encoding=encoding
    )
    return ds.drop_vars("cosine").assign(cosine_upper=triangle)


def _triangle_attrs(attrs: dict[Any, Any]) -> dict[Any, Any]:
    # CF packing: any xarray reader decodes the steps to cosines (missing ones as NaN)
    return {
        **attrs,
        "scale_factor": COSINE_SCALE,
        "pvx_layout": "upper triangle with diagonal, row-major",
    }


def _triangle_encoding() -> dict[str, Any]:
    return {
        "_FillValue": COSINE_FILL,
        # zstd level 1 on bit planes: 0.77-0.80 of the int16 steps' size in 3-5 ms a layer at
        # 1000 personas, against level 5 on bytes: 0.76 in 26-33 ms (the report's largest write)
        "compressors": (zarr.codecs.BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),),
    }


def _unpacked(steps: np.ndarray, *, n: int) -> np.ndarray:
    """Square float32 matrices (the values pages were drawn from) from packed upper
    triangles of int16 steps."""
    values = _dequantised(steps, np.empty(steps.shape, dtype=np.float32))
    return _engine.unpack_upper(values, n)


def _cosine_square(ds: xr.Dataset) -> xr.Dataset:
    triangle = ds["cosine_upper"]
    n = ds.sizes["persona"]
    cos = xr.apply_ufunc(  # lazy on dask: one layer's matrix at a time
        _unpacked,
        triangle.variable,
        input_core_dims=[["pair"]],
        output_core_dims=[["persona", "persona_other"]],
        kwargs={"n": n},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"persona": n, "persona_other": n}},
    )
    packing = ("pvx_layout", "scale_factor", "_FillValue")
    cos.attrs = {k: v for k, v in triangle.attrs.items() if k not in packing}
    return ds.drop_vars("cosine_upper").assign(cosine=cos)


# Layers per chunk of a saved result: as many as fit this size (one at least). One chunk
# per layer made 5,038 files of a few bytes to kB at L (126 layers), whose writing and reading
# took 6 of the main job's last, single-core seconds.
RESULT_CHUNK_BYTES = 1 << 20


def _layer_chunks(var: xr.Variable) -> tuple[int, ...]:
    """Chunks of one variant and a run of layers each (whole along every other dim)."""
    layer_bytes = var.dtype.itemsize * int(
        np.prod([n for d, n in var.sizes.items() if d not in ("variant", "layer")])
    )
    layers = max(1, RESULT_CHUNK_BYTES // max(layer_bytes, 1))
    return tuple(
        1 if d == "variant" else max(1, min(layers, n)) if d == "layer" else n
        for d, n in var.sizes.items()
    )


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """Zarr v3 has a specified type for variable-length strings only: use it everywhere."""
    ds = ds.drop_vars([k for k in ds.variables if str(k).startswith("sample_ids")])
    if "cosine" in ds.data_vars and "persona_other" in ds["cosine"].dims:
        ds = _cosine_triangle(ds)
    # String indexes would be written back as fixed-width (unstable) types: drop them first.
    ds = ds.drop_indexes([k for k in ds.xindexes if k not in ds.dims or ds[k].dtype.kind in "OUT"])
    fixed = {}
    for key, var in ds.variables.items():
        if var.dtype.kind in "OUT":
            values = np.array(
                [
                    "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                    for v in var.values.ravel()
                ],
                dtype=object,
            ).reshape(var.shape)
            fixed[key] = var.copy(data=values)
        # Results are saved in float32: the figures draw far coarser than its 7 digits (not
        # the linkage: SciPy's dendrogram takes only float64 matrices)
        elif var.dtype == np.float64 and key in ds.data_vars and var.size > 1024:
            if key != "linkage":
                fixed[key] = var.astype(np.float32)
        if "layer" in var.dims and key in ds.data_vars and "chunks" not in var.encoding:
            var = fixed.get(key, var)
            chunks = _layer_chunks(var)
            if var.chunks is not None:  # lazy: its blocks must not share a stored chunk
                var = var.chunk(dict(zip(var.dims, chunks, strict=True)))
            var.encoding["chunks"] = chunks
            fixed[key] = var
    return ds.assign({k: v for k, v in fixed.items() if k in ds.data_vars}).assign_coords(
        {k: v for k, v in fixed.items() if k in ds.coords}
    )


def _restore(ds: xr.Dataset) -> xr.Dataset:
    """Back to pvx's in-memory form: object strings, missing labels as NaN, ids indexed."""
    if "cosine_upper" in ds.data_vars:
        ds = _cosine_square(ds)
    fixed = {}
    for key, var in ds.variables.items():
        if var.dtype.kind in "OUT":
            values = np.asarray(var.values, dtype=object)
            if "kind" in var.attrs:
                values = np.array([v if v else np.nan for v in values.ravel()], object).reshape(
                    values.shape
                )
            fixed[key] = var.copy(data=values)
    ds = ds.assign({k: v for k, v in fixed.items() if k in ds.data_vars}).assign_coords(
        {k: v for k, v in fixed.items() if k in ds.coords}
    )
    # CF's space-separated "coordinates" attribute cannot name "home region": restore it
    ds = ds.set_coords([k for k, v in ds.data_vars.items() if "kind" in v.attrs])
    for key, dim in (("id", "persona"), ("id_other", "persona_other")):
        if key in ds.coords and ds[key].dims == (dim,) and key not in ds.xindexes:
            ds = ds.set_xindex(key)
    return ds
