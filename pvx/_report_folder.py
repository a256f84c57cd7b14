"""The report folder of ``pvx analyze``: what a run may write into ``--out`` and replace.

A report is built in a staging folder beside ``--out`` and moved in when done; ``run.json``
lists the files pvx wrote, so a rerun replaces only those and never the store or files of
the user's in the folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pvx._repository import Location, StoreError

__all__ = [
    "RUN_FILE",
    "check_out",
    "finish_interrupted_replace",
    "out_lock",
    "remove_abandoned_staging",
    "replace_report",
]

RUN_FILE = "run.json"


# run.json entries that describe the data read, not the settings compared between runs
# what a run found rather than was asked: a rerun of the same settings after the store or
# pvx changed replaces its own report
FOUND_KEYS = (
    "personas",
    "personas_left_out",
    "store_version",
    "pvx_version",
    "attributes_skipped",
)
# found from the data when not given: compared as the run's "asked" record says they were
FOUND_UNLESS_ASKED = ("variants", "layers", "colors", "n_clusters", "attributes", "views")


@contextlib.contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """Hold ``out`` for one run: a second run into the same folder is refused while this one
    is checking, computing or replacing the report (each would otherwise replace the
    other's). The lock file beside ``out`` goes when the run ends; the kernel releases its
    lock if the run is killed."""
    path = out.with_name(f".{out.name}.pvx-lock")
    while True:
        try:
            handle = open(path, "a+")  # held for the whole run
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise StoreError(_beside_out_message(out, error)) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreError(
                f"{out} is being written by another pvx analyze ({holder}); wait for it to "
                "finish or pick another --out"
            ) from None
        try:  # the file locked is still the one at the path (not one a run just removed)
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiting run then retries
        handle.close()


def _beside_out_message(out: Path, error: OSError) -> str:
    return (
        f"cannot write in {str(out.parent)!r} ({error.strerror}): pvx analyze keeps its lock "
        f"file and builds the report beside --out {str(out)!r}; pick an --out whose parent "
        "folder you can write to"
    )


def check_out(
    out: Path, settings: dict[str, Any], *, overwrite: bool, store: str | None = None
) -> None:
    """Refuse an ``out`` that is or holds the store, or another run's report (unless
    ``overwrite``). Files pvx did not write are never touched (see replace_report)."""
    local = Location.parse(store, {}).path if store else None  # a file:// URL is local too
    if local is not None:
        where, place = local.resolve(), out.resolve()
        if place == where or where in place.parents or place in where.parents:
            raise ValueError(
                f"--out {str(out)!r} would be inside, or contain, the store {store!r}; "
                "pick a folder outside it"
            )
    if not out.exists():
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise ValueError(
                f"--out {str(out)!r} cannot be made: {str(blocking)!r} is a file; "
                "pick a folder elsewhere"
            )
        return
    if not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; pick a folder")
    previous = manifest(out)
    # every run writes these, and a page per view it may draw: a user's file of one of these
    # names is refused now, not after the computation (replace_report checks again then)
    ours = set(previous["files"]) | {RUN_FILE} if previous else set()
    swapping = _present(out / JOURNAL)  # a run killed while moving its report in: finished first
    pages = tuple(f"{view}.html" for view in settings["views"])
    for name in () if swapping else (*ALWAYS_WRITTEN, *pages):
        if name not in ours and _present(out / name):
            raise StoreError(
                f"{out / name} exists and pvx did not write it; move it or pick another --out"
            )
    if previous is None:
        return  # a folder pvx never wrote to: new files go beside the user's
    previous.pop("files", None)
    # a run.json from before pvx recorded the store's full path: its relative path cannot
    # tell two stores apart, so their versions still must match
    kept = previous.get("store")
    legacy = isinstance(kept, str) and "://" not in kept and not Path(kept).is_absolute()
    # a run.json from before pvx recorded what was asked: compared by what its run found
    recorded_asked = "asked" in previous
    if recorded_asked and isinstance(previous["asked"], dict) and "views" not in previous["asked"]:
        # recorded before the views asked were: compared by the views each run draws
        previous["asked"]["views"] = previous.get("views")
        settings = {**settings, "asked": {**settings["asked"], "views": settings["views"]}}
    asked = _asked(settings, keep_version=legacy, by_asked=recorded_asked)
    previous = _asked(previous, keep_version=legacy, by_asked=recorded_asked)
    if not overwrite and previous != asked:
        asked, previous = _flat(asked), _flat(previous)  # name the setting, not the record
        differ = sorted(
            key for key in asked.keys() | previous.keys() if asked.get(key) != previous.get(key)
        )
        shown = "; ".join(
            f"{key} {_short(previous.get(key))} there, {_short(asked.get(key))} now"
            for key in differ[:3]
        )
        raise StoreError(
            f"{out} holds the results of a different run ({shown}); pass another --out or "
            "--overwrite"
        )


def _flat(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with the ``asked`` record's entries in place of the record."""
    flat = {key: value for key, value in settings.items() if key != "asked"}
    if isinstance(settings.get("asked"), dict):
        flat.update(settings["asked"])
    return flat


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, its middle cut out when long (paths differ at their ends)."""
    text = repr(value)
    half = (limit - 1) // 2
    return text if len(text) <= limit else f"{text[:half]}…{text[-half:]}"


def _asked(settings: dict[str, Any], *, keep_version: bool, by_asked: bool) -> dict[str, Any]:
    """A run's settings as asked: what it found left out (``by_asked``: the settings its
    ``asked`` record covers too, else that record), a local store by its full path
    (``s.zarr`` and ``./s.zarr`` are one store)."""
    found = [key for key in FOUND_KEYS if not (keep_version and key == "store_version")]
    found += FOUND_UNLESS_ASKED if by_asked else ["asked"]
    asked = {key: value for key, value in settings.items() if key not in found}
    store = asked.get("store")
    if isinstance(store, str) and "://" not in store:
        asked["store"] = str(Path(store).resolve())
    return asked


def remove_abandoned_staging(out: Path) -> None:
    """Delete the staging folders of earlier runs into ``out`` that were killed before they
    could clean up: each has an owner file naming its process, and only those whose process
    is gone (on this host) are removed; a run still in progress keeps its own."""
    for owner in out.parent.glob(f".{glob.escape(out.name)}.*.partial.owner"):
        try:
            who = json.loads(owner.read_text())
            pid, host = int(who["pid"]), str(who["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if host != socket.gethostname() or process_alive(pid):
            continue
        staging = owner.with_name(owner.name.removesuffix(".owner"))
        shutil.rmtree(staging, ignore_errors=True)
        owner.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def manifest(out: Path) -> dict[str, Any] | None:
    """The run record of a report folder, if pvx wrote one (it lists the files pvx wrote)."""
    try:
        run = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    # pvx's own: every run.json that lists files also records pvx's version (another tool's
    # run.json may list files too, which pvx must never delete)
    if not isinstance(run, dict) or not isinstance(run.get("files"), list):
        return None
    if not isinstance(run.get("pvx_version"), str):
        return None
    return run


# files every report holds (its pages depend on the views and the data)
ALWAYS_WRITTEN = ("index.html", RUN_FILE, "results.zarr", "plotly.min.js")
JOURNAL = ".pvx-replacing.json"
# removed first and moved in last: while either is missing the folder shows no report
LAST = ("index.html", RUN_FILE)


def _plain_name(name: Any) -> bool:
    # a damaged run.json or journal never points outside the folder
    return isinstance(name, str) and "/" not in name and name not in ("", ".", "..")


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif _present(target):
        target.unlink()


def _move(source: Path, target: Path) -> None:
    try:
        source.rename(target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        # --out on another file system than its parent (a mount point): copied beside the
        # target and renamed into place, then the source renamed away (what marks it moved)
        # and removed; a run killed halfway redoes the copy from the source
        copy = target.with_name(f".{target.name}.pvx-copy")
        _remove(copy)
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copy2(source, copy, follow_symlinks=False)
        _remove(target)
        copy.rename(target)
        done = source.with_name(f".{source.name}.moved")
        source.rename(done)
        _remove(done)


def _last(name: str) -> tuple[int, str]:
    return (LAST.index(name) if name in LAST else -1, name)


def replace_report(staging: Path, out: Path) -> None:
    """Move a finished report into ``out``, deleting only what the previous run listed.

    The swap is journalled in ``out``: a run killed halfway leaves the journal, and the next
    run into ``out`` finishes the swap from the staging folder (see
    :func:`finish_interrupted_replace`) before anything else, so the folder ends up holding
    the new report whole, never a mix. Meanwhile it holds no ``run.json`` or ``index.html``,
    so it never looks complete."""
    if not out.exists():
        try:
            staging.rename(out)
            return
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            out.mkdir()
    previous = manifest(out)
    new = sorted(p.name for p in staging.iterdir())
    stale = set(previous["files"]) | {RUN_FILE} if previous else set()
    for name in sorted(set(new) | stale):
        target = out / name
        if name not in stale and _present(target):
            raise StoreError(
                f"{target} exists and pvx did not write it; move it or pick another --out"
            )
    journal = {
        "staging": staging.name,
        "old": sorted(name for name in stale if _plain_name(name)),
        "new": new,
    }
    written = out / (JOURNAL + ".tmp")
    written.write_text(json.dumps(journal))
    written.replace(out / JOURNAL)
    _finish(out, journal)


def _finish(out: Path, journal: dict[str, Any]) -> None:
    staging = out.parent / journal["staging"]
    new = [name for name in journal["new"] if _plain_name(name)]
    for name in sorted(journal["old"], key=_last, reverse=True):  # run.json, index.html first
        # a name both runs wrote whose new file is already in place stays
        already_new = name in new and not _present(staging / name)
        if _plain_name(name) and not already_new:
            _remove(out / name)
    for name in sorted(new, key=_last):  # index.html, then run.json, last
        if _present(staging / name):
            _move(staging / name, out / name)
    (out / JOURNAL).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    staging.with_name(staging.name + ".owner").unlink(missing_ok=True)


def finish_interrupted_replace(out: Path) -> None:
    """Finish the swap of a run killed while moving its report into ``out`` (its journal is
    still there): the previous report's files go, the new one's come in from its staging
    folder. If that folder is gone, every file either run wrote is removed instead (the
    user's files stay), so no mix of two reports is left. Call it holding :func:`out_lock`."""
    try:
        journal = json.loads((out / JOURNAL).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        journal = None
    valid = (
        isinstance(journal, dict)
        and _plain_name(journal.get("staging"))
        and all(isinstance(journal.get(key), list) for key in ("old", "new"))
    )
    if valid and (out.parent / journal["staging"]).is_dir():
        _finish(out, journal)
        return
    if valid:
        for name in journal["old"] + journal["new"]:
            if _plain_name(name):
                _remove(out / name)
    (out / JOURNAL).unlink()  # a damaged journal names nothing to remove
