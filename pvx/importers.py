"""Import persona vectors from the ``persona-vectors`` project's formats (DESIGN §3).

Two sources, one Python function each:

- :func:`import_directory` reads the directory layout
  ``<root>/<model_dir>/<mask_strategy>/<variant>/manifest.json`` plus one
  ``<persona_id>.safetensors`` per persona (tensor ``activations``, ``(layers, hidden)``,
  bfloat16, float16 or float32), without torch.
- :func:`import_parquet` reads the published table form: Parquet rows of ``persona_id``,
  ``name``, ``sample_ids`` and ``vector`` ``(layers, hidden)``, one file set per variant
  (a split), one config per ``<model_dir>__<mask_strategy>``.

Both work in two passes: the first reads and checks every variant of the source (and looks
for clashes with the store) without writing; the second re-reads one variant at a time and
writes it with :func:`pvx.write_variant`. Memory holds one variant, not the whole source.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xarray as xr
from safetensors import SafetensorError, safe_open

from pvx._construct import persona_vectors, validate_vectors
from pvx.store import _SAFE_NAME, StoreError, open_store, write_variant

__all__ = ["ImportedVariant", "import_directory", "import_parquet"]

MANIFEST = "manifest.json"
TENSOR = "activations"
PARQUET_COLUMNS = ("persona_id", "name", "sample_ids", "vector")
# safetensors dtype -> little-endian NumPy dtype it is stored as (bf16 is converted).
_ST_DTYPES = {"BF16": np.dtype("<u2"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}
# Hugging Face shard names: "<split>-00000-of-00003.parquet" (optionally "-<hash>").
_SHARD = re.compile(r"^(?P<split>.+?)-\d+-of-\d+(?:-[0-9a-fA-F]+)?$")
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


class ImportedVariant(NamedTuple):
    """One variant written by an importer."""

    model: str
    mask_strategy: str
    variant: str
    n_persona: int
    source: str


@dataclass
class _Plan:
    """One variant to import: where it goes, how to check it, how to read it."""

    model: str
    mask_strategy: str
    variant: str
    source: str
    check: Callable[[], None]  # reads and validates everything, keeps nothing
    read: Callable[[], xr.DataArray]


# --------------------------------------------------------------------------- directory


def import_directory(
    root: str | os.PathLike,
    store: str | os.PathLike,
    *,
    model: str | Mapping[str, str] | None = None,
    skip_existing: bool = False,
    **storage_options: Any,
) -> list[ImportedVariant]:
    """Import a ``persona-vectors`` directory tree of safetensors files into a store.

    The tree is ``<root>/<model_dir>/<mask_strategy>/<variant>/`` with a ``manifest.json``
    (``num_layers``, ``hidden_size``, ``personas: {id: {name, sample_ids}}``, optionally
    ``model`` with the model's original name and ``layers`` with its layer numbers; a
    persona's ``name`` defaults to its id, ``sample_ids`` to none) and one
    ``<persona_id>.safetensors`` per manifest entry holding ``activations``
    ``(num_layers, hidden_size)`` in bfloat16, float16 or float32. Files not listed in a
    manifest are ignored. Tensors are read without torch; bfloat16 becomes float32 exactly.
    A variant is stored as float16 if all its tensors are float16, else as float32.

    Atomicity: every manifest and tensor of the whole tree is read and checked (shapes,
    finite values, names, clashes with variants already in the store) before anything is
    written, so a malformed source writes nothing. Then each variant is written whole or
    not at all (:func:`pvx.write_variant`); only an I/O failure during that second pass
    can leave earlier variants imported, and rerunning with ``skip_existing=True`` resumes.

    Parameters
    ----------
    root
        The tree's root directory.
    store
        Path or URL of the pvx store (created if absent).
    model
        The model name to store: a string when the tree holds one ``model_dir``, or a
        mapping ``{model_dir: name}``. Default: the manifest's ``model``, else the
        ``model_dir``.
    skip_existing
        Skip variants the store already holds instead of refusing to import.
    **storage_options
        fsspec options for a store URL.

    Returns
    -------
    list of ImportedVariant
        The variants written, in tree order.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a tensor file listed in a manifest is missing.
    ValueError
        For a malformed manifest or tensor file (named in the message), a wrong shape,
        non-finite values, or names the store cannot hold.
    StoreError
        If the store already holds one of the variants (and not ``skip_existing``).

    Examples
    --------
    >>> pvx.import_directory("persona_vectors/", "vectors.zarr")  # doctest: +SKIP
    [ImportedVariant(model='google/gemma-2-9b-it', mask_strategy='mean', ...)]
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"import_directory(): no directory {str(root)!r}")
    manifests = sorted(root.glob(f"*/*/*/{MANIFEST}"))
    _check_unlisted_variants(root, manifests)
    if not manifests:
        raise ValueError(
            f"import_directory(): no <model_dir>/<mask_strategy>/<variant>/{MANIFEST} under "
            f"{str(root)!r}; point root at the directory that holds the model directories"
        )
    model_dirs = sorted({m.parent.parent.parent.name for m in manifests})
    names = _model_names(model, model_dirs, func="import_directory")
    plans: list[_Plan] = []
    manifest_models: dict[str, tuple[str, Path]] = {}
    for manifest_path in manifests:
        variant_dir = manifest_path.parent
        model_dir, mask, variant = (
            variant_dir.parent.parent.name,
            variant_dir.parent.name,
            variant_dir.name,
        )
        manifest = _read_manifest(manifest_path)
        stated = manifest.get("model")
        if stated is not None and model_dir not in names:
            seen = manifest_models.setdefault(model_dir, (stated, manifest_path))
            if seen[0] != stated:
                raise ValueError(
                    f"import_directory(): {str(manifest_path)!r} names model {stated!r} but "
                    f"{str(seen[1])!r} names {seen[0]!r} for the same directory {model_dir!r}; "
                    "pass model= to choose"
                )
        plans.append(
            _plan_directory_variant(
                manifest_path,
                manifest,
                model=names.get(model_dir) or stated or model_dir,
                mask=mask,
                variant=variant,
            )
        )
    return _write_plans(plans, store, skip_existing, storage_options, func="import_directory")


def _check_unlisted_variants(root: Path, manifests: list[Path]) -> None:
    """A variant directory with tensors but no manifest is an error, not a silent skip."""
    listed = {m.parent for m in manifests}
    for tensor in sorted(root.glob("*/*/*/*.safetensors")):
        if tensor.parent not in listed:
            raise ValueError(
                f"import_directory(): {str(tensor.parent)!r} holds safetensors files but no "
                f"{MANIFEST}"
            )


def _read_manifest(path: Path) -> dict[str, Any]:
    """Read and check a manifest; persona ids keep their order and must be unique."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        counts = Counter(k for k, _ in pairs)
        dup = sorted(k for k, c in counts.items() if c > 1)
        if dup:
            raise ValueError(f"{str(path)!r}: duplicate keys {dup!r}")
        return dict(pairs)

    try:
        manifest = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"import_directory(): {str(path)!r} is not valid JSON: {err}") from None
    except ValueError as err:
        raise ValueError(f"import_directory(): {err}") from None
    where = f"import_directory(): {str(path)!r}"
    if not isinstance(manifest, dict):
        raise ValueError(f"{where} must hold a JSON object, got {type(manifest).__name__}")
    missing = [k for k in ("num_layers", "hidden_size", "personas") if k not in manifest]
    if missing:
        raise ValueError(f"{where} lacks key(s) {missing!r}")
    for key in ("num_layers", "hidden_size"):
        value = manifest[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
    personas = manifest["personas"]
    if not isinstance(personas, dict) or not personas:
        raise ValueError(
            f"{where}: personas must be a non-empty object {{id: {{name, sample_ids}}}}"
        )
    for pid, entry in personas.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: persona {pid!r} must map to an object, got {entry!r}")
        name = entry.get("name", pid)
        if not isinstance(name, str):
            raise ValueError(f"{where}: persona {pid!r} has name {name!r}; names are strings")
        sample_ids = entry.get("sample_ids", [])
        if not isinstance(sample_ids, list) or not all(isinstance(s, str) for s in sample_ids):
            raise ValueError(
                f"{where}: persona {pid!r} has sample_ids {sample_ids!r}; expected a list of "
                "strings"
            )
    if "model" in manifest and (not isinstance(manifest["model"], str) or not manifest["model"]):
        raise ValueError(f"{where}: model must be a non-empty string, got {manifest['model']!r}")
    if "layers" in manifest:
        layers = manifest["layers"]
        if (
            not isinstance(layers, list)
            or len(layers) != manifest["num_layers"]
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in layers)
        ):
            raise ValueError(
                f"{where}: layers must list {manifest['num_layers']} integer layer numbers, "
                f"got {layers!r}"
            )
        if len(set(layers)) != len(layers):
            raise ValueError(f"{where}: duplicate layer numbers in {layers!r}")
    return manifest


def _plan_directory_variant(
    manifest_path: Path, manifest: dict[str, Any], *, model: str, mask: str, variant: str
) -> _Plan:
    """Plan one variant; its check reads every tensor (headers, shapes, finite values)."""
    variant_dir = manifest_path.parent
    shape = (manifest["num_layers"], manifest["hidden_size"])
    personas: dict[str, dict[str, Any]] = manifest["personas"]
    files: list[tuple[Path, dict[str, Any]]] = []

    def check() -> None:
        files[:] = _check_tensors(manifest_path, personas, shape)

    def read() -> xr.DataArray:
        dtype = "float16" if all(info["dtype"] == "F16" for _, info in files) else "float32"
        data = np.empty((len(files), *shape), dtype=dtype)
        for i, (path, info) in enumerate(files):
            data[i] = _read_tensor(path, info)
        return persona_vectors(
            data,
            ids=list(personas),
            names=[entry.get("name", pid) for pid, entry in personas.items()],
            layers=manifest.get("layers"),
            sample_ids=[entry.get("sample_ids", []) for entry in personas.values()],
            model=model,
            mask_strategy=mask,
            variant=variant,
        )

    return _Plan(model, mask, variant, str(variant_dir), check, read)


def _check_tensors(
    manifest_path: Path, personas: Mapping[str, Any], shape: tuple[int, int]
) -> list[tuple[Path, dict[str, Any]]]:
    """``(file, header info)`` per persona, after checking files, shapes and values."""
    variant_dir = manifest_path.parent
    files = []
    for pid in personas:
        path = variant_dir / f"{pid}.safetensors"
        # Ids are data, but here they are also file names: "../x" or "a/b" would name a
        # file outside the variant directory.
        if Path(os.path.normpath(path)).parent != Path(os.path.normpath(variant_dir)):
            raise ValueError(
                f"import_directory(): persona id {pid!r} in {str(manifest_path)!r} cannot be "
                f"a file name in {str(variant_dir)!r}"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"import_directory(): {str(manifest_path)!r} lists persona {pid!r} but "
                f"{str(path)!r} does not exist"
            )
        info = _tensor_info(path)
        if tuple(info["shape"]) != shape:
            raise ValueError(
                f"import_directory(): {str(path)!r} has {TENSOR} of shape "
                f"{tuple(info['shape'])}, but {str(manifest_path)!r} says (num_layers, "
                f"hidden_size) = {shape}"
            )
        files.append((path, info))
    for path, info in files:
        if not np.isfinite(_read_tensor(path, info)).all():
            raise ValueError(
                f"import_directory(): {str(path)!r} holds non-finite values (NaN or inf)"
            )
    return files


def _tensor_info(path: Path) -> dict[str, Any]:
    """Parse a safetensors header and return the checked entry of ``activations``.

    Format: 8-byte little-endian header length N, N bytes of JSON
    ``{name: {dtype, shape, data_offsets: [begin, end]}}``, then the data buffer.
    """
    where = f"import_directory(): {str(path)!r}"
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if n < 2 or n > min(size - 8, _MAX_HEADER):
            raise ValueError(f"{where} is not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{where} is not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where} is not a safetensors file (header is not a JSON object)")
    info = header.get(TENSOR)
    if info is None:
        found = sorted(k for k in header if k != "__metadata__")
        raise ValueError(f"{where} has no {TENSOR!r} tensor (found {found!r})")
    try:
        dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: malformed header entry for {TENSOR!r}: {info!r}") from None
    if dtype not in _ST_DTYPES:
        raise ValueError(
            f"{where}: {TENSOR} has dtype {dtype!r}; supported are {sorted(_ST_DTYPES)}"
        )
    if len(shape) != 2:
        raise ValueError(f"{where}: {TENSOR} has shape {tuple(shape)}, expected (layers, hidden)")
    nbytes = math.prod(shape) * _ST_DTYPES[dtype].itemsize
    if not (0 <= begin <= end <= size - 8 - n and end - begin == nbytes):
        raise ValueError(
            f"{where}: {TENSOR} data offsets {[begin, end]} do not fit its shape or the file "
            "(truncated?)"
        )
    try:
        # The reference parser's checks too (e.g. overlapping tensors), for every dtype.
        with safe_open(path, framework="numpy"):
            pass
    except SafetensorError as err:
        raise ValueError(f"{where} is not a valid safetensors file: {err}") from None
    return {"dtype": dtype, "shape": shape, "offset": 8 + n + begin}


def _read_tensor(path: Path, info: dict[str, Any]) -> np.ndarray:
    """Read ``activations`` as float16/float32; bfloat16 is widened to float32 exactly."""
    if info["dtype"] != "BF16":
        with safe_open(path, framework="numpy") as f:
            return f.get_tensor(TENSOR)
    bits = np.fromfile(
        path, dtype=_ST_DTYPES["BF16"], count=math.prod(info["shape"]), offset=info["offset"]
    )
    # bfloat16 is the high half of a float32: shift the bits up, reinterpret.
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


# --------------------------------------------------------------------------- parquet

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
    """Split name -> shard files: ``<split>[-i-of-n].parquet`` or ``<split>/*.parquet``."""
    splits: dict[str, list[Path]] = {}
    for path in sorted(config_dir.glob("*.parquet")):
        match = _SHARD.match(path.stem)
        splits.setdefault(match["split"] if match else path.stem, []).append(path)
    for sub in sorted(p for p in config_dir.iterdir() if p.is_dir()):
        files = sorted(sub.glob("*.parquet"))
        if files:
            splits.setdefault(sub.name, []).extend(files)
    return dict(sorted(splits.items()))


def _split_config(config: str) -> tuple[str, str]:
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
    if not pa.types.is_string(ids_col.type) and not pa.types.is_large_string(ids_col.type):
        raise ValueError(f"{where}: persona_id must be strings, got {ids_col.type}")
    if ids_col.null_count:
        raise ValueError(f"{where}: {ids_col.null_count} row(s) have a null persona_id")
    ids = ids_col.to_pylist()
    names = [
        n if n is not None else i
        for n, i in zip(table.column("name").to_pylist(), ids, strict=True)
    ]
    sample_ids = [s or [] for s in table.column("sample_ids").to_pylist()]
    if not all(isinstance(s, list) and all(isinstance(x, str) for x in s) for s in sample_ids):
        raise ValueError(f"{where}: sample_ids must be lists of strings")
    vectors = _vectors(table.column("vector"), ids, num_layers, where)
    return vectors, ids, [str(n) for n in names], sample_ids


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
                f"{where}: vector is a flat list ({array.type}); pass num_layers= to recover "
                "its (layers, hidden) shape"
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
    return values.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(shape)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


# --------------------------------------------------------------------------- shared


def _model_names(
    model: str | Mapping[str, str] | None, model_dirs: list[str], *, func: str
) -> dict[str, str]:
    """``{model_dir: model name}`` for the dirs the caller named."""
    if model is None:
        return {}
    if isinstance(model, str):
        if len(model_dirs) != 1:
            raise ValueError(
                f"{func}(): model={model!r} is ambiguous: the source holds model directories "
                f"{model_dirs}; pass a mapping {{model_dir: name}}"
            )
        return {model_dirs[0]: model}
    unknown = sorted(set(model) - set(model_dirs))
    if unknown:
        raise ValueError(
            f"{func}(): model= names directories {unknown!r} that are not in the source "
            f"({model_dirs})"
        )
    return dict(model)


def _existing(store: str | os.PathLike, storage_options: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """``(model, mask_strategy, variant)`` already in the store (none if there is no store)."""
    try:
        tree = open_store(store, **storage_options)
    except StoreError:
        return set()  # no store yet; write_variant refuses a non-pvx target before writing
    return {
        (model_node.attrs["model"], str(mask_name), str(variant))
        for model_node in tree.children.values()
        for mask_name, mask_node in model_node.children.items()
        for variant in mask_node.children
    }


def _write_plans(
    plans: list[_Plan],
    store: str | os.PathLike,
    skip_existing: bool,
    storage_options: Mapping[str, Any],
    *,
    func: str,
) -> list[ImportedVariant]:
    """Check all plans (names, clashes, then contents), then write one variant at a time."""
    seen: dict[tuple[str, str, str], str] = {}
    for plan in plans:
        for what, value in (("mask strategy", plan.mask_strategy), ("variant", plan.variant)):
            if not _SAFE_NAME.fullmatch(value):
                raise ValueError(
                    f"{func}(): {what} {value!r} (from {plan.source!r}) is not a valid store "
                    "name (letters, digits, '._+=-', not starting with punctuation); rename it"
                )
        key = (plan.model, plan.mask_strategy, plan.variant)
        if key in seen:
            raise ValueError(f"{func}(): {plan.source!r} and {seen[key]!r} both import {key}")
        seen[key] = plan.source
    existing = _existing(store, storage_options)
    clashes = [p for p in plans if (p.model, p.mask_strategy, p.variant) in existing]
    if clashes and not skip_existing:
        raise StoreError(
            f"{func}(): {os.fspath(store)!r} already holds "
            f"{[(p.model, p.mask_strategy, p.variant) for p in clashes]}; nothing was imported. "
            "Pass skip_existing=True to import only the others"
        )
    todo = [p for p in plans if p not in clashes]
    for plan in todo:
        plan.check()
    done = []
    for plan in todo:
        da = plan.read()
        write_variant(store, da, **storage_options)
        done.append(
            ImportedVariant(
                plan.model, plan.mask_strategy, plan.variant, da.sizes["persona"], plan.source
            )
        )
    return done
