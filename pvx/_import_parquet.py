"""Import the ``persona-vectors`` Parquet form: :func:`import_parquet` (part of
:mod:`pvx.importers`' API)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xarray as xr

from pvx._construct import persona_vectors, validate_vectors
from pvx._import_common import ImportedVariant, _model_names, _Plan, _write_plans

PARQUET_COLUMNS = ("persona_id", "name", "sample_ids", "vector")


# Hugging Face shard names: "<split>-00000-of-00003.parquet" (optionally "-<hash>").
_SHARD = re.compile(r"^(?P<split>.+?)-(?P<index>\d+)-of-(?P<of>\d+)(?:-[0-9a-fA-F]+)?$")


_PathArg = str | os.PathLike
_SplitFiles = Mapping[str, _PathArg | Sequence[_PathArg]]


def import_parquet(
    source: _PathArg | _SplitFiles,
    store: str | os.PathLike,
    *,
    config: str | None = None,
    model: str | Mapping[str, str] | None = None,
    num_layers: int | None = None,
    layers: Sequence[int] | None = None,
    skip_existing: bool = False,
    **storage_options: Any,
) -> list[ImportedVariant]:
    """Import the published table form of persona vectors from local Parquet files.

    Each row holds ``persona_id`` (string), ``name`` (string; null falls back to the id),
    ``sample_ids`` (list of strings; null means none) and ``vector``, the ``(layers,
    hidden)`` activations as a nested list column (``list<list<float>>``) or, with
    ``num_layers``, a flat list of ``layers * hidden`` values. float16 vectors stay float16,
    any other float type is stored as float32. Each split is one variant; a config
    ``<model_dir>__<mask_strategy>`` names the model directory and mask strategy (split at
    its last ``__``).

    ``source`` is either

    - a mapping ``{variant: path or [paths]}`` of one config (``config=`` required), or
    - a directory in the Hugging Face datasets layout: ``<source>/<config>/`` holding
      ``<split>-00000-of-00001.parquet`` style shards (or ``<split>.parquet``, or
      ``<split>/*.parquet``). With ``config=`` only that config is read; without it,
      every subdirectory named ``*__*`` is a config (or ``source`` itself, if it is one).

    Atomicity: every split of every config is read and checked (columns, shapes, nulls,
    unique ids, finite values, clashes with the store) before anything is written. Then
    each variant is written whole or not at all; only an I/O failure in that second pass
    can leave earlier variants imported (rerun with ``skip_existing=True``).

    Parameters
    ----------
    source
        A directory, or a mapping from variant name to Parquet file(s).
    store
        Path or URL of the pvx store (created if absent).
    config
        ``<model_dir>__<mask_strategy>``; required with a mapping.
    model
        The model name to store: a string when all configs share one ``model_dir``, or a
        mapping ``{model_dir: name}``. Default: the ``model_dir``.
    num_layers
        Layer count of a flat ``vector`` column (also checked for nested ones).
    layers
        The model's layer numbers (default ``0..layers-1``).
    skip_existing
        Skip variants the store already holds instead of refusing to import.
    **storage_options
        fsspec options for a store URL.

    Returns
    -------
    list of ImportedVariant
        The variants written, by config then split name.

    Raises
    ------
    FileNotFoundError
        If a directory or file is missing.
    ValueError
        For missing columns, a malformed ``vector``, duplicate ids, non-finite values or
        names the store cannot hold (the file or split is named in the message).
    StoreError
        If the store already holds one of the variants (and not ``skip_existing``).

    Examples
    --------
    >>> pvx.import_parquet("persona-vectors-dataset/", "vectors.zarr")  # doctest: +SKIP
    >>> pvx.import_parquet(
    ...     {"templated": "templated.parquet"}, "vectors.zarr", config="gemma-2-9b-it__mean"
    ... )  # doctest: +SKIP
    """
    if num_layers is not None and (not isinstance(num_layers, int) or num_layers < 1):
        raise ValueError(
            f"import_parquet(): num_layers must be a positive integer, got {num_layers!r}"
        )
    configs = _parquet_configs(source, config)
    model_dirs = sorted({_split_config(c)[0] for c in configs})
    names = _model_names(model, model_dirs, func="import_parquet")
    plans = []
    for cfg, splits in configs.items():
        model_dir, mask = _split_config(cfg)
        for variant, paths in splits.items():
            plans.append(
                _plan_parquet_variant(
                    paths,
                    model=names.get(model_dir, model_dir),
                    mask=mask,
                    variant=variant,
                    num_layers=num_layers,
                    layers=layers,
                )
            )
    return _write_plans(plans, store, skip_existing, storage_options, func="import_parquet")


def _parquet_configs(
    source: _PathArg | _SplitFiles, config: str | None
) -> dict[str, dict[str, list[Path]]]:
    """``{config: {split: [files]}}`` from a mapping or a directory."""
    if isinstance(source, Mapping):
        if config is None:
            raise ValueError(
                "import_parquet(): with a {variant: files} mapping, pass "
                "config='<model_dir>__<mask_strategy>'"
            )
        splits: dict[str, list[Path]] = {}
        for variant, paths in source.items():
            files = (
                [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
            )
            if not files:
                raise ValueError(f"import_parquet(): no files given for variant {variant!r}")
            for path in files:
                if not path.is_file():
                    raise FileNotFoundError(f"import_parquet(): no file {str(path)!r}")
            splits[str(variant)] = files
        return {config: splits}
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"import_parquet(): no directory {str(root)!r}")
    if config is not None:
        dirs = [root / config]
        if not dirs[0].is_dir():
            raise FileNotFoundError(
                f"import_parquet(): no config directory {str(dirs[0])!r}; configs found: "
                f"{sorted(d.name for d in root.iterdir() if d.is_dir() and '__' in d.name)}"
            )
    else:
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and "__" in d.name)
        if not dirs and "__" in root.name:
            dirs = [root]  # source is a config directory itself
        if not dirs:
            raise ValueError(
                f"import_parquet(): no <model_dir>__<mask_strategy> config directories in "
                f"{str(root)!r}; pass config=... or a {{variant: files}} mapping"
            )
    configs = {}
    for d in dirs:
        splits = _split_files(d)
        if not splits:
            raise ValueError(f"import_parquet(): no Parquet files in {str(d)!r}")
        configs[d.name if config is None else config] = splits
    return configs


def _split_files(config_dir: Path) -> dict[str, list[Path]]:
    """Split name -> shard files: ``<split>[-i-of-n].parquet`` or ``<split>/*.parquet``.
    A split whose shard names count ``n`` shards must have all ``n``, in its folder too (a
    download cut short would otherwise import a part of the split without a word); one
    split's files are either numbered shards or not, and in one place."""
    found: dict[str, list[Path]] = {}
    for path in sorted(config_dir.glob("*.parquet")):
        match = _SHARD.match(path.stem)
        found.setdefault(match["split"] if match else path.stem, []).append(path)
    for sub in sorted(p for p in config_dir.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.parquet"))
        if files and sub.name in found:
            raise ValueError(
                f"import_parquet(): split {sub.name!r} in {str(config_dir)!r} has files both "
                f"beside its folder and in it ({found[sub.name][0].name!r}, {sub.name}/); "
                "keep one place"
            )
        if files:
            found[sub.name] = files
    for split, paths in found.items():
        _check_shards(split, paths, config_dir)
    return dict(sorted(found.items()))


def _check_shards(split: str, paths: list[Path], config_dir: Path) -> None:
    matches = [_SHARD.match(p.stem) for p in paths]
    numbered = [m for m in matches if m]
    if not numbered:
        return
    problems = []
    if len(numbered) < len(paths):
        plain = [p.name for p, m in zip(paths, matches, strict=True) if not m]
        problems.append(f"numbered shards are mixed with other files {plain[:3]}")
    for prefix in sorted({m["split"] for m in numbered}):
        found = [(int(m["index"]), int(m["of"])) for m in numbered if m["split"] == prefix]
        counts = sorted({of for _, of in found})
        indices = {index for index, _ in found}
        n = counts[-1]
        # numbered 0..n-1 (Hugging Face) or 1..n; a complete set either way
        expected = set(range(1, n + 1) if min(indices) == 1 and max(indices) == n else range(n))
        missing, extra = sorted(expected - indices), sorted(indices - expected)
        if len(counts) > 1:
            problems.append(f"its file names count {counts} shards")
        if missing and len(counts) == 1:
            problems.append(f"shard(s) {missing[:10]} of {n} are missing")
        if extra and len(counts) == 1:
            problems.append(f"shard number(s) {extra[:10]} are beyond its {n} shards")
    if problems:
        raise ValueError(
            f"import_parquet(): split {split!r} in {str(config_dir)!r} is incomplete or "
            f"mixed: {' and '.join(problems)}; fetch the missing files (an interrupted "
            "download?) or remove the stray ones"
        )


def _split_config(config: str) -> tuple[str, str]:
    if "/" in config or "\\" in config or config in (".", ".."):
        raise ValueError(
            f"import_parquet(): config {config!r} is a path; give the name of a folder in the "
            f"source (e.g. {config.replace(chr(92), '/').rstrip('/').rsplit('/', 1)[-1]!r})"
        )
    model_dir, sep, mask = config.rpartition("__")
    if not sep or not model_dir or not mask:
        raise ValueError(
            f"import_parquet(): config {config!r} is not '<model_dir>__<mask_strategy>'"
        )
    return model_dir, mask


def _plan_parquet_variant(
    paths: list[Path],
    *,
    model: str,
    mask: str,
    variant: str,
    num_layers: int | None,
    layers: Sequence[int] | None,
) -> _Plan:
    where = f"import_parquet(): variant {variant!r} ({', '.join(repr(str(p)) for p in paths)})"

    def read() -> xr.DataArray:
        parts = [_read_parquet_file(p, num_layers) for p in paths]  # errors name the file
        parts = [part for part in parts if len(part[1])]  # an empty shard has no shape
        if not parts:
            raise ValueError(f"{where}: no rows")
        shapes = {part[0].shape[1:] for part in parts}
        if len(shapes) > 1:
            raise ValueError(f"{where}: files disagree on (layers, hidden): {sorted(shapes)}")
        dtype = np.result_type(*(part[0].dtype for part in parts))
        try:
            return persona_vectors(
                np.concatenate([part[0] for part in parts]).astype(dtype, copy=False),
                ids=[i for part in parts for i in part[1]],
                names=[n for part in parts for n in part[2]],
                layers=layers,
                sample_ids=[s for part in parts for s in part[3]],
                model=model,
                mask_strategy=mask,
                variant=variant,
            )
        except (ValueError, TypeError) as err:
            raise type(err)(f"{where}: {err}") from None

    def check() -> None:
        # All the store would check (duplicate ids, finite values, ...), before any write.
        da = read()  # its errors name the file or the split already
        try:
            validate_vectors(da, func="import_parquet")
        except (ValueError, TypeError) as err:
            raise type(err)(f"{where}: {str(err).removeprefix('import_parquet(): ')}") from None

    return _Plan(model, mask, variant, ", ".join(map(str, paths)), check, read)


def _read_parquet_file(
    path: Path, num_layers: int | None
) -> tuple[np.ndarray, list[str], list[str], list[list[str]]]:
    """One file's ``(vectors, ids, names, sample_ids)``; vectors ``(n, layers, hidden)``."""
    where = f"import_parquet(): {str(path)!r}"
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{where} is not a readable Parquet file: {err}") from None
    missing = [c for c in PARQUET_COLUMNS if c not in schema.names]
    if missing:
        raise ValueError(
            f"{where} lacks column(s) {missing!r}; expected {list(PARQUET_COLUMNS)}, found "
            f"{schema.names}"
        )
    table = pq.read_table(path, columns=list(PARQUET_COLUMNS))
    ids_col = table.column("persona_id")
    if ids_col.null_count:
        raise ValueError(f"{where}: {ids_col.null_count} row(s) have a null persona_id")
    ids = _texts(ids_col, "persona_id", where)
    names = [
        n if n is not None else i
        for n, i in zip(_texts(table.column("name"), "name", where), ids, strict=True)
    ]
    sample_ids = [s or [] for s in table.column("sample_ids").to_pylist()]
    if not all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in sample_ids):
        raise ValueError(f"{where}: sample_ids must be lists of strings")
    vectors = _vectors(table.column("vector"), ids, num_layers, where)
    return vectors, ids, names, sample_ids


def _texts(column: pa.ChunkedArray, what: str, where: str) -> list[str | None]:
    """A column of text as Python strings: string, binary holding UTF-8 (some writers leave
    text unannotated) or dictionary-encoded (pandas categoricals); anything else is refused,
    never turned into its repr."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    kinds = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary)
    kinds += (pa.types.is_large_binary, pa.types.is_null)
    if not any(is_kind(kind) for is_kind in kinds):
        raise ValueError(f"{where}: {what} must be strings, got {column.type}")
    try:
        return column.cast(pa.large_string()).to_pylist()
    except pa.ArrowInvalid:
        raise ValueError(f"{where}: {what} holds bytes that are not UTF-8 text") from None


def _vectors(
    column: pa.ChunkedArray, ids: list[str], num_layers: int | None, where: str
) -> np.ndarray:
    """A nested or flat list column -> ``(rows, layers, hidden)`` without Python loops."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)

    def bad_rows(mask: np.ndarray) -> list[str]:
        return [ids[i] for i in np.flatnonzero(mask)[:10]]

    if not _is_list(array.type):
        raise ValueError(f"{where}: vector must be a list column, got {array.type}")
    if array.null_count:
        rows = bad_rows(array.is_null().to_numpy(zero_copy_only=False))
        raise ValueError(f"{where}: null vector for persona(s) {rows!r}")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    inner = array.flatten()
    if _is_list(inner.type):  # nested: list<list<float>>
        if inner.null_count:
            raise ValueError(f"{where}: vector holds {inner.null_count} null layer(s)")
        expected = num_layers if num_layers is not None else (int(lengths[0]) if n else 0)
        if (lengths != expected).any():
            rows = bad_rows(lengths != expected)
            raise ValueError(
                f"{where}: vector of persona(s) {rows!r} has "
                f"{sorted(set(lengths[lengths != expected].tolist()))} layers, expected "
                f"{expected}"
            )
        widths = pc.list_value_length(inner).to_numpy(zero_copy_only=False)
        hidden = int(widths[0]) if len(widths) else 0
        if (widths != hidden).any():
            rows = bad_rows((widths != hidden).reshape(n, expected).any(axis=1))
            raise ValueError(
                f"{where}: vector of persona(s) {rows!r} has layers of different widths "
                f"(expected {hidden} values per layer, as in the first row)"
            )
        values, shape = inner.flatten(), (n, expected, hidden)
    else:  # flat: list<float> of layers * hidden values
        if num_layers is None:
            raise ValueError(
                f"{where}: vector is a flat list ({array.type}); pass num_layers= "
                "(pvx import: --num-layers) to recover its (layers, hidden) shape"
            )
        total = int(lengths[0]) if n else 0
        if (lengths != total).any() or total % num_layers:
            rows = bad_rows((lengths != total) | (lengths % num_layers != 0))
            raise ValueError(
                f"{where}: flat vector of persona(s) {rows or ids[:1]!r} has a length that is "
                f"not {num_layers} layers of one common width"
            )
        values, shape = inner, (n, num_layers, total // num_layers)
    if not pa.types.is_floating(values.type):
        raise ValueError(f"{where}: vector values must be floats, got {values.type}")
    if values.null_count:
        raise ValueError(f"{where}: vector holds {values.null_count} null value(s)")
    dtype = np.float16 if pa.types.is_float16(values.type) else np.float32
    raw = values.to_numpy(zero_copy_only=False)
    with np.errstate(over="ignore"):
        converted = raw.astype(dtype, copy=False)
    overflow = np.isfinite(raw) & ~np.isfinite(converted)
    if overflow.any():
        first = float(raw[np.flatnonzero(overflow)[0]])
        raise ValueError(
            f"{where}: vector value {first!r} is too large for {np.dtype(dtype).name}, which "
            "pvx stores; rescale the vectors"
        )
    return converted.reshape(shape)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
