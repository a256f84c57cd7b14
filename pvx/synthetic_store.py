"""Synthetic stores of any size, written through pvx's own writer, for benchmarks and tests.

Unlike :mod:`pvx.synthetic` (small in-memory arrays), this writes a Zarr store block by block,
so a store far bigger than memory can be built: at most one block of personas is held at a
time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from pvx._construct import persona_vectors
from pvx.store import append_personas, write_variant

__all__ = ["persona_block_for", "write_synthetic_store"]


def persona_block_for(n_persona: int, largest: int = 128) -> int:
    """The largest block size up to ``largest`` that divides ``n_persona``.

    With whole blocks every write fills whole chunks: no partly filled block is rewritten by
    the next one.
    """
    return max(d for d in range(1, min(largest, n_persona) + 1) if n_persona % d == 0)


def write_synthetic_store(
    path: str | os.PathLike,
    *,
    n_persona: int = 200,
    n_layer: int = 26,
    n_hidden: int = 2304,
    n_clusters: int = 8,
    variants: Sequence[str] = ("templated", "biography"),
    dtype: npt.DTypeLike = np.float16,
    offset: float = 100.0,
    noise: float = 0.5,
    seed: int = 0,
    persona_block: int | None = None,
    model: str = "synthetic/persona-model",
    mask_strategy: str = "mean",
) -> None:
    """Write a store of planted personas, one block of personas at a time.

    Per layer ``l`` every persona is ``scale_l * (offset_l + center_c + noise)``: a shared
    offset (a random vector of norm ``offset``, the residual-stream mean centering removes),
    its cluster's centre (unit vectors in random directions, so clusters are planted in
    every layer) and isotropic noise of norm about ``noise``; ``scale_l`` grows from 1 to 8
    across layers, as activations do in deep models. Persona ``i`` belongs to cluster
    ``i % n_clusters`` (its ``cluster`` attribute). Variants differ by their noise only.

    Parameters
    ----------
    path
        The store to create (it must not hold these variants yet).
    n_persona, n_layer, n_hidden, n_clusters
        Sizes.
    variants
        Variant names.
    dtype
        ``float16`` or ``float32``.
    persona_block
        Personas per chunk (default: :func:`persona_block_for`).
    """
    block = persona_block or persona_block_for(n_persona)
    rng = np.random.default_rng(seed)
    offsets = rng.standard_normal((n_layer, n_hidden)).astype(np.float32)
    offsets *= offset / np.linalg.norm(offsets, axis=1, keepdims=True)
    centers = rng.standard_normal((n_clusters, n_layer, n_hidden)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=2, keepdims=True)
    scale = np.linspace(1.0, 8.0, n_layer, dtype=np.float32)[:, None]
    layers = list(range(n_layer))
    for v, variant in enumerate(variants):
        for start in range(0, n_persona, block):
            ids = np.arange(start, min(start + block, n_persona))
            block_rng = np.random.default_rng([seed, v, start])
            data = np.empty((len(ids), n_layer, n_hidden), dtype=dtype)
            for j, i in enumerate(ids):
                noisy = block_rng.standard_normal((n_layer, n_hidden), dtype=np.float32)
                noisy *= noise / np.sqrt(n_hidden)
                data[j] = scale * (offsets + centers[i % n_clusters] + noisy)
            da = persona_vectors(
                data,
                ids=[f"p{i:06d}" for i in ids],
                names=[f"Persona {i}" for i in ids],
                layers=layers,
                attributes={
                    "cluster": [f"c{i % n_clusters}" for i in ids],
                    "age": [18.0 + (i * 7) % 60 for i in ids],
                },
                model=model,
                mask_strategy=mask_strategy,
                variant=variant,
            )
            if start == 0:
                write_variant(path, da, persona_block=block)
            else:
                append_personas(path, da)
