"""What both importers share: the imported-variant record, the two-pass plan, model
names, clashes with the store and the writing pass (see :mod:`pvx.importers`)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import xarray as xr

from pvx._store_format import _identity
from pvx.store import StoreError, _write_variants, open_store


class ImportedVariant(NamedTuple):
    """One variant written by an importer."""

    model: str
    mask_strategy: str
    variant: str
    n_persona: int
    source: str


@dataclass
class _Plan:
    """One variant to import: where it goes, how to check it, how to read it."""

    model: str
    mask_strategy: str
    variant: str
    source: str
    check: Callable[[], None]  # reads and validates everything, keeps nothing
    read: Callable[[], xr.DataArray]


def _model_names(
    model: str | Mapping[str, str] | None, model_dirs: list[str], *, func: str
) -> dict[str, str]:
    """``{model_dir: model name}`` for the dirs the caller named."""
    if model is None:
        return {}
    if isinstance(model, str):
        if len(model_dirs) != 1:
            raise ValueError(
                f"{func}(): model={model!r} is ambiguous: the source holds model directories "
                f"{model_dirs}; pass a mapping {{model_dir: name}}"
            )
        return {model_dirs[0]: model}
    unknown = sorted(set(model) - set(model_dirs))
    if unknown:
        raise ValueError(
            f"{func}(): model= names directories {unknown!r} that are not in the source "
            f"({model_dirs})"
        )
    return dict(model)


def _existing(store: str | os.PathLike, storage_options: Mapping[str, Any]) -> set[tuple[str, ...]]:
    """``(model, mask_strategy, variant)`` already in the store (none if there is no store)."""
    try:
        tree = open_store(store, **storage_options)
    except StoreError:
        return set()  # no store yet; write_variant refuses a non-pvx target before writing
    return {
        (model_node.attrs["model"], str(mask_name), str(variant))
        for model_node in tree.children.values()
        for mask_name, mask_node in model_node.children.items()
        for variant in mask_node.children
    }


def _folded(key: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.casefold() for part in key)


def _write_plans(
    plans: list[_Plan],
    store: str | os.PathLike,
    skip_existing: bool,
    storage_options: Mapping[str, Any],
    *,
    func: str,
) -> list[ImportedVariant]:
    """Check all plans (names, clashes, then contents), then write one variant at a time."""
    seen: dict[tuple[str, str, str], str] = {}
    for plan in plans:
        try:  # the store's own name checks, before anything is written
            _identity(xr.DataArray(0), plan.model, plan.mask_strategy, plan.variant)
        except ValueError as err:
            if str(err).startswith(f"{func}()"):  # names its file already
                raise
            raise ValueError(f"{func}(): {err} (from {plan.source!r})") from None
        key = (plan.model, plan.mask_strategy, plan.variant)
        if key in seen:
            raise ValueError(f"{func}(): {plan.source!r} and {seen[key]!r} both import {key}")
        twin = next((k for k in seen if _folded(k) == _folded(key)), None)
        if twin is not None:  # before anything is written: the write would refuse it midway
            raise ValueError(
                f"{func}(): {plan.source!r} imports {key} and {seen[twin]!r} imports {twin}: "
                "names that differ only in case, which published copies and case-insensitive "
                "file systems cannot tell apart; rename one"
            )
        seen[key] = plan.source
    existing = _existing(store, storage_options)
    clashes = [p for p in plans if (p.model, p.mask_strategy, p.variant) in existing]
    if clashes and not skip_existing:
        raise StoreError(
            f"{func}(): {os.fspath(store)!r} already holds "
            f"{[(p.model, p.mask_strategy, p.variant) for p in clashes]}; nothing was imported. "
            "Pass skip_existing=True (--skip-existing on the command line) to import only the "
            "others"
        )
    if clashes:
        warnings.warn(
            f"{func}(): skipped {len(clashes)} variant(s) already in the store, whatever their "
            f"sources hold now: {[(p.model, p.mask_strategy, p.variant) for p in clashes]}",
            UserWarning,
            stacklevel=3,
        )
    todo = [p for p in plans if p not in clashes]
    for plan in todo:
        plan.check()
    if not todo:
        return []
    # one commit: a failure while writing (or a kill) leaves the store as it was
    counts = _write_variants(
        store,
        [((p.model, p.mask_strategy, p.variant), _named_reader(p, func)) for p in todo],
        message=f"{func} of {len(todo)} variant(s) from {_common_source(todo)}",
        skip_existing=skip_existing,
        func=func,
        **storage_options,
    )
    return [
        ImportedVariant(plan.model, plan.mask_strategy, plan.variant, n, plan.source)
        for plan, n in zip(todo, counts, strict=True)
        if n is not None
    ]


def _named_reader(plan: _Plan, func: str) -> Callable[[], xr.DataArray]:
    def read() -> xr.DataArray:
        try:
            return plan.read()
        except ValueError as err:
            if str(err).startswith(f"{func}()"):  # names its file already
                raise
            raise ValueError(f"{func}(): {err} (from {plan.source!r})") from None

    return read


def _common_source(plans: Sequence[Any]) -> str:
    """The folder every plan's source is in (the history names what was read); URLs, or
    sources with nothing in common, as the first and a count."""
    sources = [str(plan.source) for plan in plans]
    if len(sources) > 1 and not any("://" in s for s in sources):
        with contextlib.suppress(ValueError):  # relative beside absolute paths
            common = os.path.commonpath(sources)
            if common not in ("", os.sep):
                return common
    return sources[0] if len(sources) == 1 else f"{sources[0]} and {len(sources) - 1} more"
