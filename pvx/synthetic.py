"""Small seeded generators of persona-vector arrays with planted structure.

They build arrays in pvx's data model (DESIGN §2) for tests, docs and examples: dims
``("persona", "layer", "hidden")`` (or a leading ``variant``), an indexed ``id``, display
``name``, real-looking ``layer`` labels, a scalar ``variant``, persona attribute coordinates of
every kind and the ``model`` / ``mask_strategy`` attrs. Like real residual streams they carry
a large shared offset, hundreds of times the differences between personas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import xarray as xr

from pvx._validate import BASELINE_ID

__all__ = ["manifold_personas", "planted_personas"]

_NAMES = ("Ada", "Bea", "Cal", "Dee", "Eli", "Fay")  # fewer than personas: names repeat
_EDUCATION = ("high school", "bachelor", "master", "phd")
_REGIONS = ("north", "south", "east", "west", "centre", "islands")


def planted_personas(
    n_persona: int = 8,
    n_clusters: int = 2,
    n_layer: int = 3,
    n_hidden: int = 16,
    *,
    seed: int = 0,
    offset: float = 500.0,
    noise: float = 0.1,
    first_layer: int = 0,
    variants: Sequence[str] | None = None,
    baseline: bool = False,
    dtype: npt.DTypeLike = np.float32,
) -> xr.DataArray:
    """Persona vectors in ``n_clusters`` planted clusters, on top of a large shared offset.

    Personas are split into contiguous blocks (``p0..`` in cluster 0, then cluster 1, ...).
    Cluster ``c`` sits along hidden unit ``c`` (unit length, so clusters are orthogonal before
    centering), nudged a little per layer; each persona adds isotropic noise of norm about
    ``noise``. Every layer adds one shared random vector of norm ``offset``, the
    residual-stream mean that centering must remove.

    Parameters
    ----------
    n_persona, n_clusters, n_layer, n_hidden : int
        Sizes. ``n_hidden`` must be at least ``n_clusters``.
    seed : int
        Seed of the generator; the same arguments give the same array.
    offset : float
        Norm of the shared per-layer offset, relative to the unit cluster separation.
    noise : float
        Norm of each persona's noise vector, relative to the cluster separation.
    first_layer : int
        Label of the first layer; labels are ``first_layer, first_layer + 1, ...``.
    variants : sequence of str, optional
        With two or more names, return a leading ``variant`` dimension: later variants move
        every persona by a shared shift plus a small persona-specific change.
    baseline : bool
        Append a ``baseline_assistant`` persona (at the offset, attributes missing).
    dtype : dtype
        Storage dtype of the vectors (float32 like real stores; float16 to test upcasting).

    Returns
    -------
    xarray.DataArray
        ``vectors`` with dims ``("persona", "layer", "hidden")`` (or ``("variant", ...)``),
        coordinates ``id`` (indexed), ``name``, ``layer``, ``variant``, the attributes ``age``
        (numeric), ``education`` (ordinal), ``region`` (categorical, follows the clusters) and
        ``planted_cluster`` (categorical, the planted answer).

    Examples
    --------
    >>> import pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=3, seed=0)
    >>> da.dims, da.sizes["hidden"], da["planted_cluster"].values.tolist()
    (('persona', 'layer', 'hidden'), 16, [0, 0, 0, 0, 1, 1, 1, 1])
    """
    if n_hidden < n_clusters:
        raise ValueError(
            f"planted_personas() needs n_hidden >= n_clusters to plant orthogonal clusters, "
            f"got n_hidden={n_hidden} and n_clusters={n_clusters}; raise n_hidden"
        )
    if not 1 <= n_clusters <= n_persona:
        raise ValueError(
            f"planted_personas() needs 1 <= n_clusters <= n_persona, got n_clusters={n_clusters}"
            f" and n_persona={n_persona}"
        )
    rng = np.random.default_rng(seed)
    cluster = (np.arange(n_persona) * n_clusters) // n_persona
    age = rng.integers(18, 80, n_persona).astype(float)
    education = rng.choice(_EDUCATION, n_persona)
    centres = np.zeros((n_clusters, n_layer, n_hidden))
    centres[np.arange(n_clusters), :, np.arange(n_clusters)] = 1.0
    centres += 0.1 * rng.standard_normal(centres.shape) / np.sqrt(n_hidden)
    shared = rng.standard_normal((n_layer, n_hidden))
    shared *= offset / np.linalg.norm(shared, axis=-1, keepdims=True)
    per_unit = noise / np.sqrt(n_hidden)
    values = centres[cluster] + per_unit * rng.standard_normal((n_persona, n_layer, n_hidden))

    names = list(variants) if variants else ["biography"]
    stacked = [values]
    for _ in names[1:]:
        shift = 0.3 * rng.standard_normal((1, n_layer, n_hidden)) / np.sqrt(n_hidden)
        change = 0.2 * rng.standard_normal(values.shape) / np.sqrt(n_hidden)
        stacked.append(values + shift + change)
    if baseline:
        stacked = [np.concatenate([v, np.zeros((1, n_layer, n_hidden))]) for v in stacked]
    data = np.stack([v + shared for v in stacked]).astype(dtype)

    n_total = n_persona + int(baseline)
    ids = [f"p{i}" for i in range(n_persona)] + ([BASELINE_ID] if baseline else [])
    display = [_NAMES[i % len(_NAMES)] for i in range(n_persona)] + (
        ["Assistant"] if baseline else []
    )
    region = np.asarray(_REGIONS)[cluster % len(_REGIONS)]
    if baseline:
        age = np.append(age, np.nan)
        education = np.append(education.astype(object), None)
        region = np.append(region.astype(object), None)
        cluster = np.append(cluster, -1)
    coords = {
        "id": ("persona", ids),
        "name": ("persona", display),
        "layer": first_layer + np.arange(n_layer),
        "age": ("persona", age, {"kind": "numeric"}),
        "education": ("persona", education, {"kind": "ordinal", "order": list(_EDUCATION)}),
        "region": ("persona", region, {"kind": "categorical"}),
        "planted_cluster": ("persona", cluster, {"kind": "categorical"}),
    }
    attrs = {"model": "synthetic/planted-personas", "mask_strategy": "answer_mean"}
    da = xr.DataArray(
        data,
        dims=("variant", "persona", "layer", "hidden"),
        coords={**coords, "variant": names},
        name="vectors",
        attrs=attrs,
    ).set_xindex("id")
    assert da.sizes["persona"] == n_total
    if variants is None or len(variants) == 1:
        da = da.isel(variant=0)  # keeps `variant` as a scalar coordinate
    return da


def manifold_personas(
    dims: Sequence[int] = (2, 5),
    n_persona: int = 1000,
    n_hidden: int = 32,
    *,
    kind: str = "sphere",
    seed: int = 0,
    offset: float = 0.0,
) -> xr.DataArray:
    """Points on known low-dimensional manifolds, one manifold per layer.

    Layer ``l`` holds ``n_persona`` points drawn uniformly on a ``dims[l]``-dimensional
    manifold, rotated at random into ``n_hidden`` units: the unit sphere ``S^d`` (its own
    centre is the origin, so centering and normalising keep it a ``d``-sphere) or, with
    ``kind="plane"``, the unit cube of a ``d``-dimensional affine subspace.

    Parameters
    ----------
    dims : sequence of int
        Intrinsic dimension of each layer's manifold.
    n_persona, n_hidden : int
        Number of points and ambient dimension (at least ``max(dims) + 1``).
    kind : {"sphere", "plane"}
        The manifold.
    seed : int
        Seed of the generator.
    offset : float
        Norm of a shared offset added to every point of a layer.

    Returns
    -------
    xarray.DataArray
        ``vectors`` with dims ``("persona", "layer", "hidden")`` and a ``true_dimension``
        coordinate along ``layer``.

    Examples
    --------
    >>> import pvx.synthetic
    >>> pvx.synthetic.manifold_personas((2, 3), n_persona=50)["true_dimension"].values.tolist()
    [2, 3]
    """
    if kind not in ("sphere", "plane"):
        raise ValueError(f"manifold_personas() got kind={kind!r}; choose 'sphere' or 'plane'")
    if n_hidden < max(dims) + 1:
        raise ValueError(
            f"manifold_personas() needs n_hidden > max(dims), got n_hidden={n_hidden} and "
            f"dims={list(dims)!r}; raise n_hidden"
        )
    rng = np.random.default_rng(seed)
    layers = []
    for d in dims:
        if kind == "sphere":
            points = rng.standard_normal((n_persona, d + 1))
            points /= np.linalg.norm(points, axis=1, keepdims=True)
        else:
            points = rng.random((n_persona, d))
        rotation, _ = np.linalg.qr(rng.standard_normal((n_hidden, n_hidden)))
        embedded = points @ rotation[: points.shape[1]]
        shift = rng.standard_normal(n_hidden)
        layers.append(embedded + offset * shift / np.linalg.norm(shift))
    return xr.DataArray(
        np.stack(layers, axis=1),
        dims=("persona", "layer", "hidden"),
        coords={
            "id": ("persona", [f"m{i}" for i in range(n_persona)]),
            "name": ("persona", [f"point {i}" for i in range(n_persona)]),
            "layer": np.arange(len(dims)),
            "true_dimension": ("layer", list(dims)),
            "variant": "synthetic",
        },
        name="vectors",
        attrs={"model": f"synthetic/{kind}", "mask_strategy": "none"},
    ).set_xindex("id")
