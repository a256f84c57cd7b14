"""Store guarantees: pinned readers, refused names leave no trace, damage is a named error,
plain xarray reads both forms, publishing and migrating keep every value."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from pathlib import Path

import icechunk
import numpy as np
import pytest
import xarray as xr
import zarr

import pvx
import pvx._repository
from pvx import _legacy

LAYERS = [0, 1, 2]


def vectors(numbers, *, variant="v", hidden=8, **kw):
    ramp = np.arange(hidden, dtype="f4")
    data = np.stack([np.full((3, hidden), float(i), "f4") + ramp for i in numbers])
    return pvx.persona_vectors(
        data,
        ids=[f"p{i}" for i in numbers],
        names=[f"Persona {i}" for i in numbers],
        layers=LAYERS,
        attributes={"n": [float(i) for i in numbers], "group": ["ab"[i % 2] for i in numbers]},
        sample_ids=[[f"s{i}"] for i in numbers],
        model="org/m",
        mask_strategy="mean",
        variant=variant,
        **kw,
    )


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "s.zarr"
    pvx.write_variant(path, vectors(range(3)), persona_block=4)
    pvx.write_variant(path, vectors(range(5), variant="w"), persona_block=4)
    return path


def digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != pvx._repository.LOCK_FILE
    }


def test_lazy_arrays_keep_their_version_after_many_appends(store):
    old = pvx.load(store, "v")
    old_pair = old.isel(persona=[0, 1])
    expected = old.values.copy()
    for i in range(3, 15):  # rewrites the last block and moves past it, 12 times
        pvx.append_personas(store, vectors([i]))
    pvx.set_attribute(store, "n", {"p0": 99.0})
    np.testing.assert_array_equal(old.values, expected)
    np.testing.assert_array_equal(old_pair.values, expected[:2])
    new = pvx.load(store, "v")
    assert new.sizes["persona"] == 15 and float(new["n"][0]) == 99.0
    np.testing.assert_array_equal(new.values[:3], expected)


def test_versions_can_be_reopened(store):
    first = pvx.store.history(store).snapshot[0]
    pvx.append_personas(store, vectors([7]))
    assert pvx.load(store, "v").sizes["persona"] == 4
    assert pvx.load(store, "v", version=first).sizes["persona"] == 3
    assert pvx.open_store(store, version=first).attrs["snapshot"] == first


def test_chunks_stay_whole_blocks_however_written(tmp_path):
    one_by_one = tmp_path / "a.zarr"
    pvx.write_variant(one_by_one, vectors([0]), persona_block=4)
    for i in range(1, 10):
        pvx.append_personas(one_by_one, vectors([i]))
    da = pvx.load(one_by_one, "v", include_baseline=True)
    assert da.encoding["chunks"] == (4, 1, 8)  # stored: blocks of 4 personas, one layer
    assert da.data.chunks == ((10,), (1, 1, 1), (8,))  # read: whole blocks of one layer
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(one_by_one)))
    stored = zarr.open_array(repo.readonly_session("main").store, path="org--m/mean/v/vectors")
    assert stored.nchunks_initialized == stored.nchunks == 3 * 3


def test_set_attribute_commits_every_variant_or_none(store, monkeypatch):
    before = digest(store)
    with pytest.raises(pvx.StoreError, match="ids"):
        pvx.set_attribute(store, "mood", {"p0": "calm", "nobody": "x"})
    assert digest(store) == before
    pvx.set_attribute(store, "mood", {"p0": "calm", "p4": "tense"})
    assert pvx.load(store, "v")["mood"].values[0] == "calm"
    assert pvx.load(store, "w")["mood"].values[4] == "tense"
    assert len(pvx.store.history(store)) == 5  # init, create, two variants, one attribute


BAD_ATTRIBUTES = ["a/b", "vectors", "id", "_tail1", ".zattrs", "", "bell\x07", "sample_ids"]


@pytest.mark.parametrize("name", BAD_ATTRIBUTES)
def test_bad_attribute_names_are_refused_leaving_the_store_untouched(store, name):
    before = digest(store)
    with pytest.raises(ValueError, match=r"attribute name .* try '"):
        pvx.set_attribute(store, name, {"p0": "x"})
    with pytest.raises(ValueError, match=r"attribute name .* try '"):
        pvx.append_personas(
            store, vectors([9]).assign_coords({name: ("persona", ["x"], {"kind": "categorical"})})
        )
    assert digest(store) == before
    assert pvx.load(store, "w").sizes["persona"] == 5  # still opens


@pytest.mark.parametrize(
    "kw", [{"variant": "a/b"}, {"variant": ""}, {"mask_strategy": "_x"}, {"variant": "v\n"}]
)
def test_bad_variant_and_mask_names_are_refused(store, kw):
    before = digest(store)
    with pytest.raises(ValueError, match=r"must be a plain name .* try '|which variant"):
        pvx.write_variant(store, vectors([9]), **kw)
    assert digest(store) == before


def test_odd_but_valid_attribute_names_round_trip(store):
    pvx.set_attribute(store, "home region", {"p0": "north"})
    pvx.set_attribute(store, "âge ✓", {"p1": 3.0})
    da = pvx.load(store, "v")
    assert da["home region"].values[0] == "north" and float(da["âge ✓"][1]) == 3.0
    pvx.append_personas(store, vectors([3]))
    assert pvx.load(store, "v").sizes["persona"] == 4


def test_plain_xarray_reads_repository_and_published_store(store, tmp_path):
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    tree = xr.open_datatree(repo.readonly_session("main").store, engine="zarr", consolidated=False)
    ds = tree["org--m/mean/v"].to_dataset()
    np.testing.assert_array_equal(ds["vectors"].values, pvx.load(store, "v").values)
    assert {"id", "name", "n", "group", "layer"} <= set(ds.coords)
    pvx.store.publish(store, tmp_path / "pub.zarr")
    published = xr.open_datatree(tmp_path / "pub.zarr", engine="zarr")
    xr.testing.assert_identical(
        published["org--m/mean/w"].to_dataset(), tree["org--m/mean/w"].to_dataset()
    )


def test_publish_round_trips_and_is_read_only(store, tmp_path):
    out = tmp_path / "pub.zarr"
    snapshot = pvx.store.publish(store, out)
    tree = pvx.open_store(out)
    assert tree.attrs["form"] == "published" and tree.attrs["snapshot"] == snapshot
    for variant in ("v", "w"):
        xr.testing.assert_identical(
            pvx.load(out, variant).compute(), pvx.load(store, variant).compute()
        )
    with pytest.raises(pvx.StoreError, match=r"published .*read-only"):
        pvx.append_personas(out, vectors([9]))
    with pytest.raises(pvx.StoreError, match="exists"):
        pvx.store.publish(store, out)


def test_concurrent_commits_without_a_lock_are_rebased(monkeypatch):
    """Object stores have no writer lock: Icechunk's conflict detection and pvx's retry
    carry every write (an in-memory repository stands in for S3 here)."""
    import contextlib

    monkeypatch.setattr(pvx._repository, "_writer_lock", lambda *a: contextlib.nullcontext())
    url = "memory://pvx-conflicts/s.zarr"
    pvx.write_variant(url, vectors([0]), persona_block=4)
    conflicts = []
    original = icechunk.Session.commit

    def counting(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except icechunk.ConflictError:
            conflicts.append(1)
            raise

    monkeypatch.setattr(icechunk.Session, "commit", counting)
    threads = [
        threading.Thread(
            target=lambda k=k: [pvx.append_personas(url, vectors([i])) for i in range(k, 41, 4)]
        )
        for k in (1, 2, 3, 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    da = pvx.load(url, "v").compute()
    assert sorted(da["id"].values.tolist()) == sorted(f"p{i}" for i in range(41))
    numbers = np.array([float(i[1:]) for i in da["id"].values])
    np.testing.assert_array_equal(da.values[:, 0, 0], numbers)
    assert conflicts  # the retry path really ran


def test_a_busy_store_is_a_clear_error_after_the_wait(store):
    import fcntl

    with open(store / pvx._repository.LOCK_FILE, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        location = pvx._repository.Location.parse(store, {})
        with pytest.raises(pvx.StoreError, match="is busy"):
            pvx._repository.transact(location, lambda s: "x", wait=0.2)


# --------------------------------------------------------------------------- damage


def read_everything(path):
    for variant in ("v", "w"):
        pvx.load(path, variant, include_baseline=True).compute()


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_every_damaged_chunk_is_a_named_error(tmp_path, damage):
    """Chunk files of a repository (Icechunk keeps chunks under 512 bytes inside its
    manifests, whose damage is tested below)."""
    store = tmp_path / "wide.zarr"
    rng = np.random.default_rng(0)
    for variant, n in (("v", 6), ("w", 5)):
        noisy = vectors(range(n), hidden=64, variant=variant)
        noisy = noisy.copy(data=rng.normal(size=noisy.shape).astype("f4"))
        pvx.write_variant(store, noisy, persona_block=4)
    files = sorted((store / "chunks").iterdir())
    assert len(files) >= 8  # partial blocks of one persona are inlined
    for path in files:
        original = path.read_bytes()
        if damage == "delete":
            path.unlink()
        elif damage == "truncate":
            path.write_bytes(original[: len(original) // 2])
        else:
            flipped = bytearray(original)
            flipped[len(flipped) // 2] ^= 0x10
            path.write_bytes(bytes(flipped))
        with pytest.raises(pvx.StoreError, match=r"chunk [\d.]+ of array '[^']+'.*restore"):
            read_everything(store)
        path.write_bytes(original)
    read_everything(store)


@pytest.mark.parametrize("where", ["refs", "snapshots", "manifests"])
def test_damaged_repository_files_are_named_errors(store, where):
    for path in sorted((store / where).rglob("*")):
        if path.is_file():
            path.write_bytes(b"garbage")
    with pytest.raises(pvx.StoreError, match=r"damaged|cannot read"):
        read_everything(store)


def published(store, tmp_path) -> Path:
    out = tmp_path / "pub.zarr"
    pvx.store.publish(store, out)
    return out


@pytest.mark.parametrize("array", ["vectors", "id", "name", "layer", "n", "group", "sample_ids"])
def test_published_missing_or_truncated_chunks_are_named_errors(store, tmp_path, array):
    out = published(store, tmp_path)
    chunk = sorted((out / "org--m/mean/w" / array / "c").rglob("*"))[-1]
    original = chunk.read_bytes()
    chunk.write_bytes(original[:-2])
    with pytest.raises(pvx.StoreError, match=rf"array 'org--m/mean/w/{array}' fails its checksum"):
        read_everything(out)
    chunk.unlink()
    with pytest.raises(pvx.StoreError, match=rf"array 'org--m/mean/w/{array}' is missing"):
        read_everything(out)


def test_garbage_metadata_is_a_named_error(store, tmp_path):
    out = published(store, tmp_path)
    (out / "zarr.json").write_text("{not json")
    with pytest.raises(pvx.StoreError, match=r"metadata file 'zarr.json' fails its checksum"):
        pvx.open_store(out)


# --------------------------------------------------------------------------- format 1


def test_format_1_stores_migrate_with_every_value(tmp_path):
    old = Path(__file__).parent / "data" / "format1.zarr"
    with pytest.raises(pvx.StoreError, match="pvx migrate"):
        pvx.open_store(old)
    new = tmp_path / "new.zarr"
    assert pvx.store.migrate(old, new) == ["org--m/mean/v"]
    ((_, legacy),) = _legacy.read_variants(old)
    legacy.attrs.pop("persona_block")
    xr.testing.assert_identical(
        pvx.load(new, "v", include_baseline=True).compute(), legacy.compute()
    )
    assert pvx.load(new, "v").encoding["chunks"] == (4, 1, 8)
    shutil.rmtree(new)
    with pytest.raises(pvx.StoreError, match="no store"):
        pvx.store.migrate(tmp_path / "nothing", new)


def test_format_1_fixture_is_what_pvx_0_1_wrote():
    root = zarr.open_group(Path(__file__).parent / "data" / "format1.zarr", mode="r")
    assert root.attrs["pvx"]["format_version"] == 1


def test_compact_frees_old_versions_and_keeps_the_latest(store):
    for i in range(3, 30):
        pvx.append_personas(store, vectors([i]))
    before_size, expected = pvx.store.size_on_disk(store), pvx.load(store, "v").compute()
    assert len(pvx.store.history(store)) > 30
    from datetime import timedelta

    assert pvx.store.compact(store, keep=timedelta(0)) > 0
    assert pvx.store.size_on_disk(store) < before_size
    assert len(pvx.store.history(store)) < 5
    xr.testing.assert_identical(pvx.load(store, "v").compute(), expected)
    pvx.append_personas(store, vectors([30]))


def test_compaction_and_damage_in_the_history_are_named(store, tmp_path, capsys):
    """From a review: a reader whose version was compacted away was told the store is
    damaged; a damaged history was an Icechunk traceback; --keep-days inf a crash."""
    from datetime import timedelta

    from pvx.cli import main

    lazy = pvx.load(store, "v")
    pvx.append_personas(store, vectors([40]))
    pvx.store.compact(store, keep=timedelta(0))
    with pytest.raises(pvx.StoreError, match=r"if the store was compacted .* load the store again"):
        lazy.load()
    for bad in ("inf", "-1", "nan"):
        assert main(["compact", str(store), "--keep-days", bad]) != 0
        assert "--keep-days takes a number of days from 0" in capsys.readouterr().err
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(store, damaged)
    (damaged / "snapshots" / "1CECHNKREP0F1RSTCMT0").unlink()  # the first, an ancestor
    with pytest.raises(pvx.StoreError, match="damaged"):
        pvx.store.history(damaged)


# --------------------------------------------------------------------------- review findings


def test_fill_valued_chunks_are_stored(tmp_path):
    """A layer labelled 0 and an attribute missing everywhere are chunks equal to the fill
    value: they must be written, or reading them would be taken for damage."""
    path = tmp_path / "s.zarr"
    pvx.write_variant(path, vectors([0, 1]).isel(layer=[0]))
    pvx.write_variant(path, vectors([5, 6], variant="w").isel(layer=[0]))
    pvx.set_attribute(path, "tag", {"p0": "x"})  # none of w's personas
    pvx.set_attribute(path, "empty", {}, kind="numeric")
    assert pvx.load(path, "v")["layer"].values.tolist() == [0]
    assert pvx.load(path, "w")["tag"].isnull().all()
    assert pvx.load(path, "w")["tag"].attrs["kind"] == "categorical"
    assert pvx.load(path, "v")["empty"].attrs["kind"] == "numeric"
    pvx.store.publish(path, tmp_path / "pub.zarr")
    assert pvx.load(tmp_path / "pub.zarr", "w").sizes["persona"] == 2


def test_set_attribute_infers_one_kind_for_every_variant(store):
    pvx.set_attribute(store, "score", {"p0": 1.5})  # only in v... and w has p0 too
    pvx.set_attribute(store, "score2", {"p4": 2.0})  # p4 is only in w
    assert pvx.load(store, "v")["score2"].attrs["kind"] == "numeric"
    pvx.append_personas(
        store, vectors([7]).assign_coords(score2=("persona", [3.0], {"kind": "numeric"}))
    )


@pytest.mark.parametrize(
    "ids, message",
    [(["p0", "p0", "p1"], "repeated"), ([], "is empty"), (["p1", "p0", "p1"], "repeated")],
)
def test_id_selection_refuses_repeats_and_nothing(store, ids, message):
    with pytest.raises(pvx.StoreError, match=message):
        pvx.load(store, "v", ids=ids)
    got = pvx.load(store, "v", ids=["p2", "p0"])
    assert got["id"].values.tolist() == ["p2", "p0"]
    np.testing.assert_array_equal(got.values[:, 0, 0], [2.0, 0.0])


@pytest.mark.parametrize(
    "kw", [{"variant": "zarr.json"}, {"mask_strategy": "zarr.json"}, {"variant": "v" * 300}]
)
def test_names_that_would_break_publishing_are_refused(store, kw):
    before = digest(store)
    with pytest.raises(ValueError, match="plain name of at most"):
        pvx.write_variant(store, vectors([9]), **kw)
    with pytest.raises(ValueError, match="attribute name"):
        pvx.set_attribute(store, "x" * 300, {"p0": 1.0})
    assert digest(store) == before


def test_published_metadata_is_checksummed(store, tmp_path):
    import json

    out = published(store, tmp_path)
    doc = json.loads((out / "zarr.json").read_text())
    doc["consolidated_metadata"]["metadata"]["org--m/mean/v/vectors"]["shape"][2] = 7
    (out / "zarr.json").write_text(json.dumps(doc, indent=2))  # valid JSON, wrong shape
    with pytest.raises(pvx.StoreError, match=r"'zarr\.json' fails its checksum"):
        pvx.load(out, "v")
    (out / "pvx-checksums.json").unlink()
    with pytest.raises(pvx.StoreError, match=r"pvx-checksums\.json is missing"):
        pvx.open_store(out)


def test_load_refuses_a_version_for_an_opened_tree(store):
    with pytest.raises(TypeError, match="already pinned"):
        pvx.load(pvx.open_store(store), "v", version="ABC")


def test_empty_writes_are_refused(store):
    before = digest(store)
    with pytest.raises(ValueError, match="got no personas"):
        pvx.append_personas(store, vectors([9]).isel(persona=slice(0, 0)))
    with pytest.raises(ValueError, match="got no personas"):
        pvx.write_variant(store, vectors([9], variant="z").isel(persona=slice(0, 0)))
    assert digest(store) == before


def test_a_published_copy_mixing_two_publishes_is_refused(store, tmp_path):
    """Each chunk is intact on its own; the checksums file lists the CRC32C of the chunks
    published together, so one from another publish (an interrupted sync) is refused."""
    first = tmp_path / "first.zarr"
    pvx.store.publish(store, first)
    pvx.append_personas(store, vectors([3]))  # rewrites v's first persona block
    second = tmp_path / "second.zarr"
    pvx.store.publish(store, second)
    key = "org--m/mean/v/vectors/c/0/1/0"
    assert (first / key).read_bytes() != (second / key).read_bytes()
    (first / key).write_bytes((second / key).read_bytes())
    with pytest.raises(pvx.StoreError, match=r"chunk 0\.1\.0 of array .*vectors.* not the one"):
        pvx.load(first, "v").compute()


def test_publish_refuses_http_and_clears_abandoned_copies(store, tmp_path):
    import subprocess
    import sys

    with pytest.raises(pvx.StoreError, match="HTTP servers are read-only"):
        pvx.store.publish(store, "http://127.0.0.1:9/out.zarr")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    host = socket.gethostname()
    abandoned = tmp_path / f".out.zarr.publishing-{host}-{dead}-0123abcd"
    (abandoned / "org--m").mkdir(parents=True)
    kept = [
        tmp_path / f".out.zarr.publishing-{host}-{os.getpid()}-0123abcd",  # alive
        tmp_path / f".out.zarr.publishing-other-host-{dead}-0123abcd",  # cannot be checked
        tmp_path / ".out.zarr.publishing-01234567",  # an older pvx's: no pid
    ]
    for path in kept:
        path.mkdir()
    pvx.store.publish(store, tmp_path / "out.zarr")
    assert not abandoned.exists() and all(path.exists() for path in kept)
    with pytest.raises(pvx.StoreError, match="HTTP servers are read-only"):
        pvx.store.publish(store, "HTTP://127.0.0.1:9/out.zarr")


def test_publish_into_the_store_itself_is_refused(store):
    inside = Path(store) / "published"
    with pytest.raises(pvx.StoreError, match="into a folder inside it"):
        pvx.store.publish(store, inside)
    assert not inside.exists() and not list(Path(store).glob(".published*"))


def test_a_published_store_without_its_root_metadata_is_damaged(store, tmp_path):
    out = tmp_path / "pub.zarr"
    pvx.store.publish(store, out)
    (out / "zarr.json").unlink()
    with pytest.raises(pvx.StoreError, match=r"root zarr\.json is missing.*damaged"):
        pvx.open_store(out)


def test_metadata_that_differs_from_its_commits_sums_is_damage(store):
    # Icechunk's snapshot files have no checksum: a flipped bit there could read as other
    # metadata. Commit, outside pvx, a version whose metadata differs from the sums its
    # commit records (as a damaged snapshot would read), then read it.
    pvx.set_attribute(store, "mood", {"p1": "calm"})
    before = pvx.load(store, "v").compute()
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    recorded = repo.lookup_snapshot(repo.lookup_branch("main")).metadata
    session = repo.writable_session("main")
    zarr.open_group(session.store, path="org--m/mean/v")["mood"].attrs["kind"] = "numeric"
    session.commit("damage", metadata=recorded)
    with pytest.raises(pvx.StoreError, match=r"'org--m/mean/v/mood/zarr.json': a damaged"):
        pvx.load(store, "v")
    # the version before still reads, and is what it was
    earlier = pvx.store.history(store)["snapshot"].iloc[1]
    xr.testing.assert_identical(pvx.load(store, "v", version=earlier).compute(), before)
    # writers that read the damaged document refuse too: committing it again would record
    # a fresh sum for it, and readers would take the damage for sound (from a review)
    files = digest(store)
    for write in (
        lambda: pvx.append_personas(store, vectors([7])),
        lambda: pvx.set_attribute(store, "mood", {"p2": "calm"}),
    ):
        with pytest.raises(pvx.StoreError, match=r"mood/zarr.json': a damaged"):
            write()
    assert digest(store) == files


def test_writers_refuse_to_build_on_damaged_metadata(store):
    # an append rewrites the vectors' metadata (its shape): built on a damaged document, it
    # would commit the damage under a fresh sum, which readers then take for sound
    pvx.append_personas(store, vectors([5]))  # this process's appends know the variant
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    recorded = repo.lookup_snapshot(repo.lookup_branch("main")).metadata
    session = repo.writable_session("main")
    zarr.open_group(session.store, path="org--m/mean/v")["vectors"].attrs["coordinates"] = "id"
    session.commit("damage", metadata=recorded)
    pvx._store_write.APPEND_STATES.clear()  # as a new process finds the store
    files = digest(store)
    with pytest.raises(pvx.StoreError, match=r"vectors/zarr.json': a damaged.*nothing was"):
        pvx.append_personas(store, vectors([7]))
    assert digest(store) == files
    with pytest.raises(pvx.StoreError, match=r"vectors/zarr.json': a damaged"):
        pvx.load(store, "v")


def test_a_damaged_record_of_the_checksums_is_damage(store):
    # a flipped bit in the record's name would otherwise read as a version written before
    # pvx recorded sums: unchecked by readers, its metadata blessed anew by the next writer
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    recorded = dict(repo.lookup_snapshot(repo.lookup_branch("main")).metadata)
    sums = recorded.pop(pvx._repository.METADATA_SUMS)
    session = repo.writable_session("main")
    zarr.open_group(session.store, path="org--m/mean/v").attrs["damage"] = 1
    session.commit("damage", metadata={**recorded, "pvx_metaata_tsha256": sums})
    files = digest(store)
    with pytest.raises(pvx.StoreError, match="metadata checksums is damaged"):
        pvx.load(store, "v")
    with pytest.raises(pvx.StoreError, match="metadata checksums is damaged"):
        pvx.append_personas(store, vectors([7]))
    assert digest(store) == files


def test_a_repository_without_its_branch_is_damaged_not_missing(store):
    ref = store / "refs" / "branch.main" / "ref.json"
    kept = ref.read_bytes()
    ref.unlink()
    for call in (
        lambda: pvx.load(store, "v"),
        lambda: pvx.append_personas(store, vectors([7])),
        lambda: pvx.write_variant(store, vectors([7], variant="x")),
    ):
        # (a writer that opened the repository before: Icechunk's "ref not found")
        with pytest.raises(pvx.StoreError, match=r"(has no branch 'main'|ref not found).*damag"):
            call()
    # a branch naming a version that is not there
    ref.write_bytes(kept.replace(kept.split(b'"')[3], b"0" * 20))
    for call in (
        lambda: pvx.append_personas(store, vectors([7])),
        lambda: pvx.write_variant(store, vectors([7], variant="x")),
    ):
        with pytest.raises(pvx.StoreError, match=r"latest version cannot be read .*damaged"):
            call()


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_an_append_onto_a_damaged_tail_is_a_named_error(tmp_path, damage):
    store = tmp_path / "s.zarr"
    pvx.write_variant(store, vectors(range(3), hidden=512), persona_block=4)  # chunks in files
    for chunk in (store / "chunks").iterdir():
        if damage == "delete":
            chunk.unlink()
        else:
            raw = bytearray(chunk.read_bytes())
            raw[len(raw) // 2] ^= 0x10
            chunk.write_bytes(bytes(raw))
    before = digest(store)
    named = r"chunk [\d.]+ of array 'org--m/mean/v/vectors'.*damaged"
    with pytest.raises(pvx.StoreError, match=named):
        pvx.append_personas(store, vectors([7], hidden=512))
    assert digest(store) == before
