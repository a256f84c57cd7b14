"""The ``pvx`` command line: ``pvx info``, ``pvx import``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from pvx._construct import BASELINE_ID, attribute_names
from pvx.store import StoreError, open_store, size_on_disk


def default_store() -> str:
    """The shipped demo store: ``$PVX_DEMO_STORE``, else ``stores/demo.zarr`` of the repo."""
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


def summarize(tree: xr.DataTree, *, source: str | None = None) -> str:
    """A readable summary of a store: models, masks, variants, personas, layers, attributes."""
    lines = [f"pvx store {source or tree.attrs.get('source', '')}"]
    if source and "://" not in source:
        lines[0] += f"  ({_human_bytes(size_on_disk(source))} on disk)"
    if not tree.children:
        lines.append("  (empty)")
    for model_node in tree.children.values():
        lines.append(f"model {model_node.attrs['model']}")
        for mask_name, mask_node in model_node.children.items():
            lines.append(f"  mask strategy {mask_name}")
            for variant_name, node in mask_node.children.items():
                ds = node.to_dataset()
                ids = ds["id"].values.tolist()
                baseline = " + baseline" if BASELINE_ID in ids else ""
                n = len(ids) - (1 if baseline else 0)
                lines.append(
                    f"    variant {variant_name}: {n} personas{baseline}, "
                    f"{ds.sizes['layer']} layers {_ranges(ds['layer'].values.tolist())}, "
                    f"hidden {ds.sizes['hidden']}, {ds['vectors'].dtype}"
                )
            first = next(iter(mask_node.children.values())).to_dataset()
            attrs = attribute_names(first)
            if attrs:
                lines.append("    attributes:")
                width = max(len(str(a)) for a in attrs)
                for key in attrs:
                    coord = first[key]
                    detail = coord.attrs["kind"]
                    if detail == "ordinal":
                        detail += " (" + " < ".join(coord.attrs["order"]) + ")"
                    lines.append(f"      {key!s:<{width}}  {detail}")
    return "\n".join(lines)


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


def _info(args: argparse.Namespace) -> None:
    store = args.store or default_store()
    print(summarize(open_store(store), source=store))


def _import(args: argparse.Namespace) -> None:
    from pvx import importers

    if args.format == "dir":
        done = importers.import_directory(
            args.source, args.store, model=args.model, skip_existing=args.skip_existing
        )
    else:
        done = importers.import_parquet(
            args.source,
            args.store,
            config=args.config,
            model=args.model,
            num_layers=args.num_layers,
            skip_existing=args.skip_existing,
        )
    for item in done:
        print(
            f"imported {item.model} / {item.mask_strategy} / {item.variant}: "
            f"{item.n_persona} personas from {item.source}"
        )
    print(summarize(open_store(args.store), source=str(args.store)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvx", description="Persona vectors with xarray.")
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="summarise a store")
    info.add_argument("store", nargs="?", help="path or URL (default: the demo store)")
    info.set_defaults(func=_info)
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
    imp.set_defaults(func=_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pvx`` command; errors are one line and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (StoreError, ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"pvx {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
