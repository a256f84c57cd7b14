"""Tests for pvx.similarity: cosine, neighbours, pair and variant similarity, and the engine."""

from __future__ import annotations

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr
from conftest import layer_slices, prepared, stays_lazy, to_backend

import pvx.synthetic
from pvx import _engine, decomposition, similarity


def _reference_cosine(x: np.ndarray, *, center: bool = True) -> np.ndarray:
    u = prepared(x, center=center)
    return u @ u.T


@pytest.mark.parametrize("center", [True, False])
def test_cosine_equals_direct_numpy_formula(acts, center):
    with stays_lazy():
        sim = similarity.cosine(acts, center=center)
    assert sim.dims == ("layer", "persona", "persona_other")
    assert sim.name == "cosine"
    computed = sim.compute()
    for i, x in enumerate(layer_slices(acts)):
        np.testing.assert_allclose(
            computed.isel(layer=i).values, _reference_cosine(x, center=center), atol=1e-5
        )


def test_cosine_recovers_planted_clusters(acts):
    with stays_lazy():
        sim = similarity.cosine(acts).sel(layer=0)
    assert sim.sel(id="p0", id_other="p1") > 0.9  # same cluster
    assert sim.sel(id="p0", id_other="p7") < -0.9  # two clusters end up opposite after centering
    raw = similarity.cosine(acts, center=False).sel(layer=0)
    assert raw.sel(id="p0", id_other="p7") > 0.999  # the shared offset hides everything


def test_cosine_dask_equals_numpy_and_keeps_labels(backend):
    da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    expected = similarity.cosine(da)
    with stays_lazy():
        result = similarity.cosine(to_backend(da, backend))
    xr.testing.assert_allclose(result.compute(), expected)
    for coord in ("id", "name", "age", "education", "region"):
        assert result[coord].dims == ("persona",)
        assert result[f"{coord}_other"].dims == ("persona_other",)
    assert result["education_other"].attrs["kind"] == "ordinal"
    assert result["variant"].item() == "biography"
    assert "id_other" in result.indexes


def test_layer_argument_selects_like_sel(acts3):
    one = similarity.cosine(acts3, layer=12)
    assert "layer" not in one.dims and one["layer"].item() == 12
    some = similarity.cosine(acts3, layer=[11, 13])
    assert some["layer"].values.tolist() == [11, 13]
    xr.testing.assert_allclose(
        some.sel(layer=13).compute(), similarity.cosine(acts3, layer=13).compute()
    )
    xr.testing.assert_allclose(
        similarity.cosine(acts3, layer=[12]).squeeze("layer").compute(), one.compute()
    )


def test_vectorises_over_variant(backend):
    da = pvx.synthetic.planted_personas(variants=["biography", "templated"], seed=3)
    with stays_lazy():
        sim = similarity.cosine(to_backend(da, backend), layer=[1, 2])
    assert sim.dims == ("variant", "layer", "persona", "persona_other")
    for v in ("biography", "templated"):
        xr.testing.assert_allclose(
            sim.sel(variant=v).compute(),
            similarity.cosine(da.sel(variant=v), layer=[1, 2]),
        )


def test_large_offset_stays_accurate(backend):
    # The shared offset is 10^4 times the persona differences; in float32 the Gram-centering
    # identity would lose every digit, the float64 engine keeps ~1e-8.
    da = pvx.synthetic.planted_personas(n_persona=10, n_hidden=64, offset=1e4, seed=2)
    da = to_backend(da, backend)
    sim = similarity.cosine(da).compute()
    for i, x in enumerate(layer_slices(da)):
        expected = _reference_cosine(x)
        np.testing.assert_allclose(sim.isel(layer=i).values, expected, atol=1e-6)
        # The test can fail: the same identity in float32 is far off.
        x32 = x.astype(np.float32)
        g = x32 @ x32.T
        gc = g - g.mean(0) - g.mean(1)[:, None] + g.mean()
        d = np.sqrt(np.clip(np.diag(gc), 1e-30, None))
        assert np.abs(gc / np.outer(d, d) - expected).max() > 0.1


def test_float16_input_is_computed_in_float64(backend):
    da = pvx.synthetic.planted_personas(n_persona=6, offset=20.0, dtype=np.float16, seed=4)
    sim = similarity.cosine(to_backend(da, backend))
    assert sim.dtype == np.float64
    for i, x in enumerate(layer_slices(da)):
        np.testing.assert_allclose(sim.isel(layer=i).values, _reference_cosine(x), atol=1e-5)


def test_zero_row_stays_zero():
    da = pvx.synthetic.planted_personas(n_persona=5, offset=0.0, seed=0)
    da[0] = 0.0
    raw = similarity.cosine(da, center=False)
    assert np.all(raw.sel(id="p0").values == 0.0)
    # A persona equal to the mean is a zero row once centered, even under a large offset.
    da = pvx.synthetic.planted_personas(n_persona=5, offset=300.0, seed=0)
    da[0] = da[1:].astype(np.float64).mean("persona").astype(np.float32)
    centered = similarity.cosine(da)
    assert np.abs(centered.sel(id="p0").values).max() < 1e-3


def test_nonfinite_values_name_the_personas(backend):
    da = pvx.synthetic.planted_personas(n_persona=8, seed=0)
    da[3, 1, 5] = np.nan
    da[6, 2, 0] = np.inf
    da = to_backend(da, backend)
    # numpy raises on the call and names every offender; dask raises when computed, from the
    # first layer whose Gram kernel sees them (the check never forces a pass of its own)
    expected = r"\['p3', 'p6'\]" if backend == "numpy" else r"\['p3'\]|\['p6'\]"
    with pytest.raises(ValueError, match=r"found non-finite values \(NaN or inf\) .* " + expected):
        similarity.cosine(da).compute()
    with pytest.raises(ValueError, match=r"non-finite .*'p[36]'.*drop them with"):
        decomposition.pca(da).compute()


def test_nonfinite_vectors_are_named_by_every_result_of_variant_similarity(backend):
    """Each output of variant_similarity raises on its own: ``raw`` and ``centered`` come
    from row products, not from the cosines whose kernel checks the Gram."""
    da = pvx.synthetic.planted_personas(n_persona=8, variants=["a", "b"], seed=0)
    bad = da.copy(deep=True)
    bad[{"variant": 1, "persona": 2, "layer": 1, "hidden": 0}] = np.nan  # p2 of variant b
    lazy = to_backend(bad, backend)
    for name in ("raw", "centered", "matrix_correlation"):
        with pytest.raises(ValueError, match=r"non-finite .* \['p2'\]"):
            similarity.variant_similarity(lazy, "a", "b")[name].compute()


def test_nonfinite_first_persona_in_float16_names_only_that_persona(backend):
    # float16 Grams subtract a reference row; a non-finite one must not taint every row
    da = pvx.synthetic.planted_personas(n_persona=6, seed=0).astype(np.float16)
    da[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match=r"non-finite .* \['p0'\]"):
        similarity.cosine(to_backend(da, backend)).compute()


def test_baseline_is_left_out_unless_asked(backend):
    da = to_backend(pvx.synthetic.planted_personas(n_persona=6, baseline=True), backend)
    assert "baseline_assistant" not in similarity.cosine(da)["id"].values
    kept = similarity.cosine(da, include_baseline=True)
    assert kept.sizes["persona"] == 7 and "baseline_assistant" in kept["id_other"].values


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": 7}, KeyError, r"unknown layer label\(s\) \[7\].*has layers \[0, 1, 2\]"),
        ({"layer": [0, 9]}, KeyError, r"unknown layer label\(s\) \[9\]"),
        ({"layer": []}, ValueError, r"empty list of layers"),
    ],
)
def test_cosine_argument_errors(acts, kwargs, error, match):
    with pytest.raises(error, match=match):
        similarity.cosine(acts, **kwargs)


def test_input_errors():
    da = pvx.synthetic.planted_personas(n_persona=4)
    with pytest.raises(ValueError, match=r"needs dimension\(s\) \['persona', 'hidden'\].*'h'"):
        similarity.cosine(da.rename(hidden="h"))
    with pytest.raises(ValueError, match=r"at least 2 personas .* has 1"):
        similarity.cosine(da.isel(persona=[0]))
    with pytest.raises(ValueError, match="no 'layer' dimension"):
        similarity.cosine(da.isel(layer=0), layer=0)
    with pytest.raises(TypeError, match=r"needs an xarray\.DataArray"):
        similarity.cosine(da.values)
    with pytest.raises(ValueError, match="already has a 'persona_other'"):
        similarity.cosine(similarity.cosine(da).rename(layer="hidden"))


def test_repeated_ids_are_refused_by_every_analysis():
    import pvx.attributes

    da = pvx.synthetic.planted_personas(n_persona=6, variants=["a", "b"], seed=0)
    twice = xr.concat([da, da.isel(persona=[2, 3])], "persona")
    analyses = {
        "cosine": lambda x: similarity.cosine(x),
        "pair_similarity": lambda x: similarity.pair_similarity(x),
        "variant_similarity": lambda x: similarity.variant_similarity(x, "a", "b"),
        "pca": lambda x: pvx.pca(x),
        "kmeans": lambda x: pvx.kmeans(x, 2),
        "linkage": lambda x: pvx.linkage(x),
        "umap": lambda x: pvx.umap(x),
        "direction": lambda x: pvx.attributes.direction(x, attribute="planted_cluster", value=0),
    }
    for name, analysis in analyses.items():
        with pytest.raises(ValueError, match=rf"{name}\(\) got persona id\(s\) \['p2', 'p3'\]"):
            analysis(twice)


@pytest.mark.parametrize("streaming", [False, True])
def test_several_results_share_one_read(monkeypatch, streaming):
    # Every input block is produced by a counting task; cosine, PCA and the scree computed
    # together must run each block exactly once, whether a layer's slice is multiplied whole
    # or (for slices too big to gather) streamed over persona blocks.
    if streaming:
        monkeypatch.setattr(_engine, "SLICE_BYTES", 0)
    base = pvx.synthetic.planted_personas(n_persona=9, n_layer=4, seed=0)
    calls: list[tuple[int, ...]] = []

    def count(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        calls.append(tuple(block_info[0]["chunk-location"]))
        return block

    data = dask.array.from_array(base.values, chunks=(3, 1, -1)).map_blocks(count, dtype=base.dtype)
    da = base.copy(data=data)
    cos = similarity.cosine(da)
    res = decomposition.pca(da)
    scree = decomposition.explained_variance(da)
    dask.compute(cos, res, scree)
    assert len(calls) == 3 * 4  # 3 persona blocks x 4 layers, each read once
    assert len(set(calls)) == len(calls)
    xr.testing.assert_allclose(cos, similarity.cosine(base))
    xr.testing.assert_allclose(res, decomposition.pca(base))


def test_streaming_gram_merges_tiny_blocks(monkeypatch):
    monkeypatch.setattr(_engine, "SLICE_BYTES", 0)
    da = pvx.synthetic.planted_personas(n_persona=40, n_layer=2, seed=6)
    tiny = da.chunk({"persona": 2, "layer": 1})  # 20 blocks per layer: 400 block products
    gram = _engine.raw_gram(tiny)
    # merged to at most 8 blocks per layer: 2 x 64 products, not 2 x 400
    assert len(gram.data.__dask_graph__()) < 400
    xr.testing.assert_allclose(gram.compute(), _engine.raw_gram(da))


def test_neighbors_are_nearest_first(acts3):
    with stays_lazy():
        nn = similarity.neighbors(acts3, 4)
    assert nn["index"].dims == ("layer", "persona", "rank")
    nn = nn.compute()
    ids = acts3["id"].values
    for i, x in enumerate(layer_slices(acts3)):
        sim = _reference_cosine(x)
        np.fill_diagonal(sim, -np.inf)
        expected = np.argsort(-sim, axis=1, kind="stable")[:, :4]
        np.testing.assert_array_equal(nn["index"].isel(layer=i).values, expected)
        np.testing.assert_array_equal(nn["neighbor_id"].isel(layer=i).values, ids[expected])
        assert (np.diff(nn["cosine"].isel(layer=i).values, axis=1) <= 0).all()
    assert not (nn["index"] == np.arange(24)[:, None]).any()  # self excluded
    with pytest.raises(ValueError, match=r"k=24, but it must be between 1 and 23"):
        similarity.neighbors(acts3, 24)


def test_pair_similarity_tracks_pairs_against_all_pairs(acts3):
    pairs = [("p0", "p1"), ("p0", "p23"), ("p5", "p5")]
    with stays_lazy():
        ps = similarity.pair_similarity(acts3, pairs, quantiles=(0.1, 0.9))
    ps = ps.compute()
    assert ps["cosine"].dims == ("layer", "pair")
    assert ps["id"].values.tolist() == ["p0", "p0", "p5"]
    assert ps["id_other"].values.tolist() == ["p1", "p23", "p5"]
    for i, x in enumerate(layer_slices(acts3)):
        sim = _reference_cosine(x)
        np.testing.assert_allclose(
            ps["cosine"].isel(layer=i).values, [sim[0, 1], sim[0, 23], 1.0], atol=1e-6
        )
        upper = sim[np.triu_indices(24, k=1)]
        np.testing.assert_allclose(ps["median"].isel(layer=i), np.median(upper), atol=1e-9)
        np.testing.assert_allclose(ps["low"].isel(layer=i), np.quantile(upper, 0.1), atol=1e-9)
        np.testing.assert_allclose(ps["high"].isel(layer=i), np.quantile(upper, 0.9), atol=1e-9)
    everything = similarity.pair_similarity(acts3, layer=10)
    assert everything.sizes["pair"] == 24 * 23 // 2
    with pytest.raises(KeyError, match=r"unknown persona id\(s\) \['nobody'\]"):
        similarity.pair_similarity(acts3, [("p0", "nobody")])
    with pytest.raises(ValueError, match="non-empty list of"):
        similarity.pair_similarity(acts3, [("p0", "p1", "p2")])


def test_variant_similarity_equals_numpy(backend):
    da = pvx.synthetic.planted_personas(
        n_persona=8, variants=["biography", "templated", "qa"], seed=5
    )
    with stays_lazy():
        vs = similarity.variant_similarity(to_backend(da, backend), "biography", "qa")
    assert vs["raw"].dims == ("layer", "persona")
    assert vs["matrix_correlation"].dims == ("layer",)
    vs = vs.compute()
    a_layers = layer_slices(da.sel(variant="biography"))
    b_layers = layer_slices(da.sel(variant="qa"))
    for i, (a, b) in enumerate(zip(a_layers, b_layers, strict=True)):
        raw = (prepared(a, center=False) * prepared(b, center=False)).sum(1)
        centered = (prepared(a) * prepared(b)).sum(1)
        np.testing.assert_allclose(vs["raw"].isel(layer=i), raw, atol=1e-6)
        np.testing.assert_allclose(vs["centered"].isel(layer=i), centered, atol=1e-6)
        iu = np.triu_indices(8, k=1)
        corr = np.corrcoef(_reference_cosine(a)[iu], _reference_cosine(b)[iu])[0, 1]
        np.testing.assert_allclose(vs["matrix_correlation"].isel(layer=i), corr, atol=1e-6)


def test_variant_similarity_takes_hidden_in_several_chunks():
    da = pvx.synthetic.planted_personas(n_persona=8, variants=["biography", "qa"], seed=5)
    whole = similarity.variant_similarity(da, "biography", "qa")
    split = similarity.variant_similarity(da.chunk({"hidden": 3}), "biography", "qa").compute()
    for name in ("raw", "centered", "matrix_correlation"):
        np.testing.assert_allclose(split[name], whole[name], atol=1e-12)


def test_variant_similarity_errors():
    da = pvx.synthetic.planted_personas(variants=["biography", "templated"])
    with pytest.raises(KeyError, match=r"variant\(s\) \['qa'\].*\['biography', 'templated'\]"):
        similarity.variant_similarity(da, "biography", "qa")
    with pytest.raises(ValueError, match="needs a 'variant' dimension"):
        similarity.variant_similarity(da.isel(variant=0), "biography", "templated")


def test_cosine_against_other_personas(backend):
    da = pvx.synthetic.planted_personas(n_persona=8, n_layer=3, seed=0)
    new = pvx.synthetic.planted_personas(n_persona=5, n_layer=3, seed=9)
    new = new.assign_coords(id=("persona", [f"n{i}" for i in range(5)])).set_xindex("id")
    with stays_lazy():
        sim = similarity.cosine(to_backend(da, backend), to_backend(new, backend))
    assert sim.dims == ("layer", "persona", "persona_other")
    assert sim["id_other"].values.tolist() == ["n0", "n1", "n2", "n3", "n4"]
    sim = sim.compute()
    for i, (a, b) in enumerate(zip(layer_slices(da), layer_slices(new), strict=True)):
        np.testing.assert_allclose(sim.isel(layer=i), prepared(a) @ prepared(b).T, atol=1e-6)
    raw = similarity.cosine(da, new, center=False, layer=2)
    a, b = layer_slices(da)[2], layer_slices(new)[2]
    np.testing.assert_allclose(raw, prepared(a, center=False) @ prepared(b, center=False).T)


def test_cosine_against_other_errors():
    da = pvx.synthetic.planted_personas(n_persona=6, n_layer=3, n_hidden=16)
    with pytest.raises(ValueError, match=r"one hidden size, but da has 16 .* other has 8"):
        similarity.cosine(da, pvx.synthetic.planted_personas(n_persona=6, n_hidden=8))
    with pytest.raises(ValueError, match=r"share the labels of every dim but persona"):
        similarity.cosine(da, pvx.synthetic.planted_personas(n_persona=6, first_layer=5))


def test_pair_change_summarises_every_pair(acts3):
    every = similarity.pair_similarity(acts3)
    with stays_lazy():
        summary = similarity.pair_change(acts3)
    summary = summary.compute()
    expected = (every["cosine"].max("layer") - every["cosine"].min("layer")).values
    n = acts3.sizes["persona"]
    first, second = np.triu_indices(n, k=1)
    # float32 (on dask also the running extremes): two or three roundings of cosines
    assert summary["change"].dtype == np.float32
    np.testing.assert_allclose(summary["change"].values[first, second], expected, atol=2e-7)
    np.testing.assert_allclose(summary["change"].values, summary["change"].values.T, atol=1e-12)
    for stat in ("median", "low", "high"):
        xr.testing.assert_allclose(summary[stat], every[stat].compute())
    with pytest.raises(ValueError, match="several layers"):
        similarity.pair_change(acts3, layer=10)


def test_pair_range_skips_missing_values():
    """max - min over many layers (a chain of dask steps over one- or several-layer blocks),
    NaN skipped and NaN only where every layer is missing: as xarray's max - min."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(11, 2, 5, 5))
    values[rng.random(values.shape) < 0.2] = np.nan
    values[:, 0, 1, 2] = np.nan
    values = np.triu(values) + np.swapaxes(np.triu(values, 1), -1, -2)  # symmetric, as cosines
    sim = xr.DataArray(values, dims=("layer", "variant", "persona", "persona_other"))
    sim = sim.assign_coords(layer=np.arange(11) * 2)
    expected = sim.max("layer") - sim.min("layer")
    chunked = [sim.chunk({"layer": size, "persona": 3}) for size in (1, 4)]
    quantiles = (0.05, 0.95)

    def change(parts):
        return similarity.pair_change_from_parts(parts)["change"].compute()

    for backend in (sim, *chunked):
        got = change(similarity.pair_change_parts(backend, quantiles))
        assert got.dims == expected.dims
        xr.testing.assert_allclose(got, expected)
        assert np.isnan(got.values[0, 1, 2])
        # computed a group of layers at a time and combined (as pvx analyze does)
        groups = [backend.isel(layer=slice(i, i + 4)) for i in range(0, 11, 4)]
        parts = [similarity.pair_change_parts(g, quantiles).compute() for g in groups]
        combined = similarity.combine_pair_change_parts(parts)
        xr.testing.assert_allclose(change(combined), expected)


def test_an_attribute_ending_in_other_is_kept_not_replaced():
    """race and race_other: the second axis' copy of race would be called race_other too,
    and once replaced the user's own values; it is left off that axis instead."""
    rng = np.random.default_rng(0)
    da = pvx.persona_vectors(
        rng.normal(size=(4, 1, 8)).astype("f4"),
        ids=list("abcd"),
        attributes={"race": ["x", "y", "x", "y"], "race_other": ["Tamil", "Lao", "Hmong", "Lao"]},
    )
    cos = similarity.cosine(da).compute()
    assert cos["race_other"].dims == ("persona",)
    assert cos["race_other"].values.tolist() == ["Tamil", "Lao", "Hmong", "Lao"]
    assert cos["race_other_other"].dims == ("persona_other",)
    assert cos["id_other"].values.tolist() == list("abcd")
    scores = da.pv.pca(n_components=2).compute()  # the Gram's second side too
    assert scores["race_other"].values.tolist() == ["Tamil", "Lao", "Hmong", "Lao"]
    with pytest.raises(ValueError, match=r"\['id_other'\] clash"):
        similarity.cosine(da.assign_coords(id_other=("persona", list("wxyz"))))


def test_variants_stacked_without_an_id_index_in_different_orders_are_refused():
    # one row of ids per variant: pairing rows by position would compare different personas
    x = np.random.default_rng(1).standard_normal((6, 2, 8)).astype("f4")
    a = pvx.persona_vectors(x, ids=[f"p{i}" for i in range(6)], variant="a")
    b = a.isel(persona=[5, 4, 3, 2, 1, 0]).assign_coords(variant="b")
    variants = [a.drop_indexes("id"), b.drop_indexes("id")]
    stacked = xr.concat(variants, "variant", coords="different", compat="equals")
    assert stacked["id"].dims == ("variant", "persona")
    with pytest.raises(ValueError, match=r"'a' and 'b' list different personas at 6 position"):
        similarity.variant_similarity(stacked, "a", "b")
    # the fix the message names, and the same order without an index, both pair by id
    joined = xr.concat([v.set_xindex("id") for v in variants], "variant", join="inner")
    same = xr.concat([variants[0], variants[0].assign_coords(variant="b")], "variant")
    for fixed in (joined, same):
        np.testing.assert_allclose(similarity.variant_similarity(fixed, "a", "b")["raw"], 1.0)


def test_cosine_against_other_finds_zero_rows_as_cosine_does():
    # a persona at the mean of the others, up to float32 rounding of a large shared offset:
    # zero against the raw rows' norms, so cosine 0 with everyone, as cosine(da) gives
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 1, 16)) + 1000.0
    x[-1] = x[:-1].mean(axis=0)
    da = pvx.persona_vectors(x.astype(np.float32), ids=[f"p{i}" for i in range(10)])
    alone, against = similarity.cosine(da, layer=0), similarity.cosine(da, da, layer=0)
    np.testing.assert_array_equal(against.sel(id="p9").values, 0.0)
    assert not np.signbit(against.sel(id="p9").values).any()
    np.testing.assert_allclose(against.values, alone.values, atol=1e-12)


def test_the_fix_named_for_nonfinite_vectors_works():
    da = pvx.synthetic.planted_personas(n_persona=8, seed=0)
    da[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"\['p2'\].*da\.isel\(persona=~da\['id'\]\.isin\("):
        similarity.cosine(da)
    kept = da.isel(persona=~da["id"].isin(["p2"]))  # as the message says
    assert np.isfinite(similarity.cosine(kept).values).all()
