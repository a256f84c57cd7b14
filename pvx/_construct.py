"""Build and check labelled persona-vector arrays (DESIGN §2); no I/O."""

from __future__ import annotations

import collections
import datetime
import json
import numbers
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

DIMS = ("persona", "layer", "hidden")
# the store's own names (an attribute so named would replace them) and the dimensions pvx's
# results put beside ``persona`` (an attribute so named would be dropped)
PVX_ARRAYS = ("vectors", "layer", "hidden", "persona", "variant", "id", "name", "sample_ids")
RESULT_DIMS = ("component", "persona_other")
OWN_LABELS = (*PVX_ARRAYS, *RESULT_DIMS)  # names an attribute may not take
KINDS = ("numeric", "ordinal", "categorical")
# Per-persona coordinates that are not attributes.
PERSONA_COORDS = ("id", "name", "sample_ids")
WRITABLE_DTYPES = (np.dtype("float16"), np.dtype("float32"))


def persona_vectors(
    data: Any,
    *,
    ids: Sequence[str],
    names: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    attributes: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None,
    kinds: Mapping[str, str] | None = None,
    orders: Mapping[str, Sequence[str]] | None = None,
    sample_ids: Sequence[Sequence[str]] | None = None,
    model: str | None = None,
    mask_strategy: str | None = None,
    variant: str | None = None,
) -> xr.DataArray:
    """Label a ``(persona, layer, hidden)`` array as pvx ``vectors``.

    Parameters
    ----------
    data
        Array-like (NumPy or dask) of shape ``(persona, layer, hidden)``.
    ids
        Persona ids, unique strings; any string is valid.
    names
        Display names (default: the ids; a missing one, None or NaN, is its id too). A pandas
        Series is matched to the personas by its index (persona ids), as pandas would.
    layers
        The model's real layer numbers (default ``0..n_layer-1``).
    attributes
        Persona attributes by name, one value per persona (``None``/NaN = missing): lists
        in persona order, or pandas Series indexed by persona id; or a DataFrame, one
        attribute per column, indexed by persona id.
    kinds
        ``numeric``, ``ordinal`` or ``categorical`` per attribute. Default: ``ordinal`` when
        an order is given, ``numeric`` for numbers, else ``categorical``.
    orders
        For ordinal attributes, their values from lowest to highest.
    sample_ids
        Provenance: per persona, the ids of the samples averaged into its vector.
    model, mask_strategy, variant
        Stored in ``attrs["model"]``, ``attrs["mask_strategy"]`` and the scalar ``variant``
        coordinate.

    Returns
    -------
    xarray.DataArray
        Named ``vectors``, dims ``(persona, layer, hidden)``, with ``id`` indexed.

    Examples
    --------
    >>> import numpy as np
    >>> da = persona_vectors(np.zeros((2, 3, 4), "f4"), ids=["a", "b"], layers=[10, 11, 12])
    >>> da.dims, da["layer"].values.tolist()
    (('persona', 'layer', 'hidden'), [10, 11, 12])
    """
    shape = np.shape(data)
    if len(shape) != 3:
        raise ValueError(
            f"persona_vectors() needs a 3-D (persona, layer, hidden) array, got shape {shape}; "
            "add a persona axis with data[None] for a single persona"
        )
    n_persona, n_layer, _ = shape
    ids = _as_strings(ids, "ids")
    _check_length("ids", ids, n_persona)
    names = ids if names is None else _names_or_ids(_by_persona(names, ids, "names"), ids)
    layers = np.arange(n_layer) if layers is None else _layer_numbers(layers)
    _check_length("layers", layers, n_layer)
    coords: dict[Hashable, Any] = {
        "id": ("persona", ids),
        "name": ("persona", names),
        "layer": ("layer", layers.astype(np.int64)),
    }
    if variant is not None:
        coords["variant"] = variant
    if sample_ids is not None:
        _check_length("sample_ids", sample_ids, n_persona)
        coords["sample_ids"] = ("persona", _tuples(sample_ids))
    kinds, orders = dict(kinds or {}), dict(orders or {})
    for key, values in ({} if attributes is None else attributes).items():  # or a DataFrame
        _check_attribute_name(key)
        values = _by_persona(values, ids, f"attribute {key!r}")
        _check_length(f"attribute {key!r}", values, n_persona)
        try:
            coords[key] = attribute_variable(values, kind=kinds.get(key), order=orders.get(key))
        except ValueError as error:
            raise ValueError(f"attribute {key!r}: {error}") from None
    attrs = {k: v for k, v in (("model", model), ("mask_strategy", mask_strategy)) if v}
    da = xr.DataArray(data, dims=DIMS, coords=coords, name="vectors", attrs=attrs)
    return da.set_xindex("id")


def _check_attribute_name(key: Hashable) -> None:
    """Refuse an attribute that would replace the array's own labels: a table's ``id``
    column would silently relabel every vector (``da.sel(id=...)`` then finds another
    persona's)."""
    if key in OWN_LABELS:
        hint = {
            "id": "; if it holds the persona ids, index the table by it: df.set_index('id')",
            "name": "; if the column holds display names, pass it as names=",
        }.get(str(key), "")
        raise ValueError(
            f"persona_vectors() got an attribute named {key!r}, which is one of pvx's own "
            f"labels; rename it (e.g. df.rename(columns={{{key!r}: {key + '_attr'!r}}})){hint}"
        )


def attribute_variable(
    values: Sequence[Any], *, kind: str | None = None, order: Sequence[str] | None = None
) -> xr.Variable:
    """A persona attribute as a ``persona`` Variable carrying ``kind`` (and ``order``)."""
    array = _objects(values)
    if array.ndim != 1:
        raise ValueError(
            f"an attribute needs one value per persona (a list), got shape {array.shape}"
        )
    if kind is None:
        kind = "ordinal" if order is not None else _infer_kind(array)
    if kind not in KINDS:
        raise ValueError(f"attribute kind must be one of {KINDS}, got {kind!r}")
    attrs: dict[str, Any] = {"kind": kind}
    if kind == "numeric":
        try:
            data = np.array([np.nan if _missing(v) else float(v) for v in array], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"a numeric attribute needs numbers, got {array[:5].tolist()!r}...; "
                "pass kind='categorical' for labels"
            ) from None
        # numbers are stored as float64: an integer it cannot hold would come back another
        inexact = [v for v in array if isinstance(v, int | np.integer) and int(float(v)) != v]
        if inexact:
            raise ValueError(
                f"a numeric attribute holds integers float64 cannot hold exactly "
                f"({inexact[:3]!r}: above 2**53); pass kind='categorical' to keep them as text"
            )
        return xr.Variable("persona", data, attrs)
    data = np.array([np.nan if _missing(v) else _label(v) for v in array], dtype=object)
    for value in data:
        if isinstance(value, str):
            _check_text(value, "an attribute")
    if kind == "ordinal":
        if order is None:
            raise ValueError("an ordinal attribute needs order=[lowest, ..., highest]")
        levels = _objects(order)
        if any(_missing(v) for v in levels):
            raise ValueError(f"order={list(order)!r} holds a missing value; list levels only")
        attrs["order"] = [_label(v) for v in levels]
        check_order(attrs["order"], what="order")
        unknown = sorted({v for v in data if isinstance(v, str)} - set(attrs["order"]))
        if unknown:
            raise ValueError(
                f"ordinal values {unknown!r} are not in order={attrs['order']!r}; "
                "add them to the order"
            )
    return xr.Variable("persona", data, attrs)


def attribute_names(da: xr.DataArray | xr.Dataset) -> list[Hashable]:
    """Names of the persona attribute coordinates (those with ``attrs['kind']``)."""
    # the variables, not coords.items(): that builds a DataArray per coordinate (0.2 ms)
    variables = da.coords.variables
    return [k for k, v in variables.items() if v.dims == ("persona",) and "kind" in v.attrs]


def validate_vectors(da: xr.DataArray, *, func: str) -> xr.DataArray:
    """Check a DataArray is writable pvx ``vectors``; return it in canonical dim order.

    Checks everything that needs no store: dims, dtype, ids, layer labels, attribute kinds,
    finite values (this reads the data once).
    """
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{func}() needs an xarray.DataArray, got {type(da).__name__}")
    if set(da.dims) != set(DIMS):
        raise ValueError(
            f"{func}() needs dims {DIMS}, but the array has {da.dims}; "
            "rename with da.rename(...) or build it with pvx.persona_vectors(...)"
        )
    if da.dims != DIMS:
        da = da.transpose(*DIMS)
    empty = [dim for dim in ("layer", "hidden") if da.sizes[dim] == 0]
    if empty:
        raise ValueError(
            f"{func}(): the vectors have no {' and no '.join(empty)} values (shape "
            f"{dict(da.sizes)}); every persona needs at least one layer of at least one value"
        )
    if da.dtype not in WRITABLE_DTYPES:
        raise TypeError(
            f"{func}() stores float16 or float32, got {da.dtype}; convert with da.astype('float32')"
        )
    if "id" not in da.coords:
        raise ValueError(f"{func}() needs an 'id' coordinate along 'persona'")
    ids = pd.Index(np.asarray(da["id"].values, dtype=object))
    if not all(isinstance(i, str) for i in ids):
        raise TypeError(f"{func}(): ids must be strings, got {ids[:5].tolist()!r}")
    for i in ids:
        _check_text(i, f"{func}(): ids")
    if ids.has_duplicates:
        dup = sorted(set(ids[ids.duplicated()]))
        raise ValueError(f"{func}(): duplicate ids {dup!r}; ids must be unique")
    if "name" in da.coords:
        if da["name"].dims != ("persona",):
            raise ValueError(f"{func}(): 'name' must be a coordinate along 'persona' alone")
        try:
            names = _names_or_ids(da["name"].values, ids.to_numpy())
        except TypeError as err:
            raise TypeError(f"{func}(): {err}") from None
        da = da.assign_coords(name=("persona", names, da["name"].attrs))
    if "layer" not in da.coords or not np.issubdtype(da["layer"].dtype, np.integer):
        raise ValueError(f"{func}() needs integer 'layer' labels (the model's layer numbers)")
    if pd.Index(da["layer"].values).has_duplicates:
        raise ValueError(f"{func}(): duplicate layer labels {da['layer'].values.tolist()!r}")
    for key in attribute_names(da):
        check_attribute(da[key].variable, key, func=func)
    finite = np.isfinite(np.asarray(da.data, dtype=np.float32)).all(axis=(1, 2))
    if not finite.all():
        bad = ids[~finite].tolist()
        raise ValueError(
            f"{func}(): non-finite values (NaN or inf) in persona(s) {bad[:10]!r}; "
            "fix or drop them before writing"
        )
    return da


def _layer_numbers(layers: Any) -> np.ndarray:
    """Layer labels as int64; anything but whole numbers that int64 holds is refused (2.7 was
    stored as 2, 1e20 as -2**63)."""
    array = np.asarray(layers)
    if array.dtype == object:  # Python ints of any size, or anything else
        whole = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in array.flat)
        values = array.ravel().tolist()
        shown = [v for v in values if not isinstance(v, numbers.Integral)] or values
    else:
        whole = array.dtype.kind in "iu" or (
            array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array % 1 == 0)))
        )
        values = array.ravel().tolist()
        shown = (
            [v for v in values if not float(v).is_integer()] if array.dtype.kind == "f" else values
        )
    if not whole:
        raise ValueError(
            f"layers are the model's layer numbers, whole numbers, got {shown[:3]!r}; pass "
            "them as integers (e.g. layers=range(n_layer))"
        )
    big = [v for v in values if not -(2**63) <= int(v) < 2**63]
    if big:
        raise ValueError(f"layers {big[:3]!r} are beyond int64, which stores layer numbers")
    return np.array([int(v) for v in values], dtype=np.int64).reshape(array.shape)


def _by_persona(values: Any, ids: np.ndarray, what: str) -> Any:
    """``values`` in persona order. A pandas Series is read by its index: one whose labels
    are the persona ids is reordered to ``ids``; otherwise one with the default index
    (0..n-1, a table's column in persona order) is taken in order; any other index is an
    error (read by position, it would attach values to the wrong personas). The default
    index is ambiguous when the ids are "0".."n-1" in another order: an error too."""
    if not isinstance(values, pd.Series):
        return values
    index = values.index
    labels = [str(i) for i in index]
    default = isinstance(index, pd.RangeIndex) and index.equals(pd.RangeIndex(len(values)))
    if len(set(labels)) == len(labels) == len(ids) and set(labels) == set(ids.tolist()):
        if default and labels != ids.tolist():
            raise ValueError(
                f"{what} is a pandas Series with the default index 0..{len(ids) - 1}, and the "
                "persona ids are the same numbers in another order: it could list the values "
                "in persona order or by id. Say which: values.to_numpy() for persona order, "
                "or values.set_axis(values.index.astype(str)) for by id"
            )
        return values.set_axis(labels).reindex(ids.tolist()).to_numpy()
    if default:
        return values.to_numpy()
    known = set(ids.tolist())
    strangers = [i for i in labels if i not in known][:3]
    problem = (
        f"whose index holds {strangers!r}, which are not persona ids"
        if strangers
        else f"whose index does not list each of the {len(ids)} persona ids once"
    )
    raise ValueError(
        f"{what} is a pandas Series {problem}: read by position, its values would go to other "
        "personas; index it by persona id, or pass values.to_numpy() for values already in "
        "persona order"
    )


def _names_or_ids(names: Sequence[Any], ids: np.ndarray) -> np.ndarray:
    """Names as strings, a missing one (None, NaN: a gap in a table's column) replaced by
    the persona's id, as names default to the ids; other values than text are refused."""
    given = np.asarray(names, dtype=object).ravel()
    _check_length("names", given, len(ids))
    return _as_strings([i if _missing(n) else n for n, i in zip(given, ids, strict=True)], "names")


def check_attribute(var: xr.Variable, key: Hashable, *, func: str) -> None:
    """Raise if an attribute variable has an unknown kind or values outside its order."""
    kind = var.attrs.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{func}(): attribute {key!r} has kind {kind!r}; use one of {KINDS}")
    if kind == "numeric" and not np.issubdtype(var.dtype, np.number):
        raise ValueError(f"{func}(): numeric attribute {key!r} holds {var.dtype} values")
    if kind != "numeric":
        for value in var.values:
            if isinstance(value, str):
                _check_text(value, f"{func}(): attribute {key!r}")
    if kind == "ordinal":
        order = var.attrs.get("order")
        if not order:
            raise ValueError(f"{func}(): ordinal attribute {key!r} needs attrs['order']")
        order = [_label(v) for v in order]  # as the values: text, dates as their label
        check_order(order, what=f"{func}(): the order of ordinal attribute {key!r}")
        unknown = sorted({_label(v) for v in var.values if not _missing(v)} - set(order))
        if unknown:
            raise ValueError(
                f"{func}(): values {unknown!r} of ordinal attribute {key!r} are not in its "
                f"order {order!r}"
            )


def check_order(order: Sequence[str], *, what: str) -> None:
    """Raise if an ordinal order names a level twice or holds a blank: the ranks would
    depend on which repeat counts."""
    # a stored attribute's order is set again with pvx.set_attribute(store, name, values,
    # order=[...])
    fix = "; for a stored attribute set a new one with pvx.set_attribute(..., order=[...])"
    repeated = sorted(level for level, count in collections.Counter(order).items() if count > 1)
    if repeated:
        raise ValueError(
            f"{what} {list(order)!r} names {repeated!r} more than once; "
            f"list each level once, lowest first{fix}"
        )
    if "" in order:
        raise ValueError(
            f'{what} {list(order)!r} holds "", which pvx reads as a missing value{fix}'
        )
    for level in order:
        try:
            _check_text(str(level), what)
        except ValueError as error:
            raise ValueError(f"{error}{fix}") from None


def encode_sample_ids(values: Any) -> np.ndarray:
    """Provenance tuples -> JSON strings for storage."""
    return np.array([json.dumps(list(v)) for v in values], dtype=object)


def decode_sample_ids(values: Any) -> np.ndarray:
    """JSON strings -> provenance tuples (missing -> empty tuple)."""
    return _tuples([json.loads(v) if v else [] for v in values])


def _tuples(values: Sequence[Sequence[str]]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = tuple(str(s) for s in v)
    return out


def _as_strings(values: Sequence[Any], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=object).ravel()
    other = [v for v in array if not isinstance(v, str)]
    if other:
        raise TypeError(f"{what} must be strings, got {other[:5]!r}")
    for value in array:
        _check_text(value, what)
    return array


def _check_text(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from JSON's "\ud800"
        raise ValueError(
            f"{what} holds {value!r}, which is not valid Unicode text (a lone surrogate); "
            "fix the text where it came from"
        ) from None
    if "\x00" in value:  # NumPy's fixed-width text drops trailing NULs: "a\x00" would be "a"
        raise ValueError(f"{what} holds {value!r}, with a NUL character; remove it")


def _check_length(what: str, values: Any, n: int) -> None:
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries for {n} along its axis")


def _missing(value: Any) -> bool:
    """None, NaN and pandas' and NumPy's other markers of a missing value (``pd.NA`` of
    nullable columns, ``NaT``) and ``""`` (a blank cell of a CSV column, and how the store
    keeps a missing label): a value that is not there, never a class of its own."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == ""
    if np.ndim(value) != 0:
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _label(value: Any) -> str:
    """A categorical value as text; a date or time the same whichever type holds it
    (``datetime64[D]`` reads "2020-01-01", a Timestamp "2020-01-01 00:00:00"), and a whole
    number the same as an int or a float."""
    if isinstance(value, datetime.date | np.datetime64):
        try:
            stamp = pd.Timestamp(value)
            if stamp.tz is None and stamp == stamp.normalize():
                return str(stamp.date())
            return str(stamp)  # a time, or a time zone: "2020-01-01 00:00:00+09:00"
        except (ValueError, OverflowError, NotImplementedError):  # beyond pandas' range
            return str(value)
    if (
        isinstance(value, float | np.floating)
        and (number := float(value)).is_integer()
        and abs(number) < 2**53
    ):
        # 3.0 reads "3", as 3 does: an int column with a gap arrives as floats (pandas), and
        # one append's 3.0 must not be another class than the next one's 3
        return str(int(number))
    return str(value)


def _objects(values: Any) -> np.ndarray:
    """``values`` as an object array; dates as Timestamps (NumPy turns datetime64[ns] into
    integers when asked for objects)."""
    if getattr(getattr(values, "dtype", None), "kind", None) == "M" and np.ndim(values) == 1:
        dates = pd.Series(np.asarray(values) if isinstance(values, np.ndarray) else values)
        return np.array(dates.astype(object).tolist(), dtype=object)
    return np.asarray(values, dtype=object)


def _infer_kind(array: np.ndarray) -> str:
    present = [v for v in array if not _missing(v)]
    numeric = all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in present
    )
    return "numeric" if present and numeric else "categorical"
