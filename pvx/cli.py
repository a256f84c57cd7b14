"""The ``pvx`` command line: ``pvx info``, ``analyze``, ``import``, ``publish``, ``migrate``,
``history``."""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import xarray as xr

from pvx._construct import attribute_names
from pvx._validate import BASELINE_ID


def default_store() -> str:
    """The shipped demo store: ``$PVX_DEMO_STORE``, else ``stores/demo.zarr`` of the repo."""
    from pvx.store import StoreError

    if os.environ.get("PVX_DEMO_STORE"):
        return os.environ["PVX_DEMO_STORE"]
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        candidate = base / "stores" / "demo.zarr"
        if candidate.exists():
            return str(candidate)
    raise StoreError(
        "no STORE given and the demo store stores/demo.zarr was not found; pass a store path "
        "or set PVX_DEMO_STORE"
    )


def printable(text: object) -> str:
    """``text`` with control characters escaped, so names never drive the terminal."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in str(text)
    )


def summarize(tree: xr.DataTree, *, source: str | None = None) -> str:
    """A readable summary of a store: models, masks, variants, personas, layers, attributes."""
    return "\n".join(printable(line) for line in _summary_lines(tree, source))


def _summary_lines(tree: xr.DataTree, source: str | None) -> list[str]:
    from pvx.store import size_on_disk

    lines = [f"pvx store {source or tree.attrs.get('source', '')}"]
    if source and "://" not in source:
        lines[0] += f"  ({_human_bytes(size_on_disk(source))} on disk)"
    if tree.attrs.get("snapshot"):
        lines.append(f"{tree.attrs.get('form', 'store')} version {tree.attrs['snapshot']}")
    if not tree.children:
        lines.append("  (empty)")
    for model_node in tree.children.values():
        lines.append(f"model {model_node.attrs['model']}")
        for mask_name, mask_node in model_node.children.items():
            lines.append(f"  mask strategy {mask_name}")
            # attribute -> its description -> the variants holding it so
            held: dict[Any, dict[str, list[str]]] = {}
            for variant_name, node in mask_node.children.items():
                ds = node.to_dataset()
                for key in attribute_names(ds):
                    detail = ds[key].attrs["kind"]
                    if detail == "ordinal":
                        detail += " (" + " < ".join(ds[key].attrs["order"]) + ")"
                    held.setdefault(key, {}).setdefault(detail, []).append(str(variant_name))
                ids = ds["id"].values.tolist()
                baseline = " + baseline" if BASELINE_ID in ids else ""
                n = len(ids) - (1 if baseline else 0)
                lines.append(
                    f"    variant {variant_name}: {n} personas{baseline}, "
                    f"{ds.sizes['layer']} layers {_ranges(ds['layer'].values.tolist())}, "
                    f"hidden {ds.sizes['hidden']}, {ds['vectors'].dtype}"
                )
            if held:
                lines.append("    attributes:")
                width = max(len(str(a)) for a in held)
                for key, details in held.items():
                    every = len(details) == 1 and len(next(iter(details.values()))) == len(
                        mask_node.children
                    )
                    shown = [
                        detail if every else f"{detail} (variants {', '.join(holders)})"
                        for detail, holders in details.items()
                    ]
                    lines.append(f"      {key!s:<{width}}  {'; '.join(shown)}")
    return lines


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 6] -> '0-2, 5-6'."""
    if not values:
        return ""
    parts, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return "[" + ", ".join(parts) + "]"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"


def _storage_options(items: Sequence[str] | None) -> dict[str, Any]:
    """['anon=true', 'profile=lab'] -> {'anon': True, 'profile': 'lab'} (JSON values)."""
    options: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option takes KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _info(args: argparse.Namespace) -> None:
    from pvx.store import open_store

    store = args.store or default_store()
    tree = open_store(store, **_storage_options(args.storage_option))
    print(summarize(tree, source=store))


def _publish(args: argparse.Namespace) -> None:
    from pvx.store import publish

    snapshot = publish(args.store, args.out, version=args.version)
    print(f"published version {snapshot} of {args.store} to {args.out}")


def _migrate(args: argparse.Namespace) -> None:
    from pvx.store import migrate, open_store

    done = migrate(args.old, args.new)
    print(f"migrated {len(done)} variant(s) from {args.old} to {args.new}")
    print(summarize(open_store(args.new), source=str(args.new)))


MAX_KEEP_DAYS = 36_500  # a century: past it, datetime's range ends before the versions do


def _compact(args: argparse.Namespace) -> None:
    from pvx.store import compact

    if not 0 <= args.keep_days <= MAX_KEEP_DAYS:  # also NaN and inf
        raise ValueError(
            f"--keep-days takes a number of days from 0 to {MAX_KEEP_DAYS}, got {args.keep_days}"
        )
    freed = compact(args.store, keep=timedelta(days=args.keep_days))
    print(f"compacted {args.store}: {_human_bytes(freed)} freed")


def _history(args: argparse.Namespace) -> None:
    from pvx.store import history

    for row in history(args.store).itertuples():
        print(printable(f"{row.snapshot}  {row.written_at:%Y-%m-%d %H:%M:%S}  {row.message}"))


def _import(args: argparse.Namespace) -> None:
    from pvx import importers
    from pvx.store import open_store, persona_ids

    if args.model is not None and not args.model.strip():
        raise ValueError("--model needs a model name (e.g. google/gemma-2-9b-it), got ''")
    options = _storage_options(args.storage_option)  # the store's (e.g. s3:// credentials)
    if args.format == "dir":
        parquet_only = [f for f in ("config", "num_layers") if getattr(args, f) is not None]
        if parquet_only:
            flags = ", ".join("--" + f.replace("_", "-") for f in parquet_only)
            raise ValueError(f"{flags}: for 'pvx import parquet' only; a directory has neither")
        done = importers.import_directory(
            args.source, args.store, model=args.model, skip_existing=args.skip_existing, **options
        )
    else:
        done = importers.import_parquet(
            args.source,
            args.store,
            config=args.config,
            model=args.model,
            num_layers=args.num_layers,
            skip_existing=args.skip_existing,
            **options,
        )
    tree = open_store(args.store, **options)
    for item in done:
        ids = persona_ids(tree, item.variant, model=item.model, mask_strategy=item.mask_strategy)
        baseline = " + baseline" if BASELINE_ID in ids else ""  # counted as pvx info does
        print(
            f"imported {item.model} / {item.mask_strategy} / {item.variant}: "
            f"{item.n_persona - (1 if baseline else 0)} personas{baseline} from {item.source}"
        )
    print(summarize(tree, source=str(args.store)))


def _analyze(args: argparse.Namespace) -> None:
    from pvx import report
    from pvx.store import open_store

    store = args.store or default_store()
    views = _name_list(args.views, set(report.VIEWS), "--views")
    if args.layers is not None and not args.layers.strip(", "):
        raise ValueError("--layers names nothing; list some (or leave --layers out for all)")
    if not args.out.strip():
        raise ValueError("--out names nothing; name a folder (default: pvx-report)")
    tree = open_store(store, **_storage_options(args.storage_option))
    nodes = _variant_nodes(tree)
    attributes = {str(key) for node in nodes for key in attribute_names(node.to_dataset())}
    with _dask_cluster(args.scheduler, args.workers):
        report.analyze(
            tree,
            model=args.model,
            mask_strategy=args.mask_strategy,
            variants=_variant_list(args.variant, nodes),
            layers=_int_list(args.layers),
            ids=_id_list(args.ids, nodes),
            include_baseline=args.include_baseline,
            views=views or report.DEFAULT_VIEWS,
            colors=_name_list(args.color, attributes, "--color") or (),
            n_clusters=args.clusters,
            attributes=_name_list(args.attributes, attributes, "--attributes"),
            folds=args.folds,
            permutations=args.permutations,
            out=args.out,
            overwrite=args.overwrite,
        )


def _variant_list(items: list[str] | None, nodes: list[xr.DataTree]) -> list[str] | None:
    """``--variant`` values: names of the store's variants (its ``nodes``)."""
    return _name_list(items, {str(node.name) for node in nodes}, "--variant")


def _id_list(items: list[str] | None, nodes: list[xr.DataTree]) -> list[str] | None:
    """``--ids`` values: persona ids (read only if one could hold a comma or spaces)."""
    odd = items is not None and any("," in item or item != item.strip() for item in items)
    known = {str(i) for node in nodes for i in node["id"].values} if odd else set()
    return _name_list(items, known, "--ids")


def _variant_nodes(tree: xr.DataTree) -> list[xr.DataTree]:
    """The store's variant nodes (those holding vectors), of every model and mask."""
    return [node for node in tree.subtree if "vectors" in node.data_vars]


def _name_list(items: list[str] | None, known: set[str], flag: str) -> list[str] | None:
    """Comma-separated names, repeatable, spaces around each dropped; a value that is a
    whole name of ``known`` (as ``"city, state"``) is that one name. None when ``flag`` was
    not given; an error when it names nothing, or a name twice."""
    if items is None:
        return None
    split = ([item] if item in known else [a.strip() for a in item.split(",")] for item in items)
    names = [name for names in split for name in names if name]
    if not names:
        raise ValueError(f"{flag} names nothing; list some (or leave {flag} out)")
    repeated = sorted(name for name, n in collections.Counter(names).items() if n > 1)
    if repeated:
        raise ValueError(f"{flag} lists {repeated} more than once; list each once")
    return names


def _explore(args: argparse.Namespace) -> None:
    from pvx import explorer
    from pvx.store import open_store

    source = args.source or default_store()
    local = not str(source).startswith(("http://", "https://"))
    if local and not os.path.exists(source):
        raise ValueError(f"no report folder or store at {source!r}")
    # a report folder, or its results.zarr (as pvx.explorer.load_source takes them)
    is_report = local and (
        os.path.isdir(os.path.join(source, "results.zarr"))
        or os.path.basename(os.path.normpath(source)) == "results.zarr"
    )
    if is_report:
        given = [flag for flag in ("model", "mask_strategy", "variant") if getattr(args, flag)]
        if given:
            raise ValueError(
                f"{source} is a report: its model, mask and variants are fixed; "
                f"drop {', '.join('--' + k.replace('_', '-') for k in given)}"
            )
        loaded = {}
    else:
        nodes = _variant_nodes(open_store(source)) if args.variant else []
        variants = _variant_list(args.variant, nodes)
        options = {"model": args.model, "mask_strategy": args.mask_strategy, "variants": variants}
        loaded = {k: v for k, v in options.items() if v}
    explorer.serve(source, port=args.port, address=args.address, show=args.show, **loaded)


# the longest --layers range taken (a typo like 0-1000000000 would fill memory)
MAX_LAYER_RANGE = 100_000


def _int_list(text: str | None) -> list[int] | None:
    """'3,5,10-12' -> [3, 5, 10, 11, 12]."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        try:
            lo, hi = part.split("-", 1) if "-" in part.strip("-") else (part, part)
            first, last = int(lo), int(hi)
        except ValueError:
            raise ValueError(
                f"--layers takes numbers and ranges like 3,5,10-12, got {text!r}"
            ) from None
        if last < first:
            raise ValueError(
                f"--layers range {part!r} is empty (runs downward); write it {hi}-{lo}"
            )
        if last - first >= MAX_LAYER_RANGE:
            raise ValueError(
                f"--layers range {part!r} spans {last - first + 1:,} layers; "
                "models have far fewer: list the store's layers (pvx info STORE)"
            )
        out.extend(range(first, last + 1))
    repeated = sorted(layer for layer, n in collections.Counter(out).items() if n > 1)
    if repeated:
        raise ValueError(f"--layers {text!r} lists layer(s) {repeated} more than once")
    return out


@contextlib.contextmanager
def _dask_cluster(scheduler: str | None, workers: int | None) -> Iterator[None]:
    """Run dask work on a distributed scheduler: an existing one, or a local cluster."""
    if scheduler is None and workers is None:
        yield
        return
    if workers is not None and workers < 1:
        raise ValueError(f"--workers needs at least 1 worker process, got {workers}")
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout="10s") as client:
            n = len(client.scheduler_info()["workers"])
            print(f"dask: using scheduler {scheduler} ({n} workers)")
            yield
        return
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        print(f"dask: local cluster of {workers} worker processes")
        yield


STORAGE_HELP = "fsspec storage option for a store URL, KEY=VALUE (repeatable), e.g. anon=true"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvx", description="Persona vectors with xarray.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="summarise a store")
    info.add_argument("store", nargs="?", help="path or URL (default: the demo store)")
    info.add_argument("--storage-option", action="append", help=STORAGE_HELP)
    info.set_defaults(func=_info)
    run = commands.add_parser(
        "analyze", help="analyse a store and write an interactive HTML report"
    )
    run.add_argument("store", nargs="?", help="path or URL (default: the demo store)")
    run.add_argument("--model", help="model name (needed when the store holds several)")
    run.add_argument("--mask-strategy", help="mask strategy (needed when there are several)")
    run.add_argument(
        "--variant",
        action="append",
        help="variants to analyse, comma-separated or repeated (default: all)",
    )
    run.add_argument(
        "--layers", help="layer labels, e.g. 0,3,5-6, analysed in depth order (default: all)"
    )
    run.add_argument("--ids", action="append", help="persona ids, comma-separated (default: all)")
    run.add_argument("--include-baseline", action="store_true", help="keep baseline_assistant")
    run.add_argument(
        "--views",
        action="append",
        help="comma-separated views: attributes, pca, umap, isomap, similarity, pairs, scree, "
        "dendrogram, variants, kmeans (default: all but isomap and kmeans)",
    )
    run.add_argument(
        "--color",
        action="append",
        help="persona attributes to colour by, comma-separated or repeated (default: up to 3)",
    )
    run.add_argument("--clusters", type=int, help="k-means clusters (kmeans view, --color cluster)")
    run.add_argument(
        "--attributes",
        action="append",
        help="persona attributes to probe, comma-separated or repeated (default: every attribute)",
    )
    run.add_argument("--folds", type=int, default=5, help="probe cross-validation folds (5)")
    run.add_argument(
        "--permutations", type=int, default=5, help="probe shuffled-label repetitions (5)"
    )
    run.add_argument("--out", default="pvx-report", help="output folder (default: pvx-report)")
    run.add_argument(
        "--overwrite", action="store_true", help="replace another run's results in --out"
    )
    run.add_argument("--storage-option", action="append", help=STORAGE_HELP)
    run.add_argument("--scheduler", help="address of a dask.distributed scheduler")
    run.add_argument("--workers", type=int, help="run on a local cluster of N worker processes")
    run.set_defaults(func=_analyze)
    exp = commands.add_parser(
        "explore", help="explore a report folder or a store in the browser (local server)"
    )
    exp.add_argument(
        "source", nargs="?", help="report folder (pvx analyze --out) or store (default: demo)"
    )
    exp.add_argument("--model", help="model name (a store holding several)")
    exp.add_argument("--mask-strategy", help="mask strategy (a store holding several)")
    exp.add_argument(
        "--variant", action="append", help="variants to load, comma-separated or repeated"
    )
    exp.add_argument("--port", type=_port, default=0, help="port (default: any free one)")
    exp.add_argument(
        "--address", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine)"
    )
    exp.add_argument("--show", action="store_true", help="open a browser tab")
    exp.set_defaults(func=_explore)
    imp = commands.add_parser("import", help="import persona vectors into a pvx store")
    imp.add_argument(
        "format",
        choices=["dir", "parquet"],
        help="dir: persona-vectors directory layout; parquet: the published table form",
    )
    imp.add_argument("source", help="root directory of the source data")
    imp.add_argument("store", help="pvx store to create or extend")
    imp.add_argument("--model", help="model name to record (default: from the source)")
    imp.add_argument("--config", help="parquet: the <model_dir>__<mask_strategy> config")
    imp.add_argument(
        "--num-layers", type=int, help="parquet: layer count when `vector` is a flat list"
    )
    imp.add_argument(
        "--skip-existing", action="store_true", help="leave variants the store already has"
    )
    imp.add_argument("--storage-option", action="append", help=STORAGE_HELP)
    imp.set_defaults(func=_import)
    pub = commands.add_parser(
        "publish", help="write one version as a plain, read-only Zarr store (for HTTP, the Hub)"
    )
    pub.add_argument("store", help="the repository to publish")
    pub.add_argument("out", help="new path or URL of the published copy")
    pub.add_argument("--version", help="snapshot id to publish (default: the latest)")
    pub.set_defaults(func=_publish)
    mig = commands.add_parser("migrate", help="convert a pvx 0.1 (format 1) store")
    mig.add_argument("old", help="the format-1 store (only read)")
    mig.add_argument("new", help="path of the new store")
    mig.set_defaults(func=_migrate)
    hist = commands.add_parser("history", help="list a repository's versions, newest first")
    hist.add_argument("store", help="path or URL of the repository")
    hist.set_defaults(func=_history)
    comp = commands.add_parser(
        "compact", help="delete old versions of a repository and the chunks only they used"
    )
    comp.add_argument("store", help="path or URL of the repository")
    comp.add_argument(
        "--keep-days", type=float, default=7.0, help="keep versions this recent (default: 7)"
    )
    comp.set_defaults(func=_compact)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535, 0: any free)")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvx`` command; errors are one line and exit status 1."""
    args = build_parser().parse_args(argv)
    formatwarning = warnings.formatwarning
    # warnings as one line each, like errors (not Python's file:line and source line)
    warnings.formatwarning = lambda message, *_, **__: (
        f"pvx {args.command}: warning: {printable(message)}\n"
    )
    try:
        args.func(args)
    except BrokenPipeError:  # the reader stopped reading (`pvx info s | head`): not an error
        # stdout to /dev/null: Python's own flush at exit would fail on the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, KeyError, OSError) as err:  # StoreError is a ValueError
        # a KeyError's str() is the repr of its message: print the message itself
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"pvx {args.command}: error: {printable(message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # writes commit whole or not at all: no traceback to read
        print(f"pvx {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
    return 0


if __name__ == "__main__":
    sys.exit(main())
