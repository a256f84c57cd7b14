"""The main job, ``pvx analyze``: compute every analysis once, save the numbers, draw the pages.

Three steps, each usable on its own:

- :func:`compute_results` runs the analyses the chosen views need in one ``dask.compute``
  (one read of the vectors) and returns them as an ``xr.DataTree``;
- :func:`save_results` writes that tree to ``results.zarr``;
- :func:`render` draws the HTML pages and ``index.html`` from a results tree, whether just
  computed or reopened with :func:`open_results`: no recomputation.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import BrokenExecutor, Executor
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

from pvx import _engine, _spectra, cluster, decomposition, manifold, options, plot, similarity
from pvx import attributes as attribute_analyses
from pvx._construct import attribute_names
from pvx._report_folder import (
    RUN_FILE,
    check_out,
    finish_interrupted_replace,
    out_lock,
    remove_abandoned_staging,
    replace_report,
)
from pvx._store_read import require_shared
from pvx._store_results import (
    as_saved,
    cosine_node,
    cosine_writes,
    open_node,
    open_results,
    save_results,
)
from pvx._validate import BASELINE_ID
from pvx.store import load, mask_strategies, models, open_store, persona_ids
from pvx.views.html import write_index, write_page, write_plotly_bundle

VIEWS = (
    "attributes",
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
DEFAULT_VIEWS = (
    "attributes",
    "pca",
    "umap",
    "similarity",
    "pairs",
    "scree",
    "dendrogram",
    "variants",
)
# The fewest personas each view's analysis takes (its min_personas), and why; with fewer,
# the main job leaves the page out and says so rather than failing the whole report.
VIEW_MIN_PERSONAS = {
    "pca": (2, "PCA centers over personas"),
    "scree": (2, "PCA centers over personas"),
    "kmeans": (2, "k-means clusters principal components"),
    "similarity": (2, "the centered cosine subtracts the mean persona"),
    "pairs": (3, "the band of all pairs' similarity needs several pairs"),
    "dendrogram": (2, "a merge joins two personas"),
    "umap": (3, "UMAP embeds each persona among its neighbours"),
    "isomap": (3, "Isomap embeds each persona among its neighbours"),
    "variants": (3, "correlating two cosine matrices takes 3 pairs"),
}


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
    attributes: Sequence[str] | None = None,
    folds: int = 5,
    permutations: int = 5,
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
    attributes
        Persona attributes to probe on the ``attributes`` page (default: every attribute
        that can be probed; a store without attributes has no such page).
    folds, permutations
        Cross-validation folds and shuffled-label repetitions of the probes
        (:func:`pvx.attributes.probe`).
    out
        Output folder. A folder holding another run's results is never replaced unless
        ``overwrite=True``; rerunning the same settings replaces its own results.

    Returns
    -------
    pathlib.Path
        The report's ``index.html``.
    """
    say = progress or (lambda message: None)
    # what was asked, apart from what the run finds (the defaults follow the store's data):
    # a rerun of the same command after the store changed replaces its own report
    asked = {
        "variants": list(variants) if variants else None,
        "layers": list(layers) if layers is not None else None,
        "colors": list(colors),
        "n_clusters": n_clusters,
        "attributes": list(attributes) if attributes is not None else None,
        "views": list(views),  # some may be left out: too few personas, layers or variants
    }
    unknown = sorted(set(views) - set(VIEWS))
    if unknown:
        raise ValueError(f"unknown views {unknown}; choose from {list(VIEWS)}")
    if "://" in str(out):  # a Path would make "http:/host/..." of it, a local folder
        raise ValueError(f"--out {str(out)!r} is a URL; the report is written to a local folder")
    if n_clusters is not None and n_clusters < 1:
        raise ValueError(f"--clusters needs at least 1 cluster, got {n_clusters}")
    probe_counts = (
        ("--folds", folds, 2, "cross-validation folds"),
        ("--permutations", permutations, 0, "label shuffles (0: no baseline)"),
    )
    for flag, value, least, what in probe_counts if "attributes" in views else ():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{flag} needs {least} or more {what}, got {value!r}")
    if attributes is not None and "attributes" not in views:
        raise ValueError(
            "--attributes names the attributes to probe on the attributes page, which --views "
            "leaves out; add 'attributes' to --views or leave --attributes out"
        )
    if variants and len(set(variants)) != len(list(variants)):
        raise ValueError(f"variants {list(variants)} name a variant more than once")
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
    try:
        da = load(
            tree,
            names,
            model=model,
            mask_strategy=mask_strategy,
            ids=ids,
            # in depth order, whatever order they were listed in: the slider and the aligned
            # UMAP's chain go from each layer to the next deeper one
            layers=sorted(layers) if layers is not None else None,
            include_baseline=include_baseline,
        )
    except KeyError as err:  # named as analyze's caller wrote them, not load()'s
        message = str(err.args[0]) if err.args else ""
        if not message.startswith("load() got unknown layer"):
            raise
        raise KeyError(message.replace("load() got", "layers (--layers) name", 1)) from None
    require_shared(da, names)
    n_personas = da.sizes["persona"]
    if n_personas < 2:
        raise ValueError(
            f"nothing to draw: every view compares personas and the selection has {n_personas}; "
            "select 2 or more (--ids)"
        )
    if "variant" not in da.dims:
        da = da.expand_dims("variant")
    # A store without attributes (as imported from the reference layout) is coloured by
    # k-means clusters, so projection pages are never empty.
    colors = list(colors) or _default_colors(da) or ["cluster"]
    # "cluster" colours by k-means unless the personas have an attribute of that name, which
    # wins (as in pvx.plot.projection)
    kmeans_colour = "cluster" in colors and "cluster" not in attribute_names(da)
    if "kmeans" not in views and not kmeans_colour and n_clusters is not None:
        raise ValueError(
            "--clusters (n_clusters=) sets the k-means of the kmeans view and of --color "
            "cluster, which this run has neither of; add one or leave --clusters out"
        )
    if n_clusters is not None and n_clusters > n_personas:
        raise ValueError(
            f"--clusters (n_clusters=) {n_clusters} is more than the {n_personas} personas "
            f"selected; pick at most {n_personas}"
        )
    if ("kmeans" in views or kmeans_colour) and n_clusters is None:
        n_clusters = min(5, n_personas)
    persona_coords = [name for name, c in da.coords.items() if c.dims == ("persona",)]
    missing = [
        c for c in colors if c not in persona_coords and not (c == "cluster" and kmeans_colour)
    ]
    if missing:
        raise ValueError(
            f"unknown colour attribute(s) {missing}; the personas have {attribute_names(da)}"
        )
    views = list(views)
    probed, skipped = [], {}
    if "attributes" in views:
        probed, skipped = _probed_attributes(da, attributes, folds, permutations)
        if not probed:
            views.remove("attributes")
            why = _some_reasons(skipped) if skipped else "the personas have no attributes to probe"
            say(f"no attributes page: {why}")
        elif skipped:
            say(f"not probed: {_some_reasons(skipped)}")
    if "variants" in views and da.sizes["variant"] < 2:
        views.remove("variants")
        say("no variants page: it compares two variants and there is one")
    if "variants" in views and da.sizes["variant"] > 2:
        first, second = (str(v) for v in da["variant"].values[:2])
        say(
            f"the variants page compares {first} and {second}, the first two; "
            "pick two with --variant"
        )
    if "pairs" in views and da.sizes["layer"] < 2:
        # every pair's change would be 0, and the "most-changing" pairs the first by position
        views.remove("pairs")
        say("no pairs page: it shows how pairs change across layers and there is one layer")
    for view in [v for v in views if n_personas < VIEW_MIN_PERSONAS.get(v, (0,))[0]]:
        views.remove(view)
        least, why = VIEW_MIN_PERSONAS[view]
        say(f"no {view} page: {why}, which needs {least} or more personas; there are {n_personas}")
    if not views:
        raise ValueError(
            "nothing to draw: no view can be made of this selection (see above); "
            "choose others with --views"
        )
    left_out = _left_out(tree, da, ids=ids, include_baseline=include_baseline)
    for variant, missing in left_out.items():
        say(
            f"{len(missing)} persona(s) of {variant} are left out: the variants share "
            f"{da.sizes['persona']} (analyse one alone with --variant {variant})"
        )
    settings = {
        "store": source if "://" in source else str(Path(source).resolve()),
        "store_version": tree.attrs.get("snapshot"),
        "pvx_version": _pvx_version(),
        "model": da.attrs.get("model"),
        "mask_strategy": da.attrs.get("mask_strategy"),
        "variants": [str(v) for v in da["variant"].values],
        "layers": [int(v) for v in da["layer"].values],
        "personas": int(da.sizes["persona"]),
        "personas_left_out": left_out,
        "ids": list(ids) if ids is not None else None,
        "include_baseline": include_baseline,
        "views": list(views),
        "colors": colors,
        "n_clusters": n_clusters,
        "attributes": probed,
        "attributes_skipped": skipped,
        "folds": folds,
        "permutations": permutations,
        "asked": asked,
    }
    # the real folder: the staging folder beside it is then on its filesystem (the report is
    # moved in, which fails across filesystems), and "." has a name to derive staging's from
    out = Path(out).resolve()
    check_out(out, settings, overwrite=overwrite, store=source)
    say(
        f"pvx analyze: {settings['model']} / {settings['mask_strategy']}, variants "
        f"{settings['variants']}, {da.sizes['persona']} personas x {da.sizes['layer']} layers"
    )
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out_lock(out):
        # a run killed while moving its report in: its swap is finished first
        finish_interrupted_replace(out)
        # again, held: a run that just finished into the same folder counts
        check_out(out, settings, overwrite=overwrite, store=source)
        remove_abandoned_staging(out)
        staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
        owner = staging.with_name(staging.name + ".owner")
        owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        # no progress messages, no progress bars
        quiet = (
            options.set_options(progress=False) if progress is None else contextlib.nullcontext()
        )
        # the UMAP worker processes, started here, then draw a page while this one draws others
        count = _umap_worker_count(da, views, _distributed_client())
        workers = manifold.umap_processes(count) if count else contextlib.nullcontext()
        try:
            with workers:
                with quiet:
                    results = compute_results(
                        da,
                        views,
                        n_clusters=n_clusters,
                        probe={
                            "attributes": probed,
                            "folds": folds,
                            "permutations": permutations,
                            "skipped": skipped,
                        },
                        include_baseline=include_baseline,
                        progress=say,
                        path=staging / RESULTS,
                        attrs={"settings": json.dumps(settings)},
                    )
                say("drawing views")
                _return_freed_memory()
                render(
                    results,
                    staging,
                    progress=say,
                    pool=manifold.worker_pool(),
                    results_path=staging / RESULTS,
                )
            written = sorted(p.name for p in staging.iterdir())
            (staging / RUN_FILE).write_text(json.dumps({**settings, "files": written}, indent=2))
            replace_report(staging, out)
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
    probe: dict[str, Any] | None = None,
    include_baseline: bool = False,
    progress: Progress | None = None,
    path: str | os.PathLike | None = None,
    attrs: dict[str, Any] | None = None,
) -> xr.DataTree:
    """Run every analysis the views need, in one computation (one read of ``da``) per group
    of layers.

    ``da`` has dims ``(variant, persona, layer, hidden)``. Returns a tree with one node per
    analysis (``pca``, ``scree``, ``umap``, ``isomap``, ``cosine``, ``linkage``, ``pairs``,
    ``kmeans``, ``variants``, ``probe``, ``association``), each vectorised over ``variant``
    and ``layer``, with ``attrs``. ``probe`` holds the keywords of
    :func:`pvx.attributes.probe` for the ``attributes`` view. ``include_baseline`` keeps the
    ``baseline_assistant`` persona in every analysis (as in each of them).

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
        target = cosine_node(similarity.cosine(da, include_baseline=include_baseline), path)
    probe = probe or {}
    keep = {"include_baseline": include_baseline}
    first = _lazy_results(
        da.isel(layer=groups[0]), views, n_clusters, probe, target, 0, keep, umap_start=None
    )
    names = list(first)
    umap_workers: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    client = _distributed_client()
    lean = _lean(da, client)
    if lean:
        say("thousands of personas: one task at a time, so memory holds about one layer")
    count = _umap_worker_count(da, views, client)
    if "umap" in names and client is not None:
        _prepare_umap(say)
    elif "umap" in names and count:
        umap_workers = contextlib.ExitStack()
        umap_workers.enter_context(manifold.umap_processes(count))
        if dask.config.get("num_workers", None) is None and dask.config.get("pool", None) is None:
            # a thread whose UMAP task waits for a worker process computes nothing: one more
            # thread per worker keeps the cores busy (L: 184 s against 196 s, CPU 97% vs 92%)
            cores = os.cpu_count() or 1
            umap_workers.enter_context(dask.config.set(num_workers=cores + count))
        say(f"UMAP runs in {count} worker process{'es' if count > 1 else ''}")
    layers = da.sizes["layer"]
    grouping = f" in {len(groups)} groups of layers" if len(groups) > 1 else ""
    say(f"computing {', '.join(names)} over {layers} layers{grouping}")
    parts, pair_parts = [], None
    umap_start = None
    with umap_workers:
        for group in groups:
            where = f"layers {group.start + 1}-{group.stop} of {layers}"
            if len(groups) > 1:
                say(where)
            lazy = (
                first
                if group is groups[0]
                else _lazy_results(
                    da.isel(layer=group),
                    views,
                    n_clusters,
                    probe,
                    target,
                    group.start,
                    keep,
                    umap_start=umap_start,
                )
            )
            part = _compute(lazy, where, synchronous=lean)
            if "umap" in part:  # the next group's aligned UMAP goes on from this one's last
                umap_start = part["umap"].isel(layer=-1)
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
        computed["cosine"] = open_node(path, "cosine")["cosine"]
    elif "cosine" in computed:
        computed["cosine"] = as_saved(computed["cosine"])
    if "pairs_change" in computed:
        computed["pairs"] = _pairs_shown(
            da, computed.pop("pairs_change"), computed.get("cosine"), keep
        )
    if "probe" in computed and computed["probe"].sizes["attribute"] >= 2:
        # from the attributes alone: no vectors read
        computed["association"] = attribute_analyses.association(
            da, list(computed["probe"]["attribute"].values), **keep
        )
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
# Above this much of them per layer (two variants of ~4,000 personas), the local scheduler
# runs one task at a time and UMAP in this process. Two threads ran two layer kernels'
# personas² buffers at once and left freed memory in two malloc arenas, and a UMAP worker
# process holds ~0.37 GB of libraries: at 5,000 personas × 4 layers, 1.57 GiB in all in
# 63.5 s against 1.83 GiB plus the worker's in 44.3 s. BLAS then uses every core, so
# float64 sums may round differently (1e-14 relative) than on one thread per task; the
# float32 products of 16-bit input run on one thread everywhere (see _engine._gram_kernel).
LEAN_LAYER_BYTES = 256 << 20
# the all-pairs band drawn on the pairs page
PAIR_QUANTILES = (0.05, 0.95)


def _layer_matrix_bytes(da: xr.DataArray) -> int:
    return 8 * da.sizes["persona"] ** 2 * da.sizes.get("variant", 1)


def layer_groups(da: xr.DataArray) -> list[slice]:
    """Consecutive layer positions computed together (see :func:`compute_results`)."""
    size = max(1, GROUP_MATRIX_BYTES // _layer_matrix_bytes(da))
    count = da.sizes["layer"]
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def _lazy_results(
    da: xr.DataArray,
    views: set[str],
    n_clusters: int | None,
    probe: dict[str, Any],
    cosine_target: zarr.Array | None,
    layer_start: int,
    keep: dict[str, bool],
    *,
    umap_start: xr.DataArray | None,
) -> dict[str, Any]:
    """The lazy analyses of some layers that the views need (``layer_start``: where the
    first of them is in the saved cosines; ``keep``: each analysis' ``include_baseline``;
    ``umap_start``: the aligned UMAP's last layout of the layers before these)."""
    lazy: dict[str, Any] = {}
    if "attributes" in views:
        # every attribute, even one, keeps the attribute dim; folds and shuffles per name
        lazy["probe"] = attribute_analyses.probe(
            da, list(probe.get("attributes") or []) or None, **_probe_options(probe), **keep
        )
        if probe.get("skipped"):  # left out before probe() saw them
            reasons = "; ".join(f"{k}: {v}" for k, v in probe["skipped"].items())
            lazy["probe"].attrs["skipped"] = reasons
    if views & {"pca", "kmeans"}:
        n_components = min(3, da.sizes["persona"], da.sizes["hidden"])
        lazy["pca"] = decomposition.pca(da, n_components=n_components, **keep)
    if "scree" in views:
        lazy["scree"] = decomposition.explained_variance(da, **keep)
    if "umap" in views:
        # aligned: comparable slider frames, each layer from the last in 40% of the epochs
        lazy["umap"] = manifold.umap(da, aligned=True, start_layout=umap_start, **keep)
    if "isomap" in views:
        lazy["isomap"] = manifold.isomap(da, **keep)
    if "similarity" in views and cosine_target is not None:
        lazy["cosine"] = cosine_writes(similarity.cosine(da, **keep), cosine_target, layer_start)
    elif "similarity" in views:
        # float32 as saved: the largest result (personas^2 x layers) at half the memory
        lazy["cosine"] = similarity.cosine(da, **keep).astype(np.float32)
    if views & {"similarity", "dendrogram"}:
        lazy["linkage"] = cluster.linkage(da, **keep)
    if "pairs" in views:
        # Every pair's range across layers and the all-pairs band (sharing the cosine's
        # Gram); only the most-changing pairs' trajectories are kept (see _pairs_shown).
        lazy["pairs_change"] = similarity.pair_change_parts(
            similarity.cosine(da, **keep), PAIR_QUANTILES
        )
    if n_clusters:
        # three k-means++ starts per layer (not ten) on the first principal components (the
        # eigendecomposition PCA makes anyway): labels colour a figure
        lazy["kmeans"] = cluster.kmeans(
            da, n_clusters, mode="per_layer", n_init=3, n_components=KMEANS_COMPONENTS, **keep
        )
    if "variants" in views and da.sizes["variant"] >= 2:
        a, b = (str(v) for v in da["variant"].values[:2])
        lazy["variants"] = similarity.variant_similarity(da, a, b, **keep)
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
            value["scores"] = _spectra.align_layers(value["scores"])
        elif name == "isomap":
            value = _spectra.align_layers(value)
        elif name == "kmeans":
            value = cluster.match_layers(value)
        joined[name] = value
    return joined


PAIRS_KEPT = 25
# Principal components the report's k-means clusters on. On the demo's layers its partitions
# score the k-means objective of the vectors themselves within 0.1% on average (at most 2.3%
# more), as another seed of k-means on the vectors does, at 27 ms a layer of 1000 personas
# against 99 ms (benchmarks/bench_kmeans_components.py).
KMEANS_COMPONENTS = 20
# Rows of the similarity heatmap: 250 x 250 cells x 42 layers embed in about 3 MB per variant.
SIMILARITY_ROWS = 250


def _pairs_shown(
    da: xr.DataArray, summary: xr.Dataset, cosine: xr.DataArray | None, keep: dict[str, bool]
) -> xr.Dataset:
    """The all-pairs band plus the trajectories of each variant's PAIRS_KEPT most-changing
    pairs (not every pair x layer: 500,000 pairs at 1,000 personas)."""
    change = summary["change"].transpose("variant", "persona", "persona_other").values
    n = change.shape[-1]
    first, second = np.triu_indices(n, k=1)
    kept: list[int] = []
    for per_variant in change:
        upper = per_variant[first, second]
        order = _largest(upper, PAIRS_KEPT)
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
        chosen = similarity.pair_similarity(da, pairs, **keep)["cosine"].compute()
    ds = summary[["median", "low", "high"]].assign(
        cosine=chosen.transpose("variant", "layer", "pair").astype(np.float64),
        change=xr.DataArray(change[:, first[kept], second[kept]], dims=("variant", "pair")),
    )
    return ds


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(-values, kind="stable")[:k]`` without sorting every value (12.5 M pairs
    at 5,000 personas: 2 s): the positions of the ``k`` largest, ties in position order,
    NaNs last."""
    k = min(k, len(values))
    if k == 0:
        return np.empty(0, dtype=np.intp)
    negated = -values
    kth = np.partition(negated, k - 1)[k - 1]  # NaNs partition last
    if np.isnan(kth):  # fewer than k numbers
        return np.argsort(negated, kind="stable")[:k]
    candidates = np.flatnonzero(negated <= kth)  # the k largest and every tie of the k-th
    return candidates[np.argsort(negated[candidates], kind="stable")][:k]


# The report's pages, in the index's order
PAGES = (
    "attributes",
    "pca",
    "umap",
    "isomap",
    "kmeans",
    "similarity",
    "pairs",
    "scree",
    "dendrogram",
    "variants",
)
# Pages drawn in a worker process, when one is up, while this one draws the others: the
# similarity page reads every cosine back (3.7 of L's 7.6 s of drawing)
PAGES_APART = ("similarity",)


def render(
    results: xr.DataTree,
    out: str | os.PathLike,
    *,
    progress: Progress | None = None,
    pool: Executor | None = None,
    results_path: str | os.PathLike | None = None,
) -> Path:
    """Draw one page per view and ``index.html`` from a results tree; nothing is recomputed.

    With a process ``pool`` and the ``results_path`` the tree was opened from, the pages of
    :data:`PAGES_APART` are drawn in a worker process meanwhile."""
    say = progress or (lambda message: None)
    if any("cosine_upper" in node.dataset for node in results.subtree):
        raise ValueError(
            "render() got results as stored (cosines packed as a triangle); open them with "
            "pvx.report.open_results(path), which unpacks them"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_plotly_bundle(out)  # before any page: two processes must not both write it
    apart = set(PAGES_APART) if pool is not None and results_path is not None else set()
    elsewhere = (
        pool.submit(_draw_pages_of, str(results_path), str(out), sorted(apart))
        if pool is not None and apart
        else None
    )
    pages = _draw_pages(results, out, lambda view: view not in apart, say)
    if elsewhere is not None:
        try:
            drawn, messages = elsewhere.result()
        except BrokenExecutor:  # the worker died (killed, out of memory): drawn here instead
            messages = ["  the worker process drawing pages stopped: drawing them here"]
            drawn = _draw_pages(results, out, lambda view: view in apart, messages.append)
        for message in messages:
            say(message)
        pages = sorted([*pages, *drawn], key=lambda p: PAGES.index(Path(p[0]).stem))
    write_index(out, json.loads(results.attrs["settings"]), results, pages, results_name=RESULTS)
    return out / "index.html"


def _draw_pages_of(
    results_path: str, out: str, views: list[str]
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """In a worker process: the pages ``views`` of the saved results, and their messages."""
    messages: list[str] = []
    results = open_results(results_path)
    return _draw_pages(results, Path(out), lambda view: view in views, messages.append), messages


def _draw_pages(
    results: xr.DataTree, out: Path, wanted: Callable[[str], bool], say: Progress
) -> list[tuple[str, str, str]]:
    """Draw the pages ``wanted`` of a results tree; returns (file, title, description) of
    each, in :data:`PAGES` order."""
    settings = json.loads(results.attrs["settings"])
    variants = settings["variants"]
    pages: list[tuple[str, str, str]] = []

    def page(view: str, title: str, description: str, figures: list[Any]) -> None:
        say(f"  {view}: {len(figures)} figure(s)")
        write_page(out / f"{view}.html", title, description, figures)
        pages.append((f"{view}.html", title, description))

    def node(name: str) -> xr.Dataset | None:
        return results[name].to_dataset() if name in results.children else None

    probes = node("probe")
    if probes is not None and wanted("attributes"):
        figures = []
        for v in variants:
            result = probes.sel(variant=v) if "variant" in probes.dims else probes
            figures.append(plot.probe_lines(result, title="Probe score by layer"))
            if settings["permutations"]:  # no shuffles, no gain to draw
                figures.append(plot.probe_heatmap(result, title="Gain over shuffled labels"))
        if "association" in results.children:
            figures.append(
                plot.association_heatmap(
                    results["association"].to_dataset()["cramers_v"],
                    title="Association between attributes (Cramér's V)",
                )
            )
        page(
            "attributes",
            "Attributes",
            "Which layers encode which persona attributes: a cross-validated linear probe "
            f"per attribute and layer ({settings['folds']} folds; difference of means for "
            "two classes, logistic regression for more, ridge for numbers and ranks), its "
            + (
                f"score against the same probe on shuffled labels ({settings['permutations']} "
                "shuffles), "
                if settings["permutations"]
                else "score (no shuffled-label baseline: --permutations 0), "
            )
            + "and how the attributes go together."
            + _not_probed(settings.get("attributes_skipped")),
            figures,
        )
    clusters = node("kmeans")
    clustered = "k-means clusters"
    if clusters is not None and "n_components" in clusters["cluster"].attrs:
        components = clusters["cluster"].attrs["n_components"]
        clustered += f" (on the first {components} principal components)"
    clustered += ", matched across layers"
    for method, label in (("pca", "PCA"), ("umap", "UMAP"), ("isomap", "Isomap")):
        result = node(method)
        if result is None or method not in settings["views"] or not wanted(method):
            continue
        if method == "pca" and result.sizes["component"] < 2:
            say("  pca: no page: a projection needs 2 components and the hidden size is 1")
            continue
        figures, by_clusters = [], False
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
                    by_clusters = True
                else:
                    continue
                figures.append(
                    plot.projection(
                        scores, title=f"{label} of {variant}, coloured by {described}", **extra
                    )
                )
            if len(figures) == drawn:  # nothing to colour by: drawn plain
                figures.append(plot.projection(scores, title=f"{label} of {variant}"))
        about = f"{label} of the personas per layer (slider)."
        if by_clusters:
            about += f" Colours: {clustered}."
        if method == "umap" and result["umap"].attrs.get("aligned"):
            about += (
                " Each layer's layout starts from the previous layer's, so a persona moves "
                "between frames only as far as its neighbourhood changes."
            )
        page(method, label, about, figures)
    pca = node("pca")
    kmeans_page = (
        clusters is not None and "kmeans" in settings["views"] and pca is not None
    ) and wanted("kmeans")
    if kmeans_page and pca.sizes["component"] < 2:
        say("  kmeans: no page: it is drawn on PCA, which needs a hidden size of 2 or more")
    elif kmeans_page:
        figures = [
            plot.projection(
                pca["scores"].sel(variant=v),
                groups=clusters["cluster"].sel(variant=v),
                title=f"k-means ({settings['n_clusters']} clusters) of {v} on PCA",
            )
            for v in variants
        ]
        page("kmeans", "k-means", f"{clustered.capitalize()}, drawn on PCA.", figures)
    cos, tree = node("cosine"), node("linkage")
    if cos is not None and wanted("similarity"):
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
        ordered = (
            f" Personas are in the dendrogram order of layer {tree['layer'].values[-1]} in "
            "every frame, so frames compare cell by cell."
            if tree is not None
            else ""
        )
        page(
            "similarity",
            "Similarity",
            f"Centered cosine between personas per layer.{ordered}{blocks}",
            figures,
        )
    pairs = node("pairs")
    if pairs is not None and wanted("pairs"):
        figures = [
            plot.pair_trajectories(pairs.sel(variant=v), top=8, title="Most-changing pairs")
            for v in variants
        ]
        page("pairs", "Pairs", "Pairs whose similarity changes most across layers.", figures)
    scree = node("scree")
    if scree is not None and wanted("scree"):
        figures = []
        for v in variants:
            evr = scree["explained_variance_ratio"].sel(variant=v)
            figures += [
                plot.scree(evr, max_components=20, title="Scree"),
                plot.variance_heatmap(evr, cumulative=True, title="Cumulative variance"),
            ]
        page("scree", "Scree", "Explained variance per component and layer.", figures)
    if tree is not None and "dendrogram" in settings["views"] and wanted("dendrogram"):
        figures = [plot.dendrogram(tree.sel(variant=v), title="Ward dendrogram") for v in variants]
        page("dendrogram", "Dendrogram", "Hierarchical clustering per layer.", figures)
    moved = node("variants")
    if moved is not None and wanted("variants"):
        page(
            "variants",
            "Variants",
            f"How the prompt variant moves each persona ({variants[0]} vs {variants[1]}).",
            [plot.variant_lines(moved, title=f"{variants[0]} vs {variants[1]}")],
        )
    return pages


# --------------------------------------------------------------------------- internals


def _return_freed_memory() -> None:
    """Give the heap pages the computation freed back to the system. glibc keeps them in
    its arenas, so this process would draw the pages at its computing peak while a worker
    draws too (L's process tree: 1.99 GiB without it, 1.59 GiB with it; at M it took 9 ms
    and brought this process from 0.59 to 0.39 GiB)."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's C library: glibc only (not musl)
    except (OSError, AttributeError, TypeError):
        return
    trim(0)


def _left_out(
    tree: xr.DataTree, da: xr.DataArray, *, ids: Sequence[str] | None, include_baseline: bool
) -> dict[str, list[str]]:
    """Per variant, the ids of its personas (of those asked for) that the analyses leave
    out because another variant lacks them: the variants join on persona ids."""
    kept = set(_engine.persona_ids(da))
    asked = None if ids is None else set(ids)
    left_out = {}
    for variant in (str(v) for v in da["variant"].values):
        stored = persona_ids(
            tree, variant, model=da.attrs.get("model"), mask_strategy=da.attrs.get("mask_strategy")
        )
        missing = [
            i
            for i in stored
            if i not in kept
            and (asked is None or i in asked)
            and (include_baseline or i != BASELINE_ID)
        ]
        if missing:
            left_out[variant] = missing
    return left_out


def _lean(da: xr.DataArray, client: Any) -> bool:
    return client is None and _layer_matrix_bytes(da) > LEAN_LAYER_BYTES


def _umap_worker_count(da: xr.DataArray, views: Collection[str], client: Any) -> int:
    """UMAP worker processes for a computation of ``views``: half the cores on the local
    scheduler, none in lean mode or on a distributed cluster (its workers are processes).

    UMAP's fits hold the GIL: in processes they leave the threads to the other work. Half
    the cores: UMAP is about a third of the job's CPU, and each worker holds its own
    ~0.37 GB of libraries (one worker was as fast as two on 2 cores)."""
    if "umap" not in views or client is not None or _lean(da, client):
        return 0
    return max(1, (os.cpu_count() or 1) // 2)


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


def _compute(lazy: dict[str, Any], description: str, *, synchronous: bool) -> dict[str, Any]:
    """One ``dask.compute`` for every result (shared Gram tasks run once), with a progress
    bar on the local scheduler (a distributed client has its own dashboard)."""
    with dask.config.set(scheduler="synchronous") if synchronous else contextlib.nullcontext():
        values = options.compute(*lazy.values(), description=description)
    return dict(zip(lazy, values, strict=True))


def _as_dataset(name: str, value: xr.DataArray | xr.Dataset) -> xr.Dataset:
    if isinstance(value, xr.Dataset):
        return value
    return value.to_dataset(name=value.name or name)


def _all_variants(tree: xr.DataTree, model: str | None, mask: str | None) -> list[str]:
    from pvx.store import variants

    return variants(tree, model=model, mask_strategy=mask)


def _probed_attributes(
    da: xr.DataArray, attributes: Sequence[str] | None, folds: int, permutations: int
) -> tuple[list[str], dict[str, str]]:
    """The attributes the ``attributes`` page probes: those named (each must be probeable,
    or the error says why), else every one that can be probed (none without attributes);
    and those left out, with why."""
    if attributes is not None and not list(attributes):
        raise ValueError(
            "--attributes (attributes=) names no attribute; leave it out to probe every one"
        )
    targets, skipped = attribute_analyses._targets(
        da, list(attributes) if attributes else None, folds, permutations, seed=0
    )
    return [t.name for t in targets], skipped


def _some_reasons(skipped: dict[str, str], shown: int = 3) -> str:
    """The first few attributes' reasons for not being probed, for a progress line (run.json
    and the attributes page keep them all)."""
    reasons = list(skipped.values())
    rest = len(reasons) - shown
    more = f"; and {rest} more attribute(s) (run.json: attributes_skipped)" if rest > 0 else ""
    return "; ".join(reasons[:shown]) + more


def _not_probed(skipped: dict[str, str] | None) -> str:
    """The page's note of the attributes left out, with why."""
    return f" Not probed: {'; '.join(skipped.values())}." if skipped else ""


def _probe_options(probe: dict[str, Any]) -> dict[str, Any]:
    return {key: probe[key] for key in ("folds", "permutations") if key in probe}


def _default_colors(da: xr.DataArray) -> list[str]:
    """One attribute of each kind, so a first look shows something without being asked."""
    chosen: dict[str, str] = {}
    for key in attribute_names(da):
        chosen.setdefault(da[key].attrs["kind"], str(key))
    return [chosen[k] for k in ("categorical", "ordinal", "numeric") if k in chosen]
