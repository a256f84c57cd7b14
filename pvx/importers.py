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
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from safetensors import SafetensorError, safe_open

from pvx._construct import persona_vectors
from pvx._import_common import ImportedVariant, _model_names, _Plan, _write_plans
from pvx._import_parquet import import_parquet

__all__ = ["ImportedVariant", "import_directory", "import_parquet"]

MANIFEST = "manifest.json"
TENSOR = "activations"
# safetensors dtype -> little-endian NumPy dtype it is stored as (bf16 is converted).
_ST_DTYPES = {"BF16": np.dtype("<u2"), "F16": np.dtype("<f2"), "F32": np.dtype("<f4")}
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


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
    manifest are not imported (with a warning). Tensors are read without torch; bfloat16
    becomes float32 exactly. A variant is stored as float16 if all its tensors are float16,
    else as float32.

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
    read = [(path, _read_manifest(path)) for path in manifests]
    for manifest_path, manifest in read:
        model_dir = manifest_path.parent.parent.parent.name
        stated = manifest.get("model")
        if stated is not None and model_dir not in names:
            seen = manifest_models.setdefault(model_dir, (stated, manifest_path))
            if seen[0] != stated:
                raise ValueError(
                    f"import_directory(): {str(manifest_path)!r} names model {stated!r} but "
                    f"{str(seen[1])!r} names {seen[0]!r} for the same directory {model_dir!r}; "
                    "pass model= to choose"
                )
    for manifest_path, manifest in read:
        variant_dir = manifest_path.parent
        model_dir, mask, variant = (
            variant_dir.parent.parent.name,
            variant_dir.parent.name,
            variant_dir.name,
        )
        # one name per model directory: a manifest that states none takes its siblings'
        stated = manifest_models.get(model_dir, (None,))[0]
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
    except OSError as err:  # e.g. a folder named manifest.json
        raise ValueError(f"import_directory(): {str(path)!r} cannot be read: {err}") from None
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
        unlisted = sorted(
            p.name for p in variant_dir.glob("*.safetensors") if p.stem not in personas
        )
        if unlisted:  # a manifest behind its files: an import that looks complete is not
            warnings.warn(
                f"import_directory(): {len(unlisted)} safetensors file(s) in "
                f"{str(variant_dir)!r} are not in its {MANIFEST} and are not imported "
                f"({', '.join(unlisted[:3])}{', ...' if len(unlisted) > 3 else ''}); list "
                "them in the manifest to import them",
                UserWarning,
                stacklevel=2,
            )
        # the labels' checks (names, sample ids, layers) on a placeholder one value wide: an
        # error found only by the writing pass would leave a new, empty store behind
        try:
            labelled(np.zeros((len(personas), shape[0], 1), dtype=np.float32))
        except (ValueError, TypeError) as err:  # (a subclass may take other arguments)
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(f"import_directory(): {str(manifest_path)!r}: {err}") from None

    def read() -> xr.DataArray:
        dtype = "float16" if all(info["dtype"] == "F16" for _, info in files) else "float32"
        data = np.empty((len(files), *shape), dtype=dtype)
        for i, (path, info) in enumerate(files):
            data[i] = _read_tensor(path, info)
        return labelled(data)

    def labelled(data: np.ndarray) -> xr.DataArray:
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
        # file outside the variant directory, "./x" the file of persona "x".
        if "/" in pid or "\\" in pid or path.parent != variant_dir:
            raise ValueError(
                f"import_directory(): persona id {pid!r} in {str(manifest_path)!r} cannot be "
                f"a file name in {str(variant_dir)!r} (ids hold no '/' or '\\')"
            )
        try:
            found = path.is_file()
        except OSError as err:  # e.g. longer than the file system allows
            raise ValueError(
                f"import_directory(): persona id {pid!r} in {str(manifest_path)!r} cannot be "
                f"a file name: {err.strerror}"
            ) from None
        if not found:
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
    stat = path.stat()
    size = stat.st_size
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

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    # JSON of the wrong types (shape ["3", "8"], dtype ["BF16"]) must not reach arithmetic
    if not isinstance(dtype, str) or not all(map(whole, [*shape, begin, end])):
        raise ValueError(f"{where}: malformed header entry for {TENSOR!r}: {info!r}")
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
    # the file as checked: a file rewritten before it is read again is refused
    stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    return {"dtype": dtype, "shape": shape, "offset": 8 + n + begin, "stamp": stamp}


def _read_tensor(path: Path, info: dict[str, Any]) -> np.ndarray:
    """Read ``activations`` as float16/float32; bfloat16 is widened to float32 exactly.
    The file must be as :func:`_tensor_info` checked it, before and after the read."""
    _check_unchanged(path, info)
    if info["dtype"] != "BF16":
        with safe_open(path, framework="numpy") as f:
            values = f.get_tensor(TENSOR)
    else:
        bits = np.fromfile(
            path, dtype=_ST_DTYPES["BF16"], count=math.prod(info["shape"]), offset=info["offset"]
        )
        # bfloat16 is the high half of a float32: shift the bits up, reinterpret.
        values = (bits.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
    _check_unchanged(path, info)
    return values


def _check_unchanged(path: Path, info: dict[str, Any]) -> None:
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns, stat.st_ino) != info["stamp"]:
        raise ValueError(
            f"import_directory(): {str(path)!r} changed while it was being imported (it was "
            "rewritten after its header was checked); rerun the import once the source files "
            "stop changing"
        )
