"""The main job, ``pvx analyze``: compute every analysis once, save the numbers, draw the pages.

Three steps, each usable on its own:

- :func:`compute_results` runs the analyses the chosen views need in one ``dask.compute``
  (one read of the vectors) and returns them as an ``xr.DataTree``;
- :func:`save_results` writes that tree to ``results.zarr``;
- :func:`render` draws the HTML pages and ``index.html`` from a results tree, whether just
  computed or reopened with ``xr.open_datatree(path, engine="zarr")``: no recomputation.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import glob
import html
import json
import os
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pvx import _engine, cluster, decomposition, manifold, options, plot, similarity
from pvx._construct import attribute_names
from pvx.store import StoreError, load, mask_strategies, models, open_store

VIEWS = (
    "pca",
    "umap",
    "isomap",
    "similarity",
    "pairs",
    "scree",
    "dendrogram",
    "variants",
    "kmeans",
)
DEFAULT_VIEWS = ("pca", "umap", "similarity", "pairs", "scree", "dendrogram", "variants")
RUN_FILE = "run.json"


def _pvx_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pvx-xarray")
    except PackageNotFoundError:
        return "unknown"


RESULTS = "results.zarr"

Progress = Callable[[str], None]


def analyze(
    store: str | os.PathLike | xr.DataTree,
    *,
    model: str | None = None,
    mask_strategy: str | None = None,
    variants: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    ids: Sequence[str] | None = None,
    include_baseline: bool = False,
    views: Sequence[str] = DEFAULT_VIEWS,
    colors: Sequence[str] = (),
    n_clusters: int | None = None,
    out: str | os.PathLike = "pvx-report",
    overwrite: bool = False,
    progress: Progress | None = print,
) -> Path:
    """Analyse one model/mask of a store and write an HTML report with its numbers.

    Parameters
    ----------
    store
        Path, URL or opened tree.
    variants
        Variants to analyse (default: all of the model/mask); several are aligned by label
        and compared.
    views
        Any of :data:`VIEWS`.
    colors
        Persona attributes to colour projections by (default: up to three, one of each kind).
    n_clusters
        k-means clusters, for the ``kmeans`` view and ``"cluster"`` colouring (default 5, or
        the number of personas if fewer, when either is asked for). A persona attribute
        named ``cluster`` takes precedence over the k-means colouring.
    out
        Output folder. A folder holding another run's results is never replaced unless
        ``overwrite=True``; rerunning the same settings replaces its own results.

    Returns
    -------
    pathlib.Path
        The report's ``index.html``.
    """
    say = progress or (lambda message: None)
    unknown = sorted(set(views) - set(VIEWS))
    if unknown:
        raise ValueError(f"unknown views {unknown}; choose from {list(VIEWS)}")
    tree = store if isinstance(store, xr.DataTree) else open_store(store)
    source = tree.attrs.get("source", str(store))
    # The main job picks the first model / mask strategy when there are several, and says so.
    if model is None and len(models(tree)) > 1:
        model = models(tree)[0]
        say(f"using model {model} of {models(tree)}; choose with --model")
    if mask_strategy is None and len(mask_strategies(tree, model=model)) > 1:
        mask_strategy = mask_strategies(tree, model=model)[0]
        say(
            f"using mask strategy {mask_strategy} of {mask_strategies(tree, model=model)}; "
            "choose with --mask-strategy"
        )
    names = list(variants) if variants else _all_variants(tree, model, mask_strategy)
    da = load(
        tree,
        names,
        model=model,
        mask_strategy=mask_strategy,
        ids=ids,
        layers=layers,
        include_baseline=include_baseline,
    )
    if "variant" not in da.dims:
        da = da.expand_dims("variant")
    # A store without attributes (as imported from the reference layout) is coloured by
    # k-means clusters, so projection pages are never empty.
    colors = list(colors) or _default_colors(da) or ["cluster"]
    # "cluster" colours by k-means unless the personas have an attribute of that name, which
    # wins (as in pvx.plot.projection)
    kmeans_colour = "cluster" in colors and "cluster" not in attribute_names(da)
    if ("kmeans" in views or kmeans_colour) and not n_clusters:
        n_clusters = min(5, da.sizes["persona"])
    persona_coords = [name for name, c in da.coords.items() if c.dims == ("persona",)]
    missing = [
        c for c in colors if c not in persona_coords and not (c == "cluster" and kmeans_colour)
    ]
    if missing:
        raise ValueError(
            f"unknown colour attribute(s) {missing}; the personas have {attribute_names(da)}"
        )
    settings = {
        "store": source,
        "store_version": tree.attrs.get("snapshot"),
        "pvx_version": _pvx_version(),
        "model": da.attrs.get("model"),
        "mask_strategy": da.attrs.get("mask_strategy"),
        "variants": [str(v) for v in da["variant"].values],
        "layers": [int(v) for v in da["layer"].values],
        "ids": list(ids) if ids is not None else None,
        "include_baseline": include_baseline,
        "views": list(views),
        "colors": colors,
        "n_clusters": n_clusters,
    }
    out = Path(out)
    _check_out(out, settings, overwrite=overwrite, store=source)
    say(
        f"pvx analyze: {settings['model']} / {settings['mask_strategy']}, variants "
        f"{settings['variants']}, {da.sizes['persona']} personas x {da.sizes['layer']} layers"
    )
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out)
    staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    owner = staging.with_name(staging.name + ".owner")
    owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    # no progress messages, no progress bars
    quiet = options.set_options(progress=False) if progress is None else contextlib.nullcontext()
    try:
        with quiet:
            results = compute_results(
                da,
                views,
                n_clusters=n_clusters,
                progress=say,
                path=staging / RESULTS,
                attrs={"settings": json.dumps(settings)},
            )
        say("drawing views")
        render(results, staging, progress=say)
        written = sorted(p.name for p in staging.iterdir())
        (staging / RUN_FILE).write_text(json.dumps({**settings, "files": written}, indent=2))
        _replace_report(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        owner.unlink(missing_ok=True)
    say(f"done in {time.perf_counter() - start:.1f} s: open {out / 'index.html'}")
    return out / "index.html"


def compute_results(
    da: xr.DataArray,
    views: Sequence[str] = DEFAULT_VIEWS,
    *,
    n_clusters: int | None = None,
    progress: Progress | None = None,
    path: str | os.PathLike | None = None,
    attrs: dict[str, Any] | None = None,
) -> xr.DataTree:
    """Run every analysis the views need, in one computation (one read of ``da``) per group
    of layers.

    ``da`` has dims ``(variant, persona, layer, hidden)``. Returns a tree with one node per
    analysis (``pca``, ``scree``, ``umap``, ``isomap``, ``cosine``, ``linkage``, ``pairs``,
    ``kmeans``, ``variants``), each vectorised over ``variant`` and ``layer``, with ``attrs``.

    With ``path`` (a new ``results.zarr``), the results are written there as they are
    computed and the tree returned reads its cosines from there lazily: memory holds a few
    layers' matrices, not every layer's (personas² x layers x variants).

    Layers are computed in groups whose persona x persona matrices fit
    :data:`GROUP_MATRIX_BYTES` (42 layers of two variants at once up to about 1,000
    personas): dask runs a layer's cheap tasks (its Gram) ahead of their slow consumers, so
    at thousands of personas one computation over every layer would hold a growing number
    of them. The steps across layers (sign alignment, cluster matching, each pair's range)
    join the groups afterwards, with the same results as one computation.
    """
    say = progress or (lambda message: None)
    views = set(views)
    groups = layer_groups(da)
    target = None
    if "similarity" in views and path is not None:
        target = _cosine_node(similarity.cosine(da), path)
    first = _lazy_results(da.isel(layer=groups[0]), views, n_clusters, target, 0)
    names = list(first)
    umap_workers: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if "umap" in names and _distributed_client() is None:
        # UMAP's fits hold the GIL: in processes they leave the threads to the other work.
        # Half the cores: UMAP is about a third of the job's CPU, and each worker holds its
        # own ~0.37 GB of libraries (one worker was as fast as two on 2 cores).
        count = max(1, (os.cpu_count() or 1) // 2)
        umap_workers = manifold.umap_processes(count)
        say(f"UMAP runs in {count} worker process{'es' if count > 1 else ''}")
    elif "umap" in names:
        _prepare_umap(say)
    layers = da.sizes["layer"]
    grouping = f" in {len(groups)} groups of layers" if len(groups) > 1 else ""
    say(f"computing {', '.join(names)} over {layers} layers{grouping}")
    parts, pair_parts = [], None
    with umap_workers:
        for group in groups:
            where = f"layers {group.start + 1}-{group.stop} of {layers}"
            if len(groups) > 1:
                say(where)
            lazy = (
                first
                if group is groups[0]
                else _lazy_results(da.isel(layer=group), views, n_clusters, target, group.start)
            )
            part = _compute(lazy, where)
            # the finished computation's task state is reference cycles holding this group's
            # matrices (hundreds of MB each at thousands of personas): freed now, not at
            # Python's next collection
            gc.collect()
            if "pairs_change" in part:  # folded in at once: the pairs' extremes are large
                pair_parts = similarity.combine_pair_change_parts(
                    [p for p in (pair_parts, part.pop("pairs_change")) if p is not None]
                )
            parts.append(part)
    computed = _joined(parts)
    if pair_parts is not None:
        computed["pairs_change"] = similarity.pair_change_from_parts(pair_parts)
    if target is not None:  # written: read back lazily
        computed["cosine"] = _open_node(path, "cosine")["cosine"]
    elif "cosine" in computed:
        computed["cosine"] = _as_saved(computed["cosine"])
    if "pairs_change" in computed:
        computed["pairs"] = _pairs_shown(da, computed.pop("pairs_change"), computed.get("cosine"))
    tree = xr.DataTree.from_dict(
        {f"/{name}": _as_dataset(name, value) for name, value in computed.items()}
    )
    tree.attrs.update(attrs or {})
    if path is None:
        return tree
    save_results(tree, path, skip=("cosine",) if "cosine" in computed else ())
    return open_results(path)


# persona x persona float64 matrices (one per layer and variant) computed at once: 45 layers
# of two variants at 1,000 personas, one layer of two at 5,000
GROUP_MATRIX_BYTES = 700 << 20
# the all-pairs band drawn on the pairs page
PAIR_QUANTILES = (0.05, 0.95)


def layer_groups(da: xr.DataArray) -> list[slice]:
    """Consecutive layer positions computed together (see :func:`compute_results`)."""
    per_layer = 8 * da.sizes["persona"] ** 2 * da.sizes.get("variant", 1)
    size = max(1, GROUP_MATRIX_BYTES // per_layer)
    count = da.sizes["layer"]
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _lazy_results(
    da: xr.DataArray,
    views: set[str],
    n_clusters: int | None,
    cosine_target: zarr.Array | None,
    layer_start: int,
) -> dict[str, Any]:
    """The lazy analyses of some layers that the views need (``layer_start``: where the
    first of them is in the saved cosines)."""
    lazy: dict[str, Any] = {}
    if views & {"pca", "kmeans"}:
        n_components = min(3, da.sizes["persona"], da.sizes["hidden"])
        lazy["pca"] = decomposition.pca(da, n_components=n_components)
    if "scree" in views:
        lazy["scree"] = decomposition.explained_variance(da)
    if "umap" in views:
        lazy["umap"] = manifold.umap(da)
    if "isomap" in views:
        lazy["isomap"] = manifold.isomap(da)
    if "similarity" in views and cosine_target is not None:
        lazy["cosine"] = _cosine_writes(similarity.cosine(da), cosine_target, layer_start)
    elif "similarity" in views:
        # float32 as saved: the largest result (personas^2 x layers) at half the memory
        lazy["cosine"] = similarity.cosine(da).astype(np.float32)
    if views & {"similarity", "dendrogram"}:
        lazy["linkage"] = cluster.linkage(da)
    if "pairs" in views:
        # Every pair's range across layers and the all-pairs band (sharing the cosine's
        # Gram); only the most-changing pairs' trajectories are kept (see _pairs_shown).
        lazy["pairs_change"] = similarity.pair_change_parts(similarity.cosine(da), PAIR_QUANTILES)
    if n_clusters:
        # three k-means++ starts per layer (not ten): labels colour a figure
        lazy["kmeans"] = cluster.kmeans(da, n_clusters, mode="per_layer", n_init=3)
    if "variants" in views and da.sizes["variant"] >= 2:
        a, b = (str(v) for v in da["variant"].values[:2])
        lazy["variants"] = similarity.variant_similarity(da, a, b)
    return lazy


def _joined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of consecutive layer groups as one computation over all of them."""
    joined: dict[str, Any] = {}
    for name in parts[0]:
        values = [part[name] for part in parts]
        if name == "cosine" and not isinstance(values[0], xr.DataArray):
            continue  # written to results.zarr, one chunk per layer: read back from there
        if len(values) == 1:
            joined[name] = values[0]
            continue
        options: dict[str, Any] = {"coords": "minimal", "compat": "override"}
        if isinstance(values[0], xr.Dataset):
            options["data_vars"] = "minimal"
        value = xr.concat(values, "layer", **options)
        # each group aligned its own layers; aligning again joins them as one run would
        if name == "pca":
            value["scores"] = _engine.align_layers(value["scores"])
        elif name == "isomap":
            value = _engine.align_layers(value)
        elif name == "kmeans":
            value = cluster.match_layers(value)
        joined[name] = value
    return joined


def _cosine_steps(cos: xr.DataArray) -> xr.DataArray:
    """The cosines' packed int16 triangles, one chunk per layer and variant (lazy)."""
    n = cos.sizes["persona"]
    return xr.apply_ufunc(
        _packed_steps,
        cos.chunk({d: 1 for d in cos.dims if d not in ("persona", "persona_other")}),
        input_core_dims=[["persona", "persona_other"]],
        output_core_dims=[["pair"]],
        dask="parallelized",
        output_dtypes=[np.int16],
        dask_gufunc_kwargs={"output_sizes": {"pair": n * (n + 1) // 2}},
    )


def _cosine_node(cos: xr.DataArray, path: str | os.PathLike) -> zarr.Array:
    """Create ``path``'s ``cosine`` node for the lazy ``cos`` as saved by
    :func:`save_results` (packed upper triangle, one chunk per layer and variant):
    metadata and coordinates only. Returns the array :func:`_cosine_writes` fills."""
    steps = _cosine_steps(cos)
    ds = _storable(cos.isel(layer=0, drop=True).to_dataset(name="cosine").drop_vars("cosine"))
    ds["cosine_upper"] = steps.variable.copy()
    ds["cosine_upper"].attrs = _triangle_attrs(cos.attrs)
    ds["cosine_upper"].encoding = _triangle_encoding()
    for name in ("variant", "layer"):
        ds = ds.assign_coords({name: cos[name].values})
    # the returned write of the data is left unused: _cosine_writes does it
    ds.to_zarr(path, group="cosine", mode="w-", compute=False, consolidated=False, zarr_format=3)
    return zarr.open_array(store=os.fspath(path), path="cosine/cosine_upper", mode="r+")


def _cosine_writes(cos: xr.DataArray, target: zarr.Array, layer_start: int) -> Any:
    """A lazy write of the cosines of some layers into ``target``, from ``layer_start``:
    one task per layer and variant, holding the count of layers written.

    A dask array, not the ``Delayed`` of ``to_zarr(compute=False)``, whose graph is
    optimised (fused and renamed) on its own, so the Gram it starts from would be computed
    a second time instead of shared with the other analyses in one ``dask.compute``.
    """
    steps = _cosine_steps(cos)
    offset = [0] * steps.ndim
    offset[steps.get_axis_num("layer")] = layer_start
    data = steps.data
    return data.map_blocks(
        _write_block,
        target=target,
        offset=tuple(offset),
        dtype=np.int64,
        chunks=tuple((1,) * len(c) for c in data.chunks),
    )


def _write_block(
    block: np.ndarray, *, target: zarr.Array, offset: tuple[int, ...], block_info: Any = None
) -> np.ndarray:
    """Write one block where it belongs in ``target``, shifted by ``offset`` (a whole Zarr
    chunk: no two tasks write the same chunk); return a count of 1."""
    location = block_info[0]["array-location"]
    where = tuple(
        slice(start + shift, stop + shift)
        for (start, stop), shift in zip(location, offset, strict=True)
    )
    target[where] = block
    return np.ones((1,) * block.ndim, dtype=np.int64)


def _packed_steps(square: np.ndarray) -> np.ndarray:
    """The int16 steps of each matrix's upper triangle (diagonal included, row-major),
    a block of rows at a time: no index arrays or full-size temporaries, which at
    thousands of personas are hundreds of MB each."""
    n = square.shape[-1]
    out = np.empty((*square.shape[:-2], n * (n + 1) // 2), dtype=np.int16)
    starts = _engine.row_starts(n)
    for index in np.ndindex(*square.shape[:-2]):
        for first in range(0, n, TRIANGLE_ROWS):
            block = _quantised(np.asarray(square[index][first : first + TRIANGLE_ROWS], "f4"))
            for i, row in enumerate(block, start=first):
                out[index][starts[i] : starts[i + 1]] = row[i:]
    return out


def _open_node(path: str | os.PathLike, name: str) -> xr.Dataset:
    ds = xr.open_dataset(
        path, group=name, engine="zarr", consolidated=False, chunks={}, mask_and_scale=False
    )
    return _restore(_decoded_keeping_steps(ds))


def _decoded_keeping_steps(ds: xr.Dataset) -> xr.Dataset:
    """CF-decode a node opened with ``mask_and_scale=False``, but keep the packed cosines as
    their int16 steps: unpacking those directly is 2.6x faster than re-quantising the
    float64 values xarray decodes them to (which is what any other reader gets)."""
    steps = ds.get("cosine_upper")
    ds = xr.decode_cf(ds)
    return ds if steps is None else ds.assign(cosine_upper=steps)


PAIRS_KEPT = 25
# Rows of the similarity heatmap: 250 x 250 cells x 42 layers embed in about 3 MB per variant.
SIMILARITY_ROWS = 250


def _pairs_shown(da: xr.DataArray, summary: xr.Dataset, cosine: xr.DataArray | None) -> xr.Dataset:
    """The all-pairs band plus the trajectories of each variant's PAIRS_KEPT most-changing
    pairs (not every pair x layer: 500,000 pairs at 1,000 personas)."""
    change = summary["change"].transpose("variant", "persona", "persona_other").values
    n = change.shape[-1]
    first, second = np.triu_indices(n, k=1)
    kept: list[int] = []
    for per_variant in change:
        upper = per_variant[first, second]
        order = np.argsort(-upper, kind="stable")[:PAIRS_KEPT]
        kept += [int(i) for i in order if int(i) not in kept]
    ids = summary["id"].values
    pairs = [(str(ids[first[i]]), str(ids[second[i]])) for i in kept]
    if cosine is not None:
        index = pd.Index(cosine["id"].values)
        a = xr.DataArray(index.get_indexer([p for p, _ in pairs]), dims="pair")
        b = xr.DataArray(index.get_indexer([q for _, q in pairs]), dims="pair")
        chosen = cosine.isel(persona=a, persona_other=b)
        chosen = chosen.drop_indexes([c for c in chosen.xindexes if c != "layer"])
    else:
        chosen = similarity.pair_similarity(da, pairs)["cosine"].compute()
    ds = summary[["median", "low", "high"]].assign(
        cosine=chosen.transpose("variant", "layer", "pair").astype(np.float64),
        change=xr.DataArray(change[:, first[kept], second[kept]], dims=("variant", "pair")),
    )
    return ds


def save_results(
    results: xr.DataTree, path: str | os.PathLike, *, skip: Sequence[str] = ()
) -> None:
    """Write a results tree to Zarr v3 (strings as variable-length UTF-8); nodes named in
    ``skip`` are already there (written while computing)."""
    if skip:
        kept = {f"/{k}": v.to_dataset() for k, v in results.children.items() if k not in skip}
        trimmed = xr.DataTree.from_dict({"/": results.to_dataset(), **kept})
        trimmed.attrs = dict(results.attrs)
        results = trimmed
    clean = results.map_over_datasets(_storable)
    clean.attrs = dict(results.attrs)
    with warnings.catch_warnings():
        # Attribute names with spaces are stored as variables; _restore makes them
        # coordinates again.
        warnings.filterwarnings("ignore", "coordinate .* has a space in its name")
        clean.to_zarr(path, mode="a" if skip else "w-", consolidated=False, zarr_format=3)


def open_results(path: str | os.PathLike) -> xr.DataTree:
    """Open a ``results.zarr`` written by :func:`save_results` (or ``pvx analyze``).

    Everything is loaded except the cosines, which stay lazy (dask, one chunk per layer and
    variant): they are most of the results' size.
    """
    tree = xr.open_datatree(
        path, engine="zarr", consolidated=False, chunks={}, mask_and_scale=False
    )

    def load(ds: xr.Dataset) -> xr.Dataset:
        ds = _decoded_keeping_steps(ds)
        return _restore(ds.load() if "cosine_upper" not in ds else ds)

    return tree.map_over_datasets(load)


def render(
    results: xr.DataTree, out: str | os.PathLike, *, progress: Progress | None = None
) -> Path:
    """Draw one page per view and ``index.html`` from a results tree; nothing is recomputed."""
    say = progress or (lambda message: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.loads(results.attrs["settings"])
    variants = settings["variants"]
    pages: list[tuple[str, str, str]] = []

    def page(view: str, title: str, description: str, figures: list[Any]) -> None:
        say(f"  {view}: {len(figures)} figure(s)")
        _write_page(out / f"{view}.html", title, description, figures)
        pages.append((f"{view}.html", title, description))

    def node(name: str) -> xr.Dataset | None:
        return results[name].to_dataset() if name in results.children else None

    clusters = node("kmeans")
    for method, label in (("pca", "PCA"), ("umap", "UMAP"), ("isomap", "Isomap")):
        result = node(method)
        if result is None or method not in settings["views"]:
            continue
        if method == "pca" and result.sizes["component"] < 2:
            say("  pca: no page: a projection needs 2 components and the hidden size is 1")
            continue
        figures = []
        for variant in variants:
            drawn = len(figures)
            scores = result["scores"] if method == "pca" else result[method]
            scores = scores.sel(variant=variant)
            attributes = [c for c in settings["colors"] if c in scores.coords]
            for color in settings["colors"]:
                extra: dict[str, Any] = {"hover": attributes}
                if color in attributes:
                    extra["color"] = color
                    described = color
                elif clusters is not None:  # "cluster", with no attribute of that name
                    extra["groups"] = clusters["cluster"].sel(variant=variant)
                    described = f"{settings['n_clusters']} k-means clusters"
                else:
                    continue
                figures.append(
                    plot.projection(
                        scores, title=f"{label} of {variant}, coloured by {described}", **extra
                    )
                )
            if len(figures) == drawn:  # nothing to colour by: drawn plain
                figures.append(plot.projection(scores, title=f"{label} of {variant}"))
        page(method, label, f"{label} of the personas per layer (slider).", figures)
    if clusters is not None and "kmeans" in settings["views"] and node("pca") is not None:
        figures = [
            plot.projection(
                node("pca")["scores"].sel(variant=v),
                groups=clusters["cluster"].sel(variant=v),
                title=f"k-means ({settings['n_clusters']} clusters) of {v} on PCA",
            )
            for v in variants
        ]
        page("kmeans", "k-means", "Clusters matched across layers, drawn on PCA.", figures)
    cos, tree = node("cosine"), node("linkage")
    if cos is not None:
        figures = []
        for v in variants:
            order = tree.sel(variant=v) if tree is not None else None
            figures.append(
                plot.heatmap(
                    cos["cosine"].sel(variant=v),
                    order=order,
                    title="Centered cosine similarity",  # plot adds " · <variant>"
                    max_rows=SIMILARITY_ROWS,
                )
            )
        n = cos.sizes["persona"]
        blocks = (
            f" Above {SIMILARITY_ROWS} personas, neighbours in dendrogram order are averaged in "
            "blocks to keep the page light; results.zarr holds every cosine."
            if n > SIMILARITY_ROWS
            else ""
        )
        page(
            "similarity",
            "Similarity",
            f"Centered cosine between personas per layer.{blocks}",
            figures,
        )
    pairs = node("pairs")
    if pairs is not None:
        figures = [
            plot.pair_trajectories(pairs.sel(variant=v), top=8, title="Most-changing pairs")
            for v in variants
        ]
        page("pairs", "Pairs", "Pairs whose similarity changes most across layers.", figures)
    scree = node("scree")
    if scree is not None:
        figures = []
        for v in variants:
            evr = scree["explained_variance_ratio"].sel(variant=v)
            figures += [
                plot.scree(evr, max_components=20, title="Scree"),
                plot.variance_heatmap(evr, cumulative=True, title="Cumulative variance"),
            ]
        page("scree", "Scree", "Explained variance per component and layer.", figures)
    if tree is not None and "dendrogram" in settings["views"]:
        figures = [plot.dendrogram(tree.sel(variant=v), title="Ward dendrogram") for v in variants]
        page("dendrogram", "Dendrogram", "Hierarchical clustering per layer.", figures)
    moved = node("variants")
    if moved is not None:
        page(
            "variants",
            "Variants",
            f"How the prompt variant moves each persona ({variants[0]} vs {variants[1]}).",
            [plot.variant_lines(moved, title=f"{variants[0]} vs {variants[1]}")],
        )
    _write_index(out, settings, results, pages)
    return out / "index.html"


# --------------------------------------------------------------------------- internals


def _distributed_client() -> Any:
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _prepare_umap(say: Progress) -> None:
    """Load (or, first time in an environment, compile) UMAP's numba code on every worker of
    the distributed cluster before the computation, where it would otherwise stall a task
    silently."""
    say("preparing UMAP's compiled code on the workers (about 20 s the first time, then cached)")
    client = _distributed_client()
    # As tasks pinned to each worker, in its thread pool: client.run would block the worker's
    # event loop for the whole compile.
    workers = list(client.scheduler_info()["workers"])
    if not workers:  # e.g. an adaptive cluster before it scales up
        say("no workers yet: each prepares UMAP with its first UMAP task")
        return
    futures = [client.submit(manifold.prepare_umap, pure=False, workers=[w]) for w in workers]
    say(f"UMAP ready in {max(client.gather(futures)):.1f} s")


def _compute(lazy: dict[str, Any], description: str) -> dict[str, Any]:
    """One ``dask.compute`` for every result (shared Gram tasks run once), with a progress
    bar on the local scheduler (a distributed client has its own dashboard)."""
    values = options.compute(*lazy.values(), description=description)
    return dict(zip(lazy, values, strict=True))


def _as_dataset(name: str, value: xr.DataArray | xr.Dataset) -> xr.Dataset:
    if isinstance(value, xr.Dataset):
        return value
    return value.to_dataset(name=value.name or name)


# The cosine matrices are most of the results (personas² x layers x variants): saved as their
# upper triangle (diagonal included), CF-packed in int16: within 1.6e-5 of the float32 values,
# far below what a figure or a hover label shows, in an eighth of the bytes.
COSINE_SCALE = 1 / 32767
COSINE_FILL = -32768
# rows of a cosine matrix quantised at once when packing its triangle
TRIANGLE_ROWS = 256


def _quantised(cos: np.ndarray) -> np.ndarray:
    """Cosines as int16 steps of COSINE_SCALE (missing as COSINE_FILL), one layer at a time
    so no float64 copy of every matrix is made."""
    out = np.empty(cos.shape, dtype=np.int16)
    for index in np.ndindex(*cos.shape[:-2]):
        layer = np.rint(np.clip(cos[index], -1.0, 1.0) / np.float32(COSINE_SCALE))
        out[index] = np.where(np.isnan(layer), COSINE_FILL, layer)
    return out


def _dequantised(steps: np.ndarray, out: np.ndarray) -> np.ndarray:
    for index in np.ndindex(*steps.shape[:-1]):
        values = steps[index].astype(np.float32) * np.float32(COSINE_SCALE)
        out[index] = np.where(steps[index] == COSINE_FILL, np.float32(np.nan), values)
    return out


def _as_saved(cos: xr.DataArray) -> xr.DataArray:
    """The cosines as ``results.zarr`` gives them back, so pages drawn now and pages
    redrawn from the saved results are the same."""
    values = np.asarray(cos.values, dtype=np.float32)
    return cos.copy(data=_dequantised(_quantised(values), values))


def _cosine_triangle(ds: xr.Dataset) -> xr.Dataset:
    cos = ds["cosine"]
    n = cos.sizes["persona"]
    lead = [d for d in cos.dims if d not in ("persona", "persona_other")]
    steps = _packed_steps(cos.transpose(*lead, "persona", "persona_other").values)
    encoding = _triangle_encoding()
    per_layer = (1 if d in ("variant", "layer") else cos.sizes[d] for d in lead)
    encoding["chunks"] = (*per_layer, n * (n + 1) // 2)
    triangle = xr.Variable(
        (*lead, "pair"), steps, attrs=_triangle_attrs(cos.attrs), encoding=encoding
    )
    return ds.drop_vars("cosine").assign(cosine_upper=triangle)


def _triangle_attrs(attrs: dict[Any, Any]) -> dict[Any, Any]:
    # CF packing: any xarray reader decodes the steps to cosines (missing ones as NaN)
    return {
        **attrs,
        "scale_factor": COSINE_SCALE,
        "pvx_layout": "upper triangle with diagonal, row-major",
    }


def _triangle_encoding() -> dict[str, Any]:
    return {
        "_FillValue": COSINE_FILL,
        "compressors": (zarr.codecs.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle"),),
    }


def _unpacked(steps: np.ndarray, *, n: int) -> np.ndarray:
    """Square float32 matrices (the values pages were drawn from) from packed upper
    triangles of int16 steps."""
    values = _dequantised(steps, np.empty(steps.shape, dtype=np.float32))
    return _engine.unpack_upper(values, n)


def _cosine_square(ds: xr.Dataset) -> xr.Dataset:
    triangle = ds["cosine_upper"]
    n = ds.sizes["persona"]
    cos = xr.apply_ufunc(  # lazy on dask: one layer's matrix at a time
        _unpacked,
        triangle.variable,
        input_core_dims=[["pair"]],
        output_core_dims=[["persona", "persona_other"]],
        kwargs={"n": n},
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"persona": n, "persona_other": n}},
    )
    packing = ("pvx_layout", "scale_factor", "_FillValue")
    cos.attrs = {k: v for k, v in triangle.attrs.items() if k not in packing}
    return ds.drop_vars("cosine_upper").assign(cosine=cos)


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """Zarr v3 has a specified type for variable-length strings only: use it everywhere."""
    ds = ds.drop_vars([k for k in ds.variables if str(k).startswith("sample_ids")])
    if "cosine" in ds.data_vars and "persona_other" in ds["cosine"].dims:
        ds = _cosine_triangle(ds)
    # String indexes would be written back as fixed-width (unstable) types: drop them first.
    ds = ds.drop_indexes([k for k in ds.xindexes if k not in ds.dims or ds[k].dtype.kind in "OUT"])
    fixed = {}
    for key, var in ds.variables.items():
        if var.dtype.kind in "OUT":
            values = np.array(
                [
                    "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                    for v in var.values.ravel()
                ],
                dtype=object,
            ).reshape(var.shape)
            fixed[key] = var.copy(data=values)
        # Results are saved in float32: the figures draw far coarser than its 7 digits (not
        # the linkage: SciPy's dendrogram takes only float64 matrices)
        elif var.dtype == np.float64 and key in ds.data_vars and var.size > 1024:
            if key != "linkage":
                fixed[key] = var.astype(np.float32)
        if "layer" in var.dims and key in ds.data_vars and "chunks" not in var.encoding:
            var = fixed.get(key, var)
            var.encoding["chunks"] = tuple(
                1 if d in ("variant", "layer") else n for d, n in var.sizes.items()
            )
            fixed[key] = var  # one chunk per layer
    return ds.assign({k: v for k, v in fixed.items() if k in ds.data_vars}).assign_coords(
        {k: v for k, v in fixed.items() if k in ds.coords}
    )


def _restore(ds: xr.Dataset) -> xr.Dataset:
    """Back to pvx's in-memory form: object strings, missing labels as NaN, ids indexed."""
    if "cosine_upper" in ds.data_vars:
        ds = _cosine_square(ds)
    fixed = {}
    for key, var in ds.variables.items():
        if var.dtype.kind in "OUT":
            values = np.asarray(var.values, dtype=object)
            if "kind" in var.attrs:
                values = np.array([v if v else np.nan for v in values.ravel()], object).reshape(
                    values.shape
                )
            fixed[key] = var.copy(data=values)
    ds = ds.assign({k: v for k, v in fixed.items() if k in ds.data_vars}).assign_coords(
        {k: v for k, v in fixed.items() if k in ds.coords}
    )
    # CF's space-separated "coordinates" attribute cannot name "home region": restore it
    ds = ds.set_coords([k for k, v in ds.data_vars.items() if "kind" in v.attrs])
    for key, dim in (("id", "persona"), ("id_other", "persona_other")):
        if key in ds.coords and ds[key].dims == (dim,) and key not in ds.xindexes:
            ds = ds.set_xindex(key)
    return ds


def _all_variants(tree: xr.DataTree, model: str | None, mask: str | None) -> list[str]:
    from pvx.store import variants

    return variants(tree, model=model, mask_strategy=mask)


def _default_colors(da: xr.DataArray) -> list[str]:
    """One attribute of each kind, so a first look shows something without being asked."""
    chosen: dict[str, str] = {}
    for key in attribute_names(da):
        chosen.setdefault(da[key].attrs["kind"], str(key))
    return [chosen[k] for k in ("categorical", "ordinal", "numeric") if k in chosen]


def _check_out(
    out: Path, settings: dict[str, Any], *, overwrite: bool, store: str | None = None
) -> None:
    """Refuse an ``out`` that is or holds the store, or another run's report (unless
    ``overwrite``). Files pvx did not write are never touched (see _replace_report)."""
    if store and "://" not in store:
        where, place = Path(store).resolve(), out.resolve()
        if place == where or where in place.parents or place in where.parents:
            raise ValueError(
                f"--out {str(out)!r} would be inside, or contain, the store {store!r}; "
                "pick a folder outside it"
            )
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; pick a folder")
    previous = _manifest(out)
    if previous is None:
        return  # a folder pvx never wrote to: new files go beside the user's
    previous.pop("files", None)
    if not overwrite and previous != settings:
        raise StoreError(
            f"{out} holds the results of a different run; pass another --out or --overwrite"
        )


def _remove_abandoned_staging(out: Path) -> None:
    """Delete the staging folders of earlier runs into ``out`` that were killed before they
    could clean up: each has an owner file naming its process, and only those whose process
    is gone (on this host) are removed; a run still in progress keeps its own."""
    for owner in out.parent.glob(f".{glob.escape(out.name)}.*.partial.owner"):
        try:
            who = json.loads(owner.read_text())
            pid, host = int(who["pid"]), str(who["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host != socket.gethostname() or _process_alive(pid):
            continue
        staging = owner.with_name(owner.name.removesuffix(".owner"))
        shutil.rmtree(staging, ignore_errors=True)
        owner.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _manifest(out: Path) -> dict[str, Any] | None:
    """The run record of a report folder, if pvx wrote one (it lists the files pvx wrote)."""
    try:
        run = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict) or not isinstance(run.get("files"), list):
        return None
    return run


def _replace_report(staging: Path, out: Path) -> None:
    """Move a finished report into ``out``, deleting only what the previous run listed."""
    if not out.exists():
        staging.rename(out)
        return
    previous = _manifest(out)
    new = {p.name for p in staging.iterdir()}
    stale = set(previous["files"]) | {RUN_FILE} if previous else set()
    for name in sorted(new | stale):
        target = out / name
        if name not in stale and (target.exists() or target.is_symlink()):
            raise StoreError(
                f"{target} exists and pvx did not write it; move it or pick another --out"
            )
    for name in sorted(stale):
        target = out / name
        if "/" in name or name in ("", ".", ".."):
            continue  # a damaged manifest never points outside the folder
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for name in sorted(new):
        (staging / name).rename(out / name)


def _write_page(path: Path, title: str, description: str, figures: list[Any]) -> None:
    body = [plot.html_div(fig, div_id=f"figure-{i}") for i, fig in enumerate(figures)]
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pvx: {html.escape(title)}</title>
<script src="plotly.min.js"></script>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;}} .figure{{margin-bottom:2em;}}</style>
</head><body>
<p><a href="index.html">&larr; all views</a></p>
<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>
{"".join(f'<div class="figure">{div}</div>' for div in body)}
</body></html>
"""
    path.write_text(text, encoding="utf-8")
    bundle = path.parent / "plotly.min.js"
    if not bundle.exists():
        import plotly.offline

        bundle.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")


def _write_index(
    out: Path, settings: dict[str, Any], results: xr.DataTree, pages: list[tuple[str, str, str]]
) -> None:
    first = next(iter(results.children.values())).to_dataset()
    n_persona = first.sizes.get("persona", 0)
    rows = [
        ("store", settings["store"]),
        ("model", settings["model"]),
        ("mask strategy", settings["mask_strategy"]),
        ("variants", ", ".join(settings["variants"])),
        (
            "personas",
            f"{n_persona}" + (" (baseline included)" if settings["include_baseline"] else ""),
        ),
        ("layers", f"{len(settings['layers'])}: {settings['layers']}"),
        ("colours", ", ".join(settings["colors"]) or "none"),
        ("k-means clusters", settings["n_clusters"] or "-"),
        ("numbers", f'<a href="{RESULTS}">{RESULTS}</a> (xr.open_datatree(..., engine="zarr"))'),
        ("written", datetime.datetime.now().isoformat(timespec="seconds")),
    ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v if k == 'numbers' else html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    links = "".join(
        f'<li><a href="{href}">{html.escape(title)}</a>: {html.escape(text)}</li>'
        for href, title, text in pages
    )
    (out / "index.html").write_text(
        f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pvx report</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em;}}
th{{text-align:left;padding-right:1em;}}</style>
</head><body><h1>pvx report</h1>
<table>{table}</table>
<h2>Views</h2><ul>{links}</ul>
</body></html>
""",
        encoding="utf-8",
    )
