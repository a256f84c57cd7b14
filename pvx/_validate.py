"""Shared argument checks for the analysis functions, and their messages.

Every check runs at the public boundary, on metadata only (dims, sizes, coordinate labels),
so it never computes a lazy array. Messages say what was expected, what was found and the fix.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import xarray as xr

#: What ``layer=`` accepts: one label (drops the dim, as ``sel`` does), a list, or None (all).
LayerSelection: TypeAlias = Hashable | Sequence[Hashable] | None

#: The id of the model's default-voice persona, stored with the others but left out of
#: analyses unless a function is called with ``include_baseline=True``.
BASELINE_ID = "baseline_assistant"


def require_dims(da: xr.DataArray, *dims: Hashable, func: str) -> None:
    """Raise ``ValueError`` unless ``da`` has every dimension in ``dims``.

    Parameters
    ----------
    da : xarray.DataArray
        The array to check.
    *dims : hashable
        The dimensions that must be present.
    func : str
        Name of the public function, used in the message.
    """
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise ValueError(
            f"{func}() needs dimension(s) {list(dims)!r}, but the array has {da.dims!r} "
            f"(missing {missing!r}); rename with da.rename(...) to use pvx's names "
            "('persona', 'layer', 'hidden')"
        )


def select_layers(
    da: xr.DataArray, layer: LayerSelection, *, func: str, holder: str = "the array"
) -> xr.DataArray:
    """Select ``layer`` labels like ``da.sel(layer=...)``, with a clear error for unknown labels.

    ``None`` keeps every layer, one label drops the ``layer`` dimension and a list keeps it.
    ``func`` and ``holder`` name the caller and the array in errors.

    Raises
    ------
    ValueError
        If ``layer`` is given but the array has no ``layer`` dimension.
    KeyError
        If any requested label is not a layer of the array.
    """
    if layer is None:
        return da
    if "layer" not in da.dims:
        raise ValueError(
            f"{func}() got layer={layer!r}, but the array has no 'layer' dimension "
            f"(dims {da.dims!r}); select the layer before calling, or pass layer=None"
        )
    scalar = np.ndim(layer) == 0
    wanted = [layer] if scalar else list(layer)
    if not wanted:
        raise ValueError(f"{func}() got an empty list of layers; pass at least one label")
    available = da["layer"].to_index() if "layer" in da.coords else None
    if available is None:
        raise ValueError(
            f"{func}() selects layers by label, but the 'layer' dimension has no coordinate; "
            "add one with da.assign_coords(layer=...)"
        )
    repeated = [w for w, n in collections.Counter(wanted).items() if n > 1]
    if repeated:  # a layer twice would be analysed, and drawn, twice
        raise ValueError(
            f"{func}() got layer label(s) {repeated!r} more than once; list each layer once"
        )
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise KeyError(
            f"{func}() got unknown layer label(s) {_summarise(unknown)}; {holder} has layers "
            f"{_summarise(available.tolist())}. Layer labels are the model's real layer "
            "numbers: pick from those"
        )
    return da.sel(layer=layer)


def drop_baseline(da: xr.DataArray, *, include_baseline: bool) -> xr.DataArray:
    """Drop the ``baseline_assistant`` persona unless asked to keep it: the one place pvx
    does (``pvx.load`` and every analysis call it).

    Reads ids from the ``id`` index or an in-memory ``id`` coordinate, so it never computes
    lazy data; the kept personas are taken as runs of rows, so stored chunks stay whole.
    """
    if include_baseline or "id" not in da.coords or "persona" not in da.dims:
        return da
    if "id" in da.indexes:
        ids = np.asarray(da.indexes["id"], dtype=object)
    elif da["id"].chunks is None:  # not lazy: safe to read
        ids = np.asarray(da["id"].values, dtype=object)
    else:
        return da
    keep = ids != BASELINE_ID
    return da if keep.all() else keep_rows(da, keep)


def keep_rows(da: xr.DataArray, keep: np.ndarray) -> xr.DataArray:
    """``da`` where ``keep``, as slices of contiguous personas: each slice reads only the
    stored blocks it touches (a fancy index would read, and re-chunk, every block)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep.astype(np.int8), [0]])))
    runs = [da.isel(persona=slice(a, b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    if not runs:
        return da.isel(persona=slice(0, 0))
    if len(runs) == 1:
        return runs[0]
    return xr.concat(runs, "persona", coords="minimal", compat="override", join="override")


def require_min_personas(n: int, minimum: int, *, func: str, why: str = "") -> None:
    """Raise ``ValueError`` if fewer than ``minimum`` personas are left to analyse."""
    if n < minimum:
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{func}() needs at least {minimum} personas{reason}, but the array has {n}; "
            f"add personas or use a method that works with fewer"
        )


def check_n_components(
    n_components: int, *, n_persona: int, n_hidden: int, func: str, limit: int | None = None
) -> int:
    """Check ``1 <= n_components <= limit`` (default ``min(personas, hidden)``)."""
    if limit is None:
        limit = min(n_persona, n_hidden)
    if not isinstance(n_components, int | np.integer) or isinstance(n_components, bool):
        raise TypeError(f"{func}() needs an integer n_components, got {n_components!r}")
    if not 1 <= n_components <= limit:
        raise ValueError(
            f"{func}() got n_components={n_components!r}, but at most {limit} are possible "
            f"with {n_persona} personas and {n_hidden} hidden units; "
            f"pass n_components between 1 and {limit}"
        )
    return int(n_components)


def check_positive_int(
    value: int,
    name: str,
    *,
    func: str,
    maximum: int,
    why: str,
    minimum: int = 1,
    too_large: str | None = None,
) -> int:
    """Check ``minimum <= value <= maximum`` for integer options such as ``k`` or
    ``n_clusters``; ``too_large`` is the advice when above (default: fewer, or add personas)."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise TypeError(f"{func}() needs an integer {name}, got {value!r}")
    if not minimum <= value <= maximum:
        if value < minimum:
            advice = f"pass {minimum} or more"
        else:
            advice = too_large or f"pass a smaller {name} or add personas"
        raise ValueError(
            f"{func}() got {name}={value!r}, but it must be between {minimum} and {maximum} "
            f"({why}); {advice}"
        )
    return int(value)


def check_choice(value: Any, choices: Sequence[str], name: str, *, func: str) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{func}() got unknown {name} {value!r}; choose one of {list(choices)!r}")
    return str(value)


def persona_ids(da: xr.DataArray) -> np.ndarray:
    """Labels to name personas in messages: the ``id`` index, else positions.

    Never computes: a lazy ``id`` coordinate without an index falls back to positions.
    """
    n = da.sizes["persona"]
    if "id" in da.indexes:
        return np.asarray(da.indexes["id"], dtype=object)
    if "id" in da.coords and not _is_lazy(da["id"]):
        return np.asarray(da["id"].values, dtype=object)
    return np.asarray([f"persona[{i}]" for i in range(n)], dtype=object)


def nonfinite_message(ids: Iterable[Any]) -> str:
    """The message for non-finite activations, naming the offending personas.

    It names no function: the check runs in a kernel shared by every analysis requested
    together, so the same task serves (and reports for) all of them.
    """
    ids = list(ids)
    return (
        f"found non-finite values (NaN or inf) in the vectors of persona(s) {_summarise(ids)}, "
        "which no analysis can use; drop them with da.isel(persona=~da['id'].isin([...])) "
        "or fix the extraction that produced them"
    )


def _is_lazy(da: xr.DataArray) -> bool:
    return not isinstance(da.variable._data, np.ndarray) and hasattr(da.data, "dask")


def _summarise(values: Sequence[Any], limit: int = 10) -> str:
    values = list(values)
    if len(values) <= limit:
        return repr(values)
    return f"{values[:limit]!r} and {len(values) - limit} more"
