"""``pvx analyze``: one computation, saved numbers, pages drawn from them, safe output."""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import html
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import zarr
from conftest import same_personas

import pvx
import pvx.synthetic
from pvx import report
from pvx.cli import main

FAST_VIEWS = ["pca", "similarity", "pairs", "scree", "dendrogram", "variants", "kmeans", "isomap"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two variants of 12 planted personas (3 clusters) over 4 layers, plus a baseline."""
    path = tmp_path_factory.mktemp("store") / "s.zarr"
    first = None
    for i, variant in enumerate(("templated", "biography")):
        da = pvx.synthetic.planted_personas(
            n_persona=12, n_clusters=3, n_layer=4, n_hidden=24, seed=i, baseline=True
        )
        first = da if first is None else first
        da = same_personas(da, first).assign_coords(variant=variant)
        da.attrs.update(model="org/planted", mask_strategy="mean")
        pvx.write_variant(path, da)
    return path


def test_analyze_writes_pages_index_and_results(store, tmp_path):
    index = report.analyze(
        store, views=FAST_VIEWS, n_clusters=3, out=tmp_path / "out", progress=None
    )
    out = index.parent
    pages = {p.name for p in out.glob("*.html")}
    assert pages == {"index.html", *(f"{v}.html" for v in FAST_VIEWS)}
    assert (out / "plotly.min.js").exists()  # written once, beside the pages: works offline
    text = index.read_text()
    for view in FAST_VIEWS:
        assert f'href="{view}.html"' in text
    assert "org/planted" in text and "templated, biography" in text
    for page in out.glob("*.html"):
        assert "cdn" not in page.read_text().lower()
    # one row order for every frame, and the page says whose (review)
    assert "dendrogram order of layer 3 in every frame" in (out / "similarity.html").read_text()
    results = report.open_results(out / "results.zarr")
    settings = json.loads(results.attrs["settings"])
    assert settings["variants"] == ["templated", "biography"]
    scores = results["pca"]["scores"]
    assert scores.dims == ("variant", "layer", "persona", "component")
    assert pvx.BASELINE_ID not in scores["id"].values


def test_results_match_a_direct_computation(store, tmp_path):
    index = report.analyze(store, views=["pca", "similarity"], out=tmp_path / "o", progress=None)
    results = report.open_results(index.parent / "results.zarr")
    da = pvx.load(store, ["templated", "biography"])
    direct = pvx.similarity.cosine(da).compute()
    # saved as CF-scaled int16 (steps of 1/32767), upper triangle only
    xr.testing.assert_allclose(
        results["cosine"]["cosine"],
        direct.drop_vars([k for k in direct.coords if str(k).startswith("sample_ids")]),
        rtol=0,
        atol=0.5 / 32767 + 1e-7,
    )
    raw = zarr.open_group(index.parent / "results.zarr", mode="r")["cosine"]
    n = results["cosine"].sizes["persona"]
    assert raw["cosine_upper"].dtype == np.int16
    assert raw["cosine_upper"].shape == (2, 4, n * (n + 1) // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "failed to open ... consolidated metadata"
        plain = xr.open_datatree(index.parent / "results.zarr", engine="zarr")
    assert plain["cosine"]["cosine_upper"].dtype.kind == "f"  # xarray decodes the scale
    assert set(plain.children) == set(results.children)


def test_pages_redrawn_from_saved_results_are_identical(store, tmp_path):
    index = report.analyze(store, views=FAST_VIEWS, n_clusters=3, out=tmp_path / "a", progress=None)
    reopened = report.open_results(index.parent / "results.zarr")
    report.render(reopened, tmp_path / "b")
    for page in index.parent.glob("*.html"):
        if page.name != "index.html":  # the index carries the time it was written
            assert (tmp_path / "b" / page.name).read_text() == page.read_text(), page.name


def test_a_page_drawn_in_the_umap_worker_equals_one_drawn_here(store, tmp_path):
    """With UMAP's worker process up, the similarity page is drawn there meanwhile: the
    same page, and the index keeps the pages' order."""
    said: list[str] = []
    views = ["umap", "similarity", "scree"]
    index = report.analyze(store, views=views, out=tmp_path / "a", progress=said.append)
    drawn = [m.split(":")[0].strip() for m in said if m.endswith("figure(s)")]
    assert drawn == ["umap", "scree", "similarity"]  # the worker's page last
    report.render(report.open_results(index.parent / "results.zarr"), tmp_path / "b")
    for page in ("similarity.html", "umap.html", "scree.html"):
        assert (tmp_path / "b" / page).read_text() == (index.parent / page).read_text()
    links = index.read_text()
    assert links.index("umap.html") < links.index("similarity.html") < links.index("scree.html")


def test_pages_of_a_worker_that_died_are_drawn_here(store, tmp_path):
    """A worker killed while drawing (out of memory, say) costs time, not the report."""

    class DeadPool(concurrent.futures.Executor):
        def submit(self, fn, /, *args, **kwargs):
            future = concurrent.futures.Future()
            future.set_exception(concurrent.futures.process.BrokenProcessPool("killed"))
            return future

    index = report.analyze(store, views=["similarity", "scree"], out=tmp_path / "a", progress=None)
    said: list[str] = []
    results = report.open_results(index.parent / "results.zarr")
    path = index.parent / "results.zarr"
    report.render(results, tmp_path / "b", progress=said.append, pool=DeadPool(), results_path=path)
    assert any("stopped: drawing them here" in m for m in said)
    for page in ("similarity.html", "scree.html"):
        assert (tmp_path / "b" / page).read_text() == (index.parent / page).read_text()


def test_another_runs_output_is_never_replaced(store, tmp_path):
    out = tmp_path / "out"
    report.analyze(store, views=["scree"], out=out, progress=None)
    before = (out / "scree.html").read_text()
    report.analyze(store, views=["scree"], out=out, progress=None)  # same run: fine
    # the same store spelled otherwise, and a store that changed since, are the same run
    respelled = store.parent / ".." / store.parent.name / store.name
    report.analyze(respelled, views=["scree"], out=out, progress=None)
    changed = tmp_path / "changed.zarr"
    pvx.write_variant(changed, pvx.load(store, "templated").isel(persona=slice(0, 6)))
    report.analyze(changed, views=["scree"], out=tmp_path / "c", progress=None)
    rest = pvx.load(store, "templated").isel(persona=slice(6, None))
    pvx.append_personas(changed, rest)
    report.analyze(changed, views=["scree"], out=tmp_path / "c", progress=None)
    with pytest.raises(pvx.StoreError, match=r"different run \(views \['scree'\] there, \['pca'\]"):
        report.analyze(store, views=["pca"], out=out, progress=None)
    assert (out / "scree.html").read_text() == before
    report.analyze(store, views=["pca"], out=out, overwrite=True, progress=None)
    assert (out / "pca.html").exists() and not (out / "scree.html").exists()
    # a setting of the "asked" record is named as itself, not as the whole record
    with pytest.raises(pvx.StoreError, match=r"different run \(colors \[\] there, \['cluster"):
        report.analyze(store, views=["pca"], colors=["cluster"], n_clusters=4, out=out)


def test_only_files_pvx_wrote_are_ever_deleted(store, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    report.analyze(store, views=["scree"], out=mine, progress=None)  # written beside it
    (mine / "notes.txt").write_text("added after the run")
    report.analyze(store, views=["scree"], out=mine, progress=None)  # a plain rerun
    report.analyze(store, views=["pca"], out=mine, overwrite=True, progress=None)
    assert (mine / "thesis.tex").read_text() == "precious"
    assert (mine / "notes.txt").read_text() == "added after the run"
    assert (mine / "pca.html").exists() and not (mine / "scree.html").exists()
    run = json.loads((mine / "run.json").read_text())
    assert "thesis.tex" not in run["files"] and "pca.html" in run["files"]
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "index.html").write_text("the user's own index")
    with pytest.raises(pvx.StoreError, match="pvx did not write it"):
        report.analyze(store, views=["pca"], out=clash, progress=None)
    assert (clash / "index.html").read_text() == "the user's own index"


def test_personas_not_in_every_variant_are_named_in_the_report(tmp_path):
    """From a review: the variants join on persona ids, and the report never said which
    personas that left out."""
    path = tmp_path / "s.zarr"
    for variant, keep in (("a", slice(0, 10)), ("b", slice(2, 12))):
        da = pvx.synthetic.planted_personas(n_persona=12, n_layer=2, n_hidden=8, seed=0)
        da = da.isel(persona=keep).assign_coords(variant=variant)
        da.attrs.update(model="org/m", mask_strategy="mean")
        pvx.write_variant(path, da)
    messages: list[str] = []
    with pytest.warns(UserWarning, match="dropped 4 persona"):
        index = report.analyze(path, views=["pca"], out=tmp_path / "o", progress=messages.append)
    run = json.loads((index.parent / "run.json").read_text())
    assert run["personas"] == 8
    assert run["personas_left_out"] == {"a": ["p0", "p1"], "b": ["p10", "p11"]}
    assert "2 of a (p0, p1); 2 of b (p10, p11): not in every variant" in index.read_text()
    assert any("2 persona(s) of a are left out" in m for m in messages)
    # one variant alone leaves none out
    index = report.analyze(path, variants=["a"], views=["pca"], out=tmp_path / "a", progress=None)
    assert json.loads((index.parent / "run.json").read_text())["personas_left_out"] == {}


def test_another_tools_run_json_is_never_taken_for_pvx_s(store, tmp_path, monkeypatch):
    """From a review: a run.json listing files, written by another tool, was taken for a pvx
    report and --overwrite deleted the files it listed."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mydata.csv").write_text("precious")
    (foreign / "run.json").write_text(json.dumps({"tool": "other", "files": ["mydata.csv"]}))

    def never(*args, **kwargs):
        raise AssertionError("computed before the clash was found")

    monkeypatch.setattr(report, "compute_results", never)  # refused before any computing
    for overwrite in (False, True):
        with pytest.raises(pvx.StoreError, match=r"run\.json exists and pvx did not write it"):
            report.analyze(store, views=["pca"], out=foreign, overwrite=overwrite, progress=None)
    assert (foreign / "mydata.csv").read_text() == "precious"
    # the store as a file:// URL: --out inside it is refused as for its path
    with pytest.raises(ValueError, match="would be inside, or contain, the store"):
        report.analyze(f"file://{store}", views=["pca"], out=Path(store) / "r", progress=None)


def test_a_report_of_an_earlier_pvx_is_rerun_in_place(store, tmp_path):
    """run.json gained "personas" (what the run read, not a setting): a folder written
    before it is still this run's own."""
    out = tmp_path / "o"
    report.analyze(store, views=["scree"], out=out, progress=None)
    manifest = json.loads((out / "run.json").read_text())
    del manifest["personas"]
    (out / "run.json").write_text(json.dumps(manifest))
    report.analyze(store, views=["scree"], out=out, progress=None)
    assert json.loads((out / "run.json").read_text())["personas"] == 12


def test_a_second_run_into_a_folder_being_written_is_refused(store, tmp_path, monkeypatch):
    """Two runs into one --out at once both succeeded, the last replacing the other's
    report (review): the second is refused while the first computes, and the folder is
    free again once it is done (no lock file left)."""
    import threading

    out = tmp_path / "o"
    computing, finish = threading.Event(), threading.Event()
    compute = report.compute_results

    def slow_compute(*args, **kwargs):
        computing.set()
        finish.wait(60)
        return compute(*args, **kwargs)

    monkeypatch.setattr(report, "compute_results", slow_compute)
    first = threading.Thread(
        target=report.analyze, args=(store,), kwargs={"views": ["scree"], "out": out}
    )
    first.start()
    try:
        assert computing.wait(60)
        for overwrite in (False, True):
            with pytest.raises(pvx.StoreError, match="being written by another pvx analyze"):
                report.analyze(store, views=["pca"], out=out, overwrite=overwrite, progress=None)
    finally:
        finish.set()
        first.join(60)
    assert json.loads((out / "run.json").read_text())["views"] == ["scree"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != store.name) == ["o"]
    monkeypatch.setattr(report, "compute_results", compute)
    report.analyze(store, views=["pca"], out=out, overwrite=True, progress=None)
    assert json.loads((out / "run.json").read_text())["views"] == ["pca"]


def test_out_may_be_a_symlink_or_the_current_folder(store, tmp_path, monkeypatch):
    real = tmp_path / "elsewhere" / "report"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    for _ in range(2):  # the rerun replaces its own files through the link
        report.analyze(store, views=["scree"], out=tmp_path / "link", progress=None)
    assert (tmp_path / "link").is_symlink() and (real / "scree.html").exists()
    # staged beside the real folder (a move across filesystems would fail), and cleaned up
    assert sorted(p.name for p in real.parent.iterdir()) == ["report"]
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["analyze", str(store), "--views", "scree", "--out", "."]) == 0
    assert (here / "scree.html").exists()


def test_out_inside_or_around_the_store_is_refused(store, tmp_path):
    before = sorted(p.name for p in store.rglob("*"))
    for out in (store, store / "report", store.parent):
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="inside, or contain, the store"):
                report.analyze(store, views=["scree"], out=out, overwrite=overwrite, progress=None)
    assert sorted(p.name for p in store.rglob("*")) == before


def test_cluster_colour_and_attribute_colours(store, tmp_path):
    index = report.analyze(
        store,
        views=["pca"],
        colors=["cluster", "planted_cluster"],
        n_clusters=3,
        out=tmp_path / "o",
        progress=None,
    )
    text = (index.parent / "pca.html").read_text()
    assert "coloured by 3 k-means clusters" in text and "coloured by planted_cluster" in text


def test_a_persona_attribute_named_cluster_wins_over_kmeans(tmp_path):
    # pvx's own synthetic stores label personas with a "cluster" attribute, which the default
    # colours pick: it used to be taken for the k-means colouring and crash after computing
    path = tmp_path / "s.zarr"
    da = pvx.synthetic.planted_personas(n_persona=12, n_clusters=3, n_layer=3, n_hidden=16)
    labels = [f"c{c}" for c in da["planted_cluster"].values]
    cluster = ("persona", labels, {"kind": "categorical"})
    da = da.drop_vars("planted_cluster").assign_coords(cluster=cluster)
    da = da.assign_coords(variant="templated")
    da.attrs.update(model="org/planted", mask_strategy="mean")
    pvx.write_variant(path, da)
    index = report.analyze(
        path, views=["pca"], colors=["cluster", "age"], out=tmp_path / "o", progress=None
    )
    settings = json.loads(report.open_results(index.parent / "results.zarr").attrs["settings"])
    assert settings["n_clusters"] is None  # no k-means ran
    text = (index.parent / "pca.html").read_text()
    assert "coloured by cluster" in text
    assert '"c0"' in text and '"cluster 0"' not in text  # the attribute's labels, not k-means
    # with k-means too: its labels no longer clash with the attribute's name
    index = report.analyze(
        path, views=["pca", "kmeans"], colors=["cluster"], out=tmp_path / "k", progress=None
    )
    results = report.open_results(index.parent / "results.zarr")
    assert results["kmeans"]["cluster"].dtype.kind == "i"
    assert sorted(set(results["pca"]["scores"]["cluster"].values)) == ["c0", "c1", "c2"]


def test_colours_must_be_persona_attributes(store, tmp_path):
    with pytest.raises(ValueError, match=r"unknown colour attribute\(s\) \['layer'\]"):
        report.analyze(store, views=["pca"], colors=["layer"], out=tmp_path / "o", progress=None)
    assert not (tmp_path / "o").exists()


def test_cluster_colour_alone_runs_kmeans(store, tmp_path):
    index = report.analyze(
        store, views=["pca"], colors=["cluster"], out=tmp_path / "o", progress=None
    )
    results = report.open_results(index.parent / "results.zarr")
    assert json.loads(results.attrs["settings"])["n_clusters"] == 5
    assert results["kmeans"]["cluster"].max() == 4
    assert "coloured by 5 k-means clusters" in (index.parent / "pca.html").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant", "nope"], "variant 'nope' not found"),
        (["--model", "nope"], "model 'nope' not in the store"),
        (["--color", "shoe_size"], "unknown colour attribute"),
        (["--views", "pca,nonsense"], "unknown views"),
        (["--layers", "0,99"], "--layers) name unknown layer label(s) [99]; variant '"),
        (["--ids", "p0,p1", "--views", "umap"], "nothing to draw"),
        (["--ids", "p0"], "every view compares personas and the selection has 1"),
        # empty and repeated items, a huge range, a blank --out (review)
        (["--variant", ","], "--variant names nothing"),
        (["--color", ""], "--color names nothing"),
        (["--color", "age,age"], "--color lists ['age'] more than once"),
        (["--views", "pca, scree,pca"], "--views lists ['pca'] more than once"),
        (["--layers", "0-20000000"], "--layers range '0-20000000' spans 20,000,001 layers"),
        (["--out", " "], "--out names nothing"),
        (["--clusters", "100", "--views", "kmeans"], "(n_clusters=) 100 is more than the 12"),
        (["--clusters", "3", "--views", "pca", "--color", "age"], "(n_clusters=) sets the k-means"),
        (["--layers", "1-0"], "range '1-0' is empty"),
        (["--layers", "spans"], "--layers takes numbers and ranges like 3,5,10-12"),
        (["--workers", "0"], "at least 1 worker"),
        (["--folds", "1"], "--folds needs 2 or more cross-validation folds, got 1"),
        (["--permutations", "-1"], "--permutations needs 0 or more label shuffles"),
        (["--attributes", "shoe_size"], "unknown attribute(s) ['shoe_size']"),
        (["--clusters", "0"], "at least 1 cluster"),
        (["--variant", "templated", "--variant", "templated"], "more than once"),
        (["--variant", "templated", "--views", "variants"], "nothing to draw"),
        (["--folds", "50", "--views", "attributes"], "nothing to draw"),
        (["--layers", "2", "--views", "pairs"], "nothing to draw"),
        (["--ids", "baseline_assistant,p1"], "left out unless asked for"),
        (["--layers", "0-2,1-2"], "lists layer(s) [1, 2] more than once"),
        # empty lists ran everything (review)
        (["--views", ",,"], "--views names nothing"),
        (["--layers", ""], "--layers names nothing"),
        (["--ids", ","], "--ids names nothing"),
        # a Path made "http:/host/out" of it, a local folder (review)
        (["--out", "http://127.0.0.1:9/out"], "is a URL; the report is written to a local"),
    ],
)
def test_cli_errors_are_one_line(store, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)  # a relative --out taken wrongly (a URL) lands here, if at all
    assert main(["analyze", str(store), "--out", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pvx analyze: error:") and message in err
    assert err.count("\n") == 1


def test_id_and_view_lists_drop_spaces_and_empty_items(store, tmp_path, capsys):
    out = tmp_path / "o"
    args = [
        "analyze",
        str(store),
        "--out",
        str(out),
        "--ids",
        "p0, p1,,p2",
        "--views",
        "pca, scree",
    ]
    assert main(args) == 0, capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["ids"] == ["p0", "p1", "p2"] and run["views"] == ["pca", "scree"]


def test_variants_sharing_no_layer_are_one_clear_error(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    da = pvx.synthetic.planted_personas(n_persona=6, n_layer=2, n_hidden=8, seed=0)
    da.attrs.update(model="m", mask_strategy="mean")
    pvx.write_variant(store, da.assign_coords(variant="A"))
    pvx.write_variant(store, da.assign_coords(variant="B", layer=da["layer"] + 10))
    with pytest.warns(UserWarning, match=r"dropped 4 layer\(s\)"):
        assert main(["analyze", str(store), "--views", "pca", "--out", str(tmp_path / "o")]) == 1
    assert "the variants ['A', 'B'] share no layer" in capsys.readouterr().err
    assert main(["analyze", str(store), "--variant", "A,B", "--layers", "0"]) == 1
    assert "unknown layer label(s) [0]; variant 'B' has layers [10, 11]" in capsys.readouterr().err
    with pytest.raises(ValueError, match="share no layer"), pytest.warns(UserWarning):
        pvx.explorer._load_store(store)


def test_one_layer_has_no_pairs_page(store, tmp_path, capsys):
    # change across layers needs layers: with one, every pair's change is 0
    out = tmp_path / "o"
    assert main(["analyze", str(store), "--out", str(out), "--layers", "2",
                 "--views", "pca,pairs"]) == 0  # fmt: skip
    assert "no pairs page" in capsys.readouterr().out
    assert (out / "pca.html").exists() and not (out / "pairs.html").exists()
    assert "pairs" not in report.open_results(out / "results.zarr").children


def test_out_that_is_or_lies_under_a_file_is_refused(store, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out, message in [
        (afile, "is a file; pick a folder"),
        (afile / "rep", f"cannot be made: {str(afile)!r} is a file"),
    ]:
        assert main(["analyze", str(store), "--out", str(out), "--views", "scree"]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert afile.read_text() == "mine"


def test_out_whose_parent_cannot_be_written_says_why(store, tmp_path, capsys, monkeypatch):
    # as root, permissions cannot be denied: the file system's refusal is simulated
    import builtins
    import errno

    real_open = builtins.open

    def refusing(file, *args, **kwargs):
        if str(file).endswith(".pvx-lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing)
    out = tmp_path / "rep"
    assert main(["analyze", str(store), "--out", str(out), "--views", "scree"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write in {str(tmp_path)!r} (Read-only file system)" in err
    assert "pick an --out whose parent folder you can write to" in err and err.count("\n") == 1


def test_cli_missing_store_and_unreachable_url(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "none.zarr")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert main(["analyze", "http://127.0.0.1:9/none.zarr"]) == 1
    assert "http://127.0.0.1:9/none.zarr" in capsys.readouterr().err


def test_workers_give_the_same_numbers(store, tmp_path, capsys):
    views = "pca,similarity,scree,dendrogram,variants,umap"
    local, remote = tmp_path / "local", tmp_path / "remote"
    # the cluster run in a subprocess, the local run here meanwhile
    command = ["analyze", str(store), "--views", views]
    cluster_run = subprocess.Popen(
        [sys.executable, "-m", "pvx.cli", *command, "--out", str(remote), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert main([*command, "--out", str(local)]) == 0
    stdout, stderr = cluster_run.communicate(timeout=600)
    assert cluster_run.returncode == 0, stderr
    assert "local cluster of 2 worker processes" in stdout
    assert "UMAP ready in" in stdout  # prepared on both workers first
    assert "UMAP runs in" in capsys.readouterr().out  # the local run: worker processes too
    a, b = report.open_results(local / "results.zarr"), report.open_results(remote / "results.zarr")
    for node in a.subtree:
        if node.has_data:
            xr.testing.assert_allclose(node.to_dataset(), b[node.path].to_dataset())


def test_include_baseline_keeps_it_in_every_analysis(store, tmp_path):
    index = report.analyze(
        store,
        views=["pca", "similarity", "pairs", "variants", "dendrogram"],
        include_baseline=True,
        out=tmp_path / "o",
        progress=None,
    )
    results = report.open_results(index.parent / "results.zarr")
    for name, key in [("pca", "id"), ("cosine", "id"), ("variants", "id"), ("linkage", "leaf_id")]:
        ids = np.ravel(results[name].to_dataset()[key].values).tolist()
        assert pvx.BASELINE_ID in ids and len(set(ids)) == 13, name
    expected = pvx.load(store, "templated", include_baseline=True).pv.pca(
        n_components=3, include_baseline=True
    )
    np.testing.assert_allclose(
        results["pca"]["explained_variance_ratio"].sel(variant="templated").values,
        expected["explained_variance_ratio"].values,
        rtol=1e-6,
    )
    assert "13 (baseline included)" in index.read_text()


def test_layers_and_ids_are_selected(store, tmp_path):
    """Layers listed out of order are analysed in depth order (the slider's)."""
    index = report.analyze(
        store,
        views=["scree"],
        layers=[3, 1],
        ids=[f"p{i}" for i in range(6)],
        out=tmp_path / "o",
        progress=None,
    )
    results = report.open_results(index.parent / "results.zarr")
    evr = results["scree"]["explained_variance_ratio"]
    assert evr["layer"].values.tolist() == [1, 3]
    assert evr.sizes["component"] == 6
    np.testing.assert_allclose(evr.sum("component"), 1.0)


def test_views_needing_more_personas_are_left_out_and_said(store, tmp_path):
    """Two personas: the default job draws what two personas allow instead of failing on
    UMAP (3 or more); one persona is a clear error naming --ids."""
    messages: list[str] = []
    index = report.analyze(store, ids=["p0", "p1"], out=tmp_path / "two", progress=messages.append)
    said = "\n".join(messages)
    assert "no umap page: " in said and "needs 3 or more personas; there are 2" in said
    assert "no variants page: " in said and "no pairs page: " in said
    # why each attribute is not probed: three in the line, all in run.json
    skipped = json.loads((index.parent / "run.json").read_text())["attributes_skipped"]
    assert len(skipped) == 4 and "and 1 more attribute(s) (run.json: attributes_skipped)" in said
    pages = {p.stem for p in index.parent.glob("*.html")} - {"index"}
    assert pages == {"pca", "similarity", "scree", "dendrogram"}
    with pytest.raises(ValueError, match=r"selection has 1; select 2 or more \(--ids\)"):
        report.analyze(store, ids=["p0"], out=tmp_path / "one", progress=None)
    assert not (tmp_path / "one").exists()


def test_every_view_runs_at_its_fewest_personas(store, tmp_path):
    """report.VIEW_MIN_PERSONAS is each analysis's own minimum: at it the view is drawn."""
    for least in sorted({n for n, _ in report.VIEW_MIN_PERSONAS.values()}):
        views = [v for v, (n, _) in report.VIEW_MIN_PERSONAS.items() if n == least]
        index = report.analyze(
            store,
            views=views,
            ids=[f"p{i}" for i in range(least)],
            layers=[0, 1],
            out=tmp_path / str(least),
            progress=None,
            n_clusters=2 if "kmeans" in views else None,
        )
        assert {p.stem for p in index.parent.glob("*.html")} == {"index", *views}


def test_umap_runs_in_worker_processes_with_the_same_result(store, tmp_path, monkeypatch):
    """On the local scheduler UMAP's fits (which hold the GIL) go to worker processes."""
    messages: list[str] = []
    pools: list[object] = []
    fit = report.manifold._umap_submit

    def recorded(*args, **kwargs):
        pools.append(report.manifold._umap_pool)
        return fit(*args, **kwargs)

    monkeypatch.setattr(report.manifold, "_umap_submit", recorded)
    index = report.analyze(store, views=["umap"], out=tmp_path / "u", progress=messages.append)
    assert pools and all(pool is not None for pool in pools)
    workers = next(i for i, m in enumerate(messages) if "UMAP runs in" in m)
    computing = next(i for i, m in enumerate(messages) if m.startswith("computing"))
    assert workers < computing
    assert report.manifold._umap_pool is None  # only inside the computation
    saved = report.open_results(index.parent / "results.zarr")["umap"]["umap"]
    # aligned across layers, as the report draws it
    expected = report.manifold.umap(pvx.load(store, "biography"), aligned=True).compute()
    np.testing.assert_allclose(saved.sel(variant="biography").values, expected.values, rtol=1e-6)
    # and the page says so
    page = html.unescape((index.parent / "umap.html").read_text())
    assert "Each layer's layout starts from the previous layer's" in page


@pytest.mark.parametrize("user_threads", [None, 1])
def test_a_thread_per_umap_worker_is_added_unless_the_user_chose(
    store, tmp_path, monkeypatch, user_threads
):
    """A dask thread whose UMAP task waits for a worker process computes nothing: pvx adds
    one thread per worker for the computation, but keeps a thread count the user set."""
    seen: list[object] = []
    compute = report._compute

    def recorded(*args, **kwargs):
        seen.append(dask.config.get("num_workers", None))
        return compute(*args, **kwargs)

    monkeypatch.setattr(report, "_compute", recorded)
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    with dask.config.set(num_workers=user_threads):
        report.analyze(store, views=["umap"], out=tmp_path / "u", progress=None)
        assert dask.config.get("num_workers", None) == user_threads  # restored afterwards
    assert seen == [3 if user_threads is None else user_threads]


def test_umap_preparation_with_a_cluster_that_has_no_workers_yet():
    distributed = pytest.importorskip("distributed")
    messages: list[str] = []
    with (
        distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster),
    ):
        report._prepare_umap(messages.append)
    assert messages[-1] == "no workers yet: each prepares UMAP with its first UMAP task"


def bare_store(path, *, n_hidden=24, attributes=None):
    """Like a store imported from the reference layout: names, no attributes."""
    da = pvx.synthetic.planted_personas(
        n_persona=12, n_clusters=min(3, n_hidden), n_layer=3, n_hidden=n_hidden
    )
    da = da.drop_vars([k for k in pvx.store.attribute_names(da)])
    if attributes:
        da = da.assign_coords(attributes)
    da = da.assign_coords(variant="biography")
    da.attrs.update(model="org/bare", mask_strategy="mean")
    pvx.write_variant(path, da)
    return path


def test_a_store_without_attributes_gets_kmeans_coloured_projections(tmp_path, capsys):
    store = bare_store(tmp_path / "bare.zarr")
    index = report.analyze(store, views=["pca", "isomap", "kmeans"], out=tmp_path / "o")
    said = capsys.readouterr().out
    assert "pca: 1 figure(s)" in said and "isomap: 1 figure(s)" in said
    about = "K-means clusters (on the first 11 principal components), matched across layers, "
    assert about + "drawn on PCA." in (index.parent / "kmeans.html").read_text()
    text = (index.parent / "pca.html").read_text()
    assert "coloured by 5 k-means clusters" in text
    # 12 personas span 11 dims: the report's 20 components are clipped to those, and said so
    assert "k-means clusters (on the first 11 principal components), matched across" in text
    results = report.open_results(index.parent / "results.zarr")
    assert results["kmeans"]["cluster"].attrs["n_components"] == 11
    again = report.render(results, tmp_path / "r")
    assert (again.parent / "pca.html").read_text() == text


@pytest.mark.parametrize("n_hidden", [1, 2])
def test_tiny_hidden_sizes_give_fewer_components(tmp_path, n_hidden):
    store = bare_store(tmp_path / "tiny.zarr", n_hidden=n_hidden)
    views = ["pca", "scree", "kmeans"]
    index = report.analyze(store, views=views, out=tmp_path / "o", progress=None)
    results = report.open_results(index.parent / "results.zarr")
    assert results["pca"].sizes["component"] == n_hidden
    for page in ("pca", "kmeans"):  # both drawn on PCA: no empty page
        assert (index.parent / f"{page}.html").exists() == (n_hidden == 2)


def test_odd_attribute_names_redraw_as_first_drawn(tmp_path):
    attributes = {
        "home region": ("persona", ["north", "south", "east"] * 4, {"kind": "categorical"}),
        "âge ✓": ("persona", np.arange(12.0), {"kind": "numeric"}),
    }
    store = bare_store(tmp_path / "odd.zarr", attributes=attributes)
    index = report.analyze(
        store, views=["pca"], colors=["home region", "âge ✓"], out=tmp_path / "o", progress=None
    )
    first = (index.parent / "pca.html").read_text()
    assert "coloured by home region" in first
    assert "coloured by " + json.dumps("âge ✓")[1:-1] in first  # plotly's JSON escapes it
    again = report.render(report.open_results(index.parent / "results.zarr"), tmp_path / "r")
    assert (again.parent / "pca.html").read_text() == first


def test_dendrogram_drawn_from_saved_results_of_a_larger_store(tmp_path):
    """Large results are saved in float32; the linkage stays float64 (SciPy needs it)."""
    path = tmp_path / "s.zarr"
    da = pvx.synthetic.planted_personas(n_persona=60, n_clusters=3, n_layer=5, n_hidden=16)
    da.attrs.update(model="org/planted", mask_strategy="mean")
    pvx.write_variant(path, da)
    index = report.analyze(
        path, views=["dendrogram", "similarity"], out=tmp_path / "r", progress=None
    )
    assert (index.parent / "dendrogram.html").exists()
    saved = report.open_results(index.parent / "results.zarr")
    assert saved["linkage"]["linkage"].dtype == np.float64
    assert saved["cosine"]["cosine"].chunks is not None  # read lazily, layer by layer


def test_results_saved_from_memory_equal_results_streamed_while_computing(store, tmp_path):
    """save_results packs an in-memory tree's cosines like pvx analyze's streamed write."""
    da = pvx.load(store, ["templated", "biography"])
    in_memory = report.compute_results(da, ["similarity"])
    report.save_results(in_memory, tmp_path / "saved.zarr")
    streamed = report.compute_results(da, ["similarity"], path=tmp_path / "streamed.zarr")
    saved = report.open_results(tmp_path / "saved.zarr")
    for tree in (saved, streamed):
        np.testing.assert_array_equal(
            tree["cosine"]["cosine"].values, in_memory["cosine"]["cosine"].values
        )
    raw = [
        zarr.open_array(tmp_path / f / "cosine" / "cosine_upper")
        for f in ("saved.zarr", "streamed.zarr")
    ]
    assert raw[0].dtype == raw[1].dtype == np.int16
    np.testing.assert_array_equal(raw[0][:], raw[1][:])


def test_the_staging_folder_of_a_killed_run_is_removed_by_the_next_run(store, tmp_path):
    """SIGKILL leaves no chance to clean up: the next run into the same --out removes the
    staging folders whose process is gone, never one whose process still runs."""
    import os
    import signal
    import socket

    out = tmp_path / "rep"
    # killed at a fixed point: after its results are written, before the pages
    script = (
        "import os, signal, sys\n"
        "from pvx import report\n"
        "report.render = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "report.analyze(sys.argv[1], views=['scree'], out=sys.argv[2], progress=None)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(store), str(out)])
    assert killed.returncode == -signal.SIGKILL
    abandoned = sorted(p.name for p in tmp_path.iterdir())
    # and its lock file, whose lock the kernel released: the next run takes and removes it
    assert len(abandoned) == 3 and abandoned[0].endswith(".partial"), abandoned
    assert abandoned[1:] == [abandoned[0] + ".owner", ".rep.pvx-lock"]
    # a run that is still going (this process) keeps its staging folder
    running = tmp_path / ".rep.0badcafe.partial"
    running.mkdir()
    owner = {"pid": os.getpid(), "host": socket.gethostname()}
    (tmp_path / ".rep.0badcafe.partial.owner").write_text(json.dumps(owner))
    report.analyze(store, views=["scree"], out=out, progress=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".rep.0badcafe.partial",
        ".rep.0badcafe.partial.owner",
        "rep",
    ]


KILL_AFTER_MOVES = (
    "import os, signal, sys\n"
    "import pvx._report_folder as folder\n"
    "from pvx import report\n"
    "move, left = folder._move, [int(sys.argv[3])]\n"
    "def killing(source, target):\n"
    "    if left[0] == 0:\n"
    "        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    left[0] -= 1\n"
    "    move(source, target)\n"
    "folder._move = killing\n"
    "report.analyze(sys.argv[1], views=['scree', 'dendrogram'], out=sys.argv[2],\n"
    "               overwrite=True, progress=None)\n"
)


@pytest.mark.parametrize("moves, staging_lost", [(0, False), (2, False), (5, False), (2, True)])
def test_a_run_killed_while_replacing_a_report_leaves_no_mix(store, tmp_path, moves, staging_lost):
    """Killed between deleting the old report's files and moving the new ones in, the
    folder never looks complete, and the next run finishes the swap (or, if the staging
    folder is gone, removes both reports' files) instead of refusing or mixing them."""
    import signal

    out = tmp_path / "rep"
    report.analyze(store, views=["pca", "scree"], out=out, progress=None)
    (out / "notes.txt").write_text("mine")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_MOVES, str(store), str(out), str(moves)]
    )
    assert killed.returncode == -signal.SIGKILL
    # no run.json; an index.html only once the pages it links are in
    assert not (out / "run.json").exists()
    if (out / "index.html").exists():
        assert (out / "scree.html").exists() and (out / "dendrogram.html").exists()
    if staging_lost:
        for staging in tmp_path.glob(".rep.*.partial"):
            shutil.rmtree(staging)
    report.analyze(store, views=["scree", "dendrogram"], out=out, progress=None)
    run = json.loads((out / "run.json").read_text())
    assert set(run["files"]) == {p.name for p in out.iterdir()} - {"notes.txt", "run.json"}
    assert {"scree.html", "dendrogram.html"} <= set(run["files"])
    assert not (out / "pca.html").exists() and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_a_damaged_replace_journal_removes_nothing(store, tmp_path):
    from pvx import _report_folder

    out = tmp_path / "rep"
    report.analyze(store, views=["scree"], out=out, progress=None)
    (out / "notes.txt").write_text("mine")
    (out / _report_folder.JOURNAL).write_text('{"staging": "../..", "old": ["notes.txt"]')
    report.analyze(store, views=["scree"], out=out, progress=None)
    assert not (out / _report_folder.JOURNAL).exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "scree.html").exists()


def test_out_on_another_file_system_than_its_parent(store, tmp_path, monkeypatch):
    """--out a mount point: the staging folder beside it cannot be renamed in; its files are
    copied, for a new folder and for one holding a report and the user's files."""
    import errno

    from pvx import _report_folder

    rename = Path.rename

    def across(self, target):
        if ".partial" in str(self) and ".partial" not in str(target):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", across)
    out = tmp_path / "rep"
    report.analyze(store, views=["scree"], out=out, progress=None)
    (out / "notes.txt").write_text("mine")
    report.analyze(store, views=["scree", "dendrogram"], out=out, progress=None,
                   overwrite=True)  # fmt: skip
    run = json.loads((out / "run.json").read_text())
    assert set(run["files"]) == {p.name for p in out.iterdir()} - {"notes.txt", "run.json"}
    assert (out / "notes.txt").read_text() == "mine"
    assert report.open_results(out / "results.zarr")["scree"] is not None
    assert not (out / _report_folder.JOURNAL).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_every_analysis_shares_one_gram_product_per_layer(store, tmp_path, monkeypatch):
    """The Gram is the job's main cost: one product per layer and variant for all analyses
    together, including the cosines streamed to results.zarr and the variant comparison."""
    calls: list[tuple[int, ...]] = []
    kernel = report.similarity._engine._self_gram_kernel

    def counted(x):
        if x.size:  # not dask's probe for the output type
            calls.append(x.shape)
        return kernel(x)

    monkeypatch.setattr(report.similarity._engine, "_self_gram_kernel", counted)
    da = pvx.load(store, ["templated", "biography"])
    views = ["pca", "scree", "similarity", "dendrogram", "pairs", "variants"]
    report.compute_results(da, views, n_clusters=3, path=tmp_path / "results.zarr")
    products = sum(int(np.prod(shape[:-2])) for shape in calls)
    assert products == da.sizes["variant"] * da.sizes["layer"], calls


def test_layer_groups_give_the_results_of_one_computation(store, tmp_path, monkeypatch):
    """At thousands of personas the layers are computed a group at a time; joining the
    groups (sign alignment, cluster matching, pair ranges, cosines written by region) must
    give exactly what one computation over every layer gives."""
    da = pvx.load(store, ["templated", "biography"])
    views = ["pca", "umap", "isomap", "scree", "similarity", "dendrogram", "pairs", "variants"]
    assert len(report.layer_groups(da)) == 1
    whole = report.compute_results(da, views, n_clusters=3, path=tmp_path / "whole.zarr")
    # one layer per group: every layer is joined to the one before it
    per_layer = 8 * da.sizes["persona"] ** 2 * da.sizes["variant"]
    monkeypatch.setattr(report, "GROUP_MATRIX_BYTES", per_layer + 1)
    assert len(report.layer_groups(da)) == da.sizes["layer"] > 2
    grouped = report.compute_results(da, views, n_clusters=3, path=tmp_path / "grouped.zarr")
    # and as at thousands of personas: one task at a time, UMAP in this process
    monkeypatch.setattr(report, "LEAN_LAYER_BYTES", 0)
    messages = []
    lean = report.compute_results(
        da, views, n_clusters=3, path=tmp_path / "lean.zarr", progress=messages.append
    )
    assert any("one task at a time" in m for m in messages)
    assert not any("UMAP runs in" in m for m in messages)
    assert set(grouped.children) == set(whole.children) >= {"pca", "kmeans", "pairs", "cosine"}
    for name in whole.children:
        xr.testing.assert_identical(grouped[name].to_dataset(), whole[name].to_dataset())
        xr.testing.assert_identical(lean[name].to_dataset(), whole[name].to_dataset())


def test_an_input_chunked_by_the_user_saves_its_persona_coordinates(store, tmp_path):
    """``.chunk()`` makes every coordinate lazy too, in uneven chunks once the baseline is
    dropped: the streamed cosines' coordinates are written from memory, not left to a
    write that never runs (they read back as fill values)."""
    da = pvx.load(store, ["templated", "biography"])
    chunked = da.chunk({"persona": 5})
    assert chunked["name"].chunks is not None
    plain = report.compute_results(da, ["similarity"], path=tmp_path / "a.zarr")
    got = report.compute_results(chunked, ["similarity"], path=tmp_path / "b.zarr")
    xr.testing.assert_identical(got["cosine"].to_dataset(), plain["cosine"].to_dataset())
    assert list(got["cosine"]["name"].values) == list(da["name"].values)


def test_lean_mode_gives_the_same_layouts_on_16_bit_stores(tmp_path, monkeypatch):
    """16-bit vectors' Grams are float32 products, whose rounding OpenBLAS changes with its
    thread count (two in lean mode's main thread, one per dask thread otherwise), and UMAP
    turned that 1e-7 into other layouts: the products now run on one thread everywhere."""
    from pvx.synthetic_store import write_synthetic_store

    path = tmp_path / "f16.zarr"
    write_synthetic_store(path, n_persona=150, n_layer=2, n_hidden=64, n_clusters=4, noise=3.0)
    da = pvx.load(path, ["templated", "biography"])
    assert da.dtype == np.float16
    views = ["pca", "umap", "similarity"]
    normal = report.compute_results(da, views, n_clusters=3)
    monkeypatch.setattr(report, "LEAN_LAYER_BYTES", 0)
    lean = report.compute_results(da, views, n_clusters=3)
    for name in normal.children:
        xr.testing.assert_identical(lean[name].to_dataset(), normal[name].to_dataset())
    # NumPy input (the main thread, every BLAS thread) too
    in_memory = report.compute_results(da.compute(), views, n_clusters=3)
    xr.testing.assert_identical(in_memory["umap"].to_dataset(), normal["umap"].to_dataset())


def test_a_projection_without_its_colour_attribute_is_drawn_plain(store, tmp_path):
    """No empty page: results whose projection lacks the colour asked for (and no k-means
    to fall back on) still draw one figure per variant, uncoloured."""
    index = report.analyze(store, views=["pca"], out=tmp_path / "a", progress=None)
    results = report.open_results(index.parent / "results.zarr")
    settings = json.loads(results.attrs["settings"])
    assert settings["colors"] and "kmeans" not in results.children
    pca = results["pca"].to_dataset()
    results["pca"] = xr.DataTree(pca.drop_vars(settings["colors"]))
    messages = []
    report.render(results, tmp_path / "b", progress=messages.append)
    assert "  pca: 2 figure(s)" in messages, messages


def test_attributes_page_probes_saves_and_redraws(store, tmp_path):
    command = ["analyze", str(store), "--views", "attributes", "--attributes", "age"]
    assert (
        main(
            [
                *command,
                "--attributes",
                "planted_cluster",
                "--folds",
                "3",
                "--permutations",
                "2",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    out = tmp_path / "a"
    results = report.open_results(out / "results.zarr")
    settings = json.loads(results.attrs["settings"])
    assert settings["attributes"] == ["age", "planted_cluster"]
    assert (settings["folds"], settings["permutations"]) == (3, 2)
    probe = results["probe"].to_dataset()
    da = pvx.load(store, ["templated", "biography"])
    expected = pvx.attributes.probe(da, ["age", "planted_cluster"], folds=3, permutations=2)
    for name in ("score", "score_std", "baseline", "gain"):
        xr.testing.assert_allclose(probe[name], expected[name].compute())
    np.testing.assert_allclose(
        results["association"]["cramers_v"],
        pvx.attributes.association(da, ["age", "planted_cluster"]),
    )
    # redrawn from results.zarr alone
    again = report.render(results, tmp_path / "again").parent
    text = (again / "attributes.html").read_text()
    assert "Probe score by layer" in text and "Cram" in text
    # the index counts the personas though the only result (probe) has no persona dim
    for folder in (out, again):
        assert "<th>personas</th><td>12</td>" in (folder / "index.html").read_text()


def test_attributes_page_needs_attributes(tmp_path, capsys):
    path = tmp_path / "bare.zarr"
    da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=2, n_hidden=6)
    da = da.drop_vars([str(k) for k in pvx.store.attribute_names(da)])
    pvx.write_variant(path, da.assign_coords(variant="v"))
    messages: list[str] = []
    index = report.analyze(
        path, views=["attributes", "scree"], out=tmp_path / "o", progress=messages.append
    )
    assert "no attributes page: the personas have no attributes to probe" in messages
    assert not (index.parent / "attributes.html").exists()
    with pytest.raises(KeyError, match="unknown attribute"):
        report.analyze(
            path, views=["attributes"], attributes=["age"], out=tmp_path / "x", progress=None
        )


def test_attributes_left_out_are_named_on_the_page_and_in_the_results(tmp_path, capsys):
    path = tmp_path / "odd.zarr"
    da = pvx.synthetic.planted_personas(n_persona=20, n_clusters=2, n_layer=2, n_hidden=6)
    n = da.sizes["persona"]
    da = da.assign_coords(
        unknown=("persona", [None] * n, {"kind": "categorical"}),
        same=("persona", ["x"] * n, {"kind": "categorical"}),
    )
    pvx.write_variant(path, da.assign_coords(variant="v"))
    messages: list[str] = []
    index = report.analyze(path, views=["attributes"], out=tmp_path / "o", progress=messages.append)
    note = next(m for m in messages if m.startswith("not probed:"))
    assert "'unknown' has no values to probe" in note and "'same' cannot be probed" in note
    page = (index.parent / "attributes.html").read_text()
    assert "Not probed: attribute &#x27;unknown&#x27; has no values to probe" in page
    skipped = report.open_results(index.parent / "results.zarr")["probe"].attrs["skipped"]
    assert skipped.startswith("unknown: attribute 'unknown' has no values")
    run = json.loads((index.parent / "run.json").read_text())
    assert set(run["attributes_skipped"]) == {"unknown", "same"}


def test_variants_without_a_shared_persona_are_one_clear_error(tmp_path, capsys):
    path = tmp_path / "apart.zarr"
    for variant, seed in (("a", 0), ("b", 1)):
        da = pvx.synthetic.planted_personas(n_persona=6, n_layer=2, n_hidden=6, seed=seed)
        ids = [f"{variant}{i}" for i in range(da.sizes["persona"])]
        da = da.assign_coords(id=("persona", ids), variant=variant)
        pvx.write_variant(path, da.set_xindex("id") if "id" not in da.indexes else da)
    with pytest.warns(UserWarning, match="dropped 12 persona"):
        assert main(["analyze", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "the variants ['a', 'b'] share no persona id" in err and err.count("\n") == 1


def test_results_as_stored_are_refused_by_render_with_the_way_to_open_them(store, tmp_path):
    index = report.analyze(store, views=["similarity"], out=tmp_path / "a", progress=None)
    stored = xr.open_datatree(index.parent / "results.zarr", engine="zarr", consolidated=False)
    with pytest.raises(ValueError, match=r"open them with pvx\.report\.open_results"):
        report.render(stored, tmp_path / "b")


@pytest.mark.parametrize("k", [0, 1, 5, 25, 400])
def test_largest_equals_a_stable_sort(k):
    """The pairs kept are the most-changing ones in the order a full stable sort gives,
    ties (by position) and NaNs (last) included."""
    rng = np.random.default_rng(k)
    for values in (
        rng.normal(size=300),
        rng.integers(0, 4, size=300).astype(float),  # many ties, at the k-th too
        np.where(rng.random(300) < 0.5, np.nan, rng.integers(0, 3, size=300)),
        np.full(300, np.nan),
        np.array([]),
    ):
        expected = np.argsort(-values, kind="stable")[:k]
        np.testing.assert_array_equal(report._largest(values, k), expected)


def test_small_results_are_saved_in_a_few_chunks_and_cosines_per_layer(tmp_path, monkeypatch):
    """Per-layer chunks of a few bytes made thousands of files at 126 layers (seconds to
    write and read): small results take runs of layers per chunk, the cosines one layer."""
    monkeypatch.setattr(pvx._store_results, "RESULT_CHUNK_BYTES", 64 * 4 * 3)  # 3 layers
    rng = np.random.default_rng(0)
    dims = ("variant", "layer", "persona")
    small = xr.DataArray(rng.normal(size=(2, 7, 64)).astype(np.float32), dims=dims)
    tree = xr.DataTree.from_dict(
        {
            "/scores": xr.Dataset({"x": small}),
            "/lazy": xr.Dataset({"y": small.chunk({"layer": 1})}),  # blocks of one layer
        }
    )
    report.save_results(tree, tmp_path / "r.zarr")
    for path in ("scores/x", "lazy/y"):
        assert zarr.open_array(tmp_path / "r.zarr" / path).chunks == (1, 3, 64)
    saved = report.open_results(tmp_path / "r.zarr")
    np.testing.assert_array_equal(saved["scores"]["x"].values, small.values)
    np.testing.assert_array_equal(saved["lazy"]["y"].values, small.values)


def test_cli_warnings_are_one_line_and_ctrl_c_ends_without_a_traceback(tmp_path, monkeypatch):
    path = tmp_path / "partly.zarr"
    for variant, first in (("a", 0), ("b", 2)):
        da = pvx.synthetic.planted_personas(n_persona=8, n_layer=2, n_hidden=6, seed=first)
        ids = [f"p{first + i}" for i in range(da.sizes["persona"])]
        pvx.write_variant(path, da.assign_coords(id=("persona", ids), variant=variant))
    run = subprocess.run(
        [sys.executable, "-m", "pvx.cli", "analyze", str(path), "--views", "scree"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "warning" in line]
    assert warned and all(line.startswith("pvx analyze: warning: ") for line in warned)
    assert "UserWarning" not in run.stderr and "aligning variants" in warned[0]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "analyze", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["analyze", str(path)]) == 130


def test_no_shuffles_draw_scores_without_an_empty_gain_map(store, tmp_path):
    messages: list[str] = []
    index = report.analyze(
        store,
        views=["attributes"],
        attributes=["age"],
        folds=3,
        permutations=0,
        out=tmp_path / "o",
        progress=messages.append,
    )
    # one score figure per variant, no all-NaN gain heatmaps (one attribute: no association)
    assert "  attributes: 2 figure(s)" in messages
    assert "no shuffled-label baseline" in (index.parent / "attributes.html").read_text()


def test_a_store_spelled_alike_elsewhere_is_another_run(store, tmp_path, monkeypatch):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        pvx.write_variant(tmp_path / where / "s.zarr", pvx.load(store, "templated"))
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "a")
    report.analyze("s.zarr", views=["scree"], out=out, progress=None)
    assert json.loads((out / "run.json").read_text())["store"] == str(tmp_path / "a" / "s.zarr")
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(pvx.StoreError, match=r"different run \(store '.*a/s\.zarr' there"):
        report.analyze("s.zarr", views=["scree"], out=out, progress=None)


def test_the_same_command_after_appends_replaces_what_the_data_decided(tmp_path):
    path = tmp_path / "grows.zarr"
    da = pvx.synthetic.planted_personas(n_persona=12, n_clusters=2, n_layer=2, n_hidden=6)
    rare = ["a"] * 9 + ["b"] * 3  # too few "b" for 5 folds
    pvx.write_variant(
        path, da.assign_coords(g=("persona", rare, {"kind": "categorical"}), variant="v")
    )
    out = tmp_path / "o"
    report.analyze(path, views=["attributes"], permutations=1, out=out, progress=None)
    assert "g" not in json.loads((out / "run.json").read_text())["attributes"]
    more = pvx.synthetic.planted_personas(n_persona=2, n_clusters=1, n_layer=2, n_hidden=6, seed=9)
    more = more.assign_coords(
        id=("persona", ["q1", "q2"]), g=("persona", ["b", "b"], {"kind": "categorical"})
    )
    pvx.append_personas(path, more.assign_coords(variant="v"))
    report.analyze(path, views=["attributes"], permutations=1, out=out, progress=None)
    assert "g" in json.loads((out / "run.json").read_text())["attributes"]
    with pytest.raises(pvx.StoreError, match="different run"):  # asked otherwise: refused
        report.analyze(path, views=["attributes"], colors=["g"], permutations=1, out=out)


def test_a_rerun_after_appends_draws_the_views_left_out_before(tmp_path):
    """Two personas leave UMAP out; with more appended, the same command replaces its own
    report and draws it (review: refused as a different run, views ['pca'] there)."""
    path = tmp_path / "grows.zarr"
    da = pvx.synthetic.planted_personas(n_persona=8, n_clusters=2, n_layer=2, n_hidden=6)
    pvx.write_variant(path, da.isel(persona=[0, 1]).assign_coords(variant="v"))
    out = tmp_path / "o"
    report.analyze(path, views=["pca", "umap"], out=out, progress=None)
    assert json.loads((out / "run.json").read_text())["views"] == ["pca"]
    pvx.append_personas(path, da.isel(persona=slice(2, None)).assign_coords(variant="v"))
    report.analyze(path, views=["pca", "umap"], out=out, progress=None)
    assert json.loads((out / "run.json").read_text())["views"] == ["pca", "umap"]
    assert (out / "umap.html").exists()
    # a run.json from before views were recorded as asked: compared by those each run draws,
    # one of them left out here (one variant: no variants page; review)
    asked = ["pca", "umap", "variants"]
    report.analyze(path, views=asked, out=out, progress=None, overwrite=True)
    run = json.loads((out / "run.json").read_text())
    del run["asked"]["views"]
    (out / "run.json").write_text(json.dumps(run))
    report.analyze(path, views=asked, out=out, progress=None)
    with pytest.raises(pvx.StoreError, match="different run"):
        report.analyze(path, views=["pca"], out=out, progress=None)


def test_a_report_from_before_the_asked_record_takes_the_same_rerun(store, tmp_path):
    out = tmp_path / "o"
    report.analyze(store, views=["scree"], out=out, progress=None)
    run = json.loads((out / "run.json").read_text())
    del run["asked"]  # as pvx wrote run.json before recording what was asked
    (out / "run.json").write_text(json.dumps(run))
    report.analyze(store, views=["scree"], out=out, progress=None)
    with pytest.raises(pvx.StoreError, match="different run"):
        report.analyze(store, views=["scree"], colors=["age"], out=out, progress=None)


def test_aligned_umap_of_variants_with_different_persona_sets(tmp_path):
    """Variants that share only some personas, in another order: the report's UMAP is the
    aligned UMAP of the joined personas, each variant's chain its own (as of that variant
    alone on the same personas)."""
    da = pvx.synthetic.planted_personas(n_persona=60, n_layer=4, n_hidden=24, seed=3)
    store = tmp_path / "s.zarr"
    where = {"model": "m", "mask_strategy": "mean"}
    pvx.write_variant(store, da.isel(persona=slice(0, 45)), variant="a", **where)
    other = da.isel(persona=slice(50, 8, -1))
    pvx.write_variant(store, other.copy(data=other.values * 1.3 + 0.2), variant="b", **where)
    with pytest.warns(UserWarning, match="dropped 15 persona"):
        index = report.analyze(store, views=["umap"], out=tmp_path / "r", progress=None)
        joined = pvx.load(store, ["a", "b"])
    saved = report.open_results(index.parent / "results.zarr")["umap"]["umap"]
    assert joined.sizes["persona"] == saved.sizes["persona"] == 36
    for variant in ("a", "b"):
        alone = report.manifold.umap(joined.sel(variant=variant), aligned=True)
        got = saved.sel(variant=variant).transpose(*alone.dims)
        np.testing.assert_array_equal(got["id"].values, alone["id"].values)
        np.testing.assert_allclose(got.values, alone.values, rtol=1e-6)


def test_a_users_file_named_like_a_page_is_refused_before_computing(store, tmp_path, monkeypatch):
    # from a newcomer's review: refused only after the whole computation
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pca.html").write_text("my own page")

    def never(*args, **kwargs):
        raise AssertionError("computed before the clash was found")

    monkeypatch.setattr(report, "compute_results", never)
    with pytest.raises(pvx.StoreError, match=r"pca\.html exists and pvx did not write it"):
        report.analyze(store, views=["scree", "pca"], out=mine, progress=None)
    assert (mine / "pca.html").read_text() == "my own page"
