"""The demo persona generator (stores/demo_personas.py) and the committed demo store.

Nothing here needs torch: the generator is pure Python and the store is read with pvx.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import pvx

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "stores" / "demo.zarr"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MASKS = {"token_mean", "first_token"}


def _import_generator():
    path = ROOT / "stores" / "demo_personas.py"
    spec = importlib.util.spec_from_file_location("demo_personas", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


dp = _import_generator()


@pytest.fixture(scope="module")
def personas():
    return dp.all_personas()


@pytest.fixture(scope="module")
def people(personas):
    """The personas without the baseline."""
    return [p for p in personas if p.id != pvx.BASELINE_ID]


def _values(people, key):
    return [p.attributes[key] for p in people]


def _rank(people, key):
    order = dp.ORDERS[key]
    return np.array([order.index(v) for v in _values(people, key)])


# --------------------------------------------------------------------------- generator


def test_generator_is_deterministic(personas):
    again = dp.all_personas()
    assert again == personas
    for variant in dp.VARIANTS:
        assert [dp.render(p, variant) for p in again] == [dp.render(p, variant) for p in personas]


def test_seed_changes_personas_and_each_persona_stands_alone():
    assert dp.generate_personas(20, seed=1) != dp.generate_personas(20, seed=2)
    # Persona i depends on i only: a shorter run is a prefix of a longer one.
    assert dp.generate_personas(12) == dp.generate_personas(dp.N_PERSONAS)[:12]


def test_counts_ids_and_names(personas, people):
    assert len(people) >= 300
    assert personas[0].id == pvx.BASELINE_ID == dp.BASELINE_ID
    ids = [p.id for p in personas]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"p\d{3}", p.id) for p in people)
    # Display names: "First Last" from the persona's country; plenty of distinct names.
    assert all(len(p.name.split(" ")) >= 2 for p in people)
    assert len({p.name for p in people}) > 0.9 * len(people)


def test_every_attribute_kind_present(personas, people):
    kinds = dp.ATTRIBUTE_KINDS
    assert set(kinds.values()) == {"numeric", "ordinal", "categorical"}
    assert {"age": "numeric", "education": "ordinal", "income_bracket": "ordinal"}.items() <= (
        kinds.items()
    )
    for key in ("occupation", "region", "gender"):
        assert kinds[key] == "categorical"
    assert set(dp.ORDERS) == {k for k, v in kinds.items() if v == "ordinal"}
    for p in people:
        assert set(p.attributes) == set(kinds)
        for key, kind in kinds.items():
            value = p.attributes[key]
            if kind == "numeric":
                assert isinstance(value, int) and value >= 0, (p.id, key, value)
            else:
                assert isinstance(value, str) and value, (p.id, key, value)
    baseline = personas[0]
    assert set(baseline.attributes) == set(kinds)
    assert all(v is None for v in baseline.attributes.values())


def test_ordinal_values_within_orders(people):
    for key, order in dp.ORDERS.items():
        values = _values(people, key)
        assert set(values) <= set(order), key
        assert len(set(values)) >= len(order) - 1, f"{key} barely varies: {set(values)}"


def test_categorical_attributes_vary(people):
    for key in ("occupation", "region", "gender", "country", "urbanicity", "hobby"):
        assert len(set(_values(people, key))) >= 3, key
    assert 18 <= min(_values(people, "age")) < 25 < 70 < max(_values(people, "age")) <= 90


def test_planted_attribute_correlations(people):
    """Attributes correlate as in reality: age, education, income and occupation."""
    age = np.array(_values(people, "age"), dtype=float)
    education, income = _rank(people, "education"), _rank(people, "income_bracket")
    tech = _rank(people, "tech_comfort")
    assert np.corrcoef(education, income)[0, 1] > 0.3
    assert np.corrcoef(age, tech)[0, 1] < -0.3
    assert np.corrcoef(age, _values(people, "years_experience"))[0, 1] > 0.6
    occupation = np.array(_values(people, "occupation"))
    assert age[occupation == "student"].max() < age[occupation == "retiree"].min()
    professionals = np.isin(occupation, ["physician", "lawyer", "university professor"])
    trades = np.isin(occupation, ["retail cashier", "construction worker", "truck driver"])
    assert education[professionals].min() >= dp.EDUCATION_ORDER.index("master's degree")
    assert income[professionals].mean() > income[trades].mean() + 1.5
    # Farmers live rurally far more often than everyone else.
    rural = np.array(_values(people, "urbanicity")) == "rural"
    assert rural[occupation == "farmer"].mean() > rural[occupation != "farmer"].mean() + 0.3


def test_templated_texts_list_the_attributes(people):
    texts = [dp.render(p, "templated") for p in people]
    for p, text in zip(people, texts, strict=True):
        lines = text.splitlines()
        assert lines[:2] == ["Persona profile", f"Name: {p.name}"]
        for key, value in p.attributes.items():
            assert re.search(rf"^[A-Za-z ]+: {re.escape(str(value))}$", text, re.M), (key, text)
        assert f"Age: {p.attributes['age']}" in lines
        assert f"Occupation: {p.attributes['occupation']}" in lines
    # A fixed template: the same field labels in the same order for everyone.
    labels = {tuple(line.split(":")[0] for line in t.splitlines()) for t in texts}
    assert len(labels) == 1


def test_biographies_vary_in_wording(people):
    bios = [dp.render(p, "biography") for p in people]
    assert len(set(bios)) == len(bios)
    sentences = [re.split(r"(?<=[.!?]) ", b) for b in bios]
    openers = {s[0].split(" ")[0] for s in sentences}
    assert len(openers) >= 3  # several intro templates
    # Sentence order is shuffled: the hobby sentence appears at many positions.
    hobby_positions = {
        next(i for i, s in enumerate(ss) if p.attributes["hobby"] in s)
        for p, ss in zip(people, sentences, strict=True)
    }
    assert len(hobby_positions) >= 5
    # Two personas with the same occupation are not described with identical sentences.
    nurses = [b for p, b in zip(people, bios, strict=True) if p.attributes["occupation"] == "nurse"]
    assert len({frozenset(re.split(r"(?<=[.!?]) ", b)) for b in nurses}) == len(nurses)


def test_biographies_are_built_from_the_attributes(people):
    for p in people:
        bio = dp.render(p, "biography")
        a = p.attributes
        assert p.name.split(" ")[0] in bio
        assert str(a["age"]) in bio
        assert a["city"] in bio and a["country"] in bio
        assert a["hobby"] in bio
        assert "{" not in bio and "}" not in bio
        assert " 1 years" not in bio and " a 8" not in bio and " a 18" not in bio


def test_baseline_is_a_neutral_assistant_in_both_variants(personas):
    baseline = personas[0]
    for variant in dp.VARIANTS:
        text = dp.render(baseline, variant)
        assert "helpful assistant" in text
        assert not any(str(v) in text for v in ("None", "nan"))


def test_render_rejects_unknown_variant(personas):
    with pytest.raises(ValueError, match="unknown variant 'poem'"):
        dp.render(personas[1], "poem")


# --------------------------------------------------------------------------- the store


@pytest.fixture(scope="module")
def tree():
    if not STORE.exists():
        pytest.fail(f"{STORE} is missing; build it with python stores/build_demo_store.py")
    torch_loaded = "torch" in sys.modules
    tree = pvx.open_store(STORE)
    assert torch_loaded or "torch" not in sys.modules  # reading needs no torch
    return tree


def _centered_unit(x):
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def test_demo_store_layout(tree):
    assert pvx.models(tree) == [MODEL]
    assert set(pvx.mask_strategies(tree)) == MASKS
    for mask in MASKS:
        assert set(pvx.variants(tree, mask_strategy=mask)) == set(dp.VARIANTS)
        for variant in dp.VARIANTS:
            assert pvx.layers(tree, variant, mask_strategy=mask) == list(range(7))
            ids = pvx.persona_ids(tree, variant, mask_strategy=mask)
            assert len(ids) >= 301 and pvx.BASELINE_ID in ids


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("variant", dp.VARIANTS)
def test_demo_store_contents(tree, personas, mask, variant):
    da = pvx.load(tree, variant, mask_strategy=mask, include_baseline=True)
    assert da.dims == ("persona", "layer", "hidden")
    assert da.sizes["hidden"] == 384 and da.sizes["persona"] >= 301
    assert da["layer"].values.tolist() == list(range(7))
    assert da.attrs["model"] == MODEL and da.attrs["mask_strategy"] == mask
    assert da.dtype == np.float16
    values = da.values
    assert np.isfinite(values).all()
    assert np.abs(values).max() > 0.1  # real activations, not a zero fill

    # The store holds exactly the generator's personas (rebuild it after changing them).
    assert da["id"].values.tolist() == [p.id for p in personas]
    assert da["name"].values.tolist() == [p.name for p in personas]
    assert [tuple(s) for s in da["sample_ids"].values] == [(f"{p.id}:{variant}",) for p in personas]
    for key, kind in dp.ATTRIBUTE_KINDS.items():
        coord = da[key]
        assert coord.attrs["kind"] == kind, key
        if kind == "ordinal":
            assert list(coord.attrs["order"]) == list(dp.ORDERS[key])
        stored = coord.values[1:]
        expected = [p.attributes[key] for p in personas[1:]]
        if kind == "numeric":
            np.testing.assert_array_equal(stored, np.array(expected, dtype=float))
            assert np.isnan(coord.values[0])  # the baseline has no attributes
        else:
            assert stored.tolist() == expected, key
            assert not isinstance(coord.values[0], str)

    # Excluded by default.
    assert pvx.BASELINE_ID not in pvx.load(tree, variant, mask_strategy=mask)["id"].values


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("variant", dp.VARIANTS)
def test_demo_store_structure_same_occupation_is_closer(tree, mask, variant):
    """Planted structure is real: same-occupation personas are closer at the last layer."""
    da = pvx.load(tree, variant, mask_strategy=mask, layers=[6])
    unit = _centered_unit(da.sel(layer=6).values)
    sim = unit @ unit.T
    occupation = da["occupation"].values
    off_diagonal = ~np.eye(len(sim), dtype=bool)
    same = (occupation[:, None] == occupation[None, :]) & off_diagonal
    different = occupation[:, None] != occupation[None, :]
    assert sim[same].mean() > sim[different].mean() + 0.01


@pytest.mark.parametrize("variant", dp.VARIANTS)
def test_demo_store_structure_education_is_ordered(tree, variant):
    """Similarity falls with the distance between education levels (mid layer, mean mask)."""
    da = pvx.load(tree, variant, mask_strategy="token_mean", layers=[3])
    unit = _centered_unit(da.sel(layer=3).values)
    sim = unit @ unit.T
    rank = np.array([dp.EDUCATION_ORDER.index(v) for v in da["education"].values])
    distance = np.abs(rank[:, None] - rank[None, :])
    off_diagonal = ~np.eye(len(sim), dtype=bool)
    by_distance = [sim[(distance == d) & off_diagonal].mean() for d in (0, 1)]
    by_distance.append(sim[distance >= 2].mean())
    assert by_distance[0] > by_distance[1] > by_distance[2]


@pytest.mark.parametrize("mask", sorted(MASKS))
def test_demo_store_variants_describe_the_same_personas(tree, mask):
    """A persona's templated vector is closest to its own biography vector (last layer)."""
    da = pvx.load(tree, list(dp.VARIANTS), mask_strategy=mask, layers=[6]).sel(layer=6)
    templated = _centered_unit(da.sel(variant="templated").values)
    biography = _centered_unit(da.sel(variant="biography").values)
    sim = templated @ biography.T
    assert np.diag(sim).mean() > 0.3
    assert (sim.argmax(axis=1) == np.arange(len(sim))).mean() > 0.7


def test_first_token_layer_zero_is_shared(tree):
    """[CLS] at layer 0 precedes attention: the same vector for every persona (documented)."""
    da = pvx.load(tree, "biography", mask_strategy="first_token", layers=[0]).values
    assert (da == da[:1]).all()
