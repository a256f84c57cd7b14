"""pvx: xarray-native analysis of persona vectors.

Importing pvx registers the ``.pv`` accessor on DataArrays.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from pvx import accessor  # registers da.pv; the analyses' modules load on first use

# Everything else loads on first use (PEP 562), so the command line starts fast (``pvx
# explore`` serves its page while scipy, dask and zarr import) and ``import pvx`` stays cheap.
_SUBMODULES = ("cluster", "decomposition", "manifold", "similarity", "synthetic")
_FUNCTIONS = {
    "pvx._construct": ("persona_vectors",),
    "pvx._validate": ("BASELINE_ID",),
    "pvx.cluster": ("kmeans", "linkage"),
    "pvx.decomposition": ("explained_variance", "pca"),
    "pvx.importers": ("import_directory", "import_parquet"),
    "pvx.manifold": ("isomap", "twonn", "umap"),
    "pvx.options": ("get_options", "set_options"),
    "pvx.similarity": ("cosine", "neighbors", "pair_similarity", "variant_similarity"),
    "pvx.store": (
        "StoreError",
        "append_personas",
        "layers",
        "load",
        "mask_strategies",
        "models",
        "open_store",
        "persona_ids",
        "set_attribute",
        "variants",
        "write_variant",
    ),
}
_HOME = {name: module for module, names in _FUNCTIONS.items() for name in names}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from pvx import cluster, decomposition, manifold, similarity, synthetic
    from pvx._construct import persona_vectors
    from pvx._validate import BASELINE_ID
    from pvx.cluster import kmeans, linkage
    from pvx.decomposition import explained_variance, pca
    from pvx.importers import import_directory, import_parquet
    from pvx.manifold import isomap, twonn, umap
    from pvx.options import get_options, set_options
    from pvx.similarity import cosine, neighbors, pair_similarity, variant_similarity
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


def __getattr__(name: str) -> Any:
    # any submodule (pvx.store, pvx.attributes, ...), as `import pvx` used to import them all
    if name in _SUBMODULES or (
        not name.startswith("__") and importlib.util.find_spec(f"pvx.{name}") is not None
    ):
        return importlib.import_module(f"pvx.{name}")
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'pvx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def explore(source: object, **load_options: object) -> object:
    """The interactive explorer of a report folder, a store or persona vectors, as a Panel
    layout shown inline in Jupyter (:func:`pvx.explorer.explore`; ``pvx explore`` serves
    the same app)."""
    from pvx.explorer import explore as explorer

    return explorer(source, **load_options)


__all__ = [
    "BASELINE_ID",
    "StoreError",
    "accessor",
    "append_personas",
    "cluster",
    "cosine",
    "decomposition",
    "explained_variance",
    "explore",
    "get_options",
    "import_directory",
    "import_parquet",
    "isomap",
    "kmeans",
    "layers",
    "linkage",
    "load",
    "manifold",
    "mask_strategies",
    "models",
    "neighbors",
    "open_store",
    "pair_similarity",
    "pca",
    "persona_ids",
    "persona_vectors",
    "set_attribute",
    "set_options",
    "similarity",
    "synthetic",
    "twonn",
    "umap",
    "variant_similarity",
    "variants",
    "write_variant",
]
