"""pvx: xarray-native analysis of persona vectors.

Importing pvx registers the ``.pv`` accessor on DataArrays.
"""

from pvx import accessor, cluster, decomposition, manifold, similarity, synthetic
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
