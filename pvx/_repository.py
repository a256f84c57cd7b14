"""Where a pvx store lives and how it is read and written: the storage engine under store.py.

A writable store is an Icechunk repository (local directory, ``memory://NAME`` in this
process, ``s3://`` or ``gs://``): every write is one commit on branch ``main``, readers hold
a read-only session pinned to one snapshot, and chunks of a snapshot are never rewritten.
A published store is a plain, consolidated Zarr v3 hierarchy (any path or fsspec URL),
read-only. Both are read through :class:`CheckedStore`, which turns a missing, truncated or
corrupted chunk (every pvx chunk ends in a CRC32C) and unreadable metadata into a
``StoreError`` that names it.

Concurrent writers: on a local directory a writer holds an exclusive lock on a file inside
the repository (the OS releases it when the process dies) and later writers wait for it;
Icechunk's own storage for local directories cannot arbitrate concurrent commits. On object
storage Icechunk detects a concurrent commit (``ConflictError``) and pvx redoes the write
on the new snapshot, re-validating it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import fsspec
import fsspec.core
import google_crc32c
import icechunk
import zarr
import zarr.buffer
import zarr.storage

T = TypeVar("T")
BRANCH = "main"
LOCK_FILE = ".pvx-writer.lock"
CHECKSUM_FILE = "pvx-checksums.json"  # sha256 of every metadata file of a published store
CHUNK_SUM = "crc32c:"  # ... and, so prefixed, the CRC32C each of its chunks ends with
METADATA_KEYS = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
COMMIT_ATTEMPTS = 20

# Icechunk warns on every local repository that its storage cannot arbitrate concurrent
# commits; pvx's writer lock does that, so the warning would only mislead. A filter the
# user chose (ICECHUNK_LOG) is kept.
if "ICECHUNK_LOG" not in os.environ:
    icechunk.set_logs_filter("icechunk=error")

_MEMORY: dict[str, icechunk.Storage] = {}
_MEMORY_LOCKS: dict[str, threading.Lock] = {}


class StoreError(ValueError):
    """A store is missing, damaged, busy, or does not hold what was asked for."""


@dataclass(frozen=True)
class Location:
    """A store's address as the user gave it, and how to reach it."""

    text: str
    path: Path | None  # a local directory
    scheme: str  # "file", "memory", "s3", "gs", "http", ...
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, where: str | os.PathLike, storage_options: Mapping[str, Any]) -> Location:
        text = os.fspath(where)
        if "://" in text and not text.startswith("file://"):
            return cls(text, None, text.split("://", 1)[0], dict(storage_options))
        if storage_options:
            raise TypeError(f"storage options {sorted(storage_options)} only apply to URLs")
        return cls(text, Path(text.removeprefix("file://")), "file")

    def icechunk_storage(self) -> icechunk.Storage | None:
        """Icechunk storage at this location, or None where Icechunk cannot write."""
        if self.path is not None:
            return icechunk.local_filesystem_storage(str(self.path.absolute()))
        if self.scheme == "memory":
            return _MEMORY.setdefault(self.text, icechunk.in_memory_storage())
        bucket, _, prefix = self.text.split("://", 1)[1].partition("/")
        options = dict(self.storage_options)
        if "anon" in options:  # fsspec's spelling
            options["anonymous"] = options.pop("anon")
        try:
            if self.scheme == "s3":
                return icechunk.s3_storage(bucket=bucket, prefix=prefix, **options)
            if self.scheme in ("gs", "gcs"):
                return icechunk.gcs_storage(bucket=bucket, prefix=prefix, **options)
        except TypeError:
            return None  # fsspec-only options (profile=, token=...): a published store
        return None

    def zarr_store(self) -> zarr.abc.store.Store:
        """A read-only plain Zarr store at this location (published or format-1 stores)."""
        if self.path is not None:
            return zarr.storage.LocalStore(self.path, read_only=True)
        return zarr.storage.FsspecStore.from_url(
            self.text, storage_options=dict(self.storage_options) or None, read_only=True
        )


class CheckedStore(zarr.storage.WrapperStore):  # type: ignore[type-arg]
    """A read-only store whose damage is an error that names it, never fill values.

    pvx writes every chunk of every array (``write_empty_chunks``) and ends each with a
    CRC32C, so a chunk that is absent, unreadable or fails its checksum means damage.
    """

    def __init__(
        self,
        store: zarr.abc.store.Store,
        where: str,
        *,
        checksums: bool = True,
        metadata_sums: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(store)
        self._where = where
        self._checksums = checksums
        self._metadata_sums = metadata_sums  # sha256 of each metadata file (published)
        self._chunk_sums = _chunk_sums(metadata_sums)

    def _with_store(self, store: zarr.abc.store.Store) -> CheckedStore:
        return type(self)(
            store, self._where, checksums=self._checksums, metadata_sums=self._metadata_sums
        )

    def __reduce__(self) -> tuple[Any, ...]:  # dask.distributed ships arrays to workers
        state = {"_checksums": self._checksums, "_metadata_sums": self._metadata_sums}
        return (type(self), (self._store, self._where), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._checksums = state["_checksums"]
        self._metadata_sums = state["_metadata_sums"]
        self._chunk_sums = _chunk_sums(self._metadata_sums)

    def _advice(self) -> str:
        if isinstance(self._store, icechunk.IcechunkStore):
            # an array opened before a compaction reads the version it was opened at
            return (
                "if the store was compacted (pvx.store.compact) since this array was opened, "
                "its version is gone: load the store again; otherwise the store is damaged "
                "or its server is failing: retry, or restore the store from a copy"
            )
        return "the store is damaged or its server is failing: retry, or restore it from a copy"

    def _check_process(self) -> None:
        # Icechunk's runtime does not survive a fork: every access checks the process (see
        # _start_runtime) instead of hanging in a forked child holding a lazy array
        if isinstance(self._store, icechunk.IcechunkStore):
            _start_runtime()

    async def get_partial_values(self, prototype: Any, key_ranges: Any) -> Any:
        self._check_process()
        return await super().get_partial_values(prototype, key_ranges)

    async def exists(self, key: str) -> bool:
        self._check_process()
        return await super().exists(key)

    def list(self) -> Any:
        self._check_process()
        return super().list()

    def list_prefix(self, prefix: str) -> Any:
        self._check_process()
        return super().list_prefix(prefix)

    def list_dir(self, prefix: str) -> Any:
        self._check_process()
        return super().list_dir(prefix)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        self._check_process()
        metadata = key.rsplit("/", 1)[-1] in METADATA_KEYS
        try:
            value = await self._store.get(key, prototype, byte_range)
        except StoreError:
            raise  # said already (a writer's check of what it builds on)
        except Exception as err:
            raise StoreError(
                f"{self._where!r}: reading {_describe(key)} failed ({_first_line(err)}); "
                f"{self._advice()}"
            ) from None
        if value is None:
            if metadata:
                return None  # zarr probes for optional metadata documents
            raise StoreError(f"{self._where!r}: {_describe(key)} is missing; {self._advice()}")
        if metadata and key.endswith("zarr.json"):
            raw = value.to_bytes()
            if self._metadata_sums is not None and (
                self._metadata_sums.get(key) != hashlib.sha256(raw).hexdigest()
            ):
                raise StoreError(
                    f"{self._where!r}: metadata file {key!r} fails its checksum (in "
                    f"{CHECKSUM_FILE}); the store is damaged: publish it again"
                )
            try:
                json.loads(raw)
            except ValueError:
                raise StoreError(
                    f"{self._where!r}: metadata file {key!r} is not valid JSON; the store is "
                    "damaged: restore the file or the store from a copy"
                ) from None
        elif not metadata and self._checksums and byte_range is None:
            raw = value.as_numpy_array()  # a view: no copy of every chunk read
            stored = int.from_bytes(raw[-4:].tobytes(), "little") if len(raw) >= 4 else None
            if stored is None or google_crc32c.value(raw[:-4]) != stored:
                raise StoreError(
                    f"{self._where!r}: {_describe(key)} fails its checksum (truncated or "
                    "corrupted); the store is damaged: restore the store from a copy"
                )
            if self._chunk_sums and self._chunk_sums.get(key) != stored:
                raise StoreError(
                    f"{self._where!r}: {_describe(key)} is not the one this store was "
                    f"published with (not in {CHECKSUM_FILE}: a copy mixing two publishes?); "
                    "the store is damaged: copy or publish it again"
                )
        return value


# Icechunk's snapshot files carry no checksum of their own: a flipped bit there can read as
# other metadata (a variant's shape, an attribute's kind) with no error. Each commit records
# the sha256 of every node's metadata, noted as zarr writes it (no reads: appends stay
# fast), and a reader checks the version it opens against them.
METADATA_SUMS = "pvx_metadata_sha256"


def _metadata_sum(raw: bytes) -> str:
    """The sha256 of a ``zarr.json`` as parsed JSON, keys sorted: the same document gives
    the same sum however it is serialised."""
    text = json.dumps(json.loads(raw), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _damaged_metadata(where: str, snapshot: str, keys: list[str], *, writing: bool) -> StoreError:
    done = " nothing was written;" if writing else ""
    return StoreError(
        f"{where!r}: the metadata of version {snapshot} fails its checksum "
        f"({', '.join(map(repr, keys[:3]))}: a damaged snapshot file);{done} the store is "
        "damaged: restore it from a copy, or read an earlier version (pvx.store.history)"
    )


def _checked_sum(raw: bytes) -> str | None:
    """:func:`_metadata_sum`, or None for a document that is not JSON (damaged)."""
    try:
        return _metadata_sum(raw)
    except ValueError:
        return None


class _NotingStore(zarr.storage.WrapperStore):  # type: ignore[type-arg]
    """A writable session's store that notes the metadata documents zarr writes or
    deletes; anything else (e.g. ``.session``) is the session store's.

    With ``expected`` (the sums its version's commit recorded), each metadata document read
    from that version is checked against them, as readers check it: a writer that built on
    a damaged document would commit it again under a fresh sum, and readers would take it
    for sound from then on."""

    def __init__(
        self,
        store: zarr.abc.store.Store,
        expected: Mapping[str, str] | None = None,
        where: str = "",
        snapshot: str = "",
    ) -> None:
        super().__init__(store)
        self.written: dict[str, str] = {}
        self.deleted: list[str] = []  # keys and prefixes, in order
        self.expected, self.where, self.snapshot = expected, where, snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _with_store(self, store: zarr.abc.store.Store) -> _NotingStore:
        # e.g. zarr's read-only view: notes go to the same record, reads are checked alike
        copy = type(self)(store, self.expected, self.where, self.snapshot)
        copy.written, copy.deleted = self.written, self.deleted
        return copy

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        value = await self._store.get(key, prototype, byte_range)
        if (
            value is not None
            and byte_range is None
            and key.rsplit("/", 1)[-1] == "zarr.json"
            and key not in self.written
            and not any(key == gone or key.startswith(gone) for gone in self.deleted)
        ):
            found = _checked_sum(value.to_bytes())  # None: not JSON, whatever was recorded
            if found is not None and (self.expected is None or self.expected.get(key) == found):
                return value
            raise _damaged_metadata(self.where, self.snapshot, [key], writing=True)
        return value

    def _note(self, key: str, value: Any) -> None:
        if key.rsplit("/", 1)[-1] == "zarr.json":
            self.written[key] = _metadata_sum(value.to_bytes())

    async def set(self, key: str, value: Any) -> None:
        await self._store.set(key, value)
        self._note(key, value)

    async def set_if_not_exists(self, key: str, value: Any) -> None:
        if not await self._store.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)
        self.deleted.append(key)
        self.written.pop(key, None)

    async def delete_dir(self, prefix: str) -> None:
        await self._store.delete_dir(prefix)
        base = prefix.rstrip("/") + "/" if prefix else ""
        self.deleted.append(base)
        self.written = {k: v for k, v in self.written.items() if not k.startswith(base)}

    def sums(self, before: Mapping[str, str]) -> dict[str, str]:
        """The metadata sums after these writes, from those ``before`` them."""
        after = dict(before)
        for gone in self.deleted:
            after = {k: v for k, v in after.items() if not (k == gone or k.startswith(gone))}
        after.update(self.written)
        return after


async def _metadata_documents(store: zarr.abc.store.Store) -> dict[str, bytes]:
    """Every node's ``zarr.json``, by key: groups are walked a level at a time, arrays'
    chunks never listed."""
    documents, level = {}, [""]
    prototype = zarr.buffer.default_buffer_prototype()

    async def children(prefix: str) -> list[str]:
        return [f"{prefix}{c}/" async for c in store.list_dir(prefix) if c not in METADATA_KEYS]

    while level:
        keys = [f"{prefix}zarr.json" for prefix in level]
        values = await asyncio.gather(*(store.get(key, prototype) for key in keys))
        groups = []
        for prefix, key, value in zip(level, keys, values, strict=True):
            if value is None:
                continue
            documents[key] = raw = value.to_bytes()
            if json.loads(raw).get("node_type") == "group":
                groups.append(prefix)
        level = [c for found in await asyncio.gather(*map(children, groups)) for c in found]
    return documents


def metadata_sums(store: zarr.abc.store.Store) -> dict[str, str]:
    """The sha256 of every node's metadata in ``store``, as :class:`_NotingStore` notes
    them."""
    return {key: _metadata_sum(raw) for key, raw in run(_metadata_documents(store)).items()}


def _recorded_sums(repo: icechunk.Repository, snapshot: str) -> dict[str, str] | None:
    """The sums the commit of ``snapshot`` recorded; None for a version written before pvx
    recorded them. A record whose name or value is damaged is an error: taken for an older
    version's, it would leave the version unchecked and bless its metadata anew."""
    metadata = repo.lookup_snapshot(snapshot).metadata
    sums = metadata.get(METADATA_SUMS)
    if isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values()):
        return dict(sums)
    if METADATA_SUMS in metadata or difflib.get_close_matches(
        METADATA_SUMS, [str(key) for key in metadata], cutoff=0.8
    ):
        raise StoreError(
            f"the record of version {snapshot}'s metadata checksums is damaged; the store is "
            "damaged: restore it from a copy, or read an earlier version (pvx.store.history)"
        )
    return None


def _commit(
    repo: icechunk.Repository | None, session: icechunk.Session, noting: _NotingStore, message: str
) -> str:
    """Commit with the metadata sums: the parent version's (``noting.expected``, as recorded;
    made once for a version written before pvx recorded them) updated by what this session
    wrote."""
    before = {} if repo is None else noting.expected
    if before is None:
        before = metadata_sums(repo.readonly_session(snapshot_id=session.snapshot_id).store)
    return str(session.commit(message, metadata={METADATA_SUMS: noting.sums(before)}))


def _check_metadata(repo: icechunk.Repository, session: icechunk.Session, where: str) -> None:
    """Check a version's metadata against the sums its commit recorded (a version written
    before pvx recorded them is not checked)."""
    try:
        recorded = _recorded_sums(repo, session.snapshot_id)
        found = None if recorded is None else metadata_sums(CheckedStore(session.store, where))
    except (StoreError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # Icechunk's errors, and its panics (not Exceptions)
        raise StoreError(
            f"{where!r}: cannot read version {session.snapshot_id} ({_first_line(err)}); the "
            "store is damaged: restore it from a copy, or read an earlier version "
            "(pvx.store.history)"
        ) from None
    if found != recorded:
        assert found is not None and recorded is not None
        wrong = sorted(k for k in found.keys() | recorded.keys() if found.get(k) != recorded.get(k))
        raise _damaged_metadata(where, session.snapshot_id, wrong, writing=False)


def _chunk_sums(sums: Mapping[str, str] | None) -> dict[str, int]:
    """The CRC32C each chunk of a published store ends with, by key (none: not published,
    or published before pvx recorded them)."""
    return {
        key: int(value[len(CHUNK_SUM) :], 16)
        for key, value in (sums or {}).items()
        if isinstance(value, str) and value.startswith(CHUNK_SUM)
    }


def _describe(key: str) -> str:
    if "/c/" in f"/{key}" or key.endswith("/c"):
        array, _, index = f"/{key}".rpartition("/c")
        return f"chunk {index.strip('/').replace('/', '.') or '0'} of array {array.strip('/')!r}"
    return f"file {key!r}"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, in Jupyter too (whose thread
    already runs an event loop): zarr's async API lets one write go out as one batch.

    Coroutines run on one long-lived loop in a daemon thread, so zarr's codec threads (the
    loop's executor) are made once per process, not once per write."""
    loop = _writer_loop()
    if threading.current_thread() is _LOOP_THREAD[1]:  # called from a coroutine on it
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coroutine).result()
    future = asyncio.run_coroutine_threadsafe(_outcome(coroutine), loop)
    try:
        ok, value = future.result()
    except BaseException:  # Ctrl-C while waiting: stop the write too (nothing is committed)
        future.cancel()
        raise
    if not ok:
        raise value
    return value


async def _outcome(coroutine: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """The coroutine's result or whatever it raised, KeyboardInterrupt included: raised on
    the loop, that would end the loop's thread and leave the caller waiting forever."""
    try:
        return True, await coroutine
    except asyncio.CancelledError:
        raise
    except BaseException as err:
        return False, err


_LOOP_THREAD: list[Any] = [None, None, None]  # pid, thread, loop
_LOOP_LOCK = threading.Lock()


def _writer_loop() -> asyncio.AbstractEventLoop:
    with _LOOP_LOCK:
        pid, thread, loop = _LOOP_THREAD
        if pid != os.getpid() or not thread.is_alive():  # a forked child has no such thread
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="pvx-writer", daemon=True)
            thread.start()
            _LOOP_THREAD[:] = [os.getpid(), thread, loop]
        return loop


def _first_line(err: BaseException) -> str:
    lines = [line.strip(" |") for line in str(err).splitlines() if line.strip(" |x")]
    return (lines[0] if lines else type(err).__name__)[:300]


# --------------------------------------------------------------------------- reading


@dataclass
class ReadView:
    """One version of a store, opened for reading."""

    root: zarr.Group
    form: str  # "repository" or "published"
    snapshot: str | None  # the Icechunk snapshot read (or published from)
    where: str


# Local repositories opened for writing in this process, by (path, the refs folder's inode
# and change time: a repository deleted and made again is opened anew). Opening one costs
# ~0.4 ms, and its caches of (immutable) snapshots and manifests save ~1 ms per commit.
# Readers open afresh, so damage on disk is seen at once. A forked child never gets here.
_OPENED: dict[tuple[str, int, int], icechunk.Repository] = {}
_OPENED_LIMIT = 16


# The process whose Icechunk runtime has started. The runtime does not survive a fork: a
# child forked after that hangs on its first repository call, so pvx refuses instead.
_RUNTIME_PID: int | None = None


def _start_runtime() -> None:
    global _RUNTIME_PID
    if _RUNTIME_PID is not None and _RUNTIME_PID != os.getpid():
        raise StoreError(
            "this process was forked from one that had already opened a pvx store, and "
            "Icechunk (the store's engine) cannot run after a fork: any store access here "
            "would hang. Start workers with multiprocessing's 'spawn' or 'forkserver' "
            "method (multiprocessing.get_context('spawn')), or fork before opening stores"
        )
    _RUNTIME_PID = os.getpid()


def open_repository(location: Location, *, reuse: bool = False) -> icechunk.Repository | None:
    """The Icechunk repository at ``location``, or None if there is none; with ``reuse``,
    the one this process opened before (writers)."""
    refs = None
    if location.path is not None:
        with contextlib.suppress(OSError):
            refs = (location.path / "refs").stat()
        if refs is None or not stat.S_ISDIR(refs.st_mode):
            return None  # spares a round of Icechunk look-ups on plain directories
    storage = location.icechunk_storage()
    if storage is None:
        return None
    _start_runtime()
    key = None
    if reuse and refs is not None:
        key = (str(location.path.absolute()), refs.st_ino, refs.st_ctime_ns)
        if key in _OPENED:
            return _OPENED[key]
    try:
        if not icechunk.Repository.exists(storage):
            if refs is not None and (location.path / "snapshots").is_dir():
                # an Icechunk repository's layout without its branch: not a missing store
                raise StoreError(
                    f"the repository at {location.text!r} has no branch {BRANCH!r} (its "
                    f"refs/branch.{BRANCH}/ref.json is missing); it is damaged: restore it "
                    "from a copy"
                )
            return None
        repo = icechunk.Repository.open(storage)
    except icechunk.IcechunkError as err:
        raise StoreError(
            f"cannot open the repository at {location.text!r} ({_first_line(err)}); it is "
            "damaged: restore it from a copy"
        ) from None
    if key is not None:
        if len(_OPENED) >= _OPENED_LIMIT:
            _OPENED.pop(next(iter(_OPENED)))
        _OPENED[key] = repo
    return repo


def open_read(location: Location, version: str | None = None) -> ReadView:
    """Open the store at ``location`` read-only, pinned to ``version`` (default: latest)."""
    repo = open_repository(location)
    if repo is not None:
        try:
            session = (
                repo.readonly_session(branch=BRANCH)
                if version is None
                else repo.readonly_session(snapshot_id=version)
            )
        except icechunk.IcechunkError as err:
            what = "its latest version" if version is None else f"version {version!r}"
            raise StoreError(
                f"cannot read {what} of {location.text!r} ({_first_line(err)}); list versions "
                "with pvx.store.history(...)"
            ) from None
        _check_metadata(repo, session, location.text)
        store = CheckedStore(session.store, location.text, checksums=True)
        root = _open_group(store, location, consolidated=False)
        return ReadView(root, "repository", session.snapshot_id, location.text)
    if location.path is not None and not location.path.exists():
        raise StoreError(
            f"no store at {location.text!r}; check the path, or create one with pvx.write_variant"
        )
    if version is not None:
        raise StoreError(f"{location.text!r} is not a repository: it has no versions to pick")
    plain = location.zarr_store()
    sums = _read_checksums(location)
    store = CheckedStore(plain, location.text, checksums=True, metadata_sums=sums)
    root = _open_group(
        store, location, consolidated=None, listed=sums is not None and "zarr.json" in sums
    )
    info = root.attrs.get("pvx", {})
    if sums is None and isinstance(info, dict) and "published" in info:
        raise StoreError(
            f"{location.text!r}: {CHECKSUM_FILE} is missing, so its metadata cannot be "
            "checked; the store is damaged: publish it again"
        )
    published = info.get("published", {}) if isinstance(info, dict) else {}
    return ReadView(root, "published", published.get("snapshot"), location.text)


def _read_checksums(location: Location) -> dict[str, str] | None:
    """The published store's metadata checksums (read with fsspec's own loop: an fsspec
    store is bound to the event loop that first used it)."""
    try:
        if location.path is not None:
            path = location.path / CHECKSUM_FILE
            raw = path.read_bytes() if path.exists() else None
        else:
            fs, root = fsspec.core.url_to_fs(location.text, **location.storage_options)
            target = f"{root.rstrip('/')}/{CHECKSUM_FILE}"
            raw = fs.cat_file(target) if fs.exists(target) else None
    except TypeError as err:  # fsspec's file systems take their options as keywords
        options = sorted(location.storage_options)
        raise StoreError(
            f"{location.text!r}: the storage options {options} were refused "
            f"({_first_line(err)}); check their names (--storage-option KEY=VALUE)"
        ) from None
    except Exception as err:
        raise StoreError(
            f"{location.text!r}: reading {CHECKSUM_FILE} failed ({_first_line(err)}); retry"
        ) from None
    if raw is None:
        return None
    try:
        sums = json.loads(raw)
    except ValueError:
        sums = None
    if not isinstance(sums, dict):
        raise StoreError(
            f"{location.text!r}: {CHECKSUM_FILE} is not valid; the store is damaged: publish "
            "it again"
        )
    return sums


def write_checksums(location: Location, root: Path | None = None) -> None:
    """Record the sha256 of every metadata file of a finished published store (at ``root``
    when it is still being written elsewhere), and the CRC32C that ends each chunk: a chunk
    from another publish (a copy that mixes two) is intact on its own but not listed."""
    if location.path is not None or root is not None:
        base = root if root is not None else location.path
        assert base is not None
        paths = [p for p in base.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE]
        files = {p.relative_to(base).as_posix(): p for p in paths}
        metadata = {k: p.read_bytes() for k, p in files.items() if k.endswith("zarr.json")}
        tails = {k: _last_bytes(p) for k, p in files.items() if k not in metadata}
        write = (base / CHECKSUM_FILE).write_bytes
    else:
        fs, base_text = fsspec.core.url_to_fs(location.text, **location.storage_options)
        base_text = base_text.rstrip("/")
        found = {p[len(base_text) + 1 :]: p for p in fs.find(base_text)}
        found.pop(CHECKSUM_FILE, None)
        metadata = {k: fs.cat_file(p) for k, p in found.items() if k.endswith("zarr.json")}
        chunks = [k for k in found if k not in metadata]
        ends = fs.cat_ranges([found[k] for k in chunks], [-4] * len(chunks), [None] * len(chunks))
        tails = dict(zip(chunks, ends, strict=True))

        def write(data: bytes) -> None:
            fs.pipe_file(f"{base_text}/{CHECKSUM_FILE}", data)

    sums = {key: hashlib.sha256(raw).hexdigest() for key, raw in metadata.items()}
    for key, tail in tails.items():
        sums[key] = f"{CHUNK_SUM}{int.from_bytes(tail[-4:], 'little'):08x}"
    write(json.dumps(sums, indent=1, sort_keys=True).encode())


def _last_bytes(path: Path, n: int = 4) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - n))
        return f.read()


def _open_group(
    store: CheckedStore, location: Location, *, consolidated: bool | None, listed: bool = False
) -> Any:
    """The root group; ``listed``: the published checksums list its zarr.json, so its
    absence is damage, not a missing store."""
    try:
        return zarr.open_group(store, mode="r", use_consolidated=consolidated)
    except StoreError:
        raise
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        if listed:
            raise StoreError(
                f"{location.text!r}: its root zarr.json is missing, though {CHECKSUM_FILE} "
                "lists it; the store is damaged: publish it again"
            ) from None
        hint = (
            "; over HTTP pvx reads published stores: `pvx publish` the repository and serve "
            "that folder"
            if location.scheme in ("http", "https")
            else ""
        )
        raise StoreError(f"no pvx store at {location.text!r} (no Zarr group found){hint}") from None
    except (OSError, ValueError) as err:
        raise StoreError(f"cannot read store {location.text!r}: {_first_line(err)}") from None


# --------------------------------------------------------------------------- writing


def transact(
    location: Location,
    change: Callable[[icechunk.IcechunkStore], str],
    *,
    create: Callable[[zarr.Group], None] | None = None,
    wait: float = 300.0,
) -> str:
    """Apply ``change`` to the latest version and commit it; return the new snapshot id.

    ``change(store)`` writes through zarr and returns the commit message; it runs again from
    scratch if another writer committed first (object storage), so it must read what it
    depends on from ``root``. Nothing is visible until the commit. ``create(root)``
    initialises a new store's root group; without it a missing store is an error.
    """
    if location.icechunk_storage() is None:
        raise StoreError(
            f"{location.text!r} cannot be written: pvx writes to local directories, "
            "memory://, s3:// and gs:// repositories; publish from one of those"
        )
    repo = open_repository(location, reuse=True)
    if repo is None:
        if create is None:
            raise StoreError(f"no store at {location.text!r}; create it with write_variant")
        _create(location, create)
    with _writer_lock(location, wait):
        # opened before the lock is still exact: sessions read the branch when they start
        repo = repo or open_repository(location, reuse=True)
        assert repo is not None
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                session = repo.writable_session(BRANCH)
                recorded = _recorded_sums(repo, session.snapshot_id)
            except icechunk.IcechunkError as err:
                raise StoreError(
                    f"cannot write to {location.text!r}: its latest version cannot be read "
                    f"({_first_line(err)}); it is damaged: restore it from a copy"
                ) from None
            noting = _NotingStore(session.store, recorded, location.text, session.snapshot_id)
            message = change(noting)
            try:
                return _commit(repo, session, noting, message)
            except icechunk.ConflictError:
                time.sleep(min(0.01 * 2**attempt, 1.0))
    raise StoreError(
        f"{location.text!r}: other writers committed {COMMIT_ATTEMPTS} times while this write "
        "was retried; nothing was written, try again"
    )


def compact(location: Location, older_than: datetime, *, wait: float = 300.0) -> int:
    """Forget versions written before ``older_than`` (the latest always stays) and delete
    the files only they used; return the bytes freed."""
    repo = open_repository(location)
    if repo is None:
        raise StoreError(f"{location.text!r} is not a pvx repository; nothing to compact")
    with _writer_lock(location, wait):
        try:
            repo.expire_snapshots(older_than)
            summary = repo.garbage_collect(older_than)
        except icechunk.IcechunkError as err:
            raise StoreError(
                f"cannot compact {location.text!r} ({_first_line(err)}); it is damaged: "
                "restore it from a copy"
            ) from None
    return int(summary.bytes_deleted)


def _create(location: Location, create: Callable[[zarr.Group], None]) -> None:
    """Create a repository whose first commit is an empty pvx store.

    A local one is built beside its path and renamed into place, so a store either does not
    exist or is a valid one, even if two writers create it at once.
    """
    _start_runtime()
    if location.path is None:
        repo = icechunk.Repository.create(location.icechunk_storage())
        session = repo.writable_session(BRANCH)
        noting = _NotingStore(session.store)
        create(zarr.open_group(noting, mode="w", zarr_format=3))
        _commit(None, session, noting, "create pvx store")
        return
    target = location.path.absolute()
    if (target / "refs").is_dir():
        return  # another writer created it meanwhile
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StoreError(f"{location.text!r} exists and is not a pvx store; pick a new path")
    staging = target.with_name(f".{target.name}.creating-{uuid.uuid4().hex[:8]}")
    try:
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(staging)))
        session = repo.writable_session(BRANCH)
        noting = _NotingStore(session.store)
        create(zarr.open_group(noting, mode="w", zarr_format=3))
        _commit(None, session, noting, "create pvx store")
        (staging / LOCK_FILE).touch()
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()  # an empty directory the user made for it
        os.rename(staging, target)
    except OSError:
        if not (target / "refs").is_dir():  # nobody else created it either
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _writer_lock(location: Location, wait: float) -> Iterator[None]:
    """Exclusive right to commit to a local (or in-process memory) store; waits up to
    ``wait`` seconds. Object stores need none: Icechunk detects concurrent commits."""
    if location.scheme == "memory":
        lock = _MEMORY_LOCKS.setdefault(location.text, threading.Lock())
        if not lock.acquire(timeout=wait):
            raise StoreError(f"{location.text!r} is busy: another writer held it for {wait} s")
        try:
            yield
        finally:
            lock.release()
        return
    if location.path is None:
        yield
        return
    lock_path = location.path / LOCK_FILE
    lock_path.touch(exist_ok=True)  # repositories made by other tools have none
    with open(lock_path, "r+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = handle.read().strip() or "another process"
                    raise StoreError(
                        f"{location.text!r} is busy: {holder} has been writing to it for over "
                        f"{wait:.0f} s; wait for it to finish (or stop it) and try again"
                    ) from None
                time.sleep(0.005)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
