"""The ``pvx`` command: info and import, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pvx
from pvx.cli import main, summarize

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "stores" / "demo.zarr"


def run_pvx(*args, cwd=None):
    """Run the installed console script (falls back to ``python -m pvx.cli``)."""
    script = Path(sys.executable).with_name("pvx")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pvx.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env={**os.environ}
    )


def test_output_into_a_closed_pipe_is_not_an_error():
    # `pvx info | head`: the reader stops reading; no error message, no traceback
    info = subprocess.Popen(
        [sys.executable, "-m", "pvx.cli", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    info.stdout.close()  # before pvx writes: it starts up for longer than this takes
    err = info.stderr.read().decode()
    info.wait()
    assert info.returncode == 1 and err == "", err


def test_info_on_the_demo_store_by_default():
    result = run_pvx("info", cwd="/")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"pvx store {DEMO}" in out
    assert "model sentence-transformers/all-MiniLM-L6-v2" in out
    assert "mask strategy token_mean" in out and "mask strategy first_token" in out
    assert "variant biography: 320 personas + baseline, 7 layers [0-6], hidden 384" in out
    assert "education         ordinal (less than high school < high school diploma" in out
    assert "occupation        categorical" in out
    assert " MB on disk)" in out


def test_info_summary_of_a_small_store(tmp_path):
    store = tmp_path / "s.zarr"
    da = pvx.persona_vectors(
        np.zeros((3, 4, 5), "float32"),
        ids=["a", "b", pvx.BASELINE_ID],
        layers=[10, 11, 12, 20],
        attributes={"age": [1, 2, None], "tier": ["x", "y", None]},
        orders={"tier": ["x", "y"]},
        model="org/m",
        mask_strategy="mean",
        variant="v",
    )
    pvx.write_variant(store, da)
    text = summarize(pvx.open_store(store), source=str(store))
    assert "variant v: 2 personas + baseline, 4 layers [10-12, 20], hidden 5, float32" in text
    assert "tier  ordinal (x < y)" in text
    assert "age   numeric" in text


def test_errors_are_one_line_and_exit_1(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nowhere.zarr")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pvx info: error: no store at") and "\n" not in err


def test_import_directory_from_the_command_line(tmp_path):
    from safetensors.numpy import save_file

    variant_dir = tmp_path / "src" / "org--m" / "mean" / "bio"
    variant_dir.mkdir(parents=True)
    ids = ["p1", "p2", "baseline_assistant"]
    acts = {pid: np.full((2, 3), i, "float32") for i, pid in enumerate(ids)}
    for pid, array in acts.items():
        save_file({"activations": array}, str(variant_dir / f"{pid}.safetensors"))
    manifest = (
        '{"num_layers": 2, "hidden_size": 3, "personas": {'
        '"p1": {"name": "One", "sample_ids": ["s1"]}, "p2": {"name": "Two", "sample_ids": []}, '
        '"baseline_assistant": {}}}'
    )
    (variant_dir / "manifest.json").write_text(manifest)
    store = tmp_path / "out.zarr"
    result = run_pvx("import", "dir", str(tmp_path / "src"), str(store), "--model", "org/m")
    assert result.returncode == 0, result.stderr
    # the baseline counted as pvx info counts it (review: "3 personas" beside "2 + baseline")
    assert "imported org/m / mean / bio: 2 personas + baseline from" in result.stdout
    got = pvx.load(store, "bio").compute()
    np.testing.assert_array_equal(got.sel(id="p2").values, acts["p2"])
    assert got.sel(id="p1")["sample_ids"].item() == ("s1",)


def test_import_errors_are_one_line(tmp_path, capsys):
    assert main(["import", "dir", "/nonexistent", str(tmp_path / "x.zarr")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvx import: error:") and err.count("\n") == 1
    # parquet's options were ignored for a directory (review)
    (tmp_path / "src").mkdir()
    store = str(tmp_path / "y.zarr")
    assert main(["import", "dir", str(tmp_path / "src"), store, "--num-layers", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvx import: error: --num-layers: for 'pvx import parquet' only")
    assert not (tmp_path / "y.zarr").exists()
    # an empty --model was ignored, and the manifest's model dropped with it (review)
    assert main(["import", "dir", str(tmp_path / "src"), store, "--model", " "]) == 1
    assert "--model needs a model name" in capsys.readouterr().err


def test_storage_options_are_parsed_and_checked(capsys):
    from pvx.cli import _storage_options

    assert _storage_options(["anon=true", "profile=lab", "n=3"]) == {
        "anon": True,
        "profile": "lab",
        "n": 3,
    }
    assert main(["info", str(DEMO), "--storage-option", "anon=true"]) == 1
    assert "storage options ['anon'] only apply to URLs" in capsys.readouterr().err
    assert main(["info", "--storage-option", "oops"]) == 1
    assert "--storage-option takes KEY=VALUE" in capsys.readouterr().err


def small_store(path, *, model="org/m", attributes=None):
    da = pvx.persona_vectors(
        np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4),
        ids=["a", "b"],
        names=["Ann", "Bo"],
        attributes=attributes or {"age": [1.0, 2.0]},
        model=model,
        mask_strategy="mean",
        variant="v",
    )
    pvx.write_variant(path, da)


def test_info_escapes_control_characters(tmp_path):
    """pvx refuses such names, but stores written by other tools may hold them."""
    store = tmp_path / "s.zarr"
    small_store(store)
    tree = pvx.open_store(store)
    tree["org--m"].attrs["model"] = "evil\x1b[2J\x07model"
    out = summarize(tree, source="s\x85.zarr")
    assert "\x1b" not in out and "\x07" not in out and "\x85" not in out
    assert "evil\\x1b[2J\\x07model" in out and "s\\x85.zarr" in out


def test_publish_history_and_migrate_commands(tmp_path, capsys):
    store, out = tmp_path / "s.zarr", tmp_path / "pub.zarr"
    small_store(store)
    assert main(["history", str(store)]) == 0
    snapshot = capsys.readouterr().out.split()[0]
    assert main(["publish", str(store), str(out), "--version", snapshot]) == 0
    assert f"published version {snapshot}" in capsys.readouterr().out
    assert pvx.open_store(out).attrs["snapshot"] == snapshot
    assert main(["publish", str(store), str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    old = Path(__file__).parent / "data" / "format1.zarr"
    assert main(["info", str(old)]) == 1
    assert "pvx migrate" in capsys.readouterr().err
    assert main(["migrate", str(old), str(tmp_path / "new.zarr")]) == 0
    assert "variant v: 10 personas" in capsys.readouterr().out


def test_info_lists_attributes_of_every_variant_and_attributes_with_commas(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    n = 12
    x = np.random.default_rng(0).normal(size=(n, 1, 4)).astype("float32")
    for variant in ("A", "B"):
        pvx.write_variant(
            store,
            pvx.persona_vectors(
                x, ids=[f"p{i}" for i in range(n)], model="m", mask_strategy="mean", variant=variant
            ),
        )
    pvx.set_attribute(
        store, "city, state", {f"p{i}": f"c{i % 2}" for i in range(n)}, variants=["B"]
    )
    assert main(["info", str(store)]) == 0
    assert "city, state  categorical (variants B)" in capsys.readouterr().out
    out = tmp_path / "r"
    args = ["analyze", str(store), "--variant", "B", "--views", "attributes", "--folds", "2"]
    assert (
        main([*args, "--permutations", "0", "--attributes", "city, state", "--out", str(out)]) == 0
    )
    assert main(["analyze", str(store), "--views", "pca", "--attributes", "x"]) == 1
    assert "--attributes names the attributes to probe" in capsys.readouterr().err


def test_variants_and_colours_take_comma_separated_lists(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    n = 12
    x = np.random.default_rng(0).normal(size=(n, 2, 4)).astype("float32")
    for variant in ("A", "B", "C"):
        pvx.write_variant(
            store,
            pvx.persona_vectors(
                x, ids=[f"p{i}" for i in range(n)], model="m", mask_strategy="mean", variant=variant
            ),
        )
    for name in ("kind", "size", "city, state"):
        pvx.set_attribute(store, name, {f"p{i}": f"c{i % 2}" for i in range(n)})
    out = tmp_path / "r"
    args = ["analyze", str(store), "--views", "pca", "--out", str(out)]
    colours = ["--color", "kind,size", "--color", "city, state"]
    assert main([*args, "--variant", "A,C", *colours]) == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["variants"] == ["A", "C"]
    assert run["colors"] == ["kind", "size", "city, state"]
    # three variants: the variants page says which two it compares
    assert main(["analyze", str(store), "--views", "variants", "--out", str(tmp_path / "v")]) == 0
    assert "the variants page compares A and B, the first two" in capsys.readouterr().out


def test_ids_with_commas_and_spaces_are_taken_whole(tmp_path, capsys):
    """Hostile ids: a value that is a whole id stays one; others split on commas."""
    store = tmp_path / "s.zarr"
    ids = ["Smith, John", " padded ", "p2", "p3"]
    x = np.random.default_rng(0).normal(size=(4, 2, 4)).astype("float32")
    pvx.write_variant(
        store, pvx.persona_vectors(x, ids=ids, model="m", mask_strategy="mean", variant="A")
    )
    out = tmp_path / "r"
    args = ["analyze", str(store), "--views", "pca", "--out", str(out)]
    assert main([*args, "--ids", "Smith, John", "--ids", " padded ", "--ids", "p2,p3"]) == 0
    assert json.loads((out / "run.json").read_text())["ids"] == ids
    assert main([*args, "--ids", "Smith, John,p2"]) == 1  # not an id: split, "Smith" unknown
    assert "ids ['John', 'Smith'] are not in variant 'A'" in capsys.readouterr().err


def test_migrate_of_a_current_store_says_so(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    pvx.write_variant(
        store,
        pvx.persona_vectors(
            np.ones((2, 1, 3), "float32"), ids=["a", "b"], model="m", mask_strategy="x", variant="v"
        ),
    )
    assert main(["migrate", str(store), str(tmp_path / "new.zarr")]) == 1
    assert "is a current pvx store already" in capsys.readouterr().err


def test_import_passes_storage_options_to_the_store(tmp_path, monkeypatch, capsys):
    # for a store on object storage (credentials, endpoints); it had no such flag (review)
    from pvx import importers

    seen = {}

    def import_directory(source, store, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped here")

    monkeypatch.setattr(importers, "import_directory", import_directory)
    args = ["import", "dir", str(tmp_path), "s3://bucket/s.zarr", "--storage-option", "anon=true"]
    assert main([*args, "--storage-option", "endpoint_url=http://127.0.0.1:9"]) == 1
    assert "stopped here" in capsys.readouterr().err
    assert seen["anon"] is True and seen["endpoint_url"] == "http://127.0.0.1:9"
