"""pvx: xarray-native analysis of persona vectors."""

from pvx._construct import BASELINE_ID, persona_vectors
from pvx.importers import import_directory, import_parquet
from pvx.store import (
    StoreError,
    append_personas,
    layers,
    load,
    mask_strategies,
    models,
    open_store,
    persona_ids,
    set_attribute,
    variants,
    write_variant,
)

__all__ = [
    "BASELINE_ID",
    "StoreError",
    "append_personas",
    "import_directory",
    "import_parquet",
    "layers",
    "load",
    "mask_strategies",
    "models",
    "open_store",
    "persona_ids",
    "persona_vectors",
    "set_attribute",
    "variants",
    "write_variant",
]
