"""Shared preparation for pvx's views: labels, layers, colouring, hover text, selections.

Used by the Plotly views and the HoloViews views alike, so both prepare data the same way.
"""

from __future__ import annotations

import collections
import html
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _colors
from pvx._colors import Coloring
from pvx._construct import _by_persona

_P, _Q = "persona", "persona_other"


_AXIS_NAMES = {"scores": "PC", "umap": "UMAP ", "isomap": "Isomap "}


_METHOD_TITLES = {"scores": "PCA", "umap": "UMAP", "isomap": "Isomap"}


_INK = "#444444"


def _esc(value: Any) -> str:
    """Text from the data, escaped for Plotly's HTML-like labels (which decode ``&amp;``,
    ``&lt;`` and ``&gt;`` but show ``&quot;`` as written: quotes stay as they are)."""
    return html.escape(str(value), quote=False)


LABEL_LIMIT = 40


def _label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """``_esc`` shortened with an ellipsis, for legends and ticks; hover shows it whole."""
    text = str(value)
    return _esc(text if len(text) <= limit else text[: limit - 1] + "…")


def _distinct_labels(values: Sequence[Any]) -> list[str]:
    """:func:`_label` of each value, numbered where two long values shorten alike (two
    legend entries of one name would read, and toggle, as one)."""
    labels = [_label(v) for v in values]
    counts = collections.Counter(labels)
    seen: collections.Counter[str] = collections.Counter()
    for i, label in enumerate(labels):
        if counts[label] > 1:
            seen[label] += 1
            labels[i] = f"{label} ({seen[label]})"
    return labels


def _category_axis(values: Sequence[Any]) -> tuple[list[str], dict[str, Any]]:
    """A Plotly category axis of ``values``: the categories (each label whole and escaped:
    Plotly merges equal categories, so labels shortened alike would draw as one row, and
    hover shows the category) and the axis settings that show them shortened."""
    whole = [_esc(v) for v in values]
    return whole, {"type": "category", "tickvals": whole, "ticktext": [_label(v) for v in values]}


def _computed(obj: Any) -> Any:
    """``obj`` with dask data computed (numpy-backed objects pass through)."""
    return obj.compute() if hasattr(obj, "compute") else obj


def _check_dims(arr: xr.DataArray | xr.Dataset, allowed: Sequence[str], *, func: str) -> None:
    extra = [d for d in arr.dims if d not in allowed]
    if extra:
        sel = ", ".join(f"{d}=..." for d in extra)
        raise ValueError(
            f"{func}() draws dims {list(allowed)!r}, but the result also has {extra!r}; select "
            f"one value of each first, e.g. da.sel({sel}) of the vectors or the result (the "
            "HoloViews views, pvx.hvplot, give a variant a widget)"
        )


def _layer_labels(obj: xr.DataArray | xr.Dataset) -> list[Any]:
    """Layer labels of a layered result; ``[label]`` (or ``[None]``) without a layer dim."""
    if "layer" in obj.dims:
        return [v.item() if hasattr(v, "item") else v for v in obj["layer"].values]
    if "layer" in obj.coords:
        return [obj["layer"].item()]
    return [None]


def _layer_title(label: Any) -> str:
    return "" if label is None else f"layer {_esc(label)}"


def _variant_note(obj: xr.DataArray | xr.Dataset) -> str:
    if "variant" in obj.coords and obj["variant"].ndim == 0:
        return f" · {_esc(obj['variant'].item())}"
    return ""


def _persona_ids(obj: xr.DataArray | xr.Dataset) -> np.ndarray:
    if "id" in obj.coords:
        return np.asarray(obj["id"].values, dtype=object)
    return np.asarray([f"persona[{i}]" for i in range(obj.sizes[_P])], dtype=object)


def _animation(
    labels: Sequence[Any], *, redraw: bool = True, duration: int = 600
) -> dict[str, Any]:
    """Layout entries for a layer slider and Play/Pause buttons over frames named by label."""
    step_args = {"mode": "immediate", "frame": {"duration": 0, "redraw": redraw}}
    step_args["transition"] = {"duration": 0}
    steps = [
        {"method": "animate", "label": _esc(label), "args": [[str(label)], step_args]}
        for label in labels
    ]
    play = {
        "frame": {"duration": duration, "redraw": redraw},
        "fromcurrent": True,
        "transition": {"duration": 0},
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    pause["transition"] = {"duration": 0}
    return {
        "sliders": [
            {
                "active": 0,
                "currentvalue": {"prefix": "layer "},
                "pad": {"t": 40, "b": 10},
                "len": 0.9,
                "x": 0.1,
                "y": 0,
                "steps": steps,
            }
        ],
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "showactive": False,
                "x": 0.1,
                "y": 0,
                "xanchor": "right",
                "yanchor": "top",
                "pad": {"t": 50, "r": 10},
                "buttons": [
                    {"label": "Play", "method": "animate", "args": [None, play]},
                    {"label": "Pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
    }


def _by_id(values: xr.DataArray, ids: np.ndarray, *, what: str) -> xr.DataArray:
    """``values`` (dims ``persona`` and maybe ``layer``) reordered to the personas ``ids``."""
    if "id" not in values.coords:
        if values.sizes[_P] != len(ids):
            raise ValueError(
                f"{what} has {values.sizes[_P]} personas but the result has {len(ids)}; give "
                "one value per persona, or an array with an 'id' coordinate"
            )
        return values
    position = pd.Index(np.asarray(values["id"].values, dtype=object)).get_indexer(ids)
    if (position < 0).any():
        absent = [str(i) for i, p in zip(ids, position, strict=True) if p < 0][:5]
        raise ValueError(
            f"{what} has no value for persona id(s) {absent!r}; compute it on the same personas "
            "as the result (e.g. the same include_baseline=)"
        )
    return values.isel({_P: position})


def _per_layer(
    values: Any, ids: np.ndarray, layers: Sequence[Any], *, what: str
) -> np.ndarray | xr.DataArray:
    """Colour values as ``(persona,)`` or ``(layer, persona)``, matched to the result."""
    if not isinstance(values, xr.DataArray):
        # a pandas Series by its index (persona ids), as pandas aligns: by position it would
        # put personas in other groups
        arr = np.asarray(_by_persona(values, ids, what))
        if arr.shape[-1] != len(ids) or arr.ndim not in (1, 2):
            raise ValueError(
                f"{what} needs one value per persona ({len(ids)}), or a (layer, persona) "
                f"array, got shape {arr.shape}"
            )
        if arr.ndim == 2 and arr.shape[0] != len(layers):
            raise ValueError(
                f"{what} has {arr.shape[0]} rows of layers but the result has {len(layers)}"
            )
        return arr
    values = _computed(values)
    if _P not in values.dims:
        raise ValueError(f"{what} needs a 'persona' dimension, got dims {values.dims!r}")
    _check_dims(values, ["layer", _P], func=what)
    values = _by_id(values, ids, what=what)
    if "layer" in values.dims:
        if layers == [None]:
            raise ValueError(f"{what} has a 'layer' dimension but the result has none")
        values = values.sel(layer=list(layers)).transpose("layer", _P)
    return values


def _coloring(
    arr: xr.DataArray,
    layers: list[Any],
    *,
    color: Hashable | None,
    groups: Any,
    color_values: Any,
    max_categories: int,
) -> Coloring:
    options = {"color": color, "groups": groups, "color_values": color_values}
    given = [name for name, value in options.items() if value is not None]
    if len(given) > 1:
        raise ValueError(f"pass one of color=, groups= or color_values=, got {given!r}")
    ids = _persona_ids(arr)
    if groups is not None:
        vals = _per_layer(groups, ids, layers, what="groups")
        name = getattr(groups, "name", None)
        if name == "cluster":
            return _cluster_coloring(vals, max_categories)
        return _colors.categorical(
            np.asarray(vals), str(name or "group"), max_categories=max_categories
        )
    if color_values is not None:
        vals = _per_layer(color_values, ids, layers, what="color_values")
        return _colors.numeric(np.asarray(vals), str(getattr(color_values, "name", None) or ""))
    if color is None:
        return _colors.no_color(len(ids))
    if color in arr.coords and arr[color].attrs.get("kind") == CLUSTER_KIND:
        vals = _per_layer(arr[color], ids, layers, what="cluster")
        return _cluster_coloring(vals, max_categories)
    if color in arr.coords and arr[color].dims == (_P,):
        return _colors.from_coord(arr[color], max_categories=max_categories)
    attributes = [str(c) for c, v in arr.coords.items() if v.dims == (_P,) and c != "id"]
    if color == "cluster":
        raise KeyError(
            "color='cluster' needs k-means labels on the result: draw from the vectors "
            "(da.pv.plot.pca(color='cluster', n_clusters=k) or "
            "da.pv.plot.projection(result, color='cluster', n_clusters=k)), or pass "
            "groups=pvx.cluster.kmeans(...)"
        )
    raise KeyError(
        f"color={color!r} is not a persona attribute of the result; choose one of "
        f"{attributes!r}, 'cluster' (from the vectors, with n_clusters=), or pass "
        "groups=/color_values="
    )


CLUSTER_KIND = "kmeans"  # attrs["kind"] of k-means labels attached to a result


def with_clusters(result: Any, labels: xr.DataArray, *, names: Any = None) -> Any:
    """``result`` with k-means ``labels`` (matched by id) as its ``cluster`` coordinate, which
    ``color="cluster"`` draws; a persona attribute named ``cluster`` is replaced.

    ``names`` (the Dataset of :func:`pvx.attributes.name_clusters`, or a mapping from label
    to name) draws each cluster under its name instead of its number; labels must then be
    one per persona (not per layer).

    Examples
    --------
    >>> import pvx.attributes, pvx.cluster, pvx.decomposition, pvx.plot, pvx.synthetic
    >>> from pvx.views import with_clusters
    >>> da = pvx.synthetic.planted_personas(n_persona=20, n_clusters=2, seed=0)
    >>> labels = pvx.cluster.kmeans(da, 2).compute()
    >>> named = pvx.attributes.name_clusters(labels, da, ["region"])
    >>> fig = pvx.plot.projection(
    ...     with_clusters(pvx.decomposition.pca(da), labels, names=named), color="cluster"
    ... )
    >>> sorted(trace.name for trace in fig.data)
    ['north', 'south']
    """
    labels = _computed(labels)
    scores = result["scores"] if isinstance(result, xr.Dataset) else result
    ids = _persona_ids(scores)
    if "id" in labels.coords:
        labels = _by_id(labels, ids, what="kmeans")
    if "layer" in labels.dims and "layer" in scores.dims:
        labels = labels.sel(layer=scores["layer"].values)
    if names is None:
        return result.assign_coords(cluster=(labels.dims, labels.values, {"kind": CLUSTER_KIND}))
    if labels.dims != (_P,):
        raise ValueError(
            "with_clusters(names=...) needs one label per persona; name per-layer clusters "
            "one layer at a time (labels.sel(layer=...))"
        )
    if isinstance(names, xr.Dataset):
        names = dict(
            zip(names["cluster"].values.tolist(), names["name"].values.tolist(), strict=True)
        )
    named = np.array([names.get(int(c)) if c >= 0 else None for c in labels.values], dtype=object)
    return result.assign_coords(cluster=(_P, named, {"kind": "categorical"}))


def color_list(color: Hashable | Sequence[Hashable] | None) -> list[Hashable | None]:
    """``color`` as a list of panels: a name (or None) is one, a list or tuple one per name."""
    if isinstance(color, (list, tuple)):
        if not color:
            raise ValueError("color= got an empty list; pass a name or a list of names")
        return list(color)
    return [color]


def variant_labels(obj: xr.DataArray | xr.Dataset) -> list[Any]:
    """Variants drawn side by side (or as a widget): ``[None]`` without a variant dim."""
    if "variant" in obj.dims:
        return [v.item() if hasattr(v, "item") else v for v in obj["variant"].values]
    return [None]


def one_variant(obj: Any, variant: Any) -> Any:
    return obj if variant is None else obj.sel(variant=variant)


def _cluster_coloring(labels: Any, max_categories: int) -> Coloring:
    arr = np.asarray(labels)
    order = sorted({int(v) for v in arr.ravel() if v >= 0})
    arr = np.array([None if v < 0 else int(v) for v in arr.ravel()], dtype=object).reshape(
        arr.shape
    )
    return _colors.categorical(
        arr,
        "cluster",
        max_categories=max(max_categories, len(order)),
        order=order,
        prefix="cluster ",
    )


def _hover_fields(arr: xr.DataArray, hover: Sequence[Hashable] | None) -> list[Hashable]:
    fields = list(hover or [])
    unknown = [f for f in fields if f not in arr.coords or arr[f].dims != (_P,)]
    if unknown:
        attributes = [str(c) for c, v in arr.coords.items() if v.dims == (_P,)]
        raise KeyError(
            f"hover={unknown!r} names no persona coordinate of the result; choose from "
            f"{attributes!r}"
        )
    return [f for f in fields if f not in ("id", "name")]


def _hover_text(arr: xr.DataArray, fields: Sequence[Hashable], coloring: Coloring) -> np.ndarray:
    """Escaped hover lines per persona, ``(n_layer_or_1, n_persona)``."""
    n = arr.sizes[_P]
    ids = _persona_ids(arr)
    names = arr["name"].values if "name" in arr.coords else [None] * n
    values = {f: [_colors.format_value(v) for v in arr[f].values] for f in fields}
    # "missing", unless a value is so written (as the legend's Coloring.missing_label)
    absent = {
        f: "missing (no value)" if "missing" in shown else "missing" for f, shown in values.items()
    }
    rows = []
    for i in range(n):
        head = f"<b>{_esc(names[i])}</b><br>" if names[i] is not None else ""
        lines = [f"{head}id: {_esc(ids[i])}"]
        for f in fields:
            value = values[f][i]
            lines.append(f"{_esc(f)}: {_esc(value) if value is not None else absent[f]}")
        rows.append("<br>".join(lines))
    base = np.asarray(rows, dtype=object)
    if coloring.kind == "none" or (coloring.title in fields and not coloring.per_layer):
        return base[None, :]
    title = _esc(coloring.title)
    out = np.empty(coloring.labels.shape, dtype=object)
    for (row, i), label in np.ndenumerate(coloring.labels):
        shown = _esc(coloring.missing_label) if label is None else _esc(label)
        out[row, i] = f"{base[i]}<br>{title}: {shown}"
    return out


def _trace_groups(coloring: Coloring) -> list[dict[str, Any]]:
    """The point traces: ``member`` is a ``(n_layer_or_1, n_persona)`` mask per trace."""
    missing = coloring.missing
    groups: list[dict[str, Any]] = []
    if coloring.kind == "categorical":
        labels = _distinct_labels(coloring.categories)
        for code, (label, color) in enumerate(zip(labels, coloring.colors, strict=True)):
            groups.append(
                {
                    "name": label,
                    "member": coloring.values == code,
                    "marker": {"color": color},
                }
            )
    elif coloring.kind == "none":
        groups.append(
            {"name": "personas", "member": ~missing, "marker": {"color": _colors.DEFAULT_COLOR}}
        )
    else:
        marker: dict[str, Any] = {
            "cmin": coloring.cmin,
            "cmax": coloring.cmax,
            "showscale": True,
            "colorbar": {"title": {"text": _label(coloring.title)}, "len": 0.75},
        }
        if coloring.kind == "numeric":
            marker["colorscale"] = _colors.NUMERIC_SCALE
        else:
            marker["colorscale"] = _colors.discrete_scale(coloring.colors)
            marker["colorbar"]["tickvals"] = list(range(len(coloring.categories)))
            marker["colorbar"]["ticktext"] = [_label(c) for c in coloring.categories]
        groups.append(
            {"name": _esc(coloring.title), "member": ~missing, "marker": marker, "scale": True}
        )
    if missing.any():
        groups.append(
            {
                "name": _esc(coloring.missing_label),
                "member": missing,
                "marker": {"color": _colors.MISSING_COLOR},
            }
        )
    return groups


def _knn_edges(neighbors: xr.Dataset, ids: np.ndarray, layers: list[Any]) -> np.ndarray:
    """``(n_layer, 2, n_edges)`` positions (source, target) of each persona's k nearest."""
    nn = _computed(neighbors)
    if "neighbor_id" not in nn:
        raise ValueError(
            "neighbors= needs the Dataset of pvx.similarity.neighbors (with 'neighbor_id')"
        )
    _check_dims(nn, ["layer", _P, "rank"], func="projection(neighbors=...)")
    if "layer" in nn.dims:
        if layers == [None]:
            raise ValueError("neighbors= has a 'layer' dimension but the projection has none")
        nn = nn.sel(layer=list(layers))
    source = pd.Index(ids).get_indexer(np.asarray(nn["id"].values, dtype=object))
    target_ids = nn["neighbor_id"].transpose(..., _P, "rank").values
    target = pd.Index(ids).get_indexer(np.asarray(target_ids, dtype=object).ravel())
    if (source < 0).any() or (target < 0).any():
        raise ValueError(
            "neighbors= links personas that the projection does not show; compute both on the "
            "same personas (same include_baseline=)"
        )
    target = target.reshape(target_ids.shape)
    if target.ndim == 2:
        target = target[None]
    k = target.shape[-1]
    src = np.repeat(source, k)
    return np.stack(
        [np.broadcast_to(src, (target.shape[0], src.size)), target.reshape(target.shape[0], -1)],
        axis=1,
    )


def _segments(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Line coordinates ``(3 * n_edges, dims)`` for edges: start, end, NaN gap."""
    start, end = points[edges[0]], points[edges[1]]
    gap = np.full_like(start, np.nan)
    return np.stack([start, end, gap], axis=1).reshape(-1, points.shape[-1])


def _padded_range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return [-1.0, 1.0]
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return [lo - pad, hi + pad]


def _scores(result: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray, xr.DataArray | None]:
    if isinstance(result, xr.Dataset):
        if "scores" not in result:
            raise ValueError(
                "projection() needs a DataArray with a 'component' dim (umap, isomap) or the "
                f"Dataset of pvx.decomposition.pca (with 'scores'); got variables "
                f"{list(result.data_vars)!r}"
            )
        ratio = result.get("explained_variance_ratio")
        return result["scores"], ratio
    if not isinstance(result, xr.DataArray):
        raise TypeError(f"projection() needs an xarray result, got {type(result).__name__}")
    return result, None


@dataclass
class ProjectionInput:
    """A projection to draw, checked: its scores, ratios, components and colour panels."""

    scores: xr.DataArray
    ratio: xr.DataArray | None
    comps: list[int]
    colors: list[Hashable | None]


def projection_input(
    result: xr.DataArray | xr.Dataset,
    *,
    components: Sequence[int] | None,
    axes: str,
    color: Any,
    groups: Any,
    color_values: Any,
    max_components: int,
) -> ProjectionInput:
    """Check a projection result and the drawing keywords shared by every back end."""
    if isinstance(result, xr.Dataset):  # one compute for scores and ratios (one Gram pass)
        result = _computed(
            result[[v for v in ("scores", "explained_variance_ratio") if v in result]]
        )
    scores, ratio = _scores(result)
    scores = _computed(scores)
    if _P not in scores.dims or "component" not in scores.dims:
        raise ValueError(
            f"projection() needs dims ('persona', 'component') (and usually 'layer'), got "
            f"{scores.dims!r}"
        )
    _check_dims(scores, ["variant", "layer", _P, "component"], func="projection")
    if axes not in ("fixed", "per_layer"):
        raise ValueError(f"projection() got axes={axes!r}; choose 'fixed' or 'per_layer'")
    available = [int(c) for c in scores["component"].values]
    if len(available) < 2 and components is None:
        raise ValueError("projection() needs at least 2 components; compute n_components=2")
    comps = list(components) if components is not None else available[:2]
    if not 2 <= len(comps) <= max_components:
        hint = "; pvx.plot.projection draws three in 3-D" if max_components == 2 else ""
        raise ValueError(
            f"projection() draws 2{' or 3' if max_components == 3 else ''} components, got "
            f"components={comps!r}{hint}"
        )
    unknown = [c for c in comps if c not in available]
    if unknown:
        raise KeyError(
            f"projection() got unknown component(s) {unknown!r}; the result has {available!r}"
        )
    colors = color_list(color)
    if len(colors) > 1 and (groups is not None or color_values is not None):
        raise ValueError("a list of colours draws one panel per attribute; pass no groups=")
    return ProjectionInput(scores, ratio, comps, colors)


def _leaf_positions(order: Any, ids: np.ndarray, order_layer: Any) -> np.ndarray:
    """Row order as positions along ``persona``, from positions, ids or a linkage Dataset."""
    if isinstance(order, xr.Dataset):
        if "order" not in order:
            raise ValueError("order= needs the Dataset of pvx.cluster.linkage (with 'order')")
        tree = _computed(order)
        if "layer" in tree["order"].dims:
            label = tree["layer"].values[-1] if order_layer is None else order_layer
            tree = tree.sel(layer=label)
        _check_dims(tree["order"], ["leaf"], func="heatmap(order=...)")
        leaf_ids = tree["leaf_id"].values if "leaf_id" in tree else None
        if leaf_ids is not None:
            order = np.asarray(leaf_ids, dtype=object)
        else:
            order = tree["order"].values
    arr = np.asarray(order)
    if arr.dtype.kind in "iu":
        positions = arr.astype(np.int64)
    else:
        positions = pd.Index(ids).get_indexer(arr.astype(object))
    n = len(ids)
    if sorted(positions.tolist()) != list(range(n)):
        raise ValueError(
            f"order= must list each of the {n} personas once (positions or ids), e.g. the "
            "'order' of pvx.cluster.linkage computed on the same personas"
        )
    return positions


def _ratio(evr: xr.DataArray | xr.Dataset, func: str) -> xr.DataArray:
    if isinstance(evr, xr.Dataset):
        if "explained_variance_ratio" not in evr:
            raise ValueError(
                f"{func}() needs explained-variance ratios: pvx.decomposition."
                "explained_variance, or the Dataset of pvx.decomposition.pca"
            )
        evr = evr["explained_variance_ratio"]
    if "component" not in evr.dims:
        raise ValueError(f"{func}() needs a 'component' dimension, got {evr.dims!r}")
    _check_dims(evr, ["layer", "component"], func=func)
    return _computed(evr)


def _compute_together(*objs: Any) -> tuple[Any, ...]:
    """Compute several lazy results in one pass (shared Gram matrices are built once), with
    a progress bar (:func:`pvx.set_options`)."""
    from pvx.options import compute

    return compute(*objs, description="pvx: computing")
