"""HoloViews figures of pvx results (hvplot), with a ``layer`` widget: see :mod:`pvx.hvplot`."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors, cluster, decomposition, manifold, similarity
from pvx._forward import forward
from pvx.views._common import (
    _AXIS_NAMES,
    _check_dims,
    _coloring,
    _compute_together,
    _computed,
    _hover_fields,
    _layer_labels,
    _leaf_positions,
    _persona_ids,
    _scores,
)

if TYPE_CHECKING:
    import holoviews as hv

_P, _Q = "persona", "persona_other"


def _frame(
    scores: xr.DataArray,
    comps: Sequence[int],
    names: Sequence[str],
    layers: list[Any],
) -> pd.DataFrame:
    """One row per (layer, persona): the layer, the persona's id/name and its coordinates."""
    order = ["layer", _P, "component"] if "layer" in scores.dims else [_P, "component"]
    xyz = scores.sel(component=list(comps)).transpose(*order).values
    xyz = xyz.reshape(len(layers), scores.sizes[_P], len(comps))
    n = scores.sizes[_P]
    frame = pd.DataFrame(
        {
            "layer": np.repeat(np.asarray(layers, dtype=object), n),
            "id": np.tile(_persona_ids(scores), len(layers)),
        }
    )
    if "name" in scores.coords:
        frame["name"] = np.tile(np.asarray(scores["name"].values, dtype=object), len(layers))
    for j, column in enumerate(names):
        frame[column] = xyz[:, :, j].ravel()
    return frame


def _color_column(coloring: _colors.Coloring, n_layer: int) -> tuple[np.ndarray, Any]:
    """Per-row colour values and the hvplot ``cmap`` for them."""
    rows = coloring.values if coloring.per_layer else np.repeat(coloring.values, n_layer, 0)
    if coloring.kind == "numeric":
        return rows.ravel(), "viridis"
    if coloring.kind == "ordinal":
        names = ["missing" if np.isnan(c) else coloring.categories[int(c)] for c in rows.ravel()]
        cmap = dict(zip(coloring.categories, coloring.colors, strict=True))
        return np.asarray(names, dtype=object), {**cmap, "missing": _colors.MISSING_COLOR}
    names = ["missing" if c < 0 else coloring.categories[c] for c in rows.ravel()]
    cmap = dict(zip(coloring.categories, coloring.colors, strict=True))
    return np.asarray(names, dtype=object), {**cmap, "missing": _colors.MISSING_COLOR}


def projection(
    result: xr.DataArray | xr.Dataset,
    *,
    color: Hashable | None = None,
    groups: Any = None,
    color_values: Any = None,
    vectors: xr.DataArray | None = None,
    n_clusters: int | None = None,
    cluster_mode: str = "mean_across_layers",
    hover: Sequence[Hashable] | None = None,
    components: Sequence[int] = (1, 2),
    axes: str = "fixed",
    max_categories: int = 10,
    **options: Any,
) -> hv.HoloMap:
    """Scatter of a computed projection with a ``layer`` widget, coloured by an attribute.

    Parameters
    ----------
    result : xarray.DataArray or xarray.Dataset
        :func:`pvx.decomposition.pca` (its ``scores``), :func:`pvx.manifold.umap` or
        :func:`pvx.manifold.isomap`.
    color, groups, color_values, vectors, n_clusters, cluster_mode, hover, max_categories
        As in :func:`pvx.plot.projection`.
    components : (int, int)
        The two components to draw.
    axes : {"fixed", "per_layer"}
        Axis ranges fixed over layers (default) or fitted to each layer.
    **options
        Passed to ``DataFrame.hvplot.scatter`` (``width``, ``height``, ``size``, ...).

    Returns
    -------
    holoviews.HoloMap
        ``Scatter`` elements keyed by layer label (a plain ``Scatter`` without ``layer``).

    Examples
    --------
    >>> import pvx.decomposition, pvx.hvplot, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    >>> view = pvx.hvplot.projection(pvx.decomposition.pca(da), color="age")
    >>> view.kdims[0].name, list(view.keys())
    ('layer', [0, 1, 2])
    """
    import hvplot.pandas  # noqa: F401  (registers DataFrame.hvplot)

    scores, _ = _scores(result)
    scores = _computed(scores)
    _check_dims(scores, ["layer", _P, "component"], func="projection")
    if len(components) != 2:
        raise ValueError(f"projection() draws 2 components, got components={components!r}")
    if axes not in ("fixed", "per_layer"):
        raise ValueError(f"projection() got axes={axes!r}; choose 'fixed' or 'per_layer'")
    available = [int(c) for c in scores["component"].values]
    unknown = [c for c in components if c not in available]
    if unknown:
        raise KeyError(
            f"projection() got unknown component(s) {unknown!r}; the result has {available!r}"
        )
    layers = _layer_labels(scores)
    prefix = _AXIS_NAMES.get(str(scores.name), f"{scores.name} ").strip()
    names = [f"{prefix}{c}" if prefix == "PC" else f"{prefix} {c}" for c in components]
    frame = _frame(scores, components, names, layers)
    coloring = _coloring(
        scores,
        layers,
        color=color,
        groups=groups,
        color_values=color_values,
        vectors=vectors,
        n_clusters=n_clusters,
        cluster_mode=cluster_mode,
        max_categories=max_categories,
    )
    # the colour column is shown on hover already
    fields = [str(f) for f in _hover_fields(scores, hover) if f != coloring.title]
    for f in fields:
        frame[f] = np.tile(np.asarray(scores[f].values, dtype=object), len(layers))
    kwargs: dict[str, Any] = {
        "x": names[0],
        "y": names[1],
        "hover_cols": [c for c in ("id", "name") if c in frame] + fields,
        "framewise": axes == "per_layer",
        "width": 650,
        "height": 500,
    }
    if coloring.kind != "none":
        column = coloring.title if coloring.title not in frame else f"{coloring.title} "
        values, cmap = _color_column(coloring, len(layers))
        frame[column] = values
        kwargs.update(c=column, cmap=cmap)
        if coloring.kind == "numeric":
            kwargs.update(clim=(coloring.cmin, coloring.cmax), colorbar=True)
    if "layer" in scores.dims:
        kwargs.update(groupby="layer", dynamic=False)
    else:
        frame = frame.drop(columns="layer")
    kwargs.update(options)
    view = frame.hvplot.scatter(**kwargs)
    if coloring.kind == "numeric":
        # one colour range for every layer, as a dimension range HoloViews normalises by
        view = view.redim.range(**{kwargs["c"]: (coloring.cmin, coloring.cmax)})
        view = view.opts(clipping_colors={"NaN": _colors.MISSING_COLOR})
    return view


def heatmap(
    sim: xr.DataArray,
    *,
    order: Any = None,
    order_layer: Any = None,
    **options: Any,
) -> hv.HoloMap:
    """A cosine matrix as an image with a ``layer`` widget; rows keep one order on all layers.

    Parameters
    ----------
    sim : xarray.DataArray
        :func:`pvx.similarity.cosine`: dims ``(layer, persona, persona_other)``.
    order, order_layer
        Row order, as in :func:`pvx.plot.heatmap` (e.g. a :func:`pvx.cluster.linkage` Dataset).
    **options
        Passed to ``DataArray.hvplot.image``.

    Returns
    -------
    holoviews.HoloMap
        ``Image`` elements keyed by layer; x and y are positions in the row order (``row``,
        ``col``), the value is ``cosine``.
    """
    import hvplot.xarray  # noqa: F401  (registers DataArray.hvplot)

    if not isinstance(sim, xr.DataArray) or _P not in sim.dims or _Q not in sim.dims:
        raise ValueError(
            "heatmap() needs the DataArray of pvx.similarity.cosine, with dims "
            f"('persona', 'persona_other'), got {getattr(sim, 'dims', type(sim).__name__)!r}"
        )
    _check_dims(sim, ["layer", _P, _Q], func="heatmap")
    sim = _computed(sim)
    ids = _persona_ids(sim)
    positions = _leaf_positions(order, ids, order_layer) if order is not None else None
    dims = ["layer", _P, _Q] if "layer" in sim.dims else [_P, _Q]
    z = sim.transpose(*dims).values
    if positions is not None:
        z = z[..., positions, :][..., positions]
    n = len(ids)
    coords: dict[str, Any] = {"row": np.arange(n), "col": np.arange(n)}
    if "layer" in sim.dims:
        coords["layer"] = _layer_labels(sim)
    image = xr.DataArray(z, dims=["layer", "row", "col"][-z.ndim :], coords=coords, name="cosine")
    kwargs: dict[str, Any] = {
        "x": "col",
        "y": "row",
        "cmap": "RdBu_r",
        "clim": (-1.0, 1.0),
        "flip_yaxis": True,
        "width": 560,
        "height": 500,
    }
    if "layer" in sim.dims:
        kwargs.update(groupby="layer", dynamic=False)
    kwargs.update(options)
    return image.hvplot.image(**kwargs)


def scree(
    evr: xr.DataArray | xr.Dataset,
    *,
    cumulative: bool = False,
    max_components: int | None = None,
    **options: Any,
) -> hv.NdOverlay:
    """Scree curves, one per layer (``explained_variance_ratio`` against ``component``).

    Parameters
    ----------
    evr : xarray.DataArray or xarray.Dataset
        :func:`pvx.decomposition.explained_variance` or a :func:`pvx.decomposition.pca`
        Dataset.
    cumulative : bool
        Draw the cumulative ratio.
    max_components : int, optional
        Only the first components.
    **options
        Passed to ``DataArray.hvplot.line``.

    Returns
    -------
    holoviews.NdOverlay
        ``Curve`` elements keyed by layer (a single ``Curve`` without ``layer``).
    """
    import hvplot.xarray  # noqa: F401

    from pvx.views._common import _ratio

    ratio = _ratio(evr, "scree")
    if max_components is not None:
        ratio = ratio.isel(component=slice(0, max_components))
    if cumulative:
        ratio = ratio.cumsum("component").rename("cumulative_explained_variance_ratio")
    kwargs: dict[str, Any] = {"x": "component", "width": 650, "height": 400}
    if "layer" in ratio.dims:
        kwargs.update(by="layer", cmap="viridis", legend="right")
    kwargs.update(options)
    return ratio.hvplot.line(**kwargs)


# --------------------------------------------------------------------------- from vectors


def _from_vectors(
    method: str,
    da: xr.DataArray,
    analysis: dict[str, Any],
    components: Sequence[int],
    kwargs: dict[str, Any],
) -> hv.HoloMap:
    analysis = {key: value for key, value in analysis.items() if value is not None}
    analysis.setdefault("n_components", max(components))
    funcs: dict[str, Callable[..., Any]] = {
        "pca": decomposition.pca,
        "umap": manifold.umap,
        "isomap": manifold.isomap,
    }
    result = funcs[method](da, **analysis)
    if kwargs.get("color") == "cluster" and kwargs.get("n_clusters") is not None:
        # k-means with the projection, in one pass over the vectors
        common = {k: analysis[k] for k in ("layer", "include_baseline") if k in analysis}
        mode = kwargs.pop("cluster_mode", "mean_across_layers")
        labels = cluster.kmeans(da, kwargs.pop("n_clusters"), mode=mode, **common)
        result, kwargs["groups"] = _compute_together(result, labels)
        kwargs.pop("color")
    return projection(result, vectors=da, components=components, **kwargs)


def pca(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] = (1, 2),
    normalize: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> hv.HoloMap:
    """PCA scatter with a layer widget: :func:`pvx.decomposition.pca`, then :func:`projection`.

    ``**kwargs`` go to :func:`projection` (``color``, ``hover``, ``n_clusters``, ...).
    """
    analysis = {"layer": layer, "normalize": normalize, "include_baseline": include_baseline}
    return _from_vectors("pca", da, analysis, components, kwargs)


def umap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] = (1, 2),
    n_neighbors: int | None = None,
    seed: int = 42,
    include_baseline: bool = False,
    **kwargs: Any,
) -> hv.HoloMap:
    """UMAP scatter with a layer widget: :func:`pvx.manifold.umap`, then :func:`projection`."""
    analysis = {
        "layer": layer,
        "n_neighbors": n_neighbors,
        "seed": seed,
        "include_baseline": include_baseline,
    }
    return _from_vectors("umap", da, analysis, components, kwargs)


def isomap(
    da: xr.DataArray,
    *,
    layer: Any = None,
    components: Sequence[int] = (1, 2),
    n_neighbors: int = 8,
    include_baseline: bool = False,
    **kwargs: Any,
) -> hv.HoloMap:
    """Isomap scatter with a layer widget: :func:`pvx.manifold.isomap`, then :func:`projection`."""
    analysis = {"layer": layer, "n_neighbors": n_neighbors, "include_baseline": include_baseline}
    return _from_vectors("isomap", da, analysis, components, kwargs)


def cosine(
    da: xr.DataArray,
    *,
    layer: Any = None,
    order: Any = None,
    center: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> hv.HoloMap:
    """Cosine image with a layer widget: :func:`pvx.similarity.cosine`, then :func:`heatmap`."""
    sim = similarity.cosine(da, layer=layer, center=center, include_baseline=include_baseline)
    return heatmap(sim, order=order, **kwargs)


def explained_variance(
    da: xr.DataArray,
    *,
    layer: Any = None,
    normalize: bool = True,
    include_baseline: bool = False,
    **kwargs: Any,
) -> hv.NdOverlay:
    """Scree curves: :func:`pvx.decomposition.explained_variance`, then :func:`scree`."""
    evr = decomposition.explained_variance(
        da, layer=layer, normalize=normalize, include_baseline=include_baseline
    )
    return scree(evr, **kwargs)


class HvplotAccessor:
    """HoloViews views of persona vectors for Jupyter, as ``da.pv.hvplot.<analysis>(...)``.

    ``da.pv.hvplot.X(...)`` draws ``da.pv.X(...)`` (``scree`` is ``explained_variance``);
    ``projection`` recolours a computed projection. See :mod:`pvx.hvplot` for the options.
    """

    def __init__(self, da: xr.DataArray) -> None:
        self._da = da

    projection = forward(projection, as_keyword="vectors")
    pca = forward(pca)
    umap = forward(umap)
    isomap = forward(isomap)
    cosine = forward(cosine)
    explained_variance = forward(explained_variance)
    scree = explained_variance  # the same view under its common name
