"""The Zarr store: round trips, label-aligned loading, validated and append-only writes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import os
import shutil
import signal
import warnings
from collections.abc import Callable

import dask.array
import icechunk
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr.storage
from conftest import count_reads

import pvx
from pvx import _store_write
from pvx.store import size_on_disk

MODEL = "org/model-7b"
MASK = "answer_mean"
LAYERS = [3, 5, 7]
HIDDEN = 6


def vectors_for(ids, *, variant="biography", layers=LAYERS, dtype="float32", seed=None, **kw):
    """Deterministic vectors per id (so any persona can be checked on its own)."""
    data = np.stack([_persona_data(i, len(layers), seed) for i in ids]).astype(dtype)
    return pvx.persona_vectors(
        data,
        ids=ids,
        names=[f"Name of {i}" for i in ids],
        layers=layers,
        model=MODEL,
        mask_strategy=MASK,
        variant=variant,
        **kw,
    )


def _persona_data(persona_id, n_layer, seed=None):
    digest = hashlib.sha256(f"{persona_id}/{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return rng.normal(size=(n_layer, HIDDEN))


def with_attributes(ids, **kw):
    n = len(ids)
    attributes = {
        "age": [20.0 + i for i in range(n)],
        "education": [["high school", "bachelor", "phd"][i % 3] for i in range(n)],
        "region": [["north", "south"][i % 2] for i in range(n)],
    }
    return vectors_for(
        ids,
        attributes=attributes,
        orders={"education": ["high school", "bachelor", "phd"]},
        sample_ids=[[f"{i}-s1", f"{i}-s2"] for i in ids],
        **kw,
    )


@pytest.fixture
def store(tmp_path):
    return tmp_path / "s.zarr"


def ids_of(n, prefix="p"):
    return [f"{prefix}{i}" for i in range(n)]


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("n", [5, 16, 37])  # below, at and above a persona block
def test_round_trip_is_exact(store, dtype, n):
    da = with_attributes([*ids_of(n - 1), pvx.BASELINE_ID], dtype=dtype)
    da["age"][-1] = np.nan
    da["region"][-1] = np.nan
    pvx.write_variant(store, da, persona_block=16)
    got = pvx.load(store, "biography", include_baseline=True)
    assert isinstance(got.data, dask.array.Array)
    assert got.dtype == dtype
    xr.testing.assert_identical(got.compute(), da)
    assert got.attrs == {"model": MODEL, "mask_strategy": MASK}
    assert got["education"].attrs == {
        "kind": "ordinal",
        "order": ["high school", "bachelor", "phd"],
    }
    assert got["age"].attrs == {"kind": "numeric"}
    assert got["region"].attrs == {"kind": "categorical"}
    assert got["sample_ids"].values[0] == ("p0-s1", "p0-s2")
    assert sorted(got.indexes) == ["id", "layer"]


def test_ids_are_data_not_file_names(store):
    odd = ["a/b", "../x", "ü ñ", "", "zarr.json", "c/0"]
    pvx.write_variant(store, vectors_for(odd))
    assert pvx.persona_ids(store, "biography") == odd
    np.testing.assert_array_equal(
        pvx.load(store, "biography").sel(id="a/b").values, vectors_for(["a/b"])[0].values
    )


def test_open_store_is_a_lazy_tree(store):
    pvx.write_variant(store, with_attributes(ids_of(4)))
    pvx.write_variant(store, with_attributes(ids_of(4), variant="templated"))
    tree = pvx.open_store(store)
    assert isinstance(tree, xr.DataTree)
    model_dir = next(iter(tree.children))
    assert "/" not in model_dir and tree[model_dir].attrs["model"] == MODEL
    node = tree[f"{model_dir}/{MASK}/templated"]
    assert isinstance(node["vectors"].data, dask.array.Array)
    assert node["vectors"].dims == ("persona", "layer", "hidden")


def test_listing_helpers(store):
    pvx.write_variant(store, vectors_for(ids_of(3)))
    pvx.write_variant(store, vectors_for(ids_of(2), variant="templated"))
    pvx.write_variant(store, vectors_for(ids_of(2)), mask_strategy="first_token")
    pvx.write_variant(store, vectors_for(ids_of(2)), model="other/model")
    assert sorted(pvx.models(store)) == sorted([MODEL, "other/model"])
    assert sorted(pvx.mask_strategies(store, model=MODEL)) == ["answer_mean", "first_token"]
    assert sorted(pvx.variants(store, model=MODEL, mask_strategy=MASK)) == [
        "biography",
        "templated",
    ]
    assert pvx.persona_ids(store, "biography", model=MODEL, mask_strategy=MASK) == ids_of(3)
    assert pvx.layers(store, "templated", model=MODEL, mask_strategy=MASK) == LAYERS


# ----------------------------------------------------------------------------- loading


def test_baseline_is_excluded_unless_asked(store):
    pvx.write_variant(store, vectors_for([pvx.BASELINE_ID, "a", "b"]))
    assert pvx.load(store, "biography")["id"].values.tolist() == ["a", "b"]
    assert pvx.BASELINE_ID in pvx.load(store, "biography", include_baseline=True)["id"].values


def test_select_ids_and_layers_keeps_labels(store):
    pvx.write_variant(store, vectors_for(ids_of(10)))
    got = pvx.load(store, ["biography"], ids=["p7", "p2"], layers=[5, 7])
    assert got["id"].values.tolist() == ["p7", "p2"]
    assert got["layer"].values.tolist() == [5, 7]
    np.testing.assert_allclose(
        got.sel(id="p2", layer=7).values, _persona_data("p2", 3)[2].astype("float32")
    )


def test_selecting_a_layer_reads_only_its_chunks(store, monkeypatch):
    pvx.write_variant(store, vectors_for(ids_of(40)), persona_block=16)
    got = pvx.load(store, "biography", layers=[5], ids=["p1", "p2"])
    requested = count_reads(monkeypatch)
    got.compute()
    chunks = [k for k in requested if "/vectors/c/" in k]
    # layer 5 is index 1; p1 and p2 live in the first persona block of the main arrays
    assert chunks == [f"{got.attrs['model'].replace('/', '--')}/{MASK}/biography/vectors/c/0/1/0"]


def test_unknown_names_are_clear_errors(store):
    pvx.write_variant(store, vectors_for(ids_of(3)))
    with pytest.raises(
        pvx.StoreError, match=r"variant 'bio' not found .* available: \['biography'\]"
    ):
        pvx.load(store, "bio")
    with pytest.raises(pvx.StoreError, match=r"model 'nope' not in the store"):
        pvx.load(store, "biography", model="nope")
    with pytest.raises(pvx.StoreError, match=r"mask strategy 'last' not stored"):
        pvx.load(store, "biography", mask_strategy="last")
    with pytest.raises(pvx.StoreError, match=r"ids \['zz'\] are not in variant"):
        pvx.load(store, "biography", ids=["p0", "zz"])
    # layers: the rule and errors of every analysis's layer=
    unknown = r"unknown layer label\(s\) \[4\]; .*\[3, 5, 7\]"
    for layers in ([4], 4):
        with pytest.raises(KeyError, match=unknown):
            pvx.load(store, "biography", layers=layers)
        with pytest.raises(KeyError, match=unknown):
            pvx.pca(pvx.load(store, "biography"), layer=layers)
    assert "layer" not in pvx.load(store, "biography", layers=5).dims
    assert pvx.load(store, ["biography"], layers=[5]).sizes["layer"] == 1
    with pytest.raises(pvx.StoreError, match="no store at"):
        pvx.load(store.parent / "missing.zarr", "biography")
    with pytest.raises(pvx.StoreError, match=r"\['biography'\] more than once"):
        pvx.load(store, ["biography", "biography"])  # gave two variants of one label


def test_a_missing_name_is_the_id_and_other_names_must_be_text(store):
    """Names given as None or NaN were stored as "" (review): names default to the ids."""
    da = vectors_for(ids_of(3))
    da = da.assign_coords(name=("persona", np.array(["Ann", None, np.nan], dtype=object)))
    pvx.write_variant(store, da)
    assert pvx.load(store, "biography")["name"].values.tolist() == ["Ann", "p1", "p2"]
    odd = da.assign_coords(name=("persona", np.array(["Ann", 7, "C"], dtype=object)))
    with pytest.raises(TypeError, match=r"names must be strings, got \[7\]"):
        pvx.write_variant(store, odd, variant="other")
    # the same rule where the names are given (a table's column with a gap)
    made = pvx.persona_vectors(da.values, ids=ids_of(3), names=pd.Series(["Ann", None, np.nan]))
    assert made["name"].values.tolist() == ["Ann", "p1", "p2"]


def test_pandas_series_are_matched_to_personas_by_id():
    """A Series indexed by id was read by position: its values went to other personas."""
    table = pd.DataFrame(
        {"age": [10, 20, 30], "region": ["n", "s", "e"], "name": ["A", "B", "C"]},
        index=pd.Index(["a", "b", "c"], name="id"),
    )
    data = np.zeros((3, 2, 4), "f4")
    made = pvx.persona_vectors(
        data, ids=["c", "a", "b"], names=table["name"], attributes={"age": table["age"]}
    )
    assert made["age"].values.tolist() == [30, 10, 20]
    assert made["name"].values.tolist() == ["C", "A", "B"]
    # a whole table: one attribute per column, by id
    made = pvx.persona_vectors(data, ids=["c", "a", "b"], attributes=table[["age", "region"]])
    assert made["region"].values.tolist() == ["e", "n", "s"]
    # the default index (a column in persona order) is read in order
    made = pvx.persona_vectors(
        data, ids=["c", "a", "b"], attributes={"age": table["age"].reset_index(drop=True)}
    )
    assert made["age"].values.tolist() == [10, 20, 30]
    with pytest.raises(
        ValueError, match=r"attribute 'age' is a pandas Series whose index holds \['b'\]"
    ):
        pvx.persona_vectors(data, ids=["c", "a", "x"], attributes={"age": table["age"]})
    # ids "0".."n-1" in another order: the default index could mean either, so it is refused
    with pytest.raises(ValueError, match=r"default index 0\.\.2, and the persona ids are the"):
        pvx.persona_vectors(data, ids=["2", "0", "1"], attributes={"age": pd.Series([0, 10, 20])})
    by_id = pd.Series([0, 10, 20]).set_axis(["0", "1", "2"])  # the fixes the message names
    made = pvx.persona_vectors(data, ids=["2", "0", "1"], attributes={"age": by_id})
    assert made["age"].values.tolist() == [20, 0, 10]
    in_order = pd.Series([0, 10, 20]).to_numpy()
    made = pvx.persona_vectors(data, ids=["2", "0", "1"], attributes={"age": in_order})
    assert made["age"].values.tolist() == [0, 10, 20]
    made = pvx.persona_vectors(data, ids=["0", "1", "2"], attributes={"age": pd.Series([0, 1, 2])})
    assert made["age"].values.tolist() == [0, 1, 2]  # in order: both readings agree
    with pytest.raises(ValueError, match="does not list each of the 3 persona ids once"):
        pvx.persona_vectors(data, ids=["c", "a", "b"], names=table["name"].iloc[[0, 0, 1]])


@pytest.mark.parametrize("label", ["id", "name", "layer", "variant", "persona", "component"])
def test_an_attribute_may_not_replace_the_arrays_own_labels(label):
    """A table's id column given as attributes relabelled every vector without a word."""
    data = np.stack([np.full((2, 4), i, "f4") for i in range(3)])
    table = pd.DataFrame({label: ["c", "a", "b"], "age": [30, 10, 20]})
    with pytest.raises(ValueError, match=f"attribute named '{label}', which is one of pvx's own"):
        pvx.persona_vectors(data, ids=["a", "b", "c"], attributes=table)
    made = pvx.persona_vectors(data, ids=["a", "b", "c"], attributes=table[["age"]])
    assert float(made.sel(id="a")[0, 0]) == 0.0


def test_a_whole_number_is_one_class_whether_int_or_float(store):
    """pandas makes an int column with a gap float: 1.0 was stored as "1.0", the next
    append's 1 as "1", two classes of one value."""
    kinds = {"cluster": "categorical"}
    first = vectors_for(ids_of(3), attributes={"cluster": pd.Series([1, 2, None])}, kinds=kinds)
    pvx.write_variant(store, first)
    more = vectors_for(ids_of(2, prefix="q"), attributes={"cluster": [1, 2]}, kinds=kinds)
    pvx.append_personas(store, more)
    loaded = pvx.load(store, "biography")["cluster"].values.tolist()
    assert loaded[:2] + loaded[3:] == ["1", "2", "1", "2"] and pd.isna(loaded[2])
    made = pvx.persona_vectors(
        np.zeros((3, 1, 2), "f4"),
        ids=["a", "b", "c"],
        attributes={"n": [2.0, 1, 3.0]},
        orders={"n": [1, 2, 3]},
    )
    assert made["n"].values.tolist() == ["2", "1", "3"]


def test_appends_keep_the_older_spelling_of_whole_numbers(store):
    """Stores written before whole-number floats were labelled as ints hold "1.0": an
    append of 1 (now labelled "1") must not make it a second class (the review)."""
    older = vectors_for(
        ids_of(3),
        attributes={
            "grade": ["1.0", "2.0", None],
            "level": ["1.0", "2.0", "3.0"],
            "tag": ["1", "1.0", "x"],
        },
        kinds={"grade": "categorical", "tag": "categorical"},
        orders={"level": ["1.0", "2.0", "3.0"]},
    )
    pvx.write_variant(store, older)
    for batch in (["q0", "q1"], ["r0", "r1"]):  # the second from the state the first left
        more = vectors_for(
            batch,
            attributes={"grade": [1, 3.0], "level": [1, 3], "tag": [1, 2]},
            kinds={"grade": "categorical", "tag": "categorical"},
            orders={"level": [1, 2, 3]},
        )
        # said, since a value given as the text "1" is rewritten too (from a review)
        with pytest.warns(UserWarning) as record:
            pvx.append_personas(store, more)
        said = " ".join(str(w.message) for w in record)
        assert "attribute 'grade' were written as the variant spells them ({'1': '1.0'}" in said
        assert "attribute 'level' were written" in said and "'tag'" not in said
    loaded = pvx.load(store, "biography")
    assert loaded["grade"].values.tolist()[3:] == ["1.0", "3", "1.0", "3"]
    assert loaded["level"].values.tolist()[3:] == ["1.0", "3.0", "1.0", "3.0"]
    # where both spellings are stored, they are two labels the user wrote: kept apart
    assert loaded["tag"].values.tolist()[3:] == ["1", "2", "1", "2"]


def test_appends_keep_the_older_spelling_of_dates(store):
    """Stores written before dates had one label hold str() of their type: a Timestamp's
    "2020-01-01 00:00:00", a datetime64[ns]'s "2020-01-02T00:00:00.000000000"; an append of
    those days (now "2020-01-01") must not make second classes."""
    older = vectors_for(
        ids_of(3),
        attributes={
            "joined": ["2020-01-01 00:00:00", "2020-01-02T00:00:00.000000000", None],
            "seen": ["2020-01-01 10:30:00", "2021-05-05", "x"],
        },
        kinds={"joined": "categorical", "seen": "categorical"},
    )
    pvx.write_variant(store, older)
    days = pd.to_datetime(["2020-01-01", "2020-01-02"])
    more = vectors_for(
        ["q0", "q1"],
        attributes={
            "joined": days,
            "seen": pd.to_datetime(["2020-01-01 10:30:00", "2021-05-05 00:00:00"]),
        },
        kinds={"joined": "categorical", "seen": "categorical"},
    )
    with pytest.warns(UserWarning, match=r"attribute 'joined' .*'2020-01-01': '2020-01-01 00"):
        pvx.append_personas(store, more)
    loaded = pvx.load(store, "biography")
    assert loaded["joined"].values.tolist()[3:] == [
        "2020-01-01 00:00:00",
        "2020-01-02T00:00:00.000000000",
    ]
    assert loaded["seen"].values.tolist()[3:] == ["2020-01-01 10:30:00", "2021-05-05"]


@pytest.mark.parametrize(
    "layers",
    [[0.9, 2.7, 3.0], ["10", "11", "12"], [0, np.nan, 2], [1e20, 1.0, 2.0], [2**64 - 1, 1, 2]],
)
def test_layer_labels_must_be_whole_numbers(layers):
    """0.9 and 2.7 were stored as layers 0 and 2 without a word."""
    with pytest.raises(ValueError, match=r"whole numbers|beyond int64"):
        pvx.persona_vectors(np.zeros((1, 3, 2), "f4"), ids=["a"], layers=layers)
    whole = pvx.persona_vectors(np.zeros((1, 3, 2), "f4"), ids=["a"], layers=[4.0, 5.0, 9.0])
    assert whole["layer"].values.tolist() == [4, 5, 9]


def test_a_variant_of_the_baseline_alone_and_vectors_of_no_width(store):
    """Review: the first gave xarray's "must supply at least one object to concatenate",
    the second a multi-line Icechunk error and an empty store left behind."""
    pvx.write_variant(store, vectors_for([pvx.BASELINE_ID], variant="base"))
    with pytest.raises(pvx.StoreError, match=r"'base' holds only the baseline .* include_baseline"):
        pvx.load(store, "base")
    assert pvx.load(store, "base", include_baseline=True)["id"].values.tolist() == [pvx.BASELINE_ID]
    empty = store.parent / "empty.zarr"
    for shape, missing in (((2, 3, 0), "hidden"), ((2, 0, 4), "layer")):
        da = pvx.persona_vectors(np.zeros(shape, "float32"), ids=["a", "b"], model="m")
        with pytest.raises(ValueError, match=f"the vectors have no {missing} values"):
            pvx.write_variant(empty, da, mask_strategy="mean", variant="v")
        assert not empty.exists()


def test_model_must_be_named_when_several(store):
    pvx.write_variant(store, vectors_for(ids_of(2)))
    pvx.write_variant(store, vectors_for(ids_of(2)), model="b/c")
    with pytest.raises(pvx.StoreError, match="holds 2 models; pass model="):
        pvx.load(store, "biography")
    assert pvx.load(store, "biography", model="b/c").attrs["model"] == "b/c"


def test_not_a_pvx_store(tmp_path):
    zarr.open_group(tmp_path / "plain.zarr", mode="w").create_array("x", shape=(2,), dtype="i4")
    with pytest.raises(pvx.StoreError, match="not a pvx store"):
        pvx.open_store(tmp_path / "plain.zarr")
    with pytest.raises(pvx.StoreError, match="not a pvx store"):
        pvx.write_variant(tmp_path / "plain.zarr", vectors_for(["a"]))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "refs").write_text("a user's file, not a repository's folder")
    with pytest.raises(pvx.StoreError, match="not a pvx store"):
        pvx.write_variant(tmp_path / "folder", vectors_for(["a"]))


def test_variants_join_on_ids_and_layers(store):
    pvx.write_variant(store, with_attributes(["a", "b", "c", "d"]))
    # templated lacks "a", has an extra "x", orders ids differently and lacks layer 3
    templated = with_attributes(["x", "d", "c", "b"], variant="templated", layers=[3, 5, 7])
    pvx.write_variant(store, templated.isel(layer=[1, 2]))
    with pytest.warns(UserWarning) as record:
        got = pvx.load(store, ["biography", "templated"])
    # the attributes were given by position, so the variants disagree on them too
    aligning = [str(r.message) for r in record if "aligning" in str(r.message)]
    assert len(aligning) == 1
    message = aligning[0]
    assert "2 persona(s) missing from some variant: 'a', 'x'" in message
    assert "1 layer(s) missing from some variant: [3]" in message
    assert got.dims == ("variant", "persona", "layer", "hidden")
    assert got["variant"].values.tolist() == ["biography", "templated"]
    assert got["id"].values.tolist() == ["b", "c", "d"]
    assert got["layer"].values.tolist() == [5, 7]
    for variant, source in (
        ("biography", with_attributes(["a", "b", "c", "d"])),
        ("templated", templated),
    ):
        expected = source.sel(id=["b", "c", "d"], layer=[5, 7]).values
        np.testing.assert_array_equal(got.sel(variant=variant).values, expected)
    assert got["education"].attrs["kind"] == "ordinal"


def test_aligned_variants_warn_nothing_when_equal(store):
    pvx.write_variant(store, vectors_for(ids_of(3)))
    pvx.write_variant(store, vectors_for(ids_of(3)[::-1], variant="templated"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = pvx.load(store, ["templated", "biography"])
    assert got["id"].values.tolist() == ids_of(3)[::-1]


def test_variants_that_disagree_on_a_persona_say_so_and_hidden_sizes_must_match(store):
    first = vectors_for(ids_of(3)).assign_coords(name=("persona", ["Ada", "Bob", "Cy"]))
    pvx.write_variant(store, first)
    other = first.assign_coords(name=("persona", ["Ada", "Zoe", "Cy"]), variant="templated")
    pvx.write_variant(store, other)
    with pytest.warns(UserWarning, match=r"disagree on 'name' for 1 persona.*'Bob' vs 'Zoe'"):
        got = pvx.load(store, ["biography", "templated"])
    assert got["name"].values.tolist() == ["Ada", "Bob", "Cy"]  # the first variant's
    wide = vectors_for(ids_of(3), variant="wide")
    pvx.write_variant(store, wide.isel(hidden=[0, 1]))
    with pytest.raises(ValueError, match=r"different hidden sizes.*'wide': 2"):
        pvx.load(store, ["biography", "wide"])


def test_open_load_write_emit_no_warnings(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pvx.write_variant(store, with_attributes(ids_of(20)), persona_block=8)
        pvx.append_personas(store, with_attributes(["new"]))
        pvx.set_attribute(store, "score", {"p1": 1.5})
        pvx.open_store(store)
        pvx.load(store, "biography").compute()


def test_what_a_store_does_not_keep_is_named_when_written(tmp_path):
    """A per-persona coordinate without attrs['kind'], per-layer labels and attrs were
    dropped without a word (review); they are named, with how to keep an attribute."""
    da = with_attributes(ids_of(4)).assign_coords(
        home=("persona", ["n", "s", "n", "s"]), layer_name=("layer", ["a", "b", "c"])
    )
    da.attrs["source"] = "run-42"
    with pytest.warns(UserWarning) as caught:
        pvx.write_variant(tmp_path / "s.zarr", da)
    (message,) = [str(w.message) for w in caught]
    assert caught[0].filename == __file__  # at the caller's line, not pvx's
    assert "coordinate(s) ['home', 'layer_name'] or attrs ['source']" in message
    assert "['home'] would be stored as attributes with attrs['kind']" in message
    more = with_attributes(["new"]).assign_coords(layer_name=("layer", ["a", "b", "c"]))
    with pytest.warns(
        UserWarning, match=r"append_personas\(\) does not store coordinate\(s\) \['layer_name'\]$"
    ) as caught:
        pvx.append_personas(tmp_path / "s.zarr", more)
    assert caught[0].filename == __file__
    assert "home" not in pvx.load(tmp_path / "s.zarr", "biography").coords


# ----------------------------------------------------------------------------- writing


def test_appends_equal_one_bulk_write(tmp_path):
    ids = ids_of(45)
    bulk, appended = tmp_path / "bulk.zarr", tmp_path / "appended.zarr"
    pvx.write_variant(bulk, with_attributes(ids), persona_block=8)
    full = with_attributes(ids)
    pvx.write_variant(appended, full.isel(persona=[0]), persona_block=8)
    # single appends, then batches that cross block boundaries with leftovers
    for i in range(1, 20):
        pvx.append_personas(appended, full.isel(persona=[i]))
    for start, stop in ((20, 23), (23, 35), (35, 45)):
        pvx.append_personas(appended, full.isel(persona=slice(start, stop)))
    xr.testing.assert_identical(
        pvx.load(appended, "biography").compute(), pvx.load(bulk, "biography").compute()
    )


def test_appends_keep_whole_blocks_and_every_earlier_version(store):
    full = with_attributes(ids_of(40))
    pvx.write_variant(store, full.isel(persona=[0]), persona_block=4)
    earlier = []
    for i in range(1, 40):
        pvx.append_personas(store, full.isel(persona=[i]))
        got = pvx.load(store, "biography")
        assert got["id"].values.tolist() == ids_of(i + 1)
        earlier.append(got)
    assert got.encoding["chunks"][0] == 4 and got.data.chunks[0] == (40,)
    xr.testing.assert_identical(got.compute(), full)
    for version in earlier[::7]:  # arrays opened before later appends still read their own
        n = version.sizes["persona"]
        xr.testing.assert_identical(version.compute(), full.isel(persona=slice(0, n)))


def test_a_store_deleted_and_made_again_is_written_afresh(store, monkeypatch):
    """Writers reuse the repository this process opened: one deleted and made again at the
    same path is opened anew and reads as the new one."""
    opened = []
    open_repository = icechunk.Repository.open
    monkeypatch.setattr(
        icechunk.Repository, "open", lambda *a, **kw: opened.append(1) or open_repository(*a, **kw)
    )
    first, second = vectors_for(ids_of(3)), vectors_for(ids_of(3, "q"), seed=1)
    pvx.write_variant(store, first.isel(persona=[0]), persona_block=2)
    pvx.append_personas(store, first.isel(persona=[1]))
    pvx.append_personas(store, first.isel(persona=[2]))
    assert len(opened) == 1  # by the first write, once made; the appends reuse it
    shutil.rmtree(store)
    pvx.write_variant(store, second.isel(persona=[0]), persona_block=2)
    pvx.append_personas(store, second.isel(persona=[1, 2]))
    assert len(opened) == 2  # the new repository, not the deleted one's object
    xr.testing.assert_identical(pvx.load(store, "biography").compute(), second)
    messages = pvx.store.history(store)["message"].tolist()
    assert sum(m.startswith("append_personas") for m in messages) == 1, messages


def _in_forked_child(action: Callable[[], object]) -> str:
    """What ``action`` does in a forked child: ``"done"`` or its StoreError's message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then exit at once (never back into pytest)
        try:
            signal.alarm(20)  # a hang ends the child, and the caller's assertion fails
            action()
            message = b"done"
        except BaseException as err:
            message = f"{type(err).__name__}: {err}".encode()
        finally:
            os.write(write, message)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_is_refused_not_left_hanging(store):
    """Icechunk's runtime does not survive a fork: a child forked after its parent opened a
    store would hang on its first store call, also when it computes a lazy array the parent
    loaded (as a fork-started multiprocessing pool does). It gets an error naming the fix."""
    pvx.write_variant(store, vectors_for(ids_of(2)))
    lazy = pvx.load(store, "biography")
    # (synchronous: dask's own thread pool, if the parent started one, does not survive a
    # fork either)
    computed = functools.partial(lazy.compute, scheduler="synchronous")
    for action in (lambda: pvx.load(store, "biography"), computed):
        message = _in_forked_child(action)
        assert message.startswith("StoreError") and "forked" in message, message
        assert "'spawn'" in message, message
    assert pvx.load(store, "biography").sizes["persona"] == 2  # the parent carries on
    assert lazy.compute().sizes["persona"] == 2


@pytest.mark.parametrize("vector_tail_bytes", [0, _store_write.VECTOR_TAIL_BYTES])
def test_appends_after_other_writers_stay_exact(store, monkeypatch, vector_tail_bytes):
    """An append reuses what the previous append in this process knew of the variant only
    while nobody else has committed since; then it reads the variant again. The vectors'
    last block is remembered too where small, and read back by zarr otherwise."""
    monkeypatch.setattr(_store_write, "COLUMN_CHUNK", 4)  # appends cross column chunks
    monkeypatch.setattr(_store_write, "VECTOR_TAIL_BYTES", vector_tail_bytes)
    reads = []
    read_state = _store_write.read_append_state

    async def counted(*args):
        reads.append(args)
        return await read_state(*args)

    monkeypatch.setattr(_store_write, "read_append_state", counted)
    full = with_attributes(ids_of(30))
    pvx.write_variant(store, full.isel(persona=[0]), persona_block=3)
    for i in range(1, 10):
        pvx.append_personas(store, full.isel(persona=[i]))
    assert len(reads) == 1
    (state,) = (v for k, v in _store_write.APPEND_STATES.items() if k[0] == str(store))
    assert ("vectors" in state.tails) == (vector_tail_bytes > 0)
    with monkeypatch.context() as other_process:  # a writer that knows nothing of ours
        other_process.setattr(_store_write, "APPEND_STATES", {})
        pvx.append_personas(store, full.isel(persona=slice(10, 15)))
    pvx.append_personas(store, full.isel(persona=[15]))
    assert len(reads) == 3
    with pytest.raises(ValueError, match="already in the variant"):
        pvx.append_personas(store, full.isel(persona=[12]))
    pvx.set_attribute(store, "mood", {"p3": "calm", "p12": "tense"})
    for i in range(16, 30):
        pvx.append_personas(store, full.isel(persona=[i]))
    got = pvx.load(store, "biography").compute()
    xr.testing.assert_identical(got.drop_vars("mood"), full)
    mood = {"p3": "calm", "p12": "tense"}
    assert got["mood"].values.tolist() == [mood.get(i, np.nan) for i in ids_of(30)]
    assert len(reads) == 4


def test_writes_from_inside_a_running_event_loop(store):
    """Jupyter runs its cells inside an event loop; writes must not deadlock there."""

    async def cell():
        pvx.write_variant(store, vectors_for(ids_of(2)))
        pvx.append_personas(store, vectors_for(["c"]))

    # in a thread of its own: earlier tests (Playwright's) may leave this one's loop running
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, cell()).result()
    assert pvx.load(store, "biography")["id"].values.tolist() == [*ids_of(2), "c"]


def test_the_append_state_keeps_only_the_last_block(store):
    pvx.write_variant(store, vectors_for(ids_of(10)), persona_block=8)
    pvx.append_personas(store, vectors_for([f"b{i}" for i in range(501)]))
    (state,) = (v for k, v in _store_write.APPEND_STATES.items() if k[0] == str(store))
    for name, tail in state.tails.items():
        chunk = state.metadata[name].chunks[0]  # 8 for the vectors, 1024 for the columns
        assert len(tail) == 511 % chunk and tail.base is None, name  # not a view of the batch
    assert "vectors" in state.tails


def test_a_write_interrupted_inside_leaves_the_store_and_the_writer_working(store, monkeypatch):
    pvx.write_variant(store, vectors_for(ids_of(2)))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(pvx.store, "_conform", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pvx.append_personas(store, vectors_for(["c"]))
    pvx.append_personas(store, vectors_for(["d"]))  # the writer's loop still runs
    assert pvx.load(store, "biography")["id"].values.tolist() == [*ids_of(2), "d"]


def test_append_fills_missing_attributes(store):
    pvx.write_variant(store, with_attributes(ids_of(3)))
    pvx.append_personas(store, vectors_for(["bare"]))
    got = pvx.load(store, "biography").sel(id="bare")
    assert np.isnan(got["age"].item()) and got["education"].item() is np.nan
    assert got["sample_ids"].item() == ()


def test_append_casts_to_the_stored_dtype(store):
    pvx.write_variant(store, vectors_for(ids_of(2), dtype="float16"))
    exact = vectors_for(["c"], dtype="float16").astype("float32")  # nothing to round
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pvx.append_personas(store, exact)
    fine = vectors_for(["e"], dtype="float32") + np.float32(1e-4)
    with pytest.warns(UserWarning, match=r"stores float16, so these float32 vectors are ro") as w:
        pvx.append_personas(store, fine)
    assert w[0].filename == __file__  # at the user's line
    lazy = (vectors_for(["f"], dtype="float32") + np.float32(1e-4)).chunk()
    with pytest.warns(UserWarning, match=r"stores float16, so these float32 vectors are ro"):
        pvx.append_personas(store, lazy)
    assert pvx.load(store, "biography").dtype == np.float16
    big = vectors_for(["d"]) * 1e6
    with pytest.raises(ValueError, match="overflow the variant's float16"):
        pvx.append_personas(store, big.astype("float32"))


def test_append_reorders_layers_by_label(store):
    pvx.write_variant(store, vectors_for(ids_of(2)))
    new = vectors_for(["z"])
    pvx.append_personas(store, new.isel(layer=[2, 0, 1]))
    np.testing.assert_array_equal(pvx.load(store, "biography").sel(id="z").values, new[0].values)


def test_set_attribute_adds_and_replaces(store):
    pvx.write_variant(store, with_attributes(ids_of(10)), persona_block=4)
    pvx.write_variant(store, with_attributes(ids_of(6), variant="templated"), persona_block=4)
    pvx.set_attribute(store, "income", {"p0": "low", "p9": "high"}, order=["low", "high"])
    bio = pvx.load(store, "biography")
    assert bio["income"].attrs == {"kind": "ordinal", "order": ["low", "high"]}
    assert bio["income"].values[[0, 9]].tolist() == ["low", "high"]
    assert pd_isna(bio["income"].values[1])
    assert pvx.load(store, "templated")["income"].values[0] == "low"
    pvx.set_attribute(store, "age", {i: 1.0 for i in ids_of(10)})
    assert pvx.load(store, "biography")["age"].values.tolist() == [1.0] * 10
    # a replacement that leaves out personas with a value says so (from a review)
    with pytest.warns(UserWarning, match=r"2 persona value\(s\) of 'income' were replaced"):
        pvx.set_attribute(store, "income", {"p9": "low"}, order=["low", "high"])
    assert pd_isna(pvx.load(store, "templated")["income"].values[0])
    pvx.append_personas(store, vectors_for(["new"]))  # appends still work after replacing
    assert pvx.load(store, "biography")["age"].values[-1] != 1.0
    # 2**60 + 1 came back as 2**60 (review): numbers float64 cannot hold are refused
    with pytest.raises(ValueError, match=r"cannot hold exactly \(\[1152921504606846977\]"):
        pvx.set_attribute(store, "big", {"p0": 2**60 + 1, "p1": 3})
    pvx.set_attribute(store, "big", {"p0": 2**60 + 1, "p1": 3}, kind="categorical")
    assert pvx.load(store, "biography")["big"].values[0] == "1152921504606846977"


def pd_isna(value):
    return value is None or (isinstance(value, float) and np.isnan(value))


# ----------------------------------------------------------------------------- validation


def invalid_cases():
    good = vectors_for(ids_of(3))
    nonfinite = good.copy(data=good.values.copy())
    nonfinite[1, 0, 0] = np.nan
    yield good.rename(hidden="h"), ValueError, r"needs dims .* \('persona', 'layer', 'h'\)"
    yield good.astype("float64"), TypeError, r"float16 or float32, got float64.*astype"
    yield (
        vectors_for(["a", "a"]),
        ValueError,
        r"duplicate ids \['a'\]",
    )
    yield nonfinite, ValueError, r"non-finite values .* \['p1'\]"
    bad_kind = good.assign_coords(x=("persona", [1.0, 2.0, 3.0], {"kind": "weird"}))
    yield bad_kind, ValueError, r"attribute 'x' has kind 'weird'"
    bad_order = good.assign_coords(
        e=("persona", np.array(["a", "b", "z"], object), {"kind": "ordinal", "order": ["a", "b"]})
    )
    yield bad_order, ValueError, r"values \['z'\] of ordinal attribute 'e'"
    yield good.assign_coords(layer=[1.5, 2.5, 3.5]), ValueError, "integer 'layer' labels"


@pytest.mark.parametrize("da, error, message", list(invalid_cases()))
def test_invalid_writes_fail_before_touching_disk(store, da, error, message):
    with pytest.raises(error, match=message):
        pvx.write_variant(store, da)
    assert not store.exists()


def test_invalid_appends_are_refused(store):
    pvx.write_variant(store, with_attributes(ids_of(3)))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    cases = [
        (vectors_for(["p1"]), "ids \\['p1'\\] are already in the variant"),
        (vectors_for(["n"], layers=[3, 5, 8]), r"layer labels \[3, 5, 8\] do not match"),
        (vectors_for(["n"]).isel(hidden=slice(0, 4)), "hidden size 4 does not match .* 6"),
        (
            vectors_for(["n"], attributes={"mood": ["calm"]}),
            r"attributes \['mood'\] are not in the variant; add them first",
        ),
        (
            vectors_for(["n"], attributes={"age": ["old"]}),
            "'age' is 'categorical' here but 'numeric' in the variant; build the new personas "
            r"with kinds=\{'age': 'numeric'\}",
        ),
        (
            vectors_for(
                ["n"],
                attributes={"education": ["kindergarten"]},
                orders={"education": ["kindergarten"]},
            ),
            r"values \['kindergarten'\] of ordinal attribute 'education' are not in its stored",
        ),
    ]
    for da, message in cases:
        with pytest.raises(ValueError, match=message):
            pvx.append_personas(store, da)
    with pytest.raises(pvx.StoreError, match=r"create it with pvx\.write_variant"):
        pvx.append_personas(store, vectors_for(["n"], variant="templated"))
    after = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after == before


def test_write_twice_is_refused(store):
    pvx.write_variant(store, vectors_for(ids_of(2)))
    with pytest.raises(pvx.StoreError, match=r"already exists .* pvx\.append_personas"):
        pvx.write_variant(store, vectors_for(ids_of(2)))


def test_identity_must_be_known_and_plain(store):
    da = vectors_for(["a"]).drop_vars("variant")
    with pytest.raises(ValueError, match="which variant\\? pass variant="):
        pvx.write_variant(store, da)
    with pytest.raises(ValueError, match="variant 'a/b' must be a plain name"):
        pvx.write_variant(store, da, variant="a/b")


def test_reserved_attribute_names(store):
    pvx.write_variant(store, vectors_for(["a"]))
    with pytest.raises(ValueError, match="'id' is reserved"):
        pvx.set_attribute(store, "id", {"a": "x"})
    with pytest.raises(pvx.StoreError, match=r"ids \['zz'\] are in none of"):
        pvx.set_attribute(store, "mood", {"zz": "x"})


def test_size_on_disk_counts_files(store):
    pvx.write_variant(store, vectors_for(ids_of(3)))
    assert size_on_disk(store) == sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def test_open_and_load_read_no_vectors(store, monkeypatch):
    pvx.write_variant(store, with_attributes(ids_of(70)), persona_block=16)
    requested = count_reads(monkeypatch)
    tree = pvx.open_store(store)
    da = pvx.load(tree, "biography", layers=[3])
    assert da.sizes["persona"] == 70
    assert requested and not [k for k in requested if "/vectors/c/" in k]


def test_fsspec_urls_read_and_write():
    url = "memory://pvx-test/store.zarr"
    pvx.write_variant(url, vectors_for(ids_of(3)))
    pvx.append_personas(url, vectors_for(["x"]))
    got = pvx.load(url, "biography").compute()
    assert got["id"].values.tolist() == [*ids_of(3), "x"]
    np.testing.assert_array_equal(got.sel(id="x").values, vectors_for(["x"])[0].values)


def test_all_zero_personas_are_stored_not_skipped(store, monkeypatch):
    zeros = vectors_for(ids_of(3)).copy(data=np.zeros((3, 3, HIDDEN), "float32"))
    pvx.write_variant(store, zeros.isel(persona=[0]), persona_block=2)
    pvx.append_personas(store, zeros.isel(persona=[1, 2]))
    lazy = pvx.load(store, "biography")
    requested = count_reads(monkeypatch)  # a skipped chunk would be an error, not zeros
    np.testing.assert_array_equal(lazy.values, 0.0)
    assert len([k for k in requested if "/vectors/c/" in k]) == 3 * 2  # blocks [0, 1], [2]


def test_non_string_labels_are_stored_as_strings(store):
    da = vectors_for(ids_of(3)).assign_coords(
        group=("persona", np.array([0, 1, None], dtype=object), {"kind": "categorical"})
    )
    pvx.write_variant(store, da)
    got = pvx.load(store, "biography")["group"].values
    assert got[:2].tolist() == ["0", "1"] and pd_isna(got[2])


def test_dropping_the_baseline_keeps_the_stored_chunks(store):
    pvx.write_variant(store, vectors_for([pvx.BASELINE_ID, *ids_of(20)]), persona_block=8)
    # one partition of whole blocks, less the baseline's row (no re-chunking)
    assert pvx.load(store, "biography").data.chunks[0] == (20,)
    pvx.write_variant(store, vectors_for([*ids_of(9), pvx.BASELINE_ID, "z"], variant="mid"))
    got = pvx.load(store, "mid")
    assert got["id"].values.tolist() == [*ids_of(9), "z"]
    np.testing.assert_array_equal(got.values, vectors_for([*ids_of(9), "z"]).values)


def test_several_variants_keep_each_ones_provenance(store, tmp_path):
    pvx.write_variant(store, with_attributes(ids_of(3)))
    templated = with_attributes(ids_of(3), variant="templated")
    provenance = np.empty(3, dtype=object)
    provenance[:] = [("t",), ("u",), ("v",)]
    templated = templated.assign_coords(sample_ids=("persona", provenance))
    pvx.write_variant(store, templated)
    got = pvx.load(store, ["biography", "templated"])
    assert got["sample_ids"].dims == ("variant", "persona")
    assert got["sample_ids"].sel(variant="templated").values.tolist() == [("t",), ("u",), ("v",)]
    assert got["sample_ids"].sel(variant="biography").values[0] == ("p0-s1", "p0-s2")
    # loaded labels use Zarr's specified string type when results are saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got.drop_vars("sample_ids").mean("hidden").to_dataset().to_zarr(
            tmp_path / "r.zarr", consolidated=False
        )


def test_a_model_is_found_by_its_own_name_before_another_models_folder(store):
    # "x/y" is kept in folder "x--y"; a model named "x--y" then gets another folder
    pvx.write_variant(store, vectors_for(["a"]), model="x/y")
    pvx.write_variant(store, vectors_for(["a"], seed=1), model="x--y")
    assert pvx.models(store) == ["x/y", "x--y"]
    got = pvx.load(store, "biography", model="x--y")
    assert got.attrs["model"] == "x--y"
    np.testing.assert_array_equal(got.values[0], _persona_data("a", len(LAYERS), 1).astype("f4"))
    pvx.set_attribute(store, "mood", {"a": "calm"}, model="x--y")
    assert "mood" in pvx.load(store, "biography", model="x--y").coords
    assert "mood" not in pvx.load(store, "biography", model="x/y").coords
    # the folder name still finds a model that no other model's name claims
    assert pvx.load(store, "biography", model="x--y-2").attrs["model"] == "x--y"


def test_names_that_would_break_a_published_copy_are_refused_or_kept_apart(store, tmp_path):
    pvx.write_variant(store, vectors_for(["a"]), model="pvx-checksums.json")
    pvx.store.publish(store, tmp_path / "pub.zarr")
    assert pvx.load(tmp_path / "pub.zarr", "biography").attrs["model"] == "pvx-checksums.json"
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="more than 255 bytes in UTF-8"):
        pvx.set_attribute(store, "😀" * 100, {"a": "x"})
    with pytest.raises(ValueError, match="'component' is reserved: pvx's results"):
        pvx.set_attribute(store, "component", {"a": "x"})
    with pytest.raises(ValueError, match=r"persona ids \['a'\] appear more than once"):
        pvx.set_attribute(store, "mood", pd.Series(["calm", "angry"], index=["a", "a"]))
    with pytest.raises(ValueError, match="written without sample_ids, so these personas'"):
        pvx.append_personas(
            store, vectors_for(["b"], sample_ids=[["b-1"]]), model="pvx-checksums.json"
        )
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    # no sample ids given: none lost
    pvx.append_personas(store, vectors_for(["b"], sample_ids=[[]]), model="pvx-checksums.json")


def test_a_layer_asked_twice_is_an_error(store):
    pvx.write_variant(store, vectors_for(ids_of(2)))
    with pytest.raises(ValueError, match=r"layer label\(s\) \[3\] more than once"):
        pvx.load(store, "biography", layers=[3, 5, 3])


def test_names_differing_only_in_case_are_refused_or_kept_apart(store, tmp_path, monkeypatch):
    """A published copy (Zarr's consolidated metadata) and case-insensitive file systems
    cannot tell "bio" from "Bio": such a store published unreadable."""
    pvx.write_variant(store, vectors_for(["a"], variant="bio"))
    with pytest.raises(pvx.StoreError, match=r"differs from the stored .*bio' only in case"):
        pvx.write_variant(store, vectors_for(["a"], variant="Bio"))
    pvx.write_variant(store, vectors_for(["a"], variant="bio"), model="ORG/MODEL-7B")
    assert len(pvx.models(store)) == 2  # its folder is kept apart from org--model-7b's

    # a store written before these checks: publishing it is refused, not an unreadable copy
    monkeypatch.setattr(pvx.store, "case_twins", lambda names, taken=(): [])
    pvx.write_variant(store, vectors_for(["a"], variant="Bio"))
    with pytest.raises(pvx.StoreError, match="differ only in case"):
        pvx.store.publish(store, tmp_path / "pub.zarr")
    assert not (tmp_path / "pub.zarr").exists()


def test_an_empty_model_name_is_refused_not_replaced_by_the_arrays(store):
    with pytest.raises(ValueError, match="which model"):
        pvx.write_variant(store, vectors_for(["a"]), model="")


def test_appending_personas_without_a_value_of_a_numeric_attribute(store):
    pvx.write_variant(store, vectors_for(["a", "b"], attributes={"age": [30, 40]}))
    pvx.append_personas(store, vectors_for(["c", "d"], attributes={"age": [None, ""]}))
    age = pvx.load(store, "biography")["age"]
    assert age.attrs["kind"] == "numeric"
    np.testing.assert_array_equal(age.values, [30, 40, np.nan, np.nan])


def test_set_attribute_refuses_ids_that_are_not_text(store):
    pvx.write_variant(store, vectors_for(["0", "1"]))
    with pytest.raises(TypeError, match=r"persona ids are text, got \[0, 1\]"):
        pvx.set_attribute(store, "g", pd.Series(["x", "y"], index=[0, 1]))
    with pytest.raises(TypeError, match=r"got \[1\]"):
        pvx.set_attribute(store, "g", {"0": "x", 1: "y"})


def test_attribute_names_differing_only_in_case_are_refused_when_new(store, tmp_path):
    twins = vectors_for(["a"], attributes={"Age": [1], "age": [2]})
    # written with a warning: a variant of an older store may hold such names
    with pytest.warns(UserWarning, match="'Age' and 'age' differ only in case") as record:
        pvx.write_variant(store, twins)
    assert record[0].filename == __file__  # at the caller's line
    pvx.set_attribute(store, "age", {"a": 3})  # a stored name: replaced as before
    pvx.append_personas(store, vectors_for(["b"], attributes={"Age": [4], "age": [5]}))
    assert pvx.load(store, "biography")["age"].values.tolist() == [3, 5]
    for name in ("AGE", "Name"):  # new names: refused
        with pytest.raises(ValueError, match="differ only in case"):
            pvx.set_attribute(store, name, {"a": 3})


def test_an_ordinal_order_of_numbers_or_dates_is_stored_as_its_labels(store):
    import datetime

    levels = [datetime.date(2020, 1, 1), datetime.date(2020, 1, 2)]
    da = vectors_for(["a", "b"], attributes={"day": levels}, orders={"day": levels})
    # an order set by hand, as numbers: checked and stored as text, like the values
    da = da.assign_coords(
        rank=("persona", np.array(["1", "2"], object), {"kind": "ordinal", "order": [1, 2]})
    )
    pvx.write_variant(store, da)
    back = pvx.load(store, "biography")
    assert back["day"].attrs["order"] == ["2020-01-01", "2020-01-02"]
    assert back["rank"].attrs["order"] == ["1", "2"]


def test_dates_appended_to_an_ordinal_attribute_are_stored_as_its_levels(store):
    days = ["2020-01-01", "2020-01-02"]
    pvx.write_variant(
        store, vectors_for(["a", "b"], attributes={"day": days}, orders={"day": days})
    )
    more = vectors_for(["c"], attributes={"day": ["2020-01-01"]}, orders={"day": days})
    more = more.assign_coords(
        day=("persona", np.array([pd.Timestamp("2020-01-02")], dtype=object), more["day"].attrs)
    )
    pvx.append_personas(store, more)
    assert pvx.load(store, "biography")["day"].values.tolist() == [*days, "2020-01-02"]


def test_nul_in_labels_of_a_hand_made_array_is_refused_on_writing(store):
    da = vectors_for(["q", "r"])
    with pytest.raises(ValueError, match="NUL"):
        pvx.write_variant(store, da.assign_coords(id=("persona", np.array(["q", "q\x00"], object))))
    odd = xr.Variable("persona", np.array(["x\x00", "y"], dtype=object), {"kind": "categorical"})
    with pytest.raises(ValueError, match="NUL"):
        pvx.write_variant(store, da.assign_coords(c=odd))


def test_labels_read_lazily_by_plain_xarray_still_leave_out_the_baseline(store):
    # xarray with chunks= reads the id coordinate as a dask array without an index: the
    # analyses load those labels, so the baseline is left out and repeated ids refused
    import icechunk

    pvx.write_variant(store, vectors_for([*ids_of(5), pvx.BASELINE_ID]))
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(store)))
    tree = xr.open_datatree(
        repo.readonly_session("main").store, engine="zarr", consolidated=False, chunks={}
    )
    node = next(n for n in tree.subtree if "vectors" in n.data_vars)
    vectors = node.dataset["vectors"]
    assert isinstance(vectors["id"].data, dask.array.Array) and "id" not in vectors.indexes
    sim = vectors.pv.cosine(layer=LAYERS[0])
    expected = pvx.load(store, "biography").pv.cosine(layer=LAYERS[0])
    assert sim["id"].values.tolist() == ids_of(5)
    np.testing.assert_allclose(sim.values, expected.values, atol=1e-12)
    twice = xr.concat([vectors, vectors], "persona")
    with pytest.raises(ValueError, match=r"persona id\(s\) \['p0'"):
        twice.pv.cosine(layer=LAYERS[0])


def test_set_attribute_counts_what_it_replaces_under_the_writers_lock(store, monkeypatch):
    # a persona another writer appends (with a value) between the call and its commit loses
    # that value too: it is counted in the warning, and the variant read then is the one
    # written (from a review)
    pvx.write_variant(store, vectors_for(["a", "b"], attributes={"mood": ["calm", "calm"]}))
    real, waiting = pvx.store.transact, [vectors_for(["c"], attributes={"mood": ["angry"]})]

    def another_writer_first(*args, **kwargs):
        if waiting:
            pvx.append_personas(store, waiting.pop())
        return real(*args, **kwargs)

    monkeypatch.setattr(pvx.store, "transact", another_writer_first)
    with pytest.warns(UserWarning, match=r"1 persona value\(s\) of 'mood' were replaced"):
        pvx.set_attribute(store, "mood", {"a": "happy", "b": "sad"})
    assert pvx.load(store, "biography")["mood"].values.tolist()[:2] == ["happy", "sad"]
