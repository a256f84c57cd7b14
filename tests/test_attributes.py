"""Attribute probes: every score against scikit-learn pipelines on the same folds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, r2_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

import pvx.accessor
import pvx.synthetic
from pvx import attributes

FOLDS = 4


@pytest.fixture(scope="module")
def da() -> xr.DataArray:
    """36 personas, 4 planted clusters, 3 layers; a numeric attribute that the vectors carry
    (age along hidden unit 5), a 3-class one that follows the clusters, a binary one."""
    base = pvx.synthetic.planted_personas(
        n_persona=36, n_clusters=4, n_layer=3, n_hidden=12, seed=4, noise=0.6
    )
    rng = np.random.default_rng(1)
    n = base.sizes["persona"]
    age = rng.uniform(20, 70, n)
    data = base.values.copy()
    data[:, :, 5] += 0.06 * (age - 45)[:, None]
    planted = base["planted_cluster"].values.astype(int)
    three = np.array(["low", "mid", "high"], dtype=object)[np.minimum(planted, 2)]
    binary = np.where(planted % 2 == 0, "even", "odd").astype(object)
    return base.copy(data=data).assign_coords(
        age=("persona", age, {"kind": "numeric"}),
        tier=("persona", three, {"kind": "categorical"}),
        parity=("persona", binary, {"kind": "categorical"}),
    )


@pytest.fixture(scope="module")
def wide(da) -> xr.DataArray:
    """The same personas with 28 more hidden units of noise: hidden (40) above half the
    training personas (27), so the probes use each fold's Gram itself, not its factor."""
    assert da.dims == ("persona", "layer", "hidden") and "hidden" not in da.coords
    noise = np.random.default_rng(2).normal(0, 0.3, (da.sizes["persona"], da.sizes["layer"], 28))
    wider = da.isel(hidden=np.arange(40) % da.sizes["hidden"])  # coordinates kept
    return wider.copy(data=np.concatenate([da.values, noise], axis=-1))


def _sklearn_scores(x, y, model, folds, metric):
    scores, maes = [], []
    for train, test in folds:
        pipe = make_pipeline(StandardScaler(with_std=False), Normalizer(), model)
        pipe.fit(x[train], y[train])
        predicted = pipe.predict(x[test])
        scores.append(metric(y[test], predicted))
        maes.append(mean_absolute_error(y[test], predicted))
    return np.mean(scores), np.std(scores), np.mean(maes)


@pytest.mark.parametrize("hidden", [5, 100])  # 5: the vectors path; 100: the Gram path
def test_ridge_holds_at_huge_unnormalised_scales(hidden):
    """Vectors of magnitude 1e8 without normalising: the Gram path's Cholesky meets a
    numerically indefinite matrix (it falls back to least squares, as scikit-learn does)
    and the vectors path solves for the weights (Woodbury's form cancelled to R² -9800)."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 1, hidden))
    age = 45 + 10 * x[:, 0, 0] + rng.normal(0, 3, n)
    ids = [f"p{i:02d}" for i in range(n)]
    da = xr.DataArray(x * 1e8, dims=("persona", "layer", "hidden"))
    da = da.assign_coords(id=("persona", ids), layer=[0], age=("persona", age, {"kind": "numeric"}))
    got = attributes.probe(da, "age", folds=FOLDS, permutations=0, normalize=False)
    scores = []
    for train, test in KFold(FOLDS, shuffle=True, random_state=0).split(x):
        model = make_pipeline(StandardScaler(with_std=False), Ridge(alpha=1.0))
        model.fit(x[train, 0] * 1e8, age[train])
        scores.append(r2_score(age[test], model.predict(x[test, 0] * 1e8)))
    # at 1e8 the Gram's entries are 1e16 times alpha: its solve keeps ~3 digits
    tolerance = 1e-6 if hidden == 5 else 1e-2
    np.testing.assert_allclose(float(got["score"].item()), np.mean(scores), atol=tolerance)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
@pytest.mark.parametrize("backend", ["numpy", "dask", "numpy, float32 run cut short"])
def test_scores_equal_scikit_learn_on_the_same_folds(request, backend, shape, monkeypatch):
    # narrow: hidden (12) at most half the training personas, so the probes work on the
    # vectors (a factor of each fold's Gram); wide: on the Gram itself
    da = request.getfixturevalue("da" if shape == "narrow" else "wide")
    if "cut short" in backend:  # the float64 run takes over after 3 float32 iterations
        monkeypatch.setattr(attributes, "FAST_MAX_ITER", 3)
    kernel = attributes._probe_kernel
    paths = []
    monkeypatch.setattr(
        attributes,
        "_probe_kernel",
        lambda *a, **kw: paths.append(kw["vectors"]) or kernel(*a, **kw),
    )
    arr = da.chunk({"layer": 1}) if backend == "dask" else da
    result = attributes.probe(
        arr, ["age", "tier", "parity"], folds=FOLDS, permutations=2, seed=3, alpha=0.5
    )
    if backend == "dask":
        assert result["score"].chunks is not None  # lazy until computed
    result = result.compute()
    for name, model, kind in (
        ("age", Ridge(alpha=0.5), "numeric"),
        (
            "tier",
            LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, tol=1e-10),
            "classes",
        ),
        ("parity", NearestCentroid(), "classes"),
    ):
        values = da[name].values
        # the folds probe() uses: the splitters seeded with seed; the shuffles: numpy's
        # permutations seeded with the attribute's own seed
        if kind == "numeric":
            y = values.astype(float)
            splitter, metric = KFold(FOLDS, shuffle=True, random_state=3), r2_score
        else:
            classes = sorted(set(values))
            y = np.array([classes.index(v) for v in values])
            splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=3)
            metric = balanced_accuracy_score
        # both drawn over the personas sorted by id
        order = np.argsort(da["id"].values.astype(str), kind="stable")
        rng = np.random.default_rng(attributes.attribute_seed(3, name))
        shuffles = []
        for _ in range(2):
            shuffled = np.empty_like(y)
            shuffled[order] = rng.permutation(y[order])
            shuffles.append(shuffled)
        folds = [
            (np.sort(order[train]), np.sort(order[test]))
            for train, test in splitter.split(np.zeros(len(y)), y[order])
        ]
        for layer in da["layer"].values:
            x = da.sel(layer=layer).values.astype(np.float64)
            score, spread, mae = _sklearn_scores(x, y, model, folds, metric)
            baselines = [_sklearn_scores(x, s, model, folds, metric)[0] for s in shuffles]
            got = result.sel(attribute=name, layer=layer)
            tolerance = 1e-6 if kind == "numeric" else 1e-9
            np.testing.assert_allclose(float(got["score"]), score, atol=tolerance)
            np.testing.assert_allclose(float(got["score_std"]), spread, atol=tolerance)
            np.testing.assert_allclose(float(got["baseline"]), np.mean(baselines), atol=tolerance)
            np.testing.assert_allclose(
                float(got["baseline_std"]), np.std(baselines), atol=tolerance
            )
            if kind == "numeric":
                np.testing.assert_allclose(float(got["mae"]), mae, rtol=1e-6)
    assert result["method"].values.tolist() == ["ridge", "logistic", "diff_means"]
    assert set(paths) == {shape == "narrow"}  # narrow: from the vectors, no Gram
    # an attribute's numbers do not depend on the other attributes probed with it
    alone = attributes.probe(da, "tier", folds=FOLDS, permutations=2, seed=3, alpha=0.5)
    np.testing.assert_array_equal(alone["score"], result["score"].sel(attribute="tier"))
    np.testing.assert_array_equal(alone["baseline"], result["baseline"].sel(attribute="tier"))
    assert result["metric"].values.tolist() == ["r2", "balanced_accuracy", "balanced_accuracy"]
    # nor on the order of the personas
    shuffled = da.isel(persona=np.random.default_rng(0).permutation(da.sizes["persona"]))
    again = attributes.probe(
        shuffled, ["age", "tier"], folds=FOLDS, permutations=2, seed=3, alpha=0.5
    )
    for field in ("score", "baseline"):
        np.testing.assert_allclose(again[field], result[field].sel(attribute=["age", "tier"]))


def test_planted_attributes_beat_the_shuffled_baseline(da):
    result = da.pv.probe(folds=FOLDS, permutations=4).compute()
    assert set(result["attribute"].values) >= {"age", "tier", "parity", "planted_cluster"}
    for name in ("tier", "parity", "planted_cluster"):
        assert float(result["score"].sel(attribute=name).min()) > 0.9
        assert float(result["baseline"].sel(attribute=name).max()) < 0.75
        assert float(result["gain"].sel(attribute=name).min()) > 0.2
    assert float(result["score"].sel(attribute="age").min()) > 0.5
    np.testing.assert_allclose(result["gain"], result["score"] - result["baseline"])
    assert result["baseline_std"].notnull().all()


def test_missing_values_are_left_out_and_counted(da):
    age = da["age"].values.copy()
    age[:5] = np.nan
    tier = da["tier"].values.copy()
    tier[3:6] = None
    arr = da.assign_coords(
        age=("persona", age, {"kind": "numeric"}), tier=("persona", tier, {"kind": "categorical"})
    )
    result = attributes.probe(arr, ["age", "tier"], folds=FOLDS, permutations=0)
    assert result["n_missing"].values.tolist() == [5, 3]
    assert result["n_used"].values.tolist() == [31, 33]
    assert result["score"].notnull().all()


def test_small_classes_are_reported_not_crashed_on(da):
    tier = da["tier"].values.copy()
    tier[:2] = "rare"  # two members: fewer than the folds
    arr = da.assign_coords(tier=("persona", tier, {"kind": "categorical"}))
    result = attributes.probe(arr, "tier", folds=FOLDS, permutations=0)
    assert result["dropped_classes"].item() == "rare"
    assert int(result["n_used"]) == da.sizes["persona"] - 2


def test_bad_input_is_named(da):
    with pytest.raises(KeyError, match="shoe_size"):
        attributes.probe(da, "shoe_size")
    with pytest.raises(ValueError, match=r"probe\(\) got an empty list of attributes"):
        attributes.probe(da, [])
    with pytest.raises(KeyError, match=r"association\(\) got unknown attribute\(s\) \['nope'\]"):
        attributes.association(da, ["age", "nope"])
    empty = da.assign_coords(
        mood=("persona", [None] * da.sizes["persona"], {"kind": "categorical"})
    )
    with pytest.raises(ValueError, match="all missing"):
        attributes.probe(empty, "mood")
    one = da.assign_coords(
        mood=("persona", ["calm"] * da.sizes["persona"], {"kind": "categorical"})
    )
    with pytest.raises(ValueError, match="one class"):
        attributes.probe(one, "mood")
    with pytest.raises(ValueError, match="fewer than folds=40"):
        attributes.probe(da, "age", folds=40)
    with pytest.raises(ValueError, match="folds >= 2"):
        attributes.probe(da, "age", folds=1)
    # probing every attribute skips the ones that cannot be probed, and says why
    result = attributes.probe(one, folds=FOLDS, permutations=0)
    assert "mood" not in result["attribute"].values
    assert "mood: attribute 'mood' cannot be probed: one class only" in result.attrs["skipped"]


def test_variants_are_probed_each(da):
    stacked = xr.concat(
        [da, da * 1.0], dim=xr.DataArray(["a", "b"], dims="variant", name="variant")
    )
    result = attributes.probe(stacked, "tier", folds=FOLDS, permutations=0).compute()
    assert result["score"].dims == ("variant", "layer") or set(result["score"].dims) == {
        "variant",
        "layer",
    }
    np.testing.assert_allclose(result["score"].sel(variant="a"), result["score"].sel(variant="b"))


# ----------------------------------------------------------------------------- association


def _labels_from_table(table):
    rows, cols = [], []
    for (i, j), count in np.ndenumerate(np.asarray(table)):
        rows += [f"r{i}"] * int(count)
        cols += [f"c{j}"] * int(count)
    return rows, cols


@pytest.mark.parametrize(
    "table",
    [
        [[20, 5], [6, 19]],
        [[10, 2, 3, 7], [1, 12, 4, 2], [5, 5, 9, 1]],
        [[8, 1], [2, 9], [7, 3], [1, 10], [5, 5]],
        [[3, 3], [3, 3]],  # independent: corrected V is 0
    ],
)
def test_cramers_v_equals_the_direct_formula(table):
    from scipy.stats import chi2_contingency

    rows, cols = _labels_from_table(table)
    n = len(rows)
    arr = xr.DataArray(np.zeros((n, 1, 1)), dims=("persona", "layer", "hidden")).assign_coords(
        a=("persona", np.array(rows, dtype=object), {"kind": "categorical"}),
        b=("persona", np.array(cols, dtype=object), {"kind": "categorical"}),
    )
    v = attributes.association(arr)
    observed = np.asarray(table, dtype=float)
    chi2 = chi2_contingency(observed, correction=False)[0]  # no Yates: the raw statistic
    r, k = observed.shape
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    expected = np.sqrt(phi2 / min(kc - 1, rc - 1))
    np.testing.assert_allclose(float(v.sel(attribute="a", attribute_other="b")), expected)
    np.testing.assert_allclose(v.values, v.values.T)
    np.testing.assert_allclose(np.diag(v.values), 1.0)


def test_numbers_are_binned_and_missing_values_dropped(da):
    v = attributes.association(da, ["age", "tier", "parity"], bins=3)
    assert v.dims == ("attribute", "attribute_other") and v.shape == (3, 3)
    assert float(v.sel(attribute="tier", attribute_other="parity")) > 0.3  # both follow clusters
    tier = da["tier"].values.copy()
    tier[:10] = None
    with_missing = da.assign_coords(tier=("persona", tier, {"kind": "categorical"}))
    assert np.isfinite(attributes.association(with_missing, ["tier", "parity"]).values).all()
    pairs = attributes.associated_values(da, ["tier", "parity"], top=3, min_count=1)
    assert list(pairs.columns) == [
        "attribute",
        "value",
        "attribute_other",
        "value_other",
        "count",
        "expected",
        "lift",
        "residual",
    ]
    assert pairs["residual"].is_monotonic_decreasing and pairs["lift"].iloc[0] > 1


# ----------------------------------------------------------------------------- named clusters


def _people(**columns):
    n = len(next(iter(columns.values()))[0])
    arr = xr.DataArray(np.zeros((n, 1, 1)), dims=("persona", "layer", "hidden"))
    arr = arr.assign_coords(id=("persona", [f"p{i}" for i in range(n)]))
    for name, (values, kind) in columns.items():
        arr = arr.assign_coords({name: ("persona", np.array(values, dtype=object), {"kind": kind})})
    return arr


def test_cluster_names_come_from_over_represented_values_with_evidence():
    gender = ["female"] * 20 + ["male"] * 20 + ["female"] * 4 + ["male"] * 16
    region = ["north"] * 10 + ["south"] * 10 + ["south"] * 20 + ["north"] * 20
    people = _people(gender=(gender, "categorical"), region=(region, "categorical"))
    labels = xr.DataArray([0] * 20 + [1] * 20 + [2] * 20, dims="persona")
    named = attributes.name_clusters(labels, people, top=1)
    assert named["name"].values.tolist()[0] == "female"
    assert named["size"].values.tolist() == [20, 20, 20]
    evidence = named["evidence"].values[0]
    assert evidence.startswith("gender = female: 100% vs 40% overall (z = ")


def test_a_truth_value_names_its_attribute():
    smoker = [True] * 20 + [False] * 20
    people = _people(smoker=(smoker, "categorical"))
    labels = xr.DataArray([0] * 20 + [1] * 20, dims="persona")
    named = attributes.name_clusters(labels, people, top=1)
    assert named["name"].values.tolist() == ["smoker: True", "smoker: False"]


def test_pandas_and_numpy_missing_markers_are_missing_values():
    """pd.NA (nullable columns) and NaT are missing, not a class "<NA>" or "NaT"."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 40
    age = pd.array(rng.integers(20, 70, n), dtype="Int64")
    region = pd.array(rng.choice(["n", "s"], n), dtype="string")
    age[:4], region[:4] = pd.NA, pd.NA
    when = np.array([np.datetime64("NaT")] * 3 + ["x"] * (n - 3), dtype=object)
    da = pvx.persona_vectors(
        rng.normal(size=(n, 1, 4)),
        ids=[f"p{i}" for i in range(n)],
        attributes={"age": pd.Series(age), "region": pd.Series(region), "when": when.tolist()},
    )
    assert da["age"].attrs["kind"] == "numeric" and np.isnan(da["age"].values[:4]).all()
    got = attributes.probe(da, ["age", "region"], folds=3, permutations=0)
    assert got["n_missing"].values.tolist() == [4, 4]
    assert [str(v) for v in da["when"].values[:3]] == ["nan"] * 3


def test_cluster_names_are_always_unique():
    # clusters 0 and 1 are both all "female" (the reference would name both "female" and
    # merge them); cluster 2 has nothing distinctive
    gender = ["female"] * 20 + ["male"] * 20
    city = ["paris"] * 10 + ["rome"] * 10 + ["paris", "rome"] * 10
    people = _people(gender=(gender, "categorical"), city=(city, "categorical"))
    labels = xr.DataArray([0] * 10 + [1] * 10 + [2] * 20, dims="persona")
    named = attributes.name_clusters(labels, people, top=1)
    names = named["name"].values.tolist()
    assert len(set(names)) == 3
    assert names[0].startswith("female") and names[1].startswith("female")
    # identical clusters get the cluster number as the last resort
    same = xr.DataArray([0, 1] * 20, dims="persona")
    flat = _people(gender=(["a", "b"] * 20, "categorical"), city=(["x"] * 40, "categorical"))
    assert len(set(attributes.name_clusters(same, flat)["name"].values.tolist())) == 2


def test_cluster_labels_are_matched_by_id_and_bad_labels_named():
    people = _people(gender=(["female"] * 10 + ["male"] * 10, "categorical"))
    labels = xr.DataArray(
        [1] * 10 + [0] * 10,
        dims="persona",
        coords={"id": ("persona", [f"p{i}" for i in range(20)][::-1])},
    )
    named = attributes.name_clusters(labels, people)
    assert named.sel(cluster=1)["name"].item() == "male"  # p19..p10 are cluster 1
    with pytest.raises(ValueError, match="dims \\('persona',\\)"):
        attributes.name_clusters(labels.expand_dims(layer=2), people)


# ----------------------------------------------------------------------------- directions


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_direction_is_the_difference_of_group_means(da, backend):
    arr = da.chunk({"layer": 1}) if backend == "dask" else da
    d = attributes.direction(arr, attribute="parity", value="even")
    if backend == "dask":
        assert d["direction"].chunks is not None
    d = d.compute()
    x = da.values.astype(np.float64)
    even = da["parity"].values == "even"
    expected = x[even].mean(0) - x[~even].mean(0)  # (layer, hidden)
    np.testing.assert_allclose(d["direction"].transpose("layer", "hidden"), expected, rtol=1e-10)
    norms = np.linalg.norm(expected, axis=1)
    np.testing.assert_allclose(d["norm"], norms)
    unit = expected / norms[:, None]
    middle = (x[even].mean(0) + x[~even].mean(0)) / 2
    projection = np.einsum("plh,lh->lp", x - middle, unit)
    np.testing.assert_allclose(d["projection"].transpose("layer", "persona"), projection, atol=1e-8)
    np.testing.assert_allclose(d["layer_cosine"], unit @ unit.T, atol=1e-12)
    assert (d.attrs["n_a"], d.attrs["n_b"]) == (int(even.sum()), int((~even).sum()))


def test_direction_groups_by_ids_or_mask_and_across_variants(da):
    ids = da["id"].values.tolist()
    by_ids = attributes.direction(da, (ids[:5], ids[5:12]))
    mask = np.zeros(da.sizes["persona"], dtype=bool)
    mask[:5] = True
    by_mask = attributes.direction(da.isel(persona=slice(0, 12)), mask[:12])
    np.testing.assert_allclose(by_ids["direction"], by_mask["direction"])
    stacked = xr.concat(
        [da, da * 2.0], dim=xr.DataArray(["a", "b"], dims="variant", name="variant")
    )
    both = attributes.direction(stacked, attribute="parity", value="even")
    np.testing.assert_allclose(both["variant_cosine"].sel(variant="a", variant_other="b"), 1.0)
    with pytest.raises(ValueError, match="groups= or attribute="):
        attributes.direction(da)
    with pytest.raises(ValueError, match=r"empty .* has the values \['even', 'odd'\]"):
        attributes.direction(da, attribute="parity", value="neither")
    with pytest.raises(KeyError, match="unknown persona"):
        attributes.direction(da, (["nobody"], ids[:3]))


def test_direction_finds_stored_truth_values_by_their_python_value(da, tmp_path):
    """Categorical attributes are stored as text ("True"): value=True finds them, as the
    value the user wrote to the store."""
    import pvx.store

    path = tmp_path / "s.zarr"
    bare = da.drop_vars(["parity", "tier", "age", "planted_cluster"], errors="ignore")
    pvx.store.write_variant(path, bare, variant="v")
    flags = {pid: i % 3 == 0 for i, pid in enumerate(da["id"].values.tolist())}
    pvx.store.set_attribute(path, "flag", flags)
    loaded = pvx.store.load(path, "v")
    assert set(loaded["flag"].values.tolist()) == {"True", "False"}
    by_truth = attributes.direction(loaded, attribute="flag", value=True)
    by_text = attributes.direction(loaded, attribute="flag", value="True")
    xr.testing.assert_identical(by_truth["direction"], by_text["direction"])
    assert (by_truth.attrs["n_a"], by_truth.attrs["n_b"]) == (12, 24)
    other = attributes.direction(loaded, attribute="flag", value=True, other=False)
    np.testing.assert_allclose(other["direction"], by_truth["direction"])
    # and the other way: text finds categories held in memory as numbers (review)
    by_number = attributes.direction(da, attribute="planted_cluster", value=1)
    by_its_text = attributes.direction(da, attribute="planted_cluster", value="1")
    xr.testing.assert_identical(by_number["direction"], by_its_text["direction"])


def test_a_direction_saves_with_the_results(da, tmp_path):
    import pvx.store

    d = attributes.direction(da, attribute="parity", value="even").compute()
    pvx.store.save_results(xr.DataTree.from_dict({"/direction": d}), tmp_path / "r.zarr")
    back = pvx.store.open_results(tmp_path / "r.zarr")["direction"].to_dataset()
    xr.testing.assert_allclose(back["direction"], d["direction"])
    xr.testing.assert_allclose(back["projection"], d["projection"])
    assert back.attrs["group_a"] == "parity = even"


def test_probes_on_the_vectors_equal_probes_on_their_gram(da):
    """With few hidden units probe() works on the vectors (a factor of each fold's Gram):
    the same numbers as from the Gram, here in float16 with a large offset, where a
    careless product would cancel."""
    from pvx import _engine

    offset = (da + 50.0).astype(np.float16)
    targets, _ = attributes._targets(offset, ["age", "tier", "parity"], FOLDS, 2, 3)
    options = {"targets": tuple(targets), "normalize": True, "alpha": 0.5, "C": 1.0}
    rows = offset.transpose("layer", "persona", "hidden").values
    gram = _engine.raw_gram(offset).transpose("layer", "persona", "persona_other").values
    from_vectors = attributes._probe_kernel(rows, vectors=True, **options)
    from_gram = attributes._probe_kernel(gram, vectors=False, **options)
    np.testing.assert_allclose(from_vectors, from_gram, atol=1e-9)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
def test_a_persona_outside_the_probe_never_enters_it(request, shape):
    """A persona left out for missing values whose vector is not finite changes nothing
    (the fold means are taken over training personas only)."""
    da = request.getfixturevalue("da" if shape == "narrow" else "wide")
    options = {"folds": FOLDS, "permutations": 2, "seed": 3}
    others = [i for i in range(da.sizes["persona"]) if i != 3]
    without = attributes.probe(da.isel(persona=others), ["age", "tier"], **options)
    values = da.values.copy()
    values[3, :, 0] = np.nan
    left_out = np.arange(da.sizes["persona"]) == 3
    outsider = da.copy(data=values).assign_coords(
        age=("persona", np.where(left_out, np.nan, da["age"].values), da["age"].attrs),
        tier=("persona", np.where(left_out, None, da["tier"].values), da["tier"].attrs),
    )
    with_outsider = attributes.probe(outsider, ["age", "tier"], **options)
    assert np.isfinite(with_outsider["score"]).all()
    for field in ("score", "baseline"):
        np.testing.assert_allclose(with_outsider[field], without[field], atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("shape", ["narrow", "wide"])
def test_a_probed_persona_that_is_not_finite_is_named(request, shape, backend):
    da = request.getfixturevalue("da" if shape == "narrow" else "wide")
    values = da.values.copy()
    values[3, -1, 0] = np.inf  # one value, in the last layer
    bad = da.copy(data=values)
    if backend == "dask":
        bad = bad.chunk({"layer": 1})
    with pytest.raises(ValueError, match=rf"non-finite .*{bad['id'].values[3]}"):
        attributes.probe(bad, ["age", "tier"], folds=FOLDS, permutations=1).compute()


@pytest.mark.parametrize("options", [{"alpha": 0}, {"alpha": -1.0}, {"C": 0.0}, {"C": "1"}])
def test_penalties_must_be_positive(da, options):
    with pytest.raises(ValueError, match="needs a penalty"):
        attributes.probe(da, "age", **options)


def _same_folds(da, y, splitter):
    order = np.argsort(da["id"].values.astype(str), kind="stable")
    return [
        (np.sort(order[train]), np.sort(order[test]))
        for train, test in splitter.split(np.zeros(len(y)), y[order])
    ]


def test_a_rare_number_scores_as_scikit_learn_where_a_test_fold_is_constant(da):
    """Test folds whose truth is constant score as r2_score does (0, or 1 if exact), not
    NaN in every layer."""
    kids = np.zeros(da.sizes["persona"])
    kids[[3, 11, 20]] = [1.0, 2.0, 1.0]
    rare = da.assign_coords(kids=("persona", kids, {"kind": "numeric"}))
    got = attributes.probe(rare, "kids", folds=FOLDS, permutations=0, seed=3)
    folds = _same_folds(da, kids, KFold(FOLDS, shuffle=True, random_state=3))
    assert any(np.ptp(kids[test]) == 0 for _, test in folds)  # the case under test
    for layer in da["layer"].values:
        x = da.sel(layer=layer).values.astype(np.float64)
        score, _, _ = _sklearn_scores(x, kids, Ridge(alpha=1.0), folds, r2_score)
        np.testing.assert_allclose(float(got["score"].sel(layer=layer)), score, atol=1e-6)


@pytest.mark.parametrize("shape", ["narrow", "wide"])
def test_a_weak_penalty_converges_as_scikit_learn_does(request, shape):
    """With C large the minimum is flat: the gradient tolerance shrinks with 1/C."""
    da = request.getfixturevalue("da" if shape == "narrow" else "wide")
    values = da["tier"].values
    classes = sorted(set(values))
    y = np.array([classes.index(v) for v in values])
    folds = _same_folds(da, y, StratifiedKFold(FOLDS, shuffle=True, random_state=3))
    got = attributes.probe(da, "tier", folds=FOLDS, permutations=0, seed=3, C=1e6)
    model = LogisticRegression(C=1e6, class_weight="balanced", max_iter=100000, tol=1e-12)
    for layer in da["layer"].values:
        x = da.sel(layer=layer).values.astype(np.float64)
        score, _, _ = _sklearn_scores(x, y, model, folds, balanced_accuracy_score)
        np.testing.assert_allclose(float(got["score"].sel(layer=layer)), score, atol=1e-9)


@pytest.mark.parametrize("tol", [None, 1e-9])
def test_large_unnormalised_vectors_converge_as_scikit_learn_does(tol, monkeypatch):
    """Unnormalised noisy vectors x30, wider than the personas (the Gram path): the loss and
    the weights are small, and an absolute gradient test alone stopped 1-2% above the
    minimum, flipping test predictions (0.43 against 0.34); the objective's relative excess
    is bounded too. A tolerance below rounding (1e-9 here) once ran a fit off to 1e247:
    steps that no halving makes a decrease now end the fit where it is."""
    if tol is not None:
        monkeypatch.setattr(attributes, "LOGISTIC_TOL", tol)
    rng = np.random.default_rng(0)
    n, hidden = 60, 400
    x = rng.normal(size=(n, 1, hidden))
    z = rng.normal(size=n)
    x[:, :, 0] += z[:, None]
    x = 30 * (x + 300 * rng.normal(size=hidden))
    y = np.digitize(z, [-0.5, 0.5])
    ids = [f"id{i:03d}" for i in rng.permutation(n)]
    da = xr.DataArray(x, dims=("persona", "layer", "hidden"), coords={"layer": [0]})
    da = da.assign_coords(
        id=("persona", ids), cls=("persona", y.astype(str), {"kind": "categorical"})
    )
    got = attributes.probe(da, "cls", folds=3, permutations=0, seed=2, normalize=False)
    folds = _same_folds(da, y, StratifiedKFold(3, shuffle=True, random_state=2))
    model = LogisticRegression(class_weight="balanced", max_iter=100000, tol=1e-12)
    scores = []
    for train, test in folds:
        pipe = make_pipeline(StandardScaler(with_std=False), model).fit(x[train, 0], y[train])
        scores.append(balanced_accuracy_score(y[test], pipe.predict(x[test, 0])))
    np.testing.assert_allclose(float(got["score"].item()), np.mean(scores))


def test_ill_conditioned_vectors_and_a_weak_penalty_score_as_scikit_learn_does():
    """A few hidden units 100x the rest (as LLMs' massive activations), C=100, the Gram
    path: the float32 first run's carried images drifted until its points were far off
    while its own loss fell, and the float64 run from there ended at 0.63 (scikit-learn
    0.72) without a warning. Such fits now start the float64 run from zero."""
    rng = np.random.default_rng(1)
    n, hidden, k, C = 60, 80, 3, 100.0
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    x = rng.normal(size=(n, 2, hidden)) + 0.5 * rng.normal(size=(k, hidden))[y][:, None, :]
    x[..., rng.choice(hidden, 3, replace=False)] *= 100.0
    da = xr.DataArray(x, dims=("persona", "layer", "hidden"), coords={"layer": [0, 1]})
    da = da.assign_coords(
        id=("persona", [f"p{i:03d}" for i in rng.permutation(n)]),
        cls=("persona", np.array([f"c{v}" for v in y], dtype=object), {"kind": "categorical"}),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow noise from the float32 run either
        got = attributes.probe(da, "cls", folds=4, permutations=0, seed=3, C=C)
    folds = _same_folds(da, y, StratifiedKFold(4, shuffle=True, random_state=3))
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=100000, tol=1e-12)
    for layer in range(2):
        scores = []
        for train, test in folds:
            pipe = make_pipeline(StandardScaler(with_std=False), Normalizer(), model)
            pipe.fit(x[train, layer], y[train])
            scores.append(balanced_accuracy_score(y[test], pipe.predict(x[test, layer])))
        np.testing.assert_allclose(float(got["score"][layer]), np.mean(scores))


def test_fits_cut_short_warn(da, monkeypatch):
    """As scikit-learn's ConvergenceWarning: a fit out of iterations says so."""
    monkeypatch.setattr(attributes, "LOGISTIC_MAX_ITER", 2)
    with pytest.warns(RuntimeWarning, match="logistic probe fits stopped before converging"):
        attributes.probe(da, "tier", folds=FOLDS, permutations=0)


def test_ordinal_and_numeric_values_that_cannot_be_ranked_are_named(da):
    n = da.sizes["persona"]
    levels = np.array([str(1 + i % 12) for i in range(n)], dtype=object)
    unordered = da.assign_coords(level=("persona", levels, {"kind": "ordinal"}))
    with pytest.raises(ValueError, match=r"ordinal attribute 'level' has no attrs\['order'\]"):
        attributes.probe(unordered, "level", folds=FOLDS)
    order = [str(i) for i in range(1, 11)]  # 11 and 12 missing from the order
    partial = da.assign_coords(level=("persona", levels, {"kind": "ordinal", "order": order}))
    with pytest.raises(ValueError, match=r"values \['11', '12'\] that are not in its order"):
        attributes.probe(partial, "level", folds=FOLDS)
    ages = da["age"].values.copy()
    ages[:3] = np.inf
    infinite = da.assign_coords(age=("persona", ages, {"kind": "numeric"}))
    result = attributes.probe(infinite, "age", folds=FOLDS, permutations=0)
    assert int(result["n_missing"]) == 3 and int(result["n_used"]) == n - 3
    words = da.assign_coords(age=("persona", ["n/a", *ages[1:].tolist()], {"kind": "numeric"}))
    with pytest.raises(ValueError, match=r"numeric attribute 'age' holds 'n/a'"):
        attributes.probe(words, "age", folds=FOLDS)
    with pytest.raises(ValueError, match="more than once"):
        attributes.probe(da, ["age", "age"], folds=FOLDS)
    twice = da.assign_coords(id=("persona", ["p0", *da["id"].values[1:-1].tolist(), "p0"]))
    with pytest.raises(ValueError, match=r"persona id\(s\) \['p0'\] more than once"):
        attributes.probe(twice, "age", folds=FOLDS)
    for seed in (None, -1, 2**40):
        with pytest.raises(ValueError, match="integer seed"):
            attributes.probe(da, "age", folds=FOLDS, seed=seed)
    with pytest.raises(ValueError, match="permutations"):
        attributes.probe(da, "age", folds=FOLDS, permutations=True)


def test_a_number_with_few_values_is_one_class_per_value():
    flags = [0.0] * 8 + [1.0] * 2
    people = _people(flag=(flags, "numeric"), label=(list("aaaaaabbab"), "categorical"))
    as_classes = _people(
        flag=([f"{v:g}" for v in flags], "categorical"), label=(list("aaaaaabbab"), "categorical")
    )
    v = attributes.association(people).sel(attribute="flag", attribute_other="label")
    expected = attributes.association(as_classes).sel(attribute="flag", attribute_other="label")
    assert np.isfinite(float(v))
    np.testing.assert_allclose(float(v), float(expected))


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_direction_mask_is_matched_by_id_and_computes_with_others(da, backend):
    import dask

    arr = da.chunk({"layer": 1}) if backend == "dask" else da
    cluster = da["planted_cluster"].values[0]
    expected = attributes.direction(arr, attribute="planted_cluster", value=cluster)
    reordered = da.isel(persona=np.random.default_rng(0).permutation(da.sizes["persona"]))
    mask = reordered["planted_cluster"] == cluster  # same personas, another order
    got = attributes.direction(arr, groups=mask)
    np.testing.assert_allclose(got["direction"], expected["direction"])
    np.testing.assert_allclose(got["norm"], expected["norm"])
    # computed together with another lazy result (a dask graph bug broke this once)
    probe = attributes.probe(arr, "age", folds=FOLDS, permutations=0)
    direction, _ = dask.compute(got, probe)
    np.testing.assert_allclose(direction["layer_cosine"], expected["layer_cosine"].values)


def test_cluster_labels_must_be_integers_that_match_personas():
    people = _people(label=(list("aabbaabbab"), "categorical"))
    words = xr.DataArray(list("xxyyxxyyxy"), dims="persona")
    with pytest.raises(ValueError, match="integer cluster labels"):
        attributes.name_clusters(words, people)
    strangers = xr.DataArray(
        np.zeros(10, int), dims="persona", coords={"id": ("persona", [f"q{i}" for i in range(10)])}
    )
    with pytest.raises(ValueError, match="no persona has a cluster label"):
        attributes.name_clusters(strangers, people)


def test_cluster_names_say_which_attribute_a_shared_value_belongs_to():
    smoker = ["yes"] * 4 + ["no"] * 8
    married = ["no"] * 4 + ["yes"] * 4 + ["no"] * 4
    region = ["north"] * 4 + ["south"] * 4 + ["east"] * 4
    people = _people(
        smoker=(smoker, "categorical"),
        married=(married, "categorical"),
        region=(region, "categorical"),
    )
    labels = xr.DataArray(np.repeat([0, 1, 2], 4), dims="persona", coords={"id": people["id"]})
    names = attributes.name_clusters(labels, people, top=2)["name"].values.tolist()
    assert len(set(names)) == 3
    assert "smoker: yes" in names[0] and "married: yes" in names[1]  # "yes" alone is ambiguous
    assert "north" in names[0] and "region" not in names[0]  # a value that names itself


def test_few_valued_numbers_keep_every_digit_as_classes():
    stamps = [1_700_000_000.0] * 10 + [1_700_000_300.0] * 10  # equal to 6 significant digits
    batch = ["early"] * 10 + ["late"] * 10
    people = _people(ts=(stamps, "numeric"), batch=(batch, "categorical"))
    v = attributes.association(people).sel(attribute="ts", attribute_other="batch")
    np.testing.assert_allclose(float(v), 1.0)


@pytest.mark.parametrize("direction", [np.float32, np.float64])
def test_lbfgs_leaves_a_converged_fit_alone_in_either_precision(direction):
    """A fit that has converged makes zero curvature pairs while others go on; with float32
    pairs their scale was 0 / float32(1e-300) = NaN, so every later iteration backtracked
    60 times on it (review). Two quadratics: the first isotropic (one step), the second
    anisotropic (many)."""
    weights = np.vstack([np.ones(6), np.geomspace(1.0, 100.0, 6)])
    target = np.array([[0.5, -1.0, 2.0, 0.0, 1.5, -0.5], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    backtracked: list[int] = []

    def loss(point, image, which=slice(None)):
        if not isinstance(which, slice):
            backtracked.extend(np.asarray(which).tolist())
        return 0.5 * (weights[which] * (point - target[which]) ** 2).sum(axis=1)

    def gradient(point, image):
        return weights * (point - target), None

    found = attributes._lbfgs(
        np.zeros((2, 6)), loss, gradient, np.ones(2), 6, lambda p: p, 1e-10, direction=direction
    )
    np.testing.assert_allclose(found, target, atol=1e-8)
    assert 0 not in backtracked


def test_a_blank_is_a_missing_value_when_attributes_are_made():
    """A CSV column of ages with blank cells is numeric, its blanks missing (as None),
    not a categorical attribute with one class per age."""
    n = 30
    rng = np.random.default_rng(2)
    ages = [float(a) for a in rng.integers(20, 70, n)]
    with_blanks = ["", "", *ages[2:]]
    da = pvx.persona_vectors(
        rng.normal(size=(n, 1, 4)), ids=[f"p{i}" for i in range(n)], attributes={"age": with_blanks}
    )
    assert da["age"].attrs["kind"] == "numeric"
    np.testing.assert_array_equal(da["age"].values[2:], ages[2:])
    assert np.isnan(da["age"].values[:2]).all()
    assert attributes.probe(da, "age", folds=3, permutations=0)["n_missing"].item() == 2


def test_an_order_naming_a_level_twice_is_refused():
    rng = np.random.default_rng(0)
    levels = ["lo", "mid", "hi"] * 4
    ids = [f"p{i}" for i in range(12)]
    with pytest.raises(ValueError, match=r"attribute 'lvl'.*names \['lo'\] more than once"):
        pvx.persona_vectors(
            rng.normal(size=(12, 1, 3)),
            ids=ids,
            attributes={"lvl": levels},
            orders={"lvl": ["lo", "mid", "hi", "lo"]},
        )
    da = pvx.persona_vectors(rng.normal(size=(12, 1, 3)), ids=ids, attributes={"lvl": levels})
    da["lvl"].attrs.update(kind="ordinal", order=["lo", "mid", "hi", "lo"])
    with pytest.raises(ValueError, match="more than once"):
        attributes.probe(da, "lvl", folds=2, permutations=0)


def test_a_nul_in_a_label_is_refused_not_dropped():
    """NumPy's fixed-width text drops a trailing NUL: "a\\x00" would become "a" somewhere."""
    x = np.random.default_rng(0).normal(size=(3, 1, 2))
    with pytest.raises(ValueError, match=r"attribute 'c'.*NUL"):
        pvx.persona_vectors(x, ids=["a", "b", "c"], attributes={"c": ["a", "a\x00", "b"]})
    with pytest.raises(ValueError, match=r"ids holds 'a\\x00'.*NUL"):
        pvx.persona_vectors(x, ids=["a\x00", "b", "c"])


def test_dates_are_the_same_label_whatever_type_holds_them():
    import datetime

    import pandas as pd

    x = np.random.default_rng(0).normal(size=(4, 1, 2))
    stamps = pd.to_datetime(
        ["2020-01-01", "2021-06-01 12:30", None, "2020-01-01"], format="ISO8601"
    )
    expected = ["2020-01-01", "2021-06-01 12:30:00", None, "2020-01-01"]
    for given in (
        list(stamps),
        stamps.values,
        [datetime.date(2020, 1, 1), datetime.datetime(2021, 6, 1, 12, 30), None,
         np.datetime64("2020-01-01")],
    ):  # fmt: skip
        got = pvx.persona_vectors(x, ids=list("abcd"), attributes={"born": given})["born"]
        assert [v if isinstance(v, str) else None for v in got.values] == expected
    # NumPy gives integers for datetime64[ns] as objects (a DataFrame column's .values)
    days = np.array(["2020-01-01", "NaT", "2020-01-02", "2020-01-01"], dtype="datetime64[ns]")
    got = pvx.persona_vectors(x, ids=list("abcd"), attributes={"born": days})["born"]
    assert got.attrs["kind"] == "categorical"
    assert [v if isinstance(v, str) else None for v in got.values] == [
        "2020-01-01", None, "2020-01-02", "2020-01-01"
    ]  # fmt: skip
    # a time zone is kept, even at midnight: midnight UTC is not midnight in Tokyo
    zoned = [pd.Timestamp("2020-01-01", tz=tz) for tz in ("UTC", "Asia/Tokyo")] * 2
    got = pvx.persona_vectors(x, ids=list("abcd"), attributes={"born": zoned})["born"]
    assert len(set(got.values)) == 2


def test_direction_of_one_layer_label_has_no_layer_dim(da):
    one = attributes.direction(da, attribute="parity", value="even", layer=1)
    assert one["direction"].dims == ("hidden",) and "layer_cosine" not in one
    listed = attributes.direction(da, attribute="parity", value="even", layer=[1])
    np.testing.assert_array_equal(one["direction"], listed["direction"].isel(layer=0))


def test_messages_show_a_few_long_class_names_shortened():
    n = 40  # one class of 30 personas and ten classes of one, each a 10 kB name
    classes = ["q"] * 30 + [f"{i:02d}" + "x" * 10_000 for i in range(10)]
    da = pvx.persona_vectors(
        np.random.default_rng(0).normal(size=(n, 1, 3)),
        ids=[f"p{i}" for i in range(n)],
        attributes={"c": classes},
    )
    with pytest.raises(ValueError, match="cannot be probed") as error:
        attributes.probe(da, "c", folds=3, permutations=0)
    assert len(str(error.value)) < 500 and "and 5 more" in str(error.value)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_direction_names_a_persona_with_nan_instead_of_skipping_it(da, backend):
    broken = da.copy(data=da.values.copy())
    broken[1, 0, 3] = np.nan
    named = rf"non-finite values .*\[{str(da['id'].values[1])!r}\]"
    if backend == "numpy":
        with pytest.raises(ValueError, match=named):
            attributes.direction(broken, attribute="parity", value="even")
        return
    d = attributes.direction(broken.chunk({"persona": 10}), attribute="parity", value="even")
    with pytest.raises(ValueError, match=named):
        d["projection"].compute()
    # the direction itself is NaN where the vector is, not a mean of the other personas
    assert np.isnan(d["direction"].isel(layer=0).values[3])


def test_ids_differing_by_a_nul_stay_two_groups_in_direction(da):
    """NumPy's fixed-width text would make "p1\\x00" and "p1" one id."""
    ids = da["id"].values.astype(object).copy()
    ids[1] = str(ids[0]) + "\x00"
    odd = da.drop_indexes("id").assign_coords(id=("persona", ids))
    d = attributes.direction(odd, ([ids[0]], list(ids[2:6])))
    assert d.attrs["n_a"] == 1


def test_repeated_ids_without_an_index_are_refused_too(da):
    twice = xr.concat([da, da.isel(persona=[0])], "persona").drop_indexes("id")
    with pytest.raises(ValueError, match="more than once; ids must be unique"):
        attributes.direction(twice, attribute="parity", value="even")
    # two variants joined without an id index: one row of ids each, each row unique
    plain = da.drop_indexes("id")
    order = np.random.default_rng(0).permutation(da.sizes["persona"])
    joined = xr.concat([plain, plain.isel(persona=order)], "variant")
    assert joined["id"].dims == ("variant", "persona")
    pvx.pca(joined, n_components=2)  # accepted
