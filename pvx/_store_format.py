"""The pvx store's format: constants, names, the encoding of per-persona columns.

Shared by :mod:`pvx.store` (the public API), :mod:`pvx._store_read` and
:mod:`pvx._store_write`. The layout itself is described in :mod:`pvx.store`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
import zarr

from pvx._construct import (
    PVX_ARRAYS,
    RESULT_DIMS,
    _label,
    decode_sample_ids,
    encode_sample_ids,
)
from pvx._construct import _missing as _is_missing
from pvx._repository import CHECKSUM_FILE, METADATA_KEYS, StoreError

FORMAT_VERSION = 2
DEFAULT_PERSONA_BLOCK = 64


# Per-persona coordinates are tiny: few chunks keep opening a store a handful of reads, even
# over HTTP (all are requested at once). An append rewrites the last one whole, and zarr
# encodes strings one by one: 1024 rather than 4096 took 1.5 ms off each append.
COLUMN_CHUNK = 1024


PARTITION_BYTES = 128 * 2**20


# Chunks equal to the fill value are written too, so a missing chunk always means damage.
_EVERY_CHUNK = {"write_empty_chunks": True}


NAME_LIMIT = 128  # characters: names become file names, which most systems cap at 255 bytes
NAME_BYTES = 255  # ... in UTF-8, which 128 characters outside ASCII can exceed


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


RESERVED_PREFIXES = ("_", ".")


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


def _encode(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "numeric":
        return np.asarray(values, dtype="float64")
    if kind == "sample_ids":
        return encode_sample_ids(values)
    # Labels are strings; missing ones are stored as "" (the string type has no NaN).
    return np.array(["" if _is_missing(v) else _label(v) for v in values], dtype=object)


def _check_attribute_names(names: Sequence[Hashable], *, func: str) -> None:
    """Refuse attribute names that would clash with pvx's arrays or break a Zarr path."""
    for name in names:
        problem = _name_problem(name)
        if problem:
            raise ValueError(f"{func}(): attribute name {name!r} {problem}; try {_suggest(name)!r}")


def case_twins(
    names: Sequence[Hashable], taken: Sequence[str] = PVX_ARRAYS
) -> list[tuple[str, str]]:
    """``(earlier, name)`` pairs among ``names`` and the names ``taken`` that differ only in
    case: one file on case-insensitive file systems (compared as they do, by lower case),
    and a published copy's consolidated metadata loses one of them."""
    seen = {other.lower(): other for other in taken}
    twins = []
    for name in map(str, names):
        other = seen.setdefault(name.lower(), name)
        if other != name:
            twins.append((other, name))
    return twins


def path_prefixes(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b", "a/b/c"]``: the folders a path makes."""
    parts = path.split("/")
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


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
    if name in RESULT_DIMS:
        return "is reserved: pvx's results (PCA, UMAP, pairwise) use it as a dimension"
    if name in METADATA_KEYS:
        return "is the name of Zarr's metadata files"
    if len(name) > NAME_LIMIT:
        return f"is longer than {NAME_LIMIT} characters"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_BYTES:
        return f"takes more than {NAME_BYTES} bytes in UTF-8 (a file name's limit)"
    return None


def _suggest(name: Hashable) -> str:
    text = "".join(
        "_" if c == "/" or unicodedata.category(c) in ("Cc", "Cf") else c for c in str(name)
    )
    text = text.lstrip("_.").strip()[:NAME_LIMIT]
    while len(text.encode("utf-8", "surrogatepass")) > NAME_BYTES:
        text = text[:-1]
    text = text or "attribute"
    reserved = (*PVX_ARRAYS, *RESULT_DIMS, *METADATA_KEYS)
    return f"{text}_attr" if text in reserved else text


def _identity(
    da: xr.DataArray, model: str | None, mask: str | None, variant: str | None
) -> tuple[str, str, str]:
    # "" given is refused below, not replaced by the array's own names
    model = da.attrs.get("model") if model is None else model
    mask = da.attrs.get("mask_strategy") if mask is None else mask
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
    if base in METADATA_KEYS or base == CHECKSUM_FILE:  # a published copy's own files
        base = "model"
    # names differing only in case are one folder on case-insensitive file systems and in
    # a published copy's consolidated metadata
    taken = {name.lower() for name in (*models, *root.group_keys(), *root.array_keys())}
    candidate, k = base, 1
    while candidate.lower() in taken:
        k += 1
        candidate = f"{base}-{k}"
    return candidate


def _decode(name: str, raw: np.ndarray, attrs: dict[str, Any]) -> xr.Variable:
    if name == "sample_ids":
        return xr.Variable("persona", decode_sample_ids(raw))
    if attrs.get("kind") == "numeric":
        return xr.Variable("persona", np.asarray(raw, dtype=float), attrs)
    values = np.asarray(raw, dtype=object)
    if "kind" in attrs:
        values = np.array([v if v else np.nan for v in values], dtype=object)
    return xr.Variable("persona", values, attrs)
