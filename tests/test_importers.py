"""Importers: the persona-vectors safetensors tree and its Parquet table form."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import safetensors.numpy

import pvx
from pvx.importers import ImportedVariant, import_directory, import_parquet

MODEL = "org/Model-7B"
MODEL_DIR = "org--Model-7B"
L, H = 3, 5


# --------------------------------------------------------------------------- fixtures


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (truncation; any pattern is a valid test input)."""
    return (np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def bf16_reference(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write_bf16(path: Path, bits: np.ndarray, *, name: str = "activations") -> None:
    """Hand-craft a safetensors file holding one BF16 tensor."""
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            name: {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [0, bits.nbytes]},
        }
    ).encode()
    header += b" " * (-len(header) % 8)  # safetensors pads the header to 8 bytes
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.astype("<u2").tobytes())


def make_variant(
    root: Path,
    variant: str,
    *,
    dtype: str = "float32",
    mask: str = "mean",
    model_dir: str = MODEL_DIR,
    ids: tuple[str, ...] = ("p0", "p1", "baseline_assistant"),
    model: str | None = MODEL,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Write one variant directory; return the expected float arrays by persona id."""
    rng = np.random.default_rng(seed)
    vdir = root / model_dir / mask / variant
    vdir.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "num_layers": L,
        "hidden_size": H,
        "personas": {
            pid: {"name": f"Name of {pid}", "sample_ids": [f"{pid}-s{k}" for k in range(i + 1)]}
            for i, pid in enumerate(ids)
        },
        **({"model": model} if model else {}),
        **(extra or {}),
    }
    (vdir / "manifest.json").write_text(json.dumps(manifest))
    expected = {}
    for pid in ids:
        x = rng.normal(size=(L, H)).astype(np.float32)
        path = vdir / f"{pid}.safetensors"
        if dtype == "bfloat16":
            bits = bf16_bits(x)
            write_bf16(path, bits)
            expected[pid] = bf16_reference(bits)
        else:
            safetensors.numpy.save_file({"activations": x.astype(dtype)}, str(path))
            expected[pid] = x.astype(dtype)
    return expected


def variant_dir(root: Path, variant: str, mask: str = "mean") -> Path:
    return root / MODEL_DIR / mask / variant


def load(store: Path, variant: str, **kwargs: Any):
    return pvx.load(store, variant, include_baseline=True, **kwargs).compute()


def stored_variants(store: Path) -> list[tuple[str, str, str]]:
    if not store.exists():
        return []
    tree = pvx.open_store(store)
    return sorted(
        (m.attrs["model"], str(k), str(v))
        for m in tree.children.values()
        for k, node in m.children.items()
        for v in node.children
    )


# --------------------------------------------------------------------------- directory


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_directory_round_trip(tmp_path, dtype):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    expected = make_variant(root, "templated", dtype=dtype)
    done = import_directory(root, store)
    assert done == [
        ImportedVariant(MODEL, "mean", "templated", 3, str(variant_dir(root, "templated")))
    ]
    da = load(store, "templated")
    assert da.dtype == np.dtype("float16" if dtype == "float16" else "float32")
    assert da.dims == ("persona", "layer", "hidden")
    assert da["id"].values.tolist() == ["p0", "p1", "baseline_assistant"]
    for pid, x in expected.items():
        np.testing.assert_array_equal(da.sel(id=pid).values, x)  # exact, bf16 included
    assert da["name"].values.tolist() == ["Name of p0", "Name of p1", "Name of baseline_assistant"]
    assert da["sample_ids"].values.tolist() == [
        ("p0-s0",),
        ("p1-s0", "p1-s1"),
        ("baseline_assistant-s0", "baseline_assistant-s1", "baseline_assistant-s2"),
    ]
    assert da["layer"].values.tolist() == [0, 1, 2]
    assert da.attrs["model"] == MODEL
    assert da.attrs["mask_strategy"] == "mean"


def test_bf16_reader_matches_bit_shift_on_special_values(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "v", dtype="bfloat16", ids=("a",))
    # Overwrite with chosen patterns: tiny subnormals, negative zero, large, odd mantissas.
    bits = np.array([[0x0001, 0x8000, 0x7F7F, 0x3F81, 0xC2F7]] * L, dtype=np.uint16)
    write_bf16(variant_dir(root, "v") / "a.safetensors", bits)
    import_directory(root, store)
    stored = load(store, "v").sel(id="a").values
    assert stored.view(np.uint32).tolist() == bf16_reference(bits).view(np.uint32).tolist()


def test_directory_variants_differing_only_in_case_are_refused_first(tmp_path):
    """From a review: Bio/ and bio/ failed midway, blaming a 'stored' name, and left an
    empty store behind."""
    root = tmp_path / "src"
    make_variant(root, "Bio")
    make_variant(root, "bio", seed=1)
    with pytest.raises(ValueError, match="differ only in case"):
        import_directory(root, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_directory_whole_tree_mixed_dtypes_and_models(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    a = make_variant(root, "templated", dtype="float16")
    b = make_variant(root, "biography", dtype="float16", seed=1, mask="first")
    # One bf16 file in an otherwise float16 variant -> the variant is stored as float32.
    c = make_variant(root, "mixed", dtype="float16", seed=2, ids=("x", "y"))
    bits = bf16_bits(np.full((L, H), 1.5, np.float32))
    write_bf16(variant_dir(root, "mixed") / "y.safetensors", bits)
    c["y"] = bf16_reference(bits)
    other = make_variant(root, "templated", model_dir="other", model=None, seed=3)
    done = import_directory(root, store)
    assert [(d.model, d.mask_strategy, d.variant) for d in done] == [
        (MODEL, "first", "biography"),
        (MODEL, "mean", "mixed"),
        (MODEL, "mean", "templated"),
        ("other", "mean", "templated"),  # no model in the manifest: the directory name
    ]
    assert pvx.models(store) == [MODEL, "other"]
    assert load(store, "templated", model=MODEL, mask_strategy="mean").dtype == np.float16
    mixed = load(store, "mixed", model=MODEL, mask_strategy="mean")
    assert mixed.dtype == np.float32
    for pid, x in c.items():
        np.testing.assert_array_equal(mixed.sel(id=pid).values, x.astype(np.float32))
    np.testing.assert_array_equal(
        load(store, "biography", model=MODEL, mask_strategy="first").sel(id="p1").values, b["p1"]
    )
    np.testing.assert_array_equal(
        load(store, "templated", model=MODEL, mask_strategy="mean").sel(id="p0").values, a["p0"]
    )
    np.testing.assert_array_equal(
        load(store, "templated", model="other").sel(id="p0").values, other["p0"]
    )
    # the history names the folder all four came from, not the first variant's (review)
    message = pvx.store.history(store)["message"].iloc[0]
    assert message == f"import_directory of 4 variant(s) from {root}"


def test_directory_model_override_and_layers(tmp_path):
    root = tmp_path / "tree"
    make_variant(root, "v", extra={"layers": [4, 8, 12]})
    import_directory(root, tmp_path / "a.zarr", model="my/model")
    da = load(tmp_path / "a.zarr", "v")
    assert da.attrs["model"] == "my/model"
    assert da["layer"].values.tolist() == [4, 8, 12]
    import_directory(root, tmp_path / "b.zarr", model={MODEL_DIR: "mapped"})
    assert pvx.models(tmp_path / "b.zarr") == ["mapped"]


def test_directory_model_override_ambiguous(tmp_path):
    root = tmp_path / "tree"
    make_variant(root, "v")
    make_variant(root, "v", model_dir="second")
    with pytest.raises(ValueError, match=r"model='m' is ambiguous.*mapping"):
        import_directory(root, tmp_path / "s.zarr", model="m")
    with pytest.raises(ValueError, match=r"directories \['nope'\] that are not in the source"):
        import_directory(root, tmp_path / "s.zarr", model={"nope": "m"})


def test_directory_ids_are_data(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    ids = ("Dr. Ada Lovelace", "ünïcødé id", "a=b+c", "-leading dash")
    expected = make_variant(root, "v", ids=ids)
    import_directory(root, store)
    da = load(store, "v")
    assert da["id"].values.tolist() == list(ids)
    for pid in ids:
        np.testing.assert_array_equal(da.sel(id=pid).values, expected[pid])


def test_directory_imports_only_listed_tensor_files(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "v")
    safetensors.numpy.save_file(
        {"activations": np.zeros((L, H), "f4")}, str(variant_dir(root, "v") / "stray.safetensors")
    )
    # named (from a review: a manifest behind its files imported without a word of the rest)
    with pytest.warns(UserWarning, match=r"1 safetensors file\(s\) .* \(stray.safetensors\)"):
        import_directory(root, store)
    assert pvx.persona_ids(store, "v") == ["p0", "p1", "baseline_assistant"]


def _manifest(root: Path, variant: str = "bad") -> Path:
    return variant_dir(root, variant) / "manifest.json"


def _edit_manifest(root: Path, change) -> None:
    path = _manifest(root)
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _corrupt_missing_file(root: Path) -> None:
    (variant_dir(root, "bad") / "p1.safetensors").unlink()


def _corrupt_shape(root: Path) -> None:
    safetensors.numpy.save_file(
        {"activations": np.zeros((L, H + 1), "f4")},
        str(variant_dir(root, "bad") / "p1.safetensors"),
    )


def _corrupt_shape_bf16(root: Path) -> None:
    write_bf16(variant_dir(root, "bad") / "p1.safetensors", np.zeros((L + 1, H), np.uint16))


def _corrupt_tensor_name(root: Path) -> None:
    safetensors.numpy.save_file(
        {"hidden_states": np.zeros((L, H), "f4")}, str(variant_dir(root, "bad") / "p1.safetensors")
    )


def _corrupt_json(root: Path) -> None:
    _manifest(root).write_text('{"num_layers": 3, "hidden_size": ')


def _corrupt_keys(root: Path) -> None:
    _edit_manifest(root, lambda m: m.pop("hidden_size"))


def _corrupt_truncated(root: Path) -> None:
    path = variant_dir(root, "bad") / "p1.safetensors"
    path.write_bytes(path.read_bytes()[:-4])


def _corrupt_not_safetensors(root: Path) -> None:
    (variant_dir(root, "bad") / "p1.safetensors").write_bytes(b"not a safetensors file at all")


def _corrupt_overlap(root: Path) -> None:
    header = json.dumps(
        {
            "activations": {"dtype": "F32", "shape": [L, H], "data_offsets": [0, L * H * 4]},
            "other": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        }
    ).encode()
    data = np.zeros(L * H, "<f4").tobytes()
    path = variant_dir(root, "bad") / "p1.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)


def _header_of_wrong_types(entry: dict[str, Any]) -> Callable[[Path], None]:
    """A file whose header entry has JSON of the wrong types (review: raw TypeErrors such
    as "can't multiply sequence by non-int of type 'str'", without the file's path)."""

    def corrupt(root: Path) -> None:
        header = json.dumps({"activations": entry}).encode()
        path = variant_dir(root, "bad") / "p1.safetensors"
        path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(L * H * 4))

    return corrupt


def _corrupt_dtype(root: Path) -> None:
    safetensors.numpy.save_file(
        {"activations": np.zeros((L, H), "f8")}, str(variant_dir(root, "bad") / "p1.safetensors")
    )


def _corrupt_nan(root: Path) -> None:
    x = np.zeros((L, H), "f2")
    x[1, 2] = np.nan
    safetensors.numpy.save_file(
        {"activations": x}, str(variant_dir(root, "bad") / "p1.safetensors")
    )


def _corrupt_duplicate_id(root: Path) -> None:
    text = _manifest(root).read_text()
    # JSON allows repeated keys; json.loads would silently keep the last one.
    _manifest(root).write_text(text.replace('"p1":', '"p0":'))


def _corrupt_sample_ids(root: Path) -> None:
    _edit_manifest(root, lambda m: m["personas"]["p0"].update(sample_ids="s1,s2"))


def _corrupt_layers(root: Path) -> None:
    _edit_manifest(root, lambda m: m.update(layers=[0, 1]))


def _corrupt_lone_surrogate(root: Path) -> None:
    # found only by the writing pass before, which left a new, empty store behind (review)
    _edit_manifest(root, lambda m: m["personas"]["p0"].update(name="\ud800"))


def _corrupt_traversal(root: Path) -> None:
    _edit_manifest(root, lambda m: m["personas"].update({"../escape": {"name": "x"}}))


@pytest.mark.parametrize(
    ("corrupt", "error", "match"),
    [
        (_corrupt_missing_file, FileNotFoundError, r"lists persona 'p1' but .*bad/p1\.safetensors"),
        (_corrupt_shape, ValueError, r"p1\.safetensors.* shape \(3, 6\).*\(3, 5\)"),
        (_corrupt_shape_bf16, ValueError, r"p1\.safetensors.* shape \(4, 5\)"),
        (_corrupt_tensor_name, ValueError, r"p1\.safetensors.* no 'activations'.*hidden_states"),
        (_corrupt_json, ValueError, r"bad/manifest\.json.* not valid JSON"),
        (_corrupt_keys, ValueError, r"bad/manifest\.json.* lacks key\(s\) \['hidden_size'\]"),
        (_corrupt_truncated, ValueError, r"p1\.safetensors.*truncated"),
        (_corrupt_not_safetensors, ValueError, r"p1\.safetensors.* not a safetensors file"),
        (_corrupt_overlap, ValueError, r"p1\.safetensors' is not a valid safetensors file"),
        (_corrupt_dtype, ValueError, r"p1\.safetensors.* dtype 'F64'"),
        (_corrupt_nan, ValueError, r"p1\.safetensors.* non-finite"),
        (_corrupt_duplicate_id, ValueError, r"bad/manifest\.json.*duplicate keys \['p0'\]"),
        (_corrupt_sample_ids, ValueError, r"persona 'p0' has sample_ids 's1,s2'"),
        (_corrupt_layers, ValueError, r"layers must list 3 integer layer numbers"),
        (_corrupt_traversal, ValueError, r"persona id '\.\./escape'.*cannot be a file name"),
        (_corrupt_lone_surrogate, ValueError, r"bad/manifest\.json'.* not valid Unicode text"),
        *(
            (_header_of_wrong_types(entry), ValueError, r"p1\.safetensors.* malformed header")
            for entry in (
                {"dtype": "F32", "shape": [str(L), str(H)], "data_offsets": [0, L * H * 4]},
                {"dtype": ["F32"], "shape": [L, H], "data_offsets": [0, L * H * 4]},
                {"dtype": "F32", "shape": [L, H], "data_offsets": ["0", str(L * H * 4)]},
                {"dtype": "F32", "shape": [L, H], "data_offsets": {"a": 0, "b": 1}},
                {"dtype": "F32", "shape": [L, True], "data_offsets": [0, L * 4]},
            )
        ),
    ],
)
def test_directory_errors_import_nothing(tmp_path, corrupt, error, match):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a-good")  # sorts first: a naive importer would have written it
    make_variant(root, "bad", seed=1)
    corrupt(root)
    with pytest.raises(error, match=match):
        import_directory(root, store)
    assert not store.exists()


def test_directory_error_leaves_existing_store_untouched(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a-good")
    make_variant(root, "bad", seed=1)
    other = tmp_path / "other"
    make_variant(other, "kept")
    import_directory(other, store)
    _corrupt_shape(root)
    with pytest.raises(ValueError, match="shape"):
        import_directory(root, store)
    assert stored_variants(store) == [(MODEL, "mean", "kept")]


def test_directory_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no directory"):
        import_directory(tmp_path / "missing", tmp_path / "s.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no <model_dir>/<mask_strategy>/<variant>/manifest"):
        import_directory(tmp_path / "empty", tmp_path / "s.zarr")
    root = tmp_path / "tree"
    make_variant(root, "ok")
    make_variant(root, "orphan")
    _manifest(root, "orphan").unlink()
    with pytest.raises(ValueError, match=r"orphan' holds safetensors files but no manifest"):
        import_directory(root, tmp_path / "s.zarr")
    _manifest(root, "orphan").mkdir()  # a folder in its place: "[Errno 21]" alone before
    with pytest.raises(ValueError, match=r"import_directory\(\): .*orphan/manifest\.json' can"):
        import_directory(root, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_directory_bad_store_names(tmp_path):
    root = tmp_path / "tree"
    make_variant(root, "a-good")
    make_variant(root, "_hidden variant")
    with pytest.raises(ValueError, match=r"variant '_hidden variant' must be a plain name.*from '"):
        import_directory(root, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


def test_directory_model_disagreement(tmp_path):
    root = tmp_path / "tree"
    make_variant(root, "a")
    make_variant(root, "b", model="someone/else")
    with pytest.raises(ValueError, match=r"names model 'someone/else'.*pass model= to choose"):
        import_directory(root, tmp_path / "s.zarr")
    import_directory(root, tmp_path / "s.zarr", model="chosen")  # the override settles it
    assert pvx.variants(tmp_path / "s.zarr", model="chosen") == ["a", "b"]


def test_directory_clash_with_store_and_skip_existing(tmp_path):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a")
    import_directory(root, store)
    make_variant(root, "b", seed=1)
    with pytest.raises(pvx.StoreError, match=r"already holds.*'a'\)\]; nothing was imported"):
        import_directory(root, store)
    assert stored_variants(store) == [(MODEL, "mean", "a")]
    with pytest.warns(UserWarning, match=r"skipped 1 variant\(s\) already in the store"):
        done = import_directory(root, store, skip_existing=True)
    assert [d.variant for d in done] == ["b"]
    assert stored_variants(store) == [(MODEL, "mean", "a"), (MODEL, "mean", "b")]


# --------------------------------------------------------------------------- parquet


def table(
    ids: list[str],
    vectors: np.ndarray,
    *,
    flat: bool = False,
    value_type: pa.DataType | None = None,
) -> pa.Table:
    """The published table form; ``vector`` nested (list<list<float>>) unless ``flat``."""
    n = len(ids)
    values = pa.array(vectors.reshape(-1), type=value_type or pa.float32())
    if flat:
        vector = pa.ListArray.from_arrays(pa.array(np.arange(n + 1) * L * H, pa.int32()), values)
    else:
        layers = pa.ListArray.from_arrays(pa.array(np.arange(n * L + 1) * H, pa.int32()), values)
        vector = pa.ListArray.from_arrays(pa.array(np.arange(n + 1) * L, pa.int32()), layers)
    return pa.table(
        {
            "persona_id": pa.array(ids, pa.string()),
            "name": pa.array([f"Name of {i}" for i in ids], pa.string()),
            "sample_ids": pa.array([[f"{i}-s{k}" for k in range(2)] for i in ids]),
            "vector": vector,
        }
    )


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, L, H)).astype(np.float32)


def hf_layout(root: Path, config: str = f"{MODEL_DIR}__mean") -> dict[str, np.ndarray]:
    """``<root>/<config>/<split>-0000i-of-0000n.parquet``; templated is split in 2 shards."""
    cdir = root / config
    cdir.mkdir(parents=True)
    t = vectors(5, seed=0)
    b = vectors(3, seed=1)
    tids = [f"p{i}" for i in range(5)]
    pq.write_table(table(tids[:3], t[:3]), cdir / "templated-00000-of-00002.parquet")
    pq.write_table(table(tids[3:], t[3:]), cdir / "templated-00001-of-00002.parquet")
    pq.write_table(table(tids[:3], b), cdir / "biography-00000-of-00001.parquet")
    return {"templated": t, "biography": b}


def test_parquet_hf_directory_round_trip(tmp_path):
    root, store = tmp_path / "ds", tmp_path / "s.zarr"
    expected = hf_layout(root)
    done = import_parquet(root, store)
    assert [(d.model, d.mask_strategy, d.variant, d.n_persona) for d in done] == [
        (MODEL_DIR, "mean", "biography", 3),
        (MODEL_DIR, "mean", "templated", 5),
    ]
    da = load(store, "templated")
    assert da.dtype == np.float32
    np.testing.assert_array_equal(da.values, expected["templated"])
    assert da["id"].values.tolist() == ["p0", "p1", "p2", "p3", "p4"]
    assert da["name"].values.tolist()[3] == "Name of p3"
    assert da["sample_ids"].values.tolist()[4] == ("p4-s0", "p4-s1")
    assert da["layer"].values.tolist() == [0, 1, 2]
    assert da.attrs == {"model": MODEL_DIR, "mask_strategy": "mean"}
    np.testing.assert_array_equal(load(store, "biography").values, expected["biography"])


def test_parquet_directory_config_selection_and_model(tmp_path):
    root = tmp_path / "ds"
    hf_layout(root)
    hf_layout(root, config="other__first")
    import_parquet(root, tmp_path / "a.zarr", config="other__first")
    assert stored_variants(tmp_path / "a.zarr") == [
        ("other", "first", "biography"),
        ("other", "first", "templated"),
    ]
    import_parquet(root, tmp_path / "b.zarr", model={MODEL_DIR: MODEL})
    assert sorted(pvx.models(tmp_path / "b.zarr")) == [MODEL, "other"]
    # Pointing at a config directory itself also works.
    import_parquet(root / "other__first", tmp_path / "c.zarr", model="m")
    assert pvx.models(tmp_path / "c.zarr") == ["m"]


def test_parquet_split_subdirectories(tmp_path):
    cdir = tmp_path / "ds" / "m__mean"
    (cdir / "templated").mkdir(parents=True)
    x = vectors(2)
    pq.write_table(table(["a", "b"], x), cdir / "templated" / "0000.parquet")
    import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    np.testing.assert_array_equal(load(tmp_path / "s.zarr", "templated").values, x)


def test_parquet_mapping_flat_float16_layers(tmp_path):
    store = tmp_path / "s.zarr"
    x = vectors(4)
    pq.write_table(table(list("abcd"), x, flat=True), tmp_path / "flat.parquet")
    pq.write_table(table(["e", "f"], x[:2], value_type=pa.float16()), tmp_path / "half.parquet")
    done = import_parquet(
        {"flat": tmp_path / "flat.parquet", "half": [str(tmp_path / "half.parquet")]},
        store,
        config="org--Model-7B__first",
        model=MODEL,
        num_layers=L,
        layers=[2, 4, 6],
    )
    assert [d.variant for d in done] == ["flat", "half"]
    flat = load(store, "flat")
    np.testing.assert_array_equal(flat.values, x)
    assert flat["layer"].values.tolist() == [2, 4, 6]
    assert flat.attrs == {"model": MODEL, "mask_strategy": "first"}
    half = load(store, "half")
    assert half.dtype == np.float16
    np.testing.assert_array_equal(half.values, x[:2].astype(np.float16))


@pytest.mark.parametrize("kind", ["large_list", "fixed_size_list"])
def test_parquet_other_list_types_and_row_groups(tmp_path, kind):
    x = vectors(7)
    values = pa.array(x.reshape(-1))
    if kind == "fixed_size_list":
        vector = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(values, H), L)
    else:
        inner = pa.LargeListArray.from_arrays(pa.array(np.arange(7 * L + 1) * H), values)
        vector = pa.LargeListArray.from_arrays(pa.array(np.arange(8) * L), inner)
    ids = [f"p{i}" for i in range(7)]
    t = table(ids, x).set_column(3, "vector", vector)
    pq.write_table(t, tmp_path / "v.parquet", row_group_size=2)  # several chunks on read
    import_parquet({"v": tmp_path / "v.parquet"}, tmp_path / "s.zarr", config="m__mean")
    np.testing.assert_array_equal(load(tmp_path / "s.zarr", "v").values, x)


def test_parquet_empty_shard(tmp_path):
    x = vectors(2)
    pq.write_table(table(["a", "b"], x), tmp_path / "v-00000-of-00002.parquet")
    pq.write_table(table([], x[:0]), tmp_path / "v-00001-of-00002.parquet")
    pq.write_table(table([], x[:0]), tmp_path / "empty.parquet")
    files = sorted(tmp_path.glob("v-*.parquet"))
    import_parquet({"v": files}, tmp_path / "s.zarr", config="m__mean")
    np.testing.assert_array_equal(load(tmp_path / "s.zarr", "v").values, x)
    with pytest.raises(ValueError, match=r"variant 'e' .*: no rows"):
        import_parquet({"e": tmp_path / "empty.parquet"}, tmp_path / "t.zarr", config="m__mean")


def test_parquet_null_name_and_sample_ids(tmp_path):
    t = table(["a", "b"], vectors(2))
    t = t.set_column(1, "name", pa.array(["Alice", None], pa.string()))
    t = t.set_column(2, "sample_ids", pa.array([None, ["s"]], pa.list_(pa.string())))
    pq.write_table(t, tmp_path / "v.parquet")
    import_parquet({"v": tmp_path / "v.parquet"}, tmp_path / "s.zarr", config="m__mean")
    da = load(tmp_path / "s.zarr", "v")
    assert da["name"].values.tolist() == ["Alice", "b"]
    assert da["sample_ids"].values.tolist() == [(), ("s",)]


def test_parquet_text_columns_unannotated_or_categorical(tmp_path):
    """Names some writers store as binary came back as "b'Zo\\xc3\\xab'" (review), and
    dictionary-encoded ids (pandas categoricals) were refused: both are text."""
    t = table(["a", "b"], vectors(2))
    t = t.set_column(0, "persona_id", pa.array(["a", "b"]).dictionary_encode())
    t = t.set_column(1, "name", pa.array(["Zoë".encode(), b"Bob"], pa.binary()))
    pq.write_table(t, tmp_path / "v.parquet")
    import_parquet({"v": tmp_path / "v.parquet"}, tmp_path / "s.zarr", config="m__mean")
    da = load(tmp_path / "s.zarr", "v")
    assert da["id"].values.tolist() == ["a", "b"]
    assert da["name"].values.tolist() == ["Zoë", "Bob"]
    for bad, match in (
        (pa.array([b"\xff", b"ok"], pa.binary()), "name holds bytes that are not UTF-8"),
        (pa.array([1.5, 2.0]), "name must be strings, got double"),
    ):
        pq.write_table(t.set_column(1, "name", bad), tmp_path / "w.parquet")
        with pytest.raises(ValueError, match=match):
            import_parquet({"w": tmp_path / "w.parquet"}, tmp_path / "t.zarr", config="m__mean")
        assert not (tmp_path / "t.zarr").exists()


def test_parquet_split_with_a_missing_shard_is_refused(tmp_path):
    """Shard 1 of 3 absent (a download cut short) imported the rest without a word."""
    config = tmp_path / "ds" / "m__mean"
    config.mkdir(parents=True)
    for i in (0, 2):
        pq.write_table(table([f"p{i}"], vectors(1)), config / f"bio-0000{i}-of-00003.parquet")
    with pytest.raises(ValueError, match=r"split 'bio' .* shard\(s\) \[1\] of 3 are missing"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    pq.write_table(table(["p1"], vectors(1)), config / "bio-00001-of-00004.parquet")
    with pytest.raises(ValueError, match=r"split 'bio' .* count \[3, 4\] shards"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    (config / "bio-00001-of-00004.parquet").unlink()
    pq.write_table(table(["p5"], vectors(1)), config / "bio-00005-of-00003.parquet")
    with pytest.raises(ValueError, match=r"shard number\(s\) \[5\] are beyond its 3 shards"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
    # a complete set numbered from 1 (review: refused as missing shard 0)
    for path in config.iterdir():
        path.unlink()
    for i in (1, 2, 3):
        pq.write_table(table([f"p{i}"], vectors(1)), config / f"bio-0000{i}-of-00003.parquet")
    import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    assert load(tmp_path / "s.zarr", "bio")["id"].values.tolist() == ["p1", "p2", "p3"]


def test_parquet_config_given_as_a_path_is_refused(tmp_path):
    """From a review: --config ../pq/gemma__mean imported, the model named '../pq/gemma'."""
    config = tmp_path / "ds" / "m__mean"
    config.mkdir(parents=True)
    pq.write_table(table(["p0"], vectors(1)), config / "bio.parquet")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match=r"config '\.\./ds/m__mean' is a path; .* 'm__mean'"):
        import_parquet(tmp_path / "other", tmp_path / "s.zarr", config="../ds/m__mean")
    assert not (tmp_path / "s.zarr").exists()


def test_parquet_split_folder_with_a_missing_shard_or_two_places_is_refused(tmp_path):
    """From a review: shards in a <split>/ folder skipped the check (shard 1 of 3 absent
    imported 2 of 3 without a word), and v.parquet beside v-00000-of-00001.parquet merged."""
    config = tmp_path / "ds" / "m__mean"
    (config / "bio").mkdir(parents=True)
    for i in (0, 2):
        pq.write_table(
            table([f"p{i}"], vectors(1)), config / "bio" / f"bio-0000{i}-of-00003.parquet"
        )
    with pytest.raises(ValueError, match=r"split 'bio' .* shard\(s\) \[1\] of 3 are missing"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    pq.write_table(table(["p1"], vectors(1)), config / "bio" / "bio-00001-of-00003.parquet")
    pq.write_table(table(["q"], vectors(1)), config / "bio.parquet")
    with pytest.raises(ValueError, match=r"split 'bio' .* both beside its folder and in it"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    (config / "bio.parquet").unlink()
    pq.write_table(table(["t0"], vectors(1)), config / "tmp.parquet")
    pq.write_table(table(["t1"], vectors(1)), config / "tmp-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"split 'tmp' .* numbered shards are mixed with other"):
        import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
    (config / "tmp.parquet").unlink()
    import_parquet(tmp_path / "ds", tmp_path / "s.zarr")
    assert load(tmp_path / "s.zarr", "bio")["id"].values.tolist() == ["p0", "p1", "p2"]


def _write_good(tmp_path: Path) -> Path:
    pq.write_table(table(["a", "b"], vectors(2)), tmp_path / "a-good.parquet")
    return tmp_path / "a-good.parquet"


def _bad_missing_column(path: Path) -> dict[str, Any]:
    pq.write_table(table(["x"], vectors(1)).drop_columns(["sample_ids"]), path)
    return {}


def _bad_ragged_layers(path: Path) -> dict[str, Any]:
    rows = [np.zeros((L, H)).tolist(), np.zeros((L + 1, H)).tolist()]
    t = table(["x", "y"], vectors(2)).set_column(3, "vector", pa.array(rows))
    pq.write_table(t, path)
    return {}


def _bad_ragged_width(path: Path) -> dict[str, Any]:
    rows = [np.zeros((L, H)).tolist(), [[0.0] * H, [0.0] * (H - 1), [0.0] * H]]
    t = table(["x", "y"], vectors(2)).set_column(3, "vector", pa.array(rows))
    pq.write_table(t, path)
    return {}


def _bad_null_vector(path: Path) -> dict[str, Any]:
    t = table(["x", "y"], vectors(2))
    rows = [np.zeros((L, H)).tolist(), None]
    pq.write_table(t.set_column(3, "vector", pa.array(rows, t.schema.field("vector").type)), path)
    return {}


def _bad_null_value(path: Path) -> dict[str, Any]:
    rows = [[[0.0] * H] * (L - 1) + [[0.0] * (H - 1) + [None]]]
    t = table(["x"], vectors(1)).set_column(3, "vector", pa.array(rows))
    pq.write_table(t, path)
    return {}


def _bad_flat_without_num_layers(path: Path) -> dict[str, Any]:
    pq.write_table(table(["x"], vectors(1), flat=True), path)
    return {}


def _bad_flat_length(path: Path) -> dict[str, Any]:
    t = table(["x"], vectors(1)).set_column(3, "vector", pa.array([[0.0] * (L * H - 1)]))
    pq.write_table(t, path)
    return {"num_layers": L}


def _bad_duplicate_ids(path: Path) -> dict[str, Any]:
    pq.write_table(table(["x", "x"], vectors(2)), path)
    return {}


def _bad_nan(path: Path) -> dict[str, Any]:
    x = vectors(2)
    x[1, 0, 0] = np.inf
    pq.write_table(table(["x", "y"], x), path)
    return {}


def _bad_strings(path: Path) -> dict[str, Any]:
    pq.write_table(table(["x"], vectors(1)).set_column(0, "persona_id", pa.array([7])), path)
    return {}


def _bad_not_parquet(path: Path) -> dict[str, Any]:
    path.write_bytes(b"PAR? no")
    return {}


@pytest.mark.parametrize(
    ("make_bad", "match"),
    [
        (_bad_missing_column, r"z-bad\.parquet' lacks column\(s\) \['sample_ids'\]"),
        (
            _bad_ragged_layers,
            r"z-bad\.parquet'.* persona\(s\) \['y'\] has \[4\] layers, expected 3",
        ),
        (_bad_ragged_width, r"z-bad\.parquet'.* persona\(s\) \['y'\] has layers of different"),
        (_bad_null_vector, r"z-bad\.parquet'.* null vector for persona\(s\) \['y'\]"),
        (_bad_null_value, r"z-bad\.parquet'.* 1 null value"),
        (_bad_flat_without_num_layers, r"z-bad\.parquet'.* flat list.* pass num_layers="),
        (_bad_flat_length, r"z-bad\.parquet'.* flat vector .*'x'.* not 3 layers"),
        (_bad_duplicate_ids, r"variant 'z-bad' .*duplicate ids \['x'\]"),
        (_bad_nan, r"variant 'z-bad' .*non-finite .*\['y'\]"),
        (_bad_strings, r"z-bad\.parquet'.* persona_id must be strings"),
        (_bad_not_parquet, r"z-bad\.parquet' is not a readable Parquet file"),
    ],
)
def test_parquet_errors_import_nothing(tmp_path, make_bad, match):
    store = tmp_path / "s.zarr"
    kwargs = make_bad(tmp_path / "z-bad.parquet")
    with pytest.raises(ValueError, match=match):
        import_parquet(
            {"a-good": _write_good(tmp_path), "z-bad": tmp_path / "z-bad.parquet"},
            store,
            config="m__mean",
            **kwargs,
        )
    assert not store.exists()


def test_parquet_duplicate_ids_across_shards(tmp_path):
    pq.write_table(table(["a", "b"], vectors(2)), tmp_path / "one.parquet")
    pq.write_table(table(["b"], vectors(1)), tmp_path / "two.parquet")
    with pytest.raises(ValueError, match=r"variant 'v' \(.*one\.parquet.*two\.parquet.*\['b'\]"):
        import_parquet(
            {"v": [tmp_path / "one.parquet", tmp_path / "two.parquet"]},
            tmp_path / "s.zarr",
            config="m__mean",
        )
    assert not (tmp_path / "s.zarr").exists()


def test_parquet_source_errors(tmp_path):
    store = tmp_path / "s.zarr"
    good = _write_good(tmp_path)
    with pytest.raises(ValueError, match=r"pass config='<model_dir>__<mask_strategy>'"):
        import_parquet({"v": good}, store)
    with pytest.raises(ValueError, match=r"config 'nomask' is not '<model_dir>__<mask_strategy>'"):
        import_parquet({"v": good}, store, config="nomask")
    with pytest.raises(FileNotFoundError, match=r"no file .*missing\.parquet"):
        import_parquet({"v": tmp_path / "missing.parquet"}, store, config="m__mean")
    with pytest.raises(ValueError, match=r"variant 'bad name!' must be a plain name"):
        import_parquet({"bad name!": good}, store, config="m__mean")
    with pytest.raises(ValueError, match=r"num_layers must be a positive integer"):
        import_parquet({"v": good}, store, config="m__mean", num_layers=0)
    with pytest.raises(ValueError, match=r"no <model_dir>__<mask_strategy> config directories"):
        import_parquet(tmp_path, store)
    with pytest.raises(FileNotFoundError, match=r"no config directory .*x__y"):
        import_parquet(tmp_path, store, config="x__y")
    (tmp_path / "m__mean").mkdir()
    with pytest.raises(ValueError, match=r"no Parquet files in .*m__mean"):
        import_parquet(tmp_path, store)
    with pytest.raises(FileNotFoundError, match="no directory"):
        import_parquet(tmp_path / "nowhere", store)
    with pytest.raises(ValueError, match=r"layers has 2 entries for 3"):
        import_parquet({"v": good}, store, config="m__mean", layers=[0, 1])
    assert not store.exists()


def test_parquet_clash_with_store_and_skip_existing(tmp_path):
    root, store = tmp_path / "ds", tmp_path / "s.zarr"
    hf_layout(root)
    import_parquet({"templated": _write_good(tmp_path)}, store, config=f"{MODEL_DIR}__mean")
    with pytest.raises(pvx.StoreError, match=r"already holds .*'templated'\)\]"):
        import_parquet(root, store)
    assert stored_variants(store) == [(MODEL_DIR, "mean", "templated")]
    with pytest.warns(UserWarning, match="already in the store"):
        done = import_parquet(root, store, skip_existing=True)
    assert [d.variant for d in done] == ["biography"]
    assert pvx.persona_ids(store, "templated") == ["a", "b"]  # untouched


def test_both_importers_agree(tmp_path):
    """The same vectors through either format give identical stores."""
    root = tmp_path / "tree"
    expected = make_variant(root, "v", ids=("a", "b"))
    import_directory(root, tmp_path / "d.zarr")
    x = np.stack([expected["a"], expected["b"]])
    t = table(["a", "b"], x)
    t = t.set_column(1, "name", pa.array(["Name of a", "Name of b"]))
    t = t.set_column(2, "sample_ids", pa.array([["a-s0"], ["b-s0", "b-s1"]]))
    pq.write_table(t, tmp_path / "v.parquet")
    import_parquet(
        {"v": tmp_path / "v.parquet"}, tmp_path / "p.zarr", config=f"{MODEL_DIR}__mean", model=MODEL
    )
    a, b = load(tmp_path / "d.zarr", "v"), load(tmp_path / "p.zarr", "v")
    assert a.identical(b)


def test_directory_file_rewritten_during_the_import_is_refused(tmp_path, monkeypatch):
    """A tensor file rewritten after its header was checked (e.g. a longer header moves the
    data) is an error, never its header bytes read as vectors; nothing is imported."""
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a", dtype="bfloat16")
    make_variant(root, "b", dtype="bfloat16", seed=1)
    path = variant_dir(root, "b") / "p1.safetensors"
    checked = pvx.importers._check_tensors

    def check_then_rewrite(manifest_path, personas, shape):
        files = checked(manifest_path, personas, shape)
        if manifest_path.parent.name == "b":
            bits = np.frombuffer(path.read_bytes()[-L * H * 2 :], "<u2").reshape(L, H)
            header = json.dumps(
                {
                    "__metadata__": {"note": "x" * 40},
                    "activations": {
                        "dtype": "BF16",
                        "shape": [L, H],
                        "data_offsets": [0, bits.nbytes],
                    },
                }
            ).encode()
            header += b" " * (-len(header) % 8)
            path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
        return files

    monkeypatch.setattr(pvx.importers, "_check_tensors", check_then_rewrite)
    with pytest.raises(ValueError, match=r"p1\.safetensors' changed while it was being imported"):
        import_directory(root, store)
    assert stored_variants(store) == []  # "a" was not committed alone


def test_directory_variants_commit_together(tmp_path, monkeypatch):
    """A variant that fails while writing (its file changed after the checks) leaves none
    of the others behind."""
    import pvx.importers

    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a")
    make_variant(root, "b", seed=1)
    read = pvx.importers._read_tensor

    def read_or_fail(path, info):
        if path.parent.name == "b":
            raise ValueError(f"{path} changed after it was checked")
        return read(path, info)

    monkeypatch.setattr(pvx.importers, "_read_tensor", read_or_fail)
    with pytest.raises(ValueError, match=r"b/p0\.safetensors changed"):
        import_directory(root, store)
    assert stored_variants(store) == []


@pytest.mark.parametrize("pid", ["./p0", "sub/../p0", "a\\b", "y" * 300])
def test_directory_ids_that_are_not_plain_file_names(tmp_path, pid):
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a", ids=("p0",))
    manifest = variant_dir(root, "a") / "manifest.json"
    data = json.loads(manifest.read_text())
    data["personas"][pid] = {"name": "alias"}
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"persona id .* cannot be a file name"):
        import_directory(root, store)
    assert not store.exists()


def test_directory_one_model_name_per_directory(tmp_path):
    """A manifest that states no model takes the one its siblings state."""
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a", model=MODEL)
    make_variant(root, "b", model=None, seed=1)
    import_directory(root, store)
    assert stored_variants(store) == [(MODEL, "mean", "a"), (MODEL, "mean", "b")]


def test_directory_variant_created_by_another_writer_during_the_import(tmp_path, monkeypatch):
    """The clash check runs again under the writer lock: a variant another writer created
    since is refused (nothing imported), or skipped with skip_existing."""
    root, store = tmp_path / "tree", tmp_path / "s.zarr"
    make_variant(root, "a")
    make_variant(root, "b", seed=1)
    other = tmp_path / "other"
    make_variant(other, "b", seed=2)
    import_directory(other, store)  # "b" exists, but the first check will not see it
    monkeypatch.setattr(pvx._import_common, "_existing", lambda *a: set())
    with pytest.raises(pvx.StoreError, match=r"another writer created .*'b'.*nothing was imported"):
        import_directory(root, store)
    assert stored_variants(store) == [(MODEL, "mean", "b")]
    done = import_directory(root, store, skip_existing=True)
    assert [d.variant for d in done] == ["a"]
    assert stored_variants(store) == [(MODEL, "mean", "a"), (MODEL, "mean", "b")]


def test_parquet_values_too_large_for_float32_are_named(tmp_path):
    x = vectors(3).astype(np.float64)
    x[1, 0, 0] = 1e39  # finite in float64, inf in float32
    path = tmp_path / "big.parquet"
    pq.write_table(table(["a", "b", "c"], x, value_type=pa.float64()), path)
    with pytest.raises(ValueError, match=r"vector value 1e\+39 is too large for float32"):
        import_parquet({"v": path}, tmp_path / "s.zarr", config="m__mean")
    assert not (tmp_path / "s.zarr").exists()
