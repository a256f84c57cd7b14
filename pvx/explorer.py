"""Explore persona space interactively: ``pvx.explore(...)`` in Jupyter, ``pvx explore`` served
locally (Panel).

The explorer draws what :class:`ExplorerData` gives it: from a report folder
(``results.zarr`` of ``pvx analyze``) nothing is recomputed; from persona vectors (a store
or a DataArray) each projection, similarity matrix and clustering is computed the first
time it is asked for, then cached. Names and attributes are always shown as text.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx._construct import attribute_names
from pvx.views._common import _esc, _label

__all__ = ["ExplorerData", "explore", "serve"]

METHODS = {"pca": "PCA", "umap": "UMAP", "isomap": "Isomap"}
# the analyses of a report the explorer reads (the rest is not opened)
NODES = (*METHODS, "cosine", "kmeans", "linkage", "probe", "direction")
N_CLUSTERS = 5
NEIGHBOURS = 10
CLUSTERS = "clusters"
NAMED_CLUSTERS = "named clusters"
NO_COLOUR = "none"
DIRECTION = "direction: "  # colours by position along a difference-of-means direction
NO_SIMILARITY = (
    "this report has no similarities (neighbours, selection heatmap): "
    "rerun pvx analyze with the similarity view"
)


class ExplorerData:
    """Projections, similarities, clusters and probes of one model/mask, per variant and layer.

    Build it with :meth:`from_results` (a report's saved numbers: nothing recomputed) or
    :meth:`from_vectors` (persona vectors: computed on first use, cached).
    """

    def __init__(
        self,
        *,
        variants: list[str],
        layers: list[Any],
        personas: dict[str, pd.DataFrame],
        attrs: dict[str, dict],
        methods: list[str],
        source: str,
    ) -> None:
        self.variants = variants
        self.layers = layers
        self.personas = personas  # per variant: id (index), name, attributes
        self.attrs = attrs  # attribute -> its coordinate's attrs (kind, order)
        self.methods = methods
        self.source = source
        self.colours: list[str] = []  # the report's colours, first choices
        self._results: xr.DataTree | None = None
        self._vectors: xr.DataArray | None = None
        self._cache: dict[tuple, Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_results(cls, results: xr.DataTree, source: str = "results") -> ExplorerData:
        settings = json.loads(results.attrs.get("settings", "{}"))
        methods = [m for m in METHODS if m in results.children]
        if not methods:
            raise ValueError(
                f"{source} has no projection to explore (pca, umap or isomap); run "
                "pvx analyze with --views pca (or umap, isomap)"
            )
        first = _projection_var(results, methods[0])
        variants = [str(v) for v in first["variant"].values]
        personas = {v: _persona_table(first.sel(variant=v)) for v in variants}
        self = cls(
            variants=variants,
            layers=list(first["layer"].values),
            personas=personas,
            attrs=_attribute_attrs(first),
            methods=methods,
            source=settings.get("store", source),
        )
        self._results = results
        self.colours = [str(c) for c in settings.get("colors", [])]
        return self

    @classmethod
    def from_vectors(cls, da: xr.DataArray, source: str = "vectors") -> ExplorerData:
        if "variant" not in da.dims:
            variant = str(da["variant"].values) if "variant" in da.coords else "vectors"
            da = da.expand_dims(variant=[variant])
        from pvx._validate import drop_baseline

        da = drop_baseline(da, include_baseline=False)
        variants = [str(v) for v in da["variant"].values]
        table = _persona_table(da)
        self = cls(
            variants=variants,
            layers=list(da["layer"].values),
            personas={v: table for v in variants},
            attrs=_attribute_attrs(da),
            methods=list(METHODS),
            source=source,
        )
        self._vectors = da
        return self

    # ------------------------------------------------------------------ numbers
    def projection(self, variant: str, layer: Any, method: str) -> np.ndarray:
        """``(persona, component)`` coordinates (2 or 3 components)."""
        key = ("projection", variant, method)
        if key not in self._cache:
            self._cache[key] = self._projection(variant, method)
        per_layer = self._cache[key]
        if isinstance(per_layer, dict):  # computed layer by layer (UMAP, Isomap)
            if layer not in per_layer:
                per_layer[layer] = self._one_layer(variant, layer, method)
            return per_layer[layer]
        return per_layer.sel(layer=layer).values

    def _projection(self, variant: str, method: str) -> Any:
        if self._results is not None:
            scores = _projection_var(self._results, method).sel(variant=variant)
            return scores.transpose("layer", "persona", "component").load()
        if method == "pca":  # every layer at once: signs aligned across layers
            from pvx import decomposition

            n = min(3, self._vectors.sizes["persona"], self._vectors.sizes["hidden"])
            pca = decomposition.pca(self._vectors.sel(variant=variant), n_components=n)
            return pca["scores"].transpose("layer", "persona", "component").compute()
        return {}

    def _one_layer(self, variant: str, layer: Any, method: str) -> np.ndarray:
        from pvx import manifold

        one = self._vectors.sel(variant=variant, layer=[layer])
        fit = manifold.umap(one) if method == "umap" else manifold.isomap(one)
        return fit.isel(layer=0).transpose("persona", "component").values

    def cosine(self, variant: str, layer: Any) -> np.ndarray:
        """Centered cosine similarity ``(persona, persona)`` of one layer."""
        key = ("cosine", variant, layer)
        if key not in self._cache:
            if self._results is not None and "cosine" in self._results.children:
                cos = self._results["cosine"].to_dataset()["cosine"]
                value = cos.sel(variant=variant, layer=layer).values
            elif self._vectors is not None:
                from pvx import similarity

                one = self._vectors.sel(variant=variant)
                value = similarity.cosine(one, layer=layer).values
            else:
                value = None
            self._cache[key] = value
        return self._cache[key]

    def has_similarity(self) -> bool:
        return self._vectors is not None or (
            self._results is not None and "cosine" in self._results.children
        )

    def clusters(self, variant: str, layer: Any) -> np.ndarray:
        """Cluster label per persona at one layer: k-means (saved or computed), or the
        saved Ward dendrogram cut into :data:`N_CLUSTERS` clusters."""
        key = ("clusters", variant, layer)
        if key not in self._cache:
            self._cache[key] = self._clusters(variant, layer)
        return self._cache[key]

    def _clusters(self, variant: str, layer: Any) -> np.ndarray:
        ids = self.personas[variant].index
        if self._results is not None and "kmeans" in self._results.children:
            labels = self._results["kmeans"].to_dataset()["cluster"]
            labels = labels.sel(variant=variant, layer=layer)
            return _by_ids(labels, ids)
        if self._results is not None and "linkage" in self._results.children:
            from scipy.cluster.hierarchy import fcluster

            tree = self._results["linkage"].to_dataset().sel(variant=variant, layer=layer)
            labels = fcluster(tree["linkage"].values, N_CLUSTERS, criterion="maxclust") - 1
            # leaf j is observation order[j] of the tree's input, persona leaf_id[j]
            observation = dict(zip(tree["leaf_id"].values, tree["order"].values, strict=True))
            return np.array([labels[observation[pid]] for pid in ids])
        if self._vectors is not None:
            from pvx import cluster

            one = self._vectors.sel(variant=variant, layer=[layer])
            k = min(N_CLUSTERS, one.sizes["persona"])
            labels = cluster.kmeans(one, k, mode="per_layer", n_init=3).compute()
            return _by_ids(labels.isel(layer=0), ids)
        raise ValueError("these results hold no clusters (kmeans or linkage)")

    def default_colour(self) -> str:
        """The report's first colour, else one categorical attribute (the first that has
        few values), else clusters."""
        chosen = [c for c in self.colours if c in self.attrs or c == CLUSTERS]
        if chosen:
            return chosen[0]
        table = self.personas[self.variants[0]]
        for name, attr in self.attrs.items():
            if attr.get("kind") != "numeric" and table[name].nunique() <= 12:
                return name
        if self.attrs:
            return next(iter(self.attrs))
        return CLUSTERS if self.has_clusters() else NO_COLOUR

    def hover(self, variant: str, coloring: Any) -> np.ndarray:
        """Escaped hover text per persona: name, id and the colour's value."""

        key = ("hover", variant, coloring.title, coloring.kind, tuple(coloring.labels[0]))
        if key not in self._cache:
            table = self.personas[variant]
            names = table["name"].values if "name" in table else table.index.values
            lines = [
                f"<b>{_esc(n)}</b><br>id: {_esc(i)}"
                for n, i in zip(names, table.index.values, strict=True)
            ]
            if coloring.kind != "none":
                title = _esc(coloring.title)
                lines = [
                    f"{h}<br>{title}: {'missing' if v is None else _esc(v)}"
                    for h, v in zip(lines, coloring.labels[0], strict=True)
                ]
            self._cache[key] = np.asarray(lines, dtype=object)
        return self._cache[key]

    def has_clusters(self) -> bool:
        return self._vectors is not None or (
            self._results is not None and bool({"kmeans", "linkage"} & set(self._results.children))
        )

    def cluster_names(self, variant: str, layer: Any) -> dict[int, str]:
        """A unique name per cluster from its over-represented attribute values."""
        from pvx.attributes import name_clusters

        key = ("names", variant, layer)
        if key not in self._cache:
            table = self.personas[variant]
            labels = xr.DataArray(
                self.clusters(variant, layer),
                dims="persona",
                coords={"id": ("persona", table.index)},
            )
            named = name_clusters(labels, _as_coords(table, self.attrs))
            self._cache[key] = dict(
                zip(named["cluster"].values.tolist(), named["name"].values.tolist(), strict=True)
            )
        return self._cache[key]

    def directions(self) -> dict[str, Any]:
        """Colours by position along a difference-of-means direction: a ``direction`` saved
        in the results (:func:`pvx.attributes.direction`), or, from vectors, one per
        two-valued attribute (computed when chosen). Keyed by the colour's label."""
        out: dict[str, Any] = {}
        if self._results is not None and "direction" in self._results.children:
            saved = self._results["direction"].to_dataset()
            label = f"{saved.attrs.get('group_a', 'a')} vs {saved.attrs.get('group_b', 'b')}"
            out[f"{DIRECTION}{label}"] = saved
        if self._vectors is not None:
            from pvx.attributes import _missing

            table = self.personas[self.variants[0]]
            for name, attr in self.attrs.items():
                values = sorted({str(v) for v in table[name].values if not _missing(v)})
                if attr.get("kind") != "numeric" and len(values) == 2:
                    out[f"{DIRECTION}{name} = {values[0]} vs {values[1]}"] = (name, *values)
        return out

    def direction_positions(self, variant: str, layer: Any, colour: str) -> np.ndarray:
        """Each persona's position along a direction of :meth:`directions` at one layer."""
        key = ("direction", variant, colour)
        if key not in self._cache:
            source = self.directions()[colour]
            if isinstance(source, tuple):
                from pvx.attributes import direction

                name, value, other = source
                vectors = self._vectors.sel(variant=variant)
                source = direction(vectors, attribute=name, value=value, other=other)
                source = source[["projection"]].compute()
            projection = source["projection"]
            if "variant" in projection.dims:
                projection = projection.sel(variant=variant)
            self._cache[key] = projection
        positions = self._cache[key].sel(layer=layer)
        return _by_ids(positions, self.personas[variant].index)

    def probes(self) -> xr.Dataset | None:
        if self._results is not None and "probe" in self._results.children:
            return self._results["probe"].to_dataset()
        return self._cache.get(("probe",))

    def compute_probes(self) -> xr.Dataset:
        """Probe every attribute (from persona vectors; a report has them saved)."""
        if self.probes() is None:
            from pvx.attributes import probe

            self._cache[("probe",)] = probe(self._vectors).compute()
        return self.probes()


# --------------------------------------------------------------------------- helpers


def _projection_var(results: xr.DataTree, method: str) -> xr.DataArray:
    ds = results[method].to_dataset()
    return ds["scores"] if method == "pca" else ds[method]


def _attribute_attrs(arr: xr.DataArray) -> dict[str, dict]:
    return {str(k): dict(arr[k].attrs) for k in attribute_names(arr)}


def _persona_table(arr: xr.DataArray) -> pd.DataFrame:
    """Name, attributes, then any other persona coordinate (provenance such as sample ids)."""
    attributes = [str(k) for k in attribute_names(arr)]
    others = [
        str(k)
        for k, c in arr.coords.items()
        if c.dims == ("persona",) and k not in ("id", "name", *attributes)
    ]
    columns = ["name", *attributes, *others]
    data = {c: np.asarray(arr[c].values) for c in columns if c in arr.coords}
    return pd.DataFrame(data, index=pd.Index(np.asarray(arr["id"].values).astype(str), name="id"))


def _as_coords(table: pd.DataFrame, attrs: dict[str, dict]) -> xr.Dataset:
    ds = xr.Dataset(coords={"id": ("persona", table.index.values)})
    for name, attr in attrs.items():
        ds = ds.assign_coords({name: ("persona", table[name].values, attr)})
    return ds


def _by_ids(labels: xr.DataArray, ids: pd.Index) -> np.ndarray:
    """Per-persona values matched to ``ids`` by id (an absent id is an error, not a guess)."""
    from pvx.views._common import _by_id

    return np.asarray(_by_id(labels, np.asarray(ids), what="explorer").values)


# --------------------------------------------------------------------------- figures


def colouring(data: ExplorerData, variant: str, layer: Any, colour: str) -> Any:
    """How the personas of a variant are coloured at a layer (:class:`pvx._colors.Coloring`)."""
    from pvx import _colors

    table = data.personas[variant]
    if colour == NO_COLOUR:
        return _colors.no_color(len(table))
    if colour.startswith(DIRECTION):
        positions = data.direction_positions(variant, layer, colour)
        return _colors.numeric(positions, colour)
    if colour in (CLUSTERS, NAMED_CLUSTERS):
        labels = data.clusters(variant, layer)
        if colour == NAMED_CLUSTERS:
            names = data.cluster_names(variant, layer)
            shown = np.array([names.get(int(v), f"cluster {v + 1}") for v in labels], object)
            return _colors.categorical(shown, "cluster", max_categories=N_CLUSTERS)
        order = sorted({int(v) for v in labels})
        return _colors.categorical(
            labels, "cluster", max_categories=len(order), order=order, prefix="cluster "
        )
    key = ("colouring", variant, colour)  # an attribute's colours are the same at every layer
    if key not in data._cache:
        values = table[colour].values
        coord = xr.DataArray(values, dims="persona", attrs=data.attrs[colour], name=colour)
        data._cache[key] = _colors.from_coord(coord)
    return data._cache[key]


def projection_figure(
    data: ExplorerData,
    variant: str,
    layer: Any,
    method: str,
    *,
    dims: int = 2,
    colour: str = NO_COLOUR,
    highlight: str | None = None,
) -> Any:
    """The projection of one variant and layer as a Plotly figure; each point carries its
    persona id (``customdata``), so selections map back to personas."""
    import plotly.graph_objects as go

    return go.Figure(
        projection_spec(data, variant, layer, method, dims=dims, colour=colour, highlight=highlight)
    )


# Up to this many personas a 2-D projection is drawn as SVG, which draws (and redraws) a
# few thousand points faster than WebGL does on machines without a GPU.
SVG_POINTS = 3000


def projection_spec(
    data: ExplorerData,
    variant: str,
    layer: Any,
    method: str,
    *,
    dims: int = 2,
    colour: str = NO_COLOUR,
    highlight: str | None = None,
) -> dict:
    """:func:`projection_figure` as a plain figure dict (what the app sends: plotly's
    validation of a figure object costs more than building it)."""
    from pvx.views._common import _trace_groups

    coords = data.projection(variant, layer, method)
    dims = min(dims, coords.shape[1])
    table = data.personas[variant]
    ids = table.index.values
    coloring = colouring(data, variant, layer, colour)
    hover = data.hover(variant, coloring)
    if dims == 3:
        kind = "scatter3d"
    else:
        kind = "scatter" if len(ids) <= SVG_POINTS else "scattergl"
    axes = ("x", "y", "z")[:dims]
    size = 4 if dims == 3 else 7
    traces = []
    for group in _trace_groups(coloring):
        member = np.asarray(group["member"])[0]
        marker = dict(group["marker"])
        if group.get("scale"):
            marker["color"] = np.asarray(coloring.values[0], dtype=float)[member]
        traces.append(
            {
                "type": kind,
                **{axis: coords[member, k] for k, axis in enumerate(axes)},
                "mode": "markers",
                "name": group["name"],
                "marker": {"size": size, **marker},
                "customdata": ids[member],
                "hovertext": hover[member],
                "hoverinfo": "text",
            }
        )
    if highlight is not None and highlight in set(ids):
        i = int(np.flatnonzero(ids == highlight)[0])
        name = table["name"].values[i] if "name" in table else highlight
        traces.append(
            {
                "type": kind,
                **{axis: [coords[i, k]] for k, axis in enumerate(axes)},
                "mode": "markers",
                "name": f"selected: {_esc(name)}",
                "marker": {
                    "size": 3 * size,
                    "color": "rgba(0,0,0,0)",
                    "line": {"color": "black", "width": 3},
                },
                "customdata": [ids[i]],
                "hovertext": [hover[i]],
                "hoverinfo": "text",
            }
        )
    layout = {
        "title": {"text": f"{METHODS[method]} · {_esc(variant)} · layer {_esc(layer)}"},
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"itemsizing": "constant"},
        "dragmode": "lasso" if dims == 2 else "orbit",
        "uirevision": f"{variant}-{method}-{dims}",  # zoom kept while recolouring
        "height": 600,
        "template": "plotly",
    }
    return {"data": traces, "layout": layout}


def selection_figure(data: ExplorerData, variant: str, layer: Any, ids: Sequence[str]) -> Any:
    """Heatmap of the selected personas' cosines at one layer, in dendrogram order."""
    import plotly.graph_objects as go
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    table = data.personas[variant]
    position = table.index.get_indexer(list(ids))
    position = position[position >= 0]
    matrix = data.cosine(variant, layer)[np.ix_(position, position)]
    if len(position) > 2:
        distance = np.clip(1.0 - matrix, 0.0, None)
        np.fill_diagonal(distance, 0.0)
        order = leaves_list(linkage(squareform((distance + distance.T) / 2), "average"))
        position, matrix = position[order], matrix[np.ix_(order, order)]
    # rows by id (Plotly merges equal categories: two personas of one name would be one
    # row), ticks the names shortened, hover the names whole
    rows = [_esc(i) for i in table.index.values[position]]
    names = [_esc(n) for n in table["name"].values[position]]
    ticks = {"tickvals": rows, "ticktext": [_label(n) for n in table["name"].values[position]]}
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=rows,
            y=rows,
            customdata=[[(a, b) for b in names] for a in names],
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,
            hovertemplate="%{customdata[0]} · %{customdata[1]}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": f"{len(position)} selected · layer {_esc(layer)} · centered cosine"},
        xaxis={"type": "category", **ticks},
        yaxis={"type": "category", "autorange": "reversed", **ticks},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=500,
    )
    return fig


def _one_line(text: str) -> str:
    return re.sub(r"\r\n|[\r\n]", "\u21b5", text)


def neighbours(data: ExplorerData, variant: str, layer: Any, persona: str, k: int) -> pd.DataFrame:
    """The ``k`` personas most similar to ``persona`` at one layer."""
    table = data.personas[variant]
    i = table.index.get_loc(persona)
    row = np.array(data.cosine(variant, layer)[i], dtype=float)
    # every other persona at most: the persona itself is never its own neighbour
    order = np.argsort(-row, kind="stable")
    nearest = order[order != i][:k]
    return pd.DataFrame(
        {
            "name": table["name"].values[nearest] if "name" in table else table.index[nearest],
            "id": table.index[nearest],
            "cosine": np.round(row[nearest], 3),
        },
        index=pd.RangeIndex(1, len(nearest) + 1, name="rank"),
    )


def neighbours_by_layer(data: ExplorerData, variant: str, persona: str, k: int) -> pd.DataFrame:
    """The ``k`` nearest personas' names at every layer: how the list changes with depth."""
    columns = {}
    for layer in data.layers:
        names = neighbours(data, variant, layer, persona, k)["name"].astype(str).values
        columns[f"layer {layer}"] = names
    count = min(k, len(data.personas[variant]) - 1)  # every other persona at most
    return pd.DataFrame(columns, index=pd.RangeIndex(1, count + 1, name="rank"))


def selection_summary(data: ExplorerData, variant: str, ids: Sequence[str]) -> pd.DataFrame:
    """Per attribute, the selection's most common value and its share against everyone's."""
    table = data.personas[variant]
    chosen = table.loc[[i for i in ids if i in table.index]]
    rows = []
    for name, attr in data.attrs.items():
        if attr.get("kind") == "numeric":
            rows.append(
                {
                    "attribute": name,
                    "selection": f"median {np.nanmedian(chosen[name].astype(float)):.4g}",
                    "everyone": f"median {np.nanmedian(table[name].astype(float)):.4g}",
                }
            )
            continue
        counts = chosen[name].dropna().astype(str).value_counts()
        if counts.empty:
            continue
        top = counts.index[0]
        overall = (table[name].astype(str) == top).mean()
        rows.append(
            {
                "attribute": name,
                "selection": f"{top} ({counts.iloc[0] / len(chosen):.0%})",
                "everyone": f"{overall:.0%}",
            }
        )
    return pd.DataFrame(rows, columns=["attribute", "selection", "everyone"])


def persona_card(data: ExplorerData, variant: str, persona: str) -> pd.DataFrame:
    """One persona's id, name and attributes (and the store's provenance when present)."""
    row = data.personas[variant].loc[persona]
    values = {"id": persona, **{str(k): v for k, v in row.items()}}
    shown = [_shortened(str(v)) for v in values.values()]
    return pd.DataFrame({"value": shown}, index=list(values))


def _shortened(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the app


class Explorer:
    """The explorer's widgets and views over one :class:`ExplorerData` (one per session)."""

    def __init__(self, data: ExplorerData) -> None:
        import panel as pn

        self.data = data
        self.variant = pn.widgets.Select(label="Variant", options=data.variants)
        self.layer = pn.widgets.DiscretePlayer(
            label="Layer",
            options=list(data.layers),
            value=data.layers[-1],
            interval=800,
            width=290,
            show_loop_controls=False,
        )
        self.method = pn.widgets.RadioButtonGroup(
            label="Projection", options={METHODS[m]: m for m in data.methods}
        )
        self.dims = pn.widgets.RadioButtonGroup(label="Dimensions", options=["2-D", "3-D"])
        colours = [NO_COLOUR, *data.attrs]
        if data.has_clusters():
            colours += [CLUSTERS] + ([NAMED_CLUSTERS] if data.attrs else [])
        colours += list(data.directions())
        self.colour = pn.widgets.Select(
            label="Colour", options=colours, value=data.default_colour()
        )
        self.search = pn.widgets.AutocompleteInput(
            label="Find a persona (name or id)",
            options=self._search_options(),
            case_sensitive=False,
            search_strategy="includes",
            min_characters=1,
            restrict=False,  # Enter on any text finds the first persona containing it
            placeholder="type part of a name or id",
        )
        self.k = pn.widgets.IntInput(label="Neighbours", value=NEIGHBOURS, start=1, end=100)
        # escaped here: a Str pane would render markup in a persona's name
        self.status = pn.pane.HTML("", styles={"color": "#555"})
        self.plot = pn.pane.Plotly(config={"responsive": True}, sizing_mode="stretch_width")
        self.card = pn.pane.DataFrame(None, escape=True, sizing_mode="stretch_width")
        self.near = pn.pane.DataFrame(None, escape=True, sizing_mode="stretch_width")
        self.near_layers = pn.pane.DataFrame(None, escape=True, sizing_mode="stretch_width")
        self.heatmap = pn.pane.Plotly(sizing_mode="stretch_width")
        self.summary = pn.pane.DataFrame(None, escape=True, sizing_mode="stretch_width")
        self.selected: list[str] = []
        self.download = pn.widgets.FileDownload(
            callback=self._selection_file,
            filename="selection.csv",
            label="Save the selection's ids",
            disabled=True,
        )
        self.persona: str | None = None
        for widget in (self.variant, self.layer, self.method, self.dims, self.colour):
            widget.param.watch(self._redraw, "value")
        for widget in (self.variant, self.layer, self.k):
            widget.param.watch(self._update_persona, "value")
        for widget in (self.variant, self.layer):
            widget.param.watch(self._update_selection, "value")
        self.search.param.watch(self._find, "value")
        self.plot.param.watch(self._clicked, "click_data")
        self.plot.param.watch(self._selected, "selected_data")
        self._redraw()

    def _search_options(self) -> dict[str, str]:
        table = self.data.personas[self.data.variants[0]]
        names = table["name"].astype(str).values if "name" in table else table.index
        options: dict[str, str] = {}
        for name, persona in zip(names, table.index, strict=True):
            # a browser's input drops line breaks from the option it sends back: shown as ↵
            key = f"{_one_line(name)} ({_one_line(persona)})"
            options[key if key not in options else f"{_one_line(name)} ({persona!r})"] = persona
        return options

    # -- callbacks
    def _redraw(self, *_: Any) -> None:
        method, layer = self.method.value, self.layer.value
        self.plot.loading = True  # a spinner while a projection is computed the first time
        try:
            self.plot.object = projection_spec(
                self.data,
                self.variant.value,
                layer,
                method,
                dims=3 if self.dims.value == "3-D" else 2,
                colour=self.colour.value,
                highlight=self.persona,
            )
            components = self.data.projection(self.variant.value, layer, method).shape[1]
            self.status.object = (
                _esc(f"{METHODS[method]} has {components} components here: drawn in 2-D")
                if self.dims.value == "3-D" and components < 3
                else ""
            )
        except Exception as err:  # shown, not raised: the app keeps running
            self.status.object = _esc(f"cannot draw {METHODS[method]} at layer {layer}: {err}")
        finally:
            self.plot.loading = False

    def _find(self, event: Any) -> None:
        text = str(event.new or "").strip()
        if not text:
            return
        options = self.search.options
        matches = [key for key in options if text.lower() in key.lower()]
        if not matches:
            self.status.object = _esc(f"no persona's name or id contains {text!r}")
            return
        # the id as typed first: ids "AB" and "ab" are two personas
        same = [key for key in matches if text in (key, options[key])]
        alike = [key for key in matches if options[key].lower() == text.lower()]
        chosen = (same or alike or matches)[0]
        more = 0 if same else len(matches) - 1
        self.status.object = _esc(f"{more} more match {text!r}; showing {chosen}" if more else "")
        self._choose(options[chosen])

    def _clicked(self, event: Any) -> None:
        points = (event.new or {}).get("points") or []
        if points and points[0].get("customdata") is not None:
            self._choose(str(points[0]["customdata"]))

    def _choose(self, persona: str) -> None:
        if persona not in self.data.personas[self.variant.value].index:
            return
        self.persona = persona
        self._redraw()
        self._update_persona()

    def _update_persona(self, *_: Any) -> None:
        if self.persona is None:
            return
        variant, layer = self.variant.value, self.layer.value
        self.card.object = persona_card(self.data, variant, self.persona)
        if self.data.has_similarity():
            k = int(self.k.value)
            self.near.object = neighbours(self.data, variant, layer, self.persona, k)
            self.near_layers.object = neighbours_by_layer(self.data, variant, self.persona, k)
        else:
            self.status.object = _esc(NO_SIMILARITY)

    def _selected(self, event: Any) -> None:
        points = (event.new or {}).get("points") or []
        self.selected = list(
            dict.fromkeys(str(p["customdata"]) for p in points if p.get("customdata"))
        )
        self._update_selection()

    def _update_selection(self, *_: Any) -> None:
        self.download.disabled = not self.selected
        if not self.selected:
            return
        variant = self.variant.value
        if self.data.has_similarity() and len(self.selected) >= 2:
            self.heatmap.object = selection_figure(
                self.data, variant, self.layer.value, self.selected
            )
        elif not self.data.has_similarity():
            self.status.object = _esc(NO_SIMILARITY)
        self.summary.object = selection_summary(self.data, variant, self.selected)

    def _selection_file(self) -> io.StringIO:
        # CSV with every id quoted: one id per line would split an id holding a line break;
        # pd.read_csv("selection.csv", dtype=str, keep_default_na=False)["id"] reads them back
        table = pd.DataFrame({"id": self.selected})
        return io.StringIO(table.to_csv(index=False, quoting=csv.QUOTE_ALL))

    # -- layout
    def layout(self) -> Any:
        import panel as pn

        controls = pn.Column(
            # HTML with the text escaped: Markdown would turn a model named "![x](http://...)"
            # into a request to that address
            pn.pane.HTML(f"<h3>pvx explore</h3><p>{_esc(self.data.source)}</p>"),
            self.variant,
            self.layer,
            self.method,
            self.dims,
            self.colour,
            self.search,
            self.k,
            self.status,
            width=320,
        )
        tabs = [
            (
                "Persona",
                pn.Column(
                    "Click a point or find a persona by name.",
                    self.card,
                    pn.pane.Markdown("**Nearest at this layer**"),
                    self.near,
                    pn.pane.Markdown("**Nearest at every layer**"),
                    self.near_layers,
                ),
            ),
            (
                "Selection",
                pn.Column(
                    "Select points with the lasso or box tool.",
                    self.download,
                    self.heatmap,
                    self.summary,
                ),
            ),
        ]
        probes = self._probe_views()
        if probes is not None:
            tabs.append(("Attributes", probes))
        # dynamic: a tab's contents are sent when it is shown
        return pn.Row(controls, pn.Column(self.plot, pn.Tabs(*tabs, dynamic=True)))

    def _probe_views(self) -> Any:
        import panel as pn

        from pvx import plot

        probes = self.data.probes()
        if probes is None:
            if self.data._vectors is None or not self.data.attrs:
                return None
            # from vectors: probing every attribute takes a while, so only when asked
            button = pn.widgets.Button(label="Probe every attribute (takes a while)")
            holder = pn.Column(
                "Which layers encode which attributes: cross-validated linear probes.", button
            )

            def run(_: Any) -> None:
                button.disabled, holder.loading = True, True
                try:
                    self.data.compute_probes()
                    holder[:] = [self._probe_views()]
                except ValueError as error:  # e.g. no attribute has enough personas per class
                    holder[:] = [pn.pane.HTML(f"<p>No probes: {_esc(str(error))}</p>")]
                finally:
                    holder.loading = False

            button.on_click(run)
            return holder

        def figures(variant: str) -> Any:
            result = probes.sel(variant=variant) if "variant" in probes.dims else probes
            return pn.Column(
                pn.pane.Plotly(plot.probe_lines(result, title="Probe score by layer")),
                pn.pane.Plotly(plot.probe_heatmap(result, title="Gain over shuffled labels")),
            )

        # drawn when the tab is first shown
        return pn.panel(pn.bind(figures, self.variant), lazy=True)


# --------------------------------------------------------------------------- entry points


def load_source(source: Any, **load_options: Any) -> ExplorerData:
    """:class:`ExplorerData` from a report folder, a ``results.zarr``, a results tree, a store
    path or URL, or persona vectors."""
    from pvx.report import RESULTS, open_results

    if isinstance(source, ExplorerData):
        return source
    if isinstance(source, xr.DataArray):
        return ExplorerData.from_vectors(source)
    if isinstance(source, xr.DataTree):
        if any(m in source.children for m in METHODS):
            return ExplorerData.from_results(source)
        da = _load_store(source, **load_options)
        return ExplorerData.from_vectors(da, _described("store", da))
    path = Path(os.fspath(source)) if not str(source).startswith(("http://", "https://")) else None
    if path is not None and (path / RESULTS).is_dir():
        return ExplorerData.from_results(open_results(path / RESULTS, NODES), str(path))
    if path is not None and path.name == RESULTS:
        return ExplorerData.from_results(open_results(path, NODES), str(path.parent))
    da = _load_store(source, **load_options)
    return ExplorerData.from_vectors(da, _described(str(source), da))


def _described(source: str, da: xr.DataArray) -> str:
    """The source with the model and mask strategy loaded (the first of each by default)."""
    parts = [da.attrs.get(key) for key in ("model", "mask_strategy")]
    return " · ".join([source, *(str(p) for p in parts if p)])


def _load_store(
    store: Any,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    variants: Sequence[str] | None = None,
) -> xr.DataArray:
    from pvx._store_read import require_shared
    from pvx.store import load, mask_strategies, models, open_store
    from pvx.store import variants as variants_of

    tree = store if isinstance(store, xr.DataTree) else open_store(store)
    model = model or models(tree)[0]
    mask_strategy = mask_strategy or mask_strategies(tree, model=model)[0]
    names = list(variants or variants_of(tree, model=model, mask_strategy=mask_strategy))
    da = load(tree, names, model=model, mask_strategy=mask_strategy)
    require_shared(da, names)
    return da if "variant" in da.dims else da.expand_dims("variant")


def explore(source: Any, **load_options: Any) -> Any:
    """The explorer as a Panel layout, shown inline in Jupyter.

    Parameters
    ----------
    source
        A report folder (``pvx analyze``'s ``--out``; starts from its ``results.zarr``, with
        no recomputation), a results tree, a store path or URL (``model=``,
        ``mask_strategy=``, ``variants=`` choose what to load; the first of each by default),
        or persona vectors (an ``xr.DataArray``). From vectors, each projection and
        similarity is computed when first shown, then cached.

    Examples
    --------
    >>> import pvx
    >>> app = pvx.explore("pvx-report")  # doctest: +SKIP
    >>> app  # in a notebook cell: the explorer  # doctest: +SKIP
    """
    import panel as pn

    pn.extension("plotly", inline=True)
    return Explorer(load_source(source, **load_options)).layout()


def _load_and_warm(source: Any, **load_options: Any) -> ExplorerData:
    """:func:`load_source`, then the first view's figure once, while the browser fetches the
    page's scripts: its projection and colours are cached in the data, and plotly's template
    and validators are loaded (0.6 s the first time), before a session asks for them."""
    import plotly.graph_objects as go

    data = load_source(source, **load_options)
    variant, layer = data.variants[0], data.layers[-1]
    # only a head start: a view that cannot be drawn shows its error in the session instead
    with contextlib.suppress(Exception):
        spec = projection_spec(data, variant, layer, data.methods[0], colour=data.default_colour())
        go.Figure(spec)
    return data


def _names_of(address: str) -> list[str]:
    """The host names a browser may use for a server bound to ``address``: the address and
    localhost, and for every interface ("0.0.0.0") this machine's names and addresses."""
    import socket

    import psutil  # a dependency of dask.distributed

    if ":" in address:  # Bokeh's origin allowlist cannot parse "[::1]:port"
        raise ValueError(
            f"pvx explore serves IPv4 addresses; got {address!r}: use 127.0.0.1, a machine "
            "address or 0.0.0.0"
        )
    names = [address, "localhost"]
    if address in ("", "0.0.0.0"):
        names += [socket.gethostname(), socket.getfqdn()]
        names += [
            found.address
            for interface in psutil.net_if_addrs().values()
            for found in interface
            if found.family == socket.AF_INET
        ]
    return list(dict.fromkeys(names))


def _this_host_only(hosts: list[str]) -> Any:
    """A Bokeh auth provider that serves requests whose ``Host`` is one of ``hosts`` and
    answers any other with 403 (DNS rebinding)."""
    from bokeh.server.auth_provider import AuthProvider
    from tornado.web import RequestHandler

    allowed = {host.lower() for host in hosts}

    class Refuse(RequestHandler):
        def get(self) -> None:
            self.set_status(403)
            self.finish(f"pvx explore answers at http://{hosts[0]}/ only")

    class ThisHostOnly(AuthProvider):
        @property
        def get_user(self) -> Any:
            return lambda handler: "local" if handler.request.host.lower() in allowed else None

        @property
        def login_url(self) -> str:
            return "/not-this-host"

        @property
        def login_handler(self) -> Any:
            return Refuse

    return ThisHostOnly()


# how long serve() waits for the data before it starts the server anyway
SOURCE_CHECK_SECONDS = 1.0


def serve(
    source: Any,
    *,
    port: int = 0,
    address: str = "127.0.0.1",
    show: bool = False,
    **load_options: Any,
) -> None:
    """Serve the explorer at ``http://address:port/`` until interrupted (``pvx explore``).

    The server starts at once and loads the data meanwhile, so a browser fetches the page's
    scripts while the data are read; the explorer appears when both are there. The data
    are loaded once and shared by every browser session; each session has its own widgets.
    Every script and style is served by the local server itself. A source that cannot be
    loaded stops the server and raises its error. Only requests that name the server (its
    address, localhost, or for "0.0.0.0" this machine's names and addresses) are answered.
    """
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import panel as pn

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port {port!r} is not a port number; give 1-65535, or 0 for any free one")
    names = _names_of(address)
    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(_load_and_warm, source, **load_options)
        # a source that is not there (a wrong path, variant or model) fails within moments:
        # said before an address is offered; a slow load goes on while the server starts
        with contextlib.suppress(TimeoutError):
            loading.result(timeout=SOURCE_CHECK_SECONDS)
        if not port:
            with socket.socket() as probe:
                probe.bind((address, 0))
                port = probe.getsockname()[1]
        pn.extension("plotly")

        def app() -> Any:
            # the page first; the explorer once the data are loaded
            return pn.panel(lambda: Explorer(loading.result()).layout(), defer_load=True)

        hosts = [f"{name}:{port}" for name in names]
        server = pn.serve(
            {"/": app},
            port=port,
            address=address,
            show=False,
            start=False,
            title="pvx explore",
            websocket_origin=hosts,
            # A page whose DNS name is rebound to 127.0.0.1 is "same origin" for Tornado:
            # only requests naming this server as their Host get a page, and only those
            # pages' signed session tokens open a websocket.
            auth_provider=_this_host_only(hosts),
            sign_sessions=True,
            secret_key=secrets.token_urlsafe(32),
        )
        server.start()  # listening from here: only now is the address worth printing
        loading.add_done_callback(
            lambda done: done.exception() and server.io_loop.add_callback(server.io_loop.stop)
        )
        print(f"pvx explore: {source}", flush=True)
        print(f"serving at http://{address}:{port}/  (Ctrl+C stops)", flush=True)
        if show:
            server.show("/")
        try:
            server.io_loop.start()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        loading.result()  # a source that failed to load: its error
