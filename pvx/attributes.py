"""Which layers encode which persona attributes: linear probes per layer.

:func:`probe` fits, per layer (and variant), a cross-validated linear probe for each persona
attribute and compares it with the same probe on shuffled labels:

- a binary attribute: the difference of the two class means (a persona is assigned to the
  nearer class mean, as scikit-learn's ``NearestCentroid``), scored by balanced accuracy;
- a categorical attribute: class-balanced L2 logistic regression (scikit-learn's
  ``LogisticRegression(class_weight="balanced")``), scored by balanced accuracy;
- a numeric or ordinal attribute (ordinal as its ranks): ridge regression (``Ridge``),
  scored by R² (and MAE).

Preparation is fitted on the training folds only: each fold centres the vectors by its
training personas' mean, then normalises each vector (``normalize=True``), as a scikit-learn
``Pipeline(StandardScaler(with_std=False), Normalizer(), model)`` would. The vectors enter
these models only through inner products, so every probe is fitted from the layer's Gram
matrix (:mod:`pvx._engine`, shared with the other analyses) instead of a second pass over
``hidden``: ridge in its dual form (one factorisation per fold for every numeric attribute
and shuffle), the nearest class mean from mean inner products, and the logistic regression
by L-BFGS on the representer coefficients (the same iterates as on the vectors themselves),
all shuffles of an attribute at once.
"""

from __future__ import annotations

import numbers
import warnings
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pvx import _engine
from pvx._construct import _missing, check_order
from pvx._engine import P, Q
from pvx._validate import LayerSelection

__all__ = ["associated_values", "association", "direction", "name_clusters", "probe"]

METHODS = ("diff_means", "logistic", "ridge")
# Stopping tolerance of the logistic regression (L-BFGS); scikit-learn's default is 1e-4.
LOGISTIC_TOL = 1e-4
# ... and its bound on the objective's relative excess over its minimum: the absolute gradient
# test alone stops far from the minimum when large unnormalised vectors make the loss small
LOGISTIC_RTOL = 1e-6
# The first run's gradient tolerance and iterations (float32 products): a stricter tolerance
# is the second run's, and a first run that cannot meet its own is cut short (the rounding of
# float32 products grows the coefficients along the Grams' null space, which a long run
# makes large enough to spoil the second)
FAST_TOL = 1e-4
FAST_MAX_ITER = 100
# Prepared Grams held at once while probing (the fits of a batch run together).
BATCH_BYTES = 128 << 20
# Iterations a logistic fit may take in each run (scikit-learn's default is 100; pvx's fits
# stop on a stricter test).
LOGISTIC_MAX_ITER = 5000
# L-BFGS memory (correction pairs kept) of the logistic regression.
HISTORY = 10
# Per attribute and layer: score, its spread over folds, the shuffled-label baseline and its
# spread over permutations, the mean absolute error (numbers only).
_FIELDS = ("score", "score_std", "baseline", "baseline_std", "mae")


@dataclass(frozen=True)
class _Target:
    """One attribute, ready to probe: the personas that have a value, their labels, folds."""

    name: str
    method: str
    metric: str
    rows: np.ndarray  # positions of the personas used
    y: np.ndarray  # float targets, or integer class codes
    classes: tuple[str, ...]
    test_folds: tuple[np.ndarray, ...]  # positions within rows
    permuted: np.ndarray  # (permutations, len(rows)) shuffled targets
    n_missing: int
    dropped_classes: tuple[str, ...]


def probe(
    da: xr.DataArray,
    attributes: Hashable | Sequence[Hashable] | None = None,
    *,
    layer: LayerSelection = None,
    folds: int = 5,
    permutations: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
    C: float = 1.0,
    normalize: bool = True,
    include_baseline: bool = False,
) -> xr.Dataset:
    """Cross-validated linear probes of persona attributes, per layer.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors ``(persona, layer, hidden)`` (any other dims, e.g. ``variant``, are
        kept) with persona attributes as coordinates (``attrs["kind"]``: ``numeric``,
        ``ordinal`` or ``categorical``).
    attributes : name or list of names, optional
        The attributes to probe (one name drops the ``attribute`` dim, a list keeps it); by
        default every attribute (those that cannot be probed are listed, with the reason, in
        ``attrs["skipped"]``).
    layer : label, list of labels or None
        Layers to probe (default all).
    folds : int
        Cross-validation folds: stratified by class for classes, shuffled for numbers.
    permutations : int
        Shuffled-label repetitions for the baseline (0 for none).
    seed : int
        Seed of the folds and the shuffles.
    alpha : float
        Ridge penalty (numeric and ordinal attributes).
    C : float
        Inverse L2 penalty of the logistic regression (categorical attributes).
    normalize : bool
        Normalise each centered vector (as the other analyses do by default).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona (its attributes are missing anyway).

    Returns
    -------
    xarray.Dataset
        Over ``attribute`` and ``layer`` (and ``variant``): ``score`` (mean over folds of
        the balanced accuracy, or of R²), ``score_std`` (its standard deviation over folds),
        ``baseline`` and ``baseline_std`` (the same probe on shuffled labels, over
        permutations), ``gain`` (``score - baseline``) and ``mae`` (numbers only). Per
        attribute: ``method``, ``metric``, ``n_used``, ``n_missing``, ``n_classes`` and
        ``dropped_classes`` (classes with fewer members than folds, left out). Lazy on dask
        input: nothing is computed until ``.compute()``.

    Raises
    ------
    KeyError
        An unknown attribute.
    ValueError
        An attribute that cannot be probed (all missing, one class, fewer personas than
        folds), with the reason.

    Examples
    --------
    >>> import pvx.attributes, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=20, n_clusters=2, seed=0)
    >>> result = pvx.attributes.probe(da, "planted_cluster", folds=4, permutations=2)
    >>> float(result["score"].min())
    1.0
    """
    da = _engine.prepare_input(
        da, func="probe", layer=layer, include_baseline=include_baseline, min_personas=2
    )
    for name, value in (("alpha", alpha), ("C", C)):
        if not isinstance(value, numbers.Real) or not (np.isfinite(value) and value > 0):
            raise ValueError(f"probe() needs a penalty {name} > 0, got {value!r}")
    targets, skipped = _targets(da, attributes, folds, permutations, seed)
    if not targets:
        raise ValueError(
            "probe() found no attribute it can probe"
            + (f": {skipped}" if skipped else "; the array has no persona attributes")
        )
    n, hidden = da.sizes[P], da.sizes[_engine.H]
    vectors = 2 * hidden <= n - -(-n // folds)  # at most half the training personas
    if vectors:  # the rows are a factor of their own Gram: no Gram at all
        source, core = _engine.single_chunk(da, P, _engine.H), [P, _engine.H]
    else:
        source, core = _engine.single_chunk(_engine.raw_gram(da), P, Q), [P, Q]
    fields = xr.apply_ufunc(
        _probe_kernel,
        source,
        input_core_dims=[core],
        output_core_dims=[["attribute", "field"]],
        kwargs={
            "targets": tuple(targets),
            "normalize": bool(normalize),
            "alpha": float(alpha),
            "C": float(C),
            "vectors": vectors,
            "ids": tuple(_engine.persona_ids(da)),
        },
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"attribute": len(targets), "field": len(_FIELDS)}},
    )
    fields = fields.reset_coords(drop=True)
    result = xr.Dataset({name: fields.isel(field=i) for i, name in enumerate(_FIELDS)})
    result["gain"] = result["score"] - result["baseline"]
    result = result.assign_coords(
        attribute=[t.name for t in targets],
        method=("attribute", [t.method for t in targets]),
        metric=("attribute", [t.metric for t in targets]),
        n_used=("attribute", [len(t.rows) for t in targets]),
        n_missing=("attribute", [t.n_missing for t in targets]),
        n_classes=("attribute", [len(t.classes) for t in targets]),
        dropped_classes=("attribute", [", ".join(t.dropped_classes) for t in targets]),
    )
    for dim in ("layer", "variant"):
        if dim in da.coords and dim not in result.coords:
            result = result.assign_coords({dim: da[dim].variable})
    result.attrs = {
        "folds": folds,
        "permutations": permutations,
        "seed": seed,
        "alpha": alpha,
        "C": C,
        "normalize": int(normalize),
        "skipped": "; ".join(f"{k}: {v}" for k, v in skipped.items()),
    }
    result = result.transpose("attribute", ...)
    # one name drops the dim, a list keeps it (as layer= does everywhere)
    return result.squeeze("attribute") if isinstance(attributes, str) else result


def attribute_seed(seed: int, name: str) -> int:
    """The seed of one attribute's label shuffles: from its name, so an attribute gets the
    same shuffles whichever other attributes are probed with it (and attributes do not all
    get the same permutation)."""
    return (int(seed) + zlib.crc32(name.encode())) % 2**32


def _targets(
    da: xr.DataArray,
    attributes: Hashable | Sequence[Hashable] | None,
    folds: int,
    permutations: int,
    seed: int,
) -> tuple[list[_Target], dict[str, str]]:
    """The attributes ready to probe, and those skipped with the reason (only when not
    named: a named attribute that cannot be probed raises)."""
    if not isinstance(folds, int | np.integer) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"probe() needs an integer folds >= 2, got {folds!r}")
    if (
        not isinstance(permutations, int | np.integer)
        or isinstance(permutations, bool)
        or permutations < 0
    ):
        raise ValueError(f"probe() needs an integer permutations >= 0, got {permutations!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"probe() needs an integer seed from 0 to 2**32 - 1, got {seed!r}")
    names, explicit = _attribute_names(da, attributes)
    targets, skipped = [], {}
    for name in names:
        try:
            targets.append(_target(da, name, folds, permutations, seed))
        except ValueError as err:
            if explicit:
                raise
            skipped[name] = str(err)
    return targets, skipped


def _attribute_names(
    da: xr.DataArray, attributes: Hashable | Sequence[Hashable] | None, *, func: str = "probe"
) -> tuple[list[str], bool]:
    available = [
        str(name)
        for name, coord in da.coords.items()
        if coord.dims == (P,) and coord.attrs.get("kind") in ("numeric", "ordinal", "categorical")
    ]
    if attributes is None:
        return available, False
    wanted = [attributes] if isinstance(attributes, (str, int)) else list(attributes)
    if not wanted:
        raise ValueError(f"{func}() got an empty list of attributes; pass None for every one")
    unknown = [str(a) for a in wanted if str(a) not in available]
    if unknown:
        raise KeyError(
            f"{func}() got unknown attribute(s) {unknown!r}; the personas have {available!r}"
        )
    repeated = sorted({str(a) for a in wanted if [str(w) for w in wanted].count(str(a)) > 1})
    if repeated:
        raise ValueError(f"{func}() got attribute(s) {repeated!r} more than once")
    return [str(a) for a in wanted], True


def _target(da: xr.DataArray, name: str, folds: int, permutations: int, seed: int) -> _Target:
    """The folds come from ``seed`` (so numbers with the same personas share them, and with
    them each fold's factorisation); the shuffles from :func:`attribute_seed`."""
    from sklearn.model_selection import KFold, StratifiedKFold

    coord = da[name]
    kind = coord.attrs["kind"]
    values = np.asarray(coord.values, dtype=object)
    present = np.array([not _missing(v) for v in values])
    n_missing = int((~present).sum())
    if not present.any():
        raise ValueError(f"attribute {name!r} has no values to probe (all missing)")
    rng = np.random.default_rng(attribute_seed(seed, name))
    dropped: tuple[str, ...] = ()
    if kind in ("numeric", "ordinal"):
        if kind == "ordinal":
            levels = coord.attrs.get("order", [])
            # a list as given: np.atleast_1d would make fixed-width text ("lo\x00" -> "lo")
            levels = [levels] if isinstance(levels, str) else list(np.ravel(levels))
            order = [str(label) for label in levels]
            if not order:
                raise ValueError(
                    f"ordinal attribute {name!r} has no attrs['order'] (its levels, lowest "
                    f"first); set da[{name!r}].attrs['order'] = [...], or make it categorical"
                )
            check_order(order, what=f"ordinal attribute {name!r}: its order")
            unknown = sorted({str(v) for v in values[present]} - set(order))
            if unknown:
                raise ValueError(
                    f"ordinal attribute {name!r} has values {unknown[:5]!r} that are not in "
                    f"its order {order[:10]!r}; add them to attrs['order'] or mark them missing"
                )
            rank = {label: float(i) for i, label in enumerate(order)}
            y = np.array([rank.get(str(v), np.nan) for v in values])
        else:
            y = np.array([np.nan if _missing(v) else _number(v, name) for v in values])
            present &= np.isfinite(y)  # inf counts as missing
            n_missing = int((~present).sum())
        rows = np.flatnonzero(present)
        y = y[rows].astype(np.float64)
        if len(rows) < folds:
            raise ValueError(
                f"attribute {name!r} has {len(rows)} personas with a value, fewer than "
                f"folds={folds}; use fewer folds"
            )
        if np.ptp(y) == 0:
            raise ValueError(f"attribute {name!r} has one value only; nothing to predict")
        splitter: Any = KFold(folds, shuffle=True, random_state=seed)
        method, metric, classes = "ridge", "r2", ()
    else:
        labels = np.array([str(v) for v in values], dtype=object)
        names, counts = np.unique(labels[present], return_counts=True)
        dropped = tuple(str(n) for n, c in zip(names, counts, strict=True) if c < folds)
        keep = [str(n) for n, c in zip(names, counts, strict=True) if c >= folds]
        if len(keep) < 2:
            reason = (
                f"classes {_some(dropped)} have fewer than folds={folds} members"
                if dropped
                else "one class only"
            )
            raise ValueError(f"attribute {name!r} cannot be probed: {reason}")
        present &= pd.Index(labels, dtype=object).isin(keep)  # not np.isin: NUL-safe
        rows = np.flatnonzero(present)
        classes = tuple(keep)
        y = np.array([keep.index(label) for label in labels[rows]], dtype=np.float64)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        method = "diff_means" if len(keep) == 2 else "logistic"
        metric = "balanced_accuracy"
    # Folds and shuffles are drawn over the personas sorted by id, so the same personas in
    # another order (another variant first, a store appended to) get the same numbers.
    by_id = _id_order(da, rows)
    tests = tuple(np.sort(by_id[test]) for _, test in splitter.split(np.zeros(len(rows)), y[by_id]))
    permuted = np.empty((permutations, len(rows)))
    for p in range(permutations):
        permuted[p, by_id] = rng.permutation(y[by_id])
    return _Target(
        name=name,
        method=method,
        metric=metric,
        rows=rows,
        y=y,
        classes=classes,
        test_folds=tests,
        permuted=permuted,
        n_missing=n_missing,
        dropped_classes=dropped,
    )


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"numeric attribute {name!r} holds {value!r}, which is not a number; mark missing "
            "values as None or NaN, or make the attribute categorical"
        ) from None


def _id_order(da: xr.DataArray, rows: np.ndarray) -> np.ndarray:
    """Positions (within ``rows``) of those personas sorted by id (as they come without ids)."""
    if "id" not in da.coords:
        return np.arange(len(rows))
    ids = np.asarray(da["id"].values).astype(str)[rows]
    order = np.argsort(ids, kind="stable")
    repeated = ids[order][1:][ids[order][1:] == ids[order][:-1]]
    if len(repeated):  # the folds would depend on the personas' order
        raise ValueError(
            f"probe() got persona id(s) {sorted(set(repeated.tolist()))[:5]!r} more than once; "
            "ids must be unique"
        )
    return order


def _some(labels: Sequence[str], count: int = 5, width: int = 40) -> str:
    """A few ``labels`` for a message, each shortened: all of them could be megabytes."""
    shown = [label if len(label) <= width else label[: width - 1] + "…" for label in labels]
    more = f" and {len(labels) - count} more" if len(labels) > count else ""
    return f"{shown[:count]!r}{more}"


# --------------------------------------------------------------------------- kernels


def _probe_kernel(
    gram: np.ndarray,
    *,
    targets: tuple[_Target, ...],
    normalize: bool,
    alpha: float,
    C: float,
    vectors: bool = False,
    ids: tuple[Any, ...] | None = None,
) -> np.ndarray:
    """Probe results ``(..., attribute, field)`` from raw Gram matrices ``(..., n, n)``, or
    (``vectors``) from the vectors themselves ``(..., n, hidden)``, a factor of their Gram.
    A probed persona (``ids``: every persona's id, for the message) whose vector is not
    finite is an error: its NaNs would spread through every fold's fit."""
    lead = gram.shape[:-2]
    grams = np.asarray(gram, dtype=np.float64).reshape(-1, *gram.shape[-2:])
    _check_probed_rows_finite(grams, targets, vectors=vectors, ids=ids)
    out = np.full((len(grams), len(targets), len(_FIELDS)), np.nan)
    layer_rows = grams if vectors else None
    with _engine.one_blas_thread:  # one BLAS thread per dask thread: 1.8x faster on 2 cores
        for group in _shared_folds(targets):
            out[:, group] = _probe_group(
                grams,
                [targets[a] for a in group],
                normalize=normalize,
                alpha=alpha,
                C=C,
                layer_rows=layer_rows,
            )
    return out.reshape(*lead, len(targets), len(_FIELDS))


def _check_probed_rows_finite(
    grams: np.ndarray, targets: Sequence[_Target], *, vectors: bool, ids: tuple[Any, ...] | None
) -> None:
    """Raise naming the probed personas whose vector (in any layer) holds a NaN or an inf.
    Personas left out of every probe (a missing value) may hold anything."""
    probed = np.unique(np.concatenate([t.rows for t in targets]))
    if vectors:
        squares = np.einsum("lph,lph->lp", grams[:, probed], grams[:, probed])
    else:
        squares = np.diagonal(grams, axis1=-2, axis2=-1)[:, probed]
    names = probed.tolist() if ids is None else [ids[i] for i in probed]  # positions without ids
    _engine.check_finite_rows(squares, names)


def _shared_folds(targets: Sequence[_Target]) -> list[list[int]]:
    """Targets grouped by their personas and folds: a group shares each fold's prepared Gram
    (and its ridge factorisation). Numbers with the same personas always share folds."""
    groups: dict[tuple, list[int]] = {}
    for a, target in enumerate(targets):
        key = (target.rows.tobytes(), *(test.tobytes() for test in target.test_folds))
        groups.setdefault(key, []).append(a)
    return list(groups.values())


def _probe_group(
    grams: np.ndarray,
    group: list[_Target],
    *,
    normalize: bool,
    alpha: float,
    C: float,
    layer_rows: np.ndarray | None = None,
) -> np.ndarray:
    """Fields ``(layer, target, field)`` of targets sharing personas and folds, from the
    Grams ``(layer, n, n)``. The (layer, fold) fits are batched, as many at once as
    :data:`BATCH_BYTES` of prepared Grams allow: the logistic fits of a batch run as one.

    With ``layer_rows`` ``Y`` (layer, personas, hidden), the vectors themselves, whose
    products are the Grams (:func:`probe` passes them when the hidden size is at most half
    the training personas), each fold prepares the rows instead of the Gram (centring and
    normalising are the same operations on rows), and the fits get the factor ``Z`` of the
    fold's prepared Gram and its prepared test rows: products with that Gram cost
    ``2 n hidden`` instead of ``n²``, a ridge solve ``hidden³`` instead of ``n³``, the
    logistic fits run on the weights themselves, and no fold makes a personas x personas
    matrix (nor the test-by-training block)."""
    rows, folds = group[0].rows, group[0].test_folds
    trains = [np.setdiff1d(np.arange(len(rows)), test) for test in folds]
    labels = [np.vstack([t.y[None], t.permuted]) for t in group]  # true labels, then shuffles
    scores = [np.full((len(grams), len(lab), len(folds)), np.nan) for lab in labels]
    errors = [np.full((len(grams), len(folds)), np.nan) for _ in group]
    ridge = [i for i, t in enumerate(group) if t.method == "ridge"]
    fits = [(layer, f) for f in range(len(folds)) for layer in range(len(grams))]
    per_batch = max(1, BATCH_BYTES // (8 * len(rows) ** 2))
    for start in range(0, len(fits), per_batch):
        batch = fits[start : start + per_batch]
        factors: list[np.ndarray] | None = None  # the fold Grams' factors, on the vectors path
        if layer_rows is not None:
            prepared = [
                _prepared_rows(layer_rows[layer], rows, trains[f], folds[f], normalize=normalize)
                for layer, f in batch
            ]
            factors = [z_train for z_train, _ in prepared]
            blocks = [(None, z_test) for _, z_test in prepared]  # the test rows, not ks
        else:
            blocks = [
                _prepared_blocks(grams[layer], rows, trains[f], folds[f], normalize=normalize)
                for layer, f in batch
            ]
        for b, ((layer, f), (kt, ks)) in enumerate(zip(batch, blocks, strict=True)):
            factor = None if factors is None else factors[b]
            if ridge:  # one factorisation for every numeric target and shuffle
                stacked = np.vstack([labels[i][:, trains[f]] for i in ridge])
                predicted = np.split(
                    _ridge(kt, ks, stacked, alpha, factor),
                    np.cumsum([len(labels[i]) for i in ridge])[:-1],
                )
                for i, pred in zip(ridge, predicted, strict=True):
                    truth = labels[i][:, folds[f]]
                    scores[i][layer, :, f] = _r2(truth, pred)
                    errors[i][layer, f] = np.mean(np.abs(truth[0] - pred[0]))
        for i, target in enumerate(group):
            if target.method == "ridge":
                continue
            y_train = [labels[i][:, trains[f]].astype(np.int64) for _, f in batch]
            if target.method == "diff_means":
                predicted = [
                    _nearest_mean(kt, ks, y, None if factors is None else factors[b])
                    for b, ((kt, ks), y) in enumerate(zip(blocks, y_train, strict=True))
                ]
            else:
                predicted = _logistic(blocks, y_train, len(target.classes), C, factors)
            for (layer, f), pred in zip(batch, predicted, strict=True):
                truth = labels[i][:, folds[f]].astype(np.int64)
                scores[i][layer, :, f] = _balanced_accuracy(truth, pred)
    out = np.full((len(grams), len(group), len(_FIELDS)), np.nan)
    for i, target in enumerate(group):
        baseline = scores[i][:, 1:].mean(axis=2)  # layer, permutation
        out[:, i, 0] = scores[i][:, 0].mean(axis=1)
        out[:, i, 1] = scores[i][:, 0].std(axis=1)
        if baseline.shape[1]:
            out[:, i, 2] = baseline.mean(axis=1)
        if baseline.shape[1] > 1:
            out[:, i, 3] = baseline.std(axis=1)
        if target.method == "ridge":
            out[:, i, 4] = errors[i].mean(axis=1)
    return out


def _prepared_rows(
    y: np.ndarray, rows: np.ndarray, train: np.ndarray, test: np.ndarray, *, normalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_prepared_blocks` on factor rows ``Y`` (``Y Yᵀ`` the Gram): the prepared
    training and test rows ``Z_train``, ``Z_test``, whose products are those blocks."""
    z_train, z_test = y[rows[train]], y[rows[test]]
    mean = z_train.mean(axis=0)
    z_train -= mean
    z_test -= mean
    if normalize:
        for z in (z_train, z_test):
            norm = np.sqrt(np.einsum("ij,ij->i", z, z))
            norm[norm == 0] = 1.0
            z /= norm[:, None]
    mean = z_train.mean(axis=0)
    z_train -= mean
    z_test -= mean
    return z_train, z_test


def _prepared_blocks(
    k: np.ndarray,
    rows: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    normalize: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The training and test-by-training blocks of the Gram of ``rows``' vectors, centred by
    the training mean and (maybe) normalised, as the models see them; then centred again by
    the prepared training mean, a translation that none of the three models sees (each has
    an intercept or compares distances) and that keeps their intercepts apart from their
    weights."""
    train, test = rows[train], rows[test]
    kt = k[np.ix_(train, train)]
    ks = k[np.ix_(test, train)]
    # each vector's product with the training mean, from training rows only (k symmetric), so
    # a persona outside the probe (e.g. with a missing value) never enters; the sums run as
    # over k[train] but gather no rows beyond the blocks
    mp_train, mp_test = kt.mean(axis=0), k[np.ix_(train, test)].mean(axis=0)
    total = mp_train.mean()
    kt -= mp_train[:, None]
    kt -= mp_train[None, :] - total
    ks -= mp_test[:, None]
    ks -= mp_train[None, :] - total
    if normalize:
        diagonal = np.diagonal(k)
        norm_train = np.sqrt(np.clip(diagonal[train] - 2 * mp_train + total, 0.0, None))
        norm_test = np.sqrt(np.clip(diagonal[test] - 2 * mp_test + total, 0.0, None))
        norm_train[norm_train == 0] = 1.0
        norm_test[norm_test == 0] = 1.0
        kt /= norm_train[:, None]
        kt /= norm_train[None, :]
        ks /= norm_test[:, None]
        ks /= norm_train[None, :]
    mean_train = kt.mean(axis=1)
    total = mean_train.mean()
    ks -= ks.mean(axis=1)[:, None]
    ks -= mean_train[None, :] - total
    kt -= mean_train[:, None]
    kt -= mean_train[None, :] - total
    return kt, ks


def _ridge(
    kt: np.ndarray | None,
    ks: np.ndarray,
    y: np.ndarray,
    alpha: float,
    factor: np.ndarray | None = None,
) -> np.ndarray:
    """Dual ridge with an intercept, for several target rows ``y`` ``(r, n_train)`` at once:
    the predictions ``(r, n_test)`` of ``Ridge(alpha, fit_intercept=True)``, from Grams of
    features centred by their training mean (:func:`_prepared_blocks`). With ``factor``
    (``Z``, ``Z Zᵀ = kt``; ``ks`` then the test rows) the weights are solved for in the
    factor's rank."""
    means = y.mean(axis=1, keepdims=True)
    centred = (y - means).T
    if factor is None:
        assert kt is not None
        dual = _positive_solve(kt + alpha * np.eye(len(kt)), centred)
        return (ks @ dual).T + means
    # the weights themselves, (ZᵀZ + αI)⁻¹ Zᵀ y: Woodbury's dual (I - Z(...)⁻¹Zᵀ) y / α
    # is the same but cancels catastrophically when ZᵀZ dwarfs α
    small = factor.T @ factor
    small[np.diag_indices_from(small)] += alpha
    weights = _positive_solve(small, factor.T @ centred)
    return (ks @ weights).T + means


def _positive_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a⁻¹ b`` for a symmetric positive definite ``a``; by least squares where rounding
    left it numerically indefinite (huge unnormalised vectors), as scikit-learn does."""
    import scipy.linalg

    try:
        system = scipy.linalg.cho_factor(a, check_finite=False)
    except np.linalg.LinAlgError:
        return scipy.linalg.lstsq(a, b, check_finite=False)[0]
    return scipy.linalg.cho_solve(system, b, check_finite=False)


def _nearest_mean(
    kt: np.ndarray | None, ks: np.ndarray, y_train: np.ndarray, factor: np.ndarray | None = None
) -> np.ndarray:
    """Class ``(r, n_test)`` of the nearer training class mean (``NearestCentroid``) for each
    label row of ``y_train`` ``(r, n_train)``, from inner products (``kt``, or its factor
    ``Z`` with ``Z Zᵀ = kt``; ``ks`` then the test rows)."""
    members = np.stack([y_train == 0, y_train == 1], axis=1).astype(np.float64)  # r, 2, n
    counts = members.sum(axis=2, keepdims=True)
    weights = np.divide(members, counts, out=np.zeros_like(members), where=counts > 0)
    weights = weights.reshape(-1, y_train.shape[1]).T  # n_train, r * 2: the class means
    if factor is None:
        gram_weights, test_products = kt @ weights, ks @ weights
    else:  # the class means themselves, hidden x (r * 2); ks holds the test rows
        means = factor.T @ weights
        gram_weights, test_products = factor @ means, ks @ means
    squared_mean = np.einsum("ij,ij->j", weights, gram_weights)
    # squared distance to each class mean, less the test vector's own squared norm
    distance = (squared_mean - 2 * test_products).reshape(len(ks), -1, 2)
    distance[..., counts.reshape(-1, 2) == 0] = np.inf
    return np.argmin(distance, axis=2).T


def _logistic(
    blocks: Sequence[tuple[np.ndarray | None, np.ndarray]],
    y_train: Sequence[np.ndarray],
    n_classes: int,
    C: float,
    factors: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """``LogisticRegression(C, class_weight="balanced")`` (multinomial) fitted for each label
    row of each ``y_train`` ``(r, n_train)`` on its ``(kt, ks)`` Grams (features centred by
    their training mean, :func:`_prepared_blocks`) and applied: the predicted classes
    ``(r, n_test)`` per block.

    The objective is scikit-learn's: the class-weighted mean log loss plus
    ``|W|^2 / (2 C sum(weights))``, intercepts unpenalised. By the representer theorem the
    weights are ``W = X_train.T @ B``, so the fit needs only the Grams: this is L-BFGS on
    ``W`` (its iterates and the Euclidean geometry of the weights themselves) carried in the
    coefficients ``B`` together with their images ``kt @ B``. Every fit of every block runs
    in one loop (blocks padded to one size with weightless rows), so an iteration costs one
    batched product with the Grams and the line search none. A fit stops when its
    gradient's norm is below :data:`LOGISTIC_TOL`, a stricter test than scikit-learn's (the
    largest gradient entry below ``tol``); divided by ``C`` when ``C > 1``: a weak penalty
    leaves the minimum flat, and the same gradient far from it.

    With ``factors`` (the prepared training rows ``Z`` per block, ``Z Zᵀ = kt``, narrower
    than they are long) and test rows in place of ``ks``, the same iterates are computed on
    ``W`` itself (``hidden`` wide, not ``n``): the two-loop recursion then works on vectors
    a few times smaller, and a direction's logits cost one product with ``Z``.

    The fits run twice: first with float32 products (half the cost of the float64 ones,
    which are most of it), then on from where they stopped with float64 products, fresh
    curvature pairs and images made anew, so the tests that stop them are measured
    exactly; that second run takes a few iterations.
    """
    count, r, k = len(blocks), len(y_train[0]), n_classes
    n = max(len(y[0]) for y in y_train)  # training personas
    m = max(len(test) for _, test in blocks)
    labels = np.full((count, r, n), -1)  # -1: a padding row, weightless
    for b, y_b in enumerate(y_train):
        labels[b, :, : y_b.shape[1]] = y_b
    # class-major (k before n): the softmax reduces over k with n contiguous, and the
    # product with the (symmetric) Grams needs no transposes
    onehot = (labels[:, :, None, :] == np.arange(k)[:, None]).astype(np.float64)  # b, r, k, n
    counts = onehot.sum(axis=3)  # count, r, k
    present = counts > 0
    class_weight = np.divide(
        (labels >= 0).sum(axis=2)[..., None],
        present.sum(axis=2, keepdims=True) * counts,
        out=np.zeros_like(counts),
        where=present,
    )
    sample_weight = np.einsum("brkn,brk->brn", onehot, class_weight)
    weight_sum = sample_weight.sum(axis=2)  # count, r
    rows = count * r
    sample_weight = (sample_weight / weight_sum[..., None]).reshape(rows, 1, n)
    weighted_onehot = onehot.reshape(rows, k, n) * sample_weight
    penalty = (1.0 / (C * weight_sum)).reshape(rows)
    size = k * n  # the logits' part of an image; the intercepts follow
    tol = LOGISTIC_TOL * min(1.0, 1.0 / C)
    fast = True  # products in float32 (the first run), then float64
    fast_tol = max(tol, FAST_TOL * min(1.0, 1.0 / C))  # a stricter tol is float64's alone
    quiet_overflow = np.errstate(over="ignore", invalid="ignore", divide="ignore")

    def log_softmax(image: np.ndarray) -> np.ndarray:
        logits = image[:, :size].reshape(-1, k, n) + image[:, size:, None]
        logits -= logits.max(axis=1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return logits

    def data_loss(image: np.ndarray, which: Any) -> np.ndarray:
        return -np.einsum("rkn,rkn->r", weighted_onehot[which], log_softmax(image))

    def pointwise(image: np.ndarray) -> np.ndarray:  # the log loss's gradient in the logits
        return sample_weight * np.exp(log_softmax(image)) - weighted_onehot  # rows, k, n

    if factors is None:
        # A point is (coefficients, their image) as two (rows, k * n + k) arrays: the dual
        # coefficients B then the intercepts, and kt @ B then the intercepts again, so the
        # weights' inner product <u, v> is the row-wise dot of u's coefficients with v's image
        grams = np.zeros((count, n, n))
        ks = np.zeros((count, m, n))
        for b, (kt_b, ks_b) in enumerate(blocks):
            assert kt_b is not None
            grams[b, : len(kt_b), : len(kt_b)] = kt_b
            ks[b, : len(ks_b), : ks_b.shape[1]] = ks_b
        grams32 = grams.astype(np.float32)

        def times_grams(coefficients: np.ndarray) -> np.ndarray:  # rows, size
            by_block = coefficients.reshape(count, r * k, n)
            if fast:
                return (by_block.astype(np.float32) @ grams32).reshape(rows, size)
            return (by_block @ grams).reshape(rows, size)  # Grams symmetric

        def loss(point: np.ndarray, image: np.ndarray, which: Any = slice(None)) -> np.ndarray:
            # the loss of the fits ``which`` (rows of point and image)
            norms = _inner(point[:, :size], image[:, :size])  # |W|², W = X_trainᵀ B
            return data_loss(image, which) + 0.5 * penalty[which] * norms

        def gradient(point: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            change = pointwise(image)
            grad, grad_image = np.empty_like(point), np.empty_like(point)
            grad[:, :size] = change.reshape(rows, size) + penalty[:, None] * point[:, :size]
            product = times_grams(change.reshape(rows, size))
            grad_image[:, :size] = product + penalty[:, None] * image[:, :size]
            grad[:, size:] = grad_image[:, size:] = change.sum(axis=2)
            return grad, grad_image

        def exact_image(point: np.ndarray) -> np.ndarray:
            image = point.copy()  # the intercepts; the logits made anew in float64
            image[:, :size] = times_grams(point[:, :size])
            return image

        def test_logits(point: np.ndarray) -> np.ndarray:
            return point[:, :size].reshape(count, r * k, n) @ ks.transpose(0, 2, 1)

        weights, image_of = size, None
    else:
        # A point is (W, intercepts) as (rows, k * hidden + k); its image is its logits on
        # the training rows, then the intercepts, as above
        rank = max(z.shape[1] for z in factors)
        train_rows = np.zeros((count, n, rank))
        test_rows = np.zeros((count, m, rank))
        for b, (z, (_, z_test)) in enumerate(zip(factors, blocks, strict=True)):
            train_rows[b, : len(z), : z.shape[1]] = z
            test_rows[b, : len(z_test), : z_test.shape[1]] = z_test
        width = k * rank
        train_rows32 = train_rows.astype(np.float32)

        def image_of(point: np.ndarray) -> np.ndarray:
            image = np.empty((rows, size + k))
            weights = point[:, :width].reshape(count, r * k, rank)
            if fast:
                logits = weights.astype(np.float32) @ train_rows32.transpose(0, 2, 1)
            else:
                logits = weights @ train_rows.transpose(0, 2, 1)
            image[:, :size] = logits.reshape(rows, size)
            image[:, size:] = point[:, width:]
            return image

        def loss(point: np.ndarray, image: np.ndarray, which: Any = slice(None)) -> np.ndarray:
            norms = _inner(point[:, :width], point[:, :width])  # |W|²
            return data_loss(image, which) + 0.5 * penalty[which] * norms

        def gradient(point: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, None]:
            change = pointwise(image)
            grad = np.empty_like(point)
            by_block = change.reshape(count, r * k, n)
            if fast:
                product = by_block.astype(np.float32) @ train_rows32
            else:
                product = by_block @ train_rows
            grad[:, :width] = product.reshape(rows, width) + penalty[:, None] * point[:, :width]
            grad[:, width:] = change.sum(axis=2)
            return grad, None

        def test_logits(point: np.ndarray) -> np.ndarray:
            return point[:, :width].reshape(count, r * k, rank) @ test_rows.transpose(0, 2, 1)

        weights, exact_image = width, image_of
    # The float32 run, then the float64 run from where it stopped (with its exact images)
    with quiet_overflow:  # far points of the float32 run overflow; the next run decides
        point = _lbfgs(
            np.zeros((rows, weights + k)),
            loss,
            gradient,
            penalty,
            weights,
            image_of,
            fast_tol,
            max_iter=min(FAST_MAX_ITER, LOGISTIC_MAX_ITER),
            final=False,
            direction=np.float32,
        )
    fast = False
    point, image = _trusted(point, exact_image(point), loss)
    point = _lbfgs(point, loss, gradient, penalty, weights, image_of, tol, start_image=image)
    # Images were carried through every update: where the exact ones show a negative |W|²
    # or a loss above the start's, rounding misled the run (a far start from the float32
    # run): those fits run again from zero, as they did before it
    image = exact_image(point)
    lost = _untrusted(point, image if image_of is None else point, image, loss, weights)
    if lost.any():
        point[lost], image[lost] = 0.0, 0.0
        point = _lbfgs(point, loss, gradient, penalty, weights, image_of, tol, start_image=image)
    logits = test_logits(point)
    logits = logits.reshape(count, r, k, m) + point[:, -k:].reshape(count, r, k, 1)
    logits[np.broadcast_to(~present[..., None], logits.shape)] = -np.inf  # absent from a fold
    predicted = np.argmax(logits, axis=2)  # count, r, m
    return [predicted[b, :, : len(test)] for b, (_, test) in enumerate(blocks)]


def _trusted(
    point: np.ndarray, image: np.ndarray, loss: Callable[..., np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The float32 run's points and their exact images, with the fits whose exact loss is
    not below the start's (zero) put back at zero: float32 rounding of the carried images
    can lead a run of ill-conditioned vectors far off while its own loss falls."""
    with np.errstate(over="ignore", invalid="ignore"):
        lost = ~(loss(point, image) <= loss(np.zeros_like(point), np.zeros_like(image)))
    point[lost], image[lost] = 0.0, 0.0
    return point, image


def _untrusted(
    point: np.ndarray,
    metric: np.ndarray,
    image: np.ndarray,
    loss: Callable[..., np.ndarray],
    weights: int,
) -> np.ndarray:
    """Fits whose weight norm ``point · metric`` (``metric``: the image on the dual path,
    the point itself on the weights') is negative or whose loss is above the start's."""
    with np.errstate(over="ignore", invalid="ignore"):
        norms = _inner(point[:, :weights], metric[:, :weights])
        start = loss(np.zeros_like(point), np.zeros_like(image))
        return ~(norms >= 0) | ~(loss(point, image) <= start)


def _inner(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", u, v)


def _lbfgs(
    point: np.ndarray,
    loss: Callable[..., np.ndarray],
    gradient: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    penalty: np.ndarray,
    size: int,
    image_of: Callable[[np.ndarray], np.ndarray] | None,
    tol: float = LOGISTIC_TOL,
    *,
    start_image: np.ndarray | None = None,
    max_iter: int | None = None,
    final: bool = True,
    direction: type = np.float64,
) -> np.ndarray:
    """L-BFGS with backtracking (Armijo) for each row of ``point`` at once (the fits of
    :func:`_logistic`); returns the minimisers. The loss and gradient take a point and its
    image (its logits), which is linear in the point: trial points of the line search need
    no product. The first ``size`` entries of a row are penalised weights, the rest
    intercepts.

    Without ``image_of`` the point is dual coefficients: images are carried through every
    update, and the weights' inner product is a coefficient row with an image row (the
    gradient returns both the gradient and its image). With it, the point is the weights
    themselves: plain dot products, and one ``image_of`` per iteration for the direction.
    ``start_image`` is the starting point's image when it is not zero (carried images);
    ``max_iter`` defaults to :data:`LOGISTIC_MAX_ITER`. Fits still short of the stopping
    tests at the end warn unless ``final`` is False (a first run with inexact products,
    which a second run continues). ``direction`` is the precision of the curvature pairs and
    of the quasi-Newton direction made from them (float32 halves the memory traffic of the
    two-loop recursion, most of an iteration's own work; points, images, losses and the
    stopping tests stay float64).
    """
    carried = image_of is None

    def inner(u: np.ndarray, v: np.ndarray, v_image: np.ndarray | None) -> np.ndarray:
        # per-fit scalars in float64 whatever the vectors': a float32 floor like 1e-300 is 0
        return _inner(u, v_image if carried else v).astype(np.float64, copy=False)

    if carried:
        image = np.zeros_like(point) if start_image is None else start_image
    else:
        image = image_of(point)
    value = loss(point, image)
    grad, grad_image = gradient(point, image)
    history: list[tuple[Any, ...]] = []  # (s, its image, y, its image, 1 / s.y)
    stalled = np.zeros(len(point), dtype=bool)
    fresh = np.ones(len(point), dtype=bool)  # no curvature pair yet (or since a restart)

    def unconverged() -> np.ndarray:
        # the objective is `penalty`-strongly convex in the weights: value - minimum is about
        # |weights' gradient|² / (2 penalty) at most; both tests must pass to stop
        weight_norm = inner(
            grad[:, :size], grad[:, :size], None if grad_image is None else grad_image[:, :size]
        )
        intercept_norm = _inner(grad[:, size:], grad[:, size:])
        return (weight_norm + intercept_norm > tol**2) | (
            weight_norm > 2 * penalty * LOGISTIC_RTOL * np.abs(value)
        )

    for _ in range(LOGISTIC_MAX_ITER if max_iter is None else max_iter):
        active = unconverged() & ~stalled
        if not active.any():
            break
        # two-loop recursion: the quasi-Newton direction, per fit
        q = grad.astype(direction)  # a copy
        q_image = grad_image.astype(direction) if carried else None
        alphas = []
        for s, _, y, y_image, rho in reversed(history):
            a = (rho * inner(s, q, q_image)).astype(direction)[:, None]
            q -= a * y
            if carried:
                q_image -= a * y_image
            alphas.append(a)
        if history:
            s, _, y, y_image, _ = history[-1]
            scale = inner(s, y, y_image) / np.maximum(inner(y, y, y_image), 1e-300)
            scale = scale.astype(direction)[:, None]
            scale[fresh] = 1.0
            q *= scale
            if carried:
                q_image *= scale
        # first step (and after a restart): the weights' curvature is about the penalty's,
        # the intercepts' about the loss's (at most 1/2): each scaled by its own
        for v in (q, q_image) if carried else (q,):
            v[fresh, :size] /= penalty[fresh, None]
            v[fresh, size:] *= 2.0
        for (s, s_image, y, _, rho), a in zip(history, reversed(alphas), strict=True):
            b = (rho * inner(y, q, q_image)).astype(direction)[:, None]
            q += (a - b) * s
            if carried:
                q_image += (a - b) * s_image
        keep = np.where(active, -1.0, 0.0)[:, None]  # converged fits stay where they are
        move = keep * q
        move_image = keep * q_image if carried else image_of(move)
        slope = inner(grad, move, move_image)
        # backtracking from the unit step, per fit; trial losses need no product (after the
        # first trial, only the failed fits are evaluated again)
        step = active.astype(np.float64)
        trial, trial_image = point + step[:, None] * move, image + step[:, None] * move_image
        trial_value = loss(trial, trial_image)
        # a NaN or inf trial loss (overflow far from the minimum) fails the test too
        failed = np.flatnonzero(~(trial_value <= value + 1e-4 * step * slope))
        for _ in range(60):
            if not len(failed):
                break
            step[failed] /= 2
            trial[failed] = point[failed] + step[failed, None] * move[failed]
            trial_image[failed] = image[failed] + step[failed, None] * move_image[failed]
            trial_value[failed] = loss(trial[failed], trial_image[failed], failed)
            worse = ~(trial_value[failed] <= value[failed] + 1e-4 * step[failed] * slope[failed])
            failed = failed[worse]
        if len(failed):  # no decrease along the direction: the fit stays where it is, and
            trial[failed], trial_image[failed] = point[failed], image[failed]
            trial_value[failed] = value[failed]
            # restarts from the gradient without its curvature pairs (a quasi-Newton
            # direction can point uphill); only a failed gradient step ends it (rounding)
            stalled[failed[fresh[failed]]] = True
            restart = failed[~fresh[failed]]
            for *_, old_rho in history:
                old_rho[restart] = 0.0
            fresh[restart] = True
        new_grad, new_grad_image = gradient(trial, trial_image)
        s, y = trial - point, new_grad - grad
        s_image = trial_image - image if carried else None
        y_image = new_grad_image - grad_image if carried else None
        curvature = inner(s, y, y_image)
        rho = np.divide(1.0, curvature, out=np.zeros_like(curvature), where=curvature > 1e-300)
        pair = (s, s_image, y, y_image)
        pair = tuple(None if v is None else v.astype(direction, copy=False) for v in pair)
        history = [*history, (*pair, rho)][-HISTORY:]
        fresh &= ~(rho > 0)
        point, image, value = trial, trial_image, trial_value
        grad, grad_image = new_grad, new_grad_image
    short = int(unconverged().sum()) if final else 0
    if short:  # as scikit-learn's ConvergenceWarning: the scores may be off
        warnings.warn(
            f"{short} of {len(point)} logistic probe fits stopped before converging "
            "(rounding limits them: very large unnormalised vectors?); normalize=True "
            "(the default) avoids it",
            RuntimeWarning,
            stacklevel=2,
        )
    return point


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each row ``(r, n)``: the mean recall over the row's classes."""
    recalls = []
    for c in np.unique(y_true):
        members = y_true == c
        count = members.sum(axis=1)
        hits = (members & (y_pred == c)).sum(axis=1)
        recalls.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R² of each row ``(r, n)``; where the truth is constant (a test fold of a rare
    number), 1 for exact predictions and 0 otherwise, as scikit-learn's ``r2_score``."""
    total = np.sum((y_true - y_true.mean(axis=1, keepdims=True)) ** 2, axis=1)
    residual = np.sum((y_true - y_pred) ** 2, axis=1)
    constant = np.where(residual == 0, 1.0, 0.0)
    return np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), constant)


# --------------------------------------------------------------------------- association


def association(
    da: xr.DataArray | xr.Dataset,
    attributes: Sequence[Hashable] | None = None,
    *,
    bins: int = 4,
    include_baseline: bool = False,
) -> xr.DataArray:
    """Cramér's V between persona attributes, bias-corrected for every table size.

    Numeric attributes are cut into ``bins`` quantile bins; ordinal and categorical ones use
    their values. Each pair is tabulated over the personas that have both values; V uses
    the bias correction of Bergsma (2013) on every table (not Yates' correction, which only
    touches 2 × 2 tables and is not a bias correction of V).

    Parameters
    ----------
    da : xarray.DataArray or xarray.Dataset
        Anything with the persona attributes as ``persona`` coordinates (the vectors are not
        read).
    attributes : list of names, optional
        Attributes to compare (default every attribute).
    bins : int
        Quantile bins for numeric attributes.
    include_baseline : bool
        Keep the ``baseline_assistant`` persona (its attributes are missing anyway).

    Returns
    -------
    xarray.DataArray
        ``cramers_v`` ``(attribute, attribute_other)``, symmetric, NaN where a pair has
        fewer than two values on either side. The diagonal is 1, or NaN for an attribute
        with a value per persona (the bias correction leaves it no degrees of freedom).

    Examples
    --------
    >>> import pvx.attributes, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=40, n_clusters=2, seed=0)
    >>> v = pvx.attributes.association(da, ["region", "planted_cluster"])
    >>> round(float(v.sel(attribute="region", attribute_other="planted_cluster")), 3)
    1.0
    """
    table = _attribute_table(da, attributes, bins=bins, include_baseline=include_baseline)
    names = list(table)
    v = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            v[i, j] = v[j, i] = _cramers_v(table[a], table[names[j]])
    return xr.DataArray(
        v,
        dims=("attribute", "attribute_other"),
        coords={"attribute": names, "attribute_other": names},
        name="cramers_v",
        attrs={"bins": bins, "correction": "Bergsma (2013) bias correction"},
    )


def associated_values(
    da: xr.DataArray | xr.Dataset,
    attributes: Sequence[Hashable] | None = None,
    *,
    top: int = 10,
    bins: int = 4,
    min_count: int = 5,
    include_baseline: bool = False,
) -> pd.DataFrame:
    """The value pairs of two attributes that occur together most beyond chance.

    Ranked by the standardised residual ``(observed - expected) / sqrt(expected)`` of their
    cell (expected from the two attributes' own shares), among cells seen at least
    ``min_count`` times. Returns a DataFrame with the two attributes and values, the count,
    the expected count, the lift (observed / expected) and the residual.
    """
    import pandas as pd

    table = _attribute_table(
        da, attributes, bins=bins, include_baseline=include_baseline, func="associated_values"
    )
    names = list(table)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = table[[a, b]].dropna()
            if both.empty:
                continue
            observed = pd.crosstab(both[a], both[b])
            counts = observed.to_numpy(dtype=np.float64)
            expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
            residual = (counts - expected) / np.sqrt(expected)
            for (r, c), count in np.ndenumerate(counts):
                if count >= min_count:
                    rows.append(
                        (
                            a,
                            observed.index[r],
                            b,
                            observed.columns[c],
                            int(count),
                            expected[r, c],
                            count / expected[r, c],
                            residual[r, c],
                        )
                    )
    columns = [
        "attribute",
        "value",
        "attribute_other",
        "value_other",
        "count",
        "expected",
        "lift",
        "residual",
    ]
    found = pd.DataFrame(rows, columns=columns)
    return found.sort_values("residual", ascending=False).head(top).reset_index(drop=True)


def _attribute_table(
    da: xr.DataArray | xr.Dataset,
    attributes: Sequence[Hashable] | None,
    *,
    bins: int,
    include_baseline: bool,
    minimum: int = 2,
    func: str = "association",
) -> pd.DataFrame:
    """One column of labels per attribute (numbers cut into quantile bins), NaN if missing."""
    import pandas as pd

    from pvx._validate import drop_baseline

    if P in da.dims:
        da = drop_baseline(da, include_baseline=include_baseline)
    names, _ = _attribute_names(da, attributes, func=func)
    if len(names) < minimum:
        raise ValueError(f"{func}() needs {minimum} attribute(s) or more, got {names!r}")
    columns = {}
    for name in names:
        coord = da[name]
        values = pd.Series(np.asarray(coord.values, dtype=object))
        values = values.where(~values.map(_missing), np.nan)
        if coord.attrs["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            numbers = numbers.where(np.isfinite(numbers), np.nan)
            if numbers.nunique() <= bins:  # few values (counts, flags): one class each
                labels = numbers.map(lambda v: f"{v:.15g}")
                if labels.nunique() < numbers.nunique():  # 16-17 digits apart
                    labels = numbers.map(repr)
            else:  # quantile edges that coincide merge (0/1/2 in 5 bins would make one)
                labels = pd.qcut(numbers, bins, duplicates="drop").astype(str)
            columns[name] = labels.where(numbers.notna(), np.nan)
        else:
            columns[name] = values.astype(object)
    return pd.DataFrame(columns)


def _cramers_v(a: Any, b: Any) -> float:
    """Bias-corrected Cramér's V of two label columns (pairs with a missing value dropped)."""
    import pandas as pd

    keep = a.notna() & b.notna()
    observed = pd.crosstab(a[keep], b[keep]).to_numpy(dtype=np.float64)
    n = observed.sum()
    r, k = observed.shape
    if r < 2 or k < 2 or n < 2:
        return np.nan
    expected = np.outer(observed.sum(1), observed.sum(0)) / n
    phi2 = float(((observed - expected) ** 2 / expected).sum()) / n
    phi2_corrected = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    r_corrected = r - (r - 1) ** 2 / (n - 1)
    k_corrected = k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corrected - 1, r_corrected - 1)
    return float(np.sqrt(phi2_corrected / denominator)) if denominator > 0 else np.nan


# --------------------------------------------------------------------------- named clusters


def name_clusters(
    labels: xr.DataArray,
    da: xr.DataArray | xr.Dataset,
    attributes: Sequence[Hashable] | None = None,
    *,
    top: int = 2,
    min_z: float = 2.0,
    bins: int = 4,
) -> xr.Dataset:
    """Names for clusters from their over-represented attribute values, always unique.

    For each cluster and each attribute value, the value's share among the cluster's
    personas is compared with its share among all personas by a one-proportion z statistic.
    A cluster is named by its ``top`` most over-represented values (``z >= min_z``, from
    different attributes), e.g. ``"female · north"``. Two clusters never share a name: tied
    names take their next distinctive value, and the cluster number as a last resort.

    Parameters
    ----------
    labels : xarray.DataArray
        Cluster labels ``(persona,)``, e.g. :func:`pvx.cluster.kmeans` (negative: no cluster),
        matched to ``da`` by ``id``.
    da : xarray.DataArray or xarray.Dataset
        The personas' attributes as ``persona`` coordinates.
    attributes : list of names, optional
        Attributes to name by (default all; numbers are cut into ``bins`` quantile bins).
    top, min_z, bins
        Values per name, the evidence threshold, quantile bins for numbers.

    Returns
    -------
    xarray.Dataset
        Over ``cluster``: ``name``, ``size`` and ``evidence`` (e.g. ``"gender = female: 100%
        vs 54% overall (z = 4.1)"``, one per value used, ``"; "``-separated).

    Examples
    --------
    >>> import pvx.attributes, pvx.cluster, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=40, n_clusters=2, seed=0)
    >>> names = pvx.attributes.name_clusters(da["planted_cluster"].astype(int), da, ["region"])
    >>> sorted(names["name"].values.tolist())
    ['north', 'south']
    """
    if not isinstance(labels, xr.DataArray) or labels.dims != (P,):
        raise ValueError(
            "name_clusters() needs labels with dims ('persona',), e.g. pvx.cluster.kmeans(...) "
            "with mode='mean_across_layers', or labels.sel(layer=...)"
        )
    table = _attribute_table(
        da, attributes, bins=bins, include_baseline=True, minimum=1, func="name_clusters"
    )
    ids = np.asarray(da["id"].values, dtype=object) if "id" in da.coords else None
    codes = np.asarray(labels.values)
    if ids is not None and "id" in labels.coords:
        position = dict(
            zip(np.asarray(labels["id"].values, dtype=object).tolist(), codes, strict=True)
        )
        codes = np.array([position.get(i, -1) for i in ids.tolist()])
    if len(codes) != len(table):
        raise ValueError(f"labels has {len(codes)} personas, the attributes {len(table)}")
    if not np.issubdtype(codes.dtype, np.integer):
        try:
            codes = codes.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "name_clusters() needs integer cluster labels (negative: no cluster), got "
                f"{codes[:5].tolist()!r}"
            ) from None
        if not np.all(np.isnan(codes) | (codes == np.round(codes))):
            raise ValueError("name_clusters() needs integer cluster labels")
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
    clusters = sorted(int(c) for c in set(codes.tolist()) if c >= 0)
    if not clusters:
        raise ValueError(
            "name_clusters(): no persona has a cluster label (are the labels' ids those of "
            "the personas?)"
        )
    candidates = {c: _distinctive_values(table, codes == c, min_z) for c in clusters}
    chosen = {c: [] for c in clusters}  # (attribute, value, evidence) per cluster

    def extend(c: int) -> bool:
        used = {a for a, _, _ in chosen[c]}
        for attribute, value, evidence in candidates[c]:
            if attribute not in used:
                chosen[c].append((attribute, value, evidence))
                return True
        return False

    for c in clusters:
        for _ in range(top):
            extend(c)
    owners: dict[str, set[str]] = {}  # the attributes each value belongs to
    for attribute in table:
        for value in table[attribute].dropna().unique():
            owners.setdefault(str(value), set()).add(str(attribute))
    names = {c: _cluster_name(c, chosen[c], owners) for c in clusters}
    while len(set(names.values())) < len(names):
        for name in {n for n in names.values() if list(names.values()).count(n) > 1}:
            tied = [c for c in clusters if names[c] == name]
            for c in tied:
                names[c] = (
                    _cluster_name(c, chosen[c], owners) if extend(c) else f"{name} (cluster {c})"
                )
    return xr.Dataset(
        {
            "name": ("cluster", [names[c] for c in clusters]),
            "size": ("cluster", [int((codes == c).sum()) for c in clusters]),
            "evidence": ("cluster", ["; ".join(e for _, _, e in chosen[c]) for c in clusters]),
        },
        coords={"cluster": clusters},
        attrs={"min_z": min_z, "top": top},
    )


def _distinctive_values(table: pd.DataFrame, member: np.ndarray, min_z: float) -> list[tuple]:
    """(attribute, value, evidence) over-represented in ``member``, most distinctive first."""
    found = []
    for attribute in table:
        column = table[attribute]
        known = column.notna().to_numpy()
        inside = member & known
        n_inside = int(inside.sum())
        if not n_inside:
            continue
        base = column[known].value_counts(normalize=True)
        share = column[inside].value_counts(normalize=True)
        for value, p0 in base.items():
            p = float(share.get(value, 0.0))
            if not 0 < p0 < 1:
                continue
            z = (p - p0) / np.sqrt(p0 * (1 - p0) / n_inside)
            if z >= min_z:
                evidence = (
                    f"{attribute} = {value}: {100 * p:.0f}% vs {100 * p0:.0f}% overall "
                    f"(z = {z:.1f})"
                )
                found.append((z, attribute, str(value), evidence))
    found.sort(key=lambda item: -item[0])
    return [(a, v, e) for _, a, v, e in found]


def _cluster_name(c: int, chosen: list[tuple], owners: Mapping[str, set[str]]) -> str:
    if not chosen:
        return f"cluster {c} (no distinctive attribute)"
    return " · ".join(_shown_value(a, v, owners) for a, v, _ in chosen)


def _shown_value(attribute: str, value: str, owners: Mapping[str, set[str]]) -> str:
    """A value alone where it names its attribute ("female"); with the attribute where
    another attribute has the same value ("yes"), or it is a number, a bin of numbers or a
    truth value ("smoker: True")."""
    try:
        float(value)
        bare = True
    except ValueError:
        bare = value.startswith(("(", "[")) or value in ("True", "False")
    return f"{attribute}: {value}" if bare or len(owners.get(value, ())) > 1 else value


# --------------------------------------------------------------------------- directions


def direction(
    da: xr.DataArray,
    groups: Any = None,
    *,
    attribute: Hashable | None = None,
    value: Any = None,
    other: Any = None,
    layer: LayerSelection = None,
    include_baseline: bool = False,
) -> xr.Dataset:
    """The difference-of-means direction between two persona groups, per layer.

    The analysis side of persona steering vectors: ``mean(group a) - mean(group b)`` of the
    raw vectors, per layer (and variant), lazy on dask input.

    Parameters
    ----------
    da : xarray.DataArray
        Persona vectors ``(persona, layer, hidden)``.
    groups : (ids, ids) or boolean array, optional
        The two groups as two lists of persona ids, or a boolean mask over ``persona``
        (``True``: group a, ``False``: group b).
    attribute, value, other
        Or the groups by an attribute: personas whose ``attribute`` equals ``value``
        against those equal to ``other`` (default: every other persona with a value).
    layer : label, list of labels or None
        Layers (default all).
    include_baseline : bool
        Keep the ``baseline_assistant`` persona.

    Returns
    -------
    xarray.Dataset
        ``direction`` ``(..., layer, hidden)``; ``norm`` ``(..., layer)``; ``projection``
        ``(..., layer, persona)``: each persona's position along the unit direction, 0
        half-way between the group means; with a ``layer`` dim, ``layer_cosine``
        ``(..., layer, layer_other)`` between the directions of two layers; with a
        ``variant`` dim, ``variant_cosine`` ``(layer, variant, variant_other)``. Attributes
        name the groups and their sizes.

    Examples
    --------
    >>> import pvx.attributes, pvx.synthetic
    >>> da = pvx.synthetic.planted_personas(n_persona=20, n_clusters=2, seed=0)
    >>> d = pvx.attributes.direction(da, attribute="planted_cluster", value=0)
    >>> on_the_positive_side = d["projection"].sel(layer=0) > 0
    >>> bool((on_the_positive_side == (da["planted_cluster"] == 0)).all())
    True
    """
    da = _engine.prepare_input(
        da, func="direction", layer=layer, include_baseline=include_baseline, min_personas=2
    )
    in_a, in_b, described = _two_groups(da, groups, attribute, value, other)
    x = da.astype(np.float64)
    # skipna=False: a NaN in a vector must not be left out of a mean (nor count as 0)
    mean_a = x.isel({P: np.flatnonzero(in_a)}).mean(P, skipna=False)
    mean_b = x.isel({P: np.flatnonzero(in_b)}).mean(P, skipna=False)
    d = (mean_a - mean_b).reset_coords(drop=True)
    norm = np.sqrt((d**2).sum("hidden", skipna=False))
    # not d / norm.where(norm > 0): with norm in the same Dataset, dask.compute of the result
    # fails (a graph-optimisation bug in dask 2026.8: "Missing dependency ('sqrt-...')")
    unit = xr.apply_ufunc(_divide_or_nan, d, norm, dask="parallelized", output_dtypes=[np.float64])
    midpoint = ((mean_a + mean_b) / 2).reset_coords(drop=True)
    projection = xr.apply_ufunc(
        _finite_or_named,
        ((x - midpoint) * unit).sum("hidden", skipna=False),
        (x**2).sum("hidden", skipna=False),
        input_core_dims=[[P], [P]],
        output_core_dims=[[P]],
        kwargs={"ids": tuple(_engine.persona_ids(da).tolist())},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},  # (..., persona) sums: small
    )
    result = xr.Dataset({"direction": d, "norm": norm, "projection": projection.transpose(..., P)})
    if "layer" in d.dims:  # one layer label drops the dim: no pair of layers to compare
        result["layer_cosine"] = xr.dot(unit, unit.rename(layer="layer_other"), dim="hidden")
    if "variant" in d.dims:
        result["variant_cosine"] = xr.dot(unit, unit.rename(variant="variant_other"), dim="hidden")
    result.attrs = {
        "group_a": described[0],
        "group_b": described[1],
        "n_a": int(in_a.sum()),
        "n_b": int(in_b.sum()),
    }
    return result


def _finite_or_named(projection: np.ndarray, squares: np.ndarray, *, ids: tuple) -> np.ndarray:
    """``projection``, once the personas' sums of ``squares`` show no NaN or inf (else the
    error names the personas)."""
    _engine.check_finite_rows(squares, ids)
    return projection


def _divide_or_nan(d: Any, norm: Any) -> Any:  # broadcast by apply_ufunc
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, d / norm, np.nan)


def _two_id_lists(groups: Any) -> bool:
    return (
        isinstance(groups, (tuple, list))
        and len(groups) == 2
        and all(isinstance(g, Iterable) and not isinstance(g, (str, bytes)) for g in groups)
        and not any(isinstance(v, (bool, np.bool_)) for g in groups for v in g)
    )


def _labelled_mask(groups: Any, ids: np.ndarray | None) -> bool:
    return (
        isinstance(groups, xr.DataArray)
        and groups.dims == (P,)
        and "id" in groups.coords
        and ids is not None
    )


def _mask_by_id(groups: xr.DataArray, ids: np.ndarray) -> np.ndarray:
    """A boolean mask over persona matched to ``ids`` by its own ``id`` coordinate (it may
    come from another order or hold more personas, e.g. the baseline)."""
    mask_ids = np.asarray(groups["id"].values, dtype=object).astype(str)
    if len(set(mask_ids.tolist())) != len(mask_ids):
        raise ValueError("direction(groups=mask): the mask's 'id' coordinate repeats ids")
    by_id = dict(zip(mask_ids.tolist(), np.asarray(groups.values).tolist(), strict=True))
    missing = [i for i in ids.astype(str).tolist() if i not in by_id]
    if missing:
        raise ValueError(
            f"direction(groups=mask): the mask has no value for persona(s) {missing[:5]!r}; "
            "build it from the same personas"
        )
    return np.asarray([by_id[i] for i in ids.astype(str).tolist()])


def _two_groups(
    da: xr.DataArray, groups: Any, attribute: Hashable | None, value: Any, other: Any
) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    ids = np.asarray(da["id"].values, dtype=object) if "id" in da.coords else None
    if (groups is None) == (attribute is None):
        raise ValueError("direction() needs groups= or attribute= (with value=), not both")
    if attribute is not None:
        if attribute not in da.coords or da[attribute].dims != (P,):
            raise KeyError(f"direction() got unknown attribute {attribute!r}")
        values = np.asarray(da[attribute].values, dtype=object)
        known = np.array([not _missing(v) for v in values])
        # a store keeps categories as text (True as "True"), arrays made in memory may not:
        # a category matches by its text either way
        as_text = (
            np.array([str(v) for v in values], dtype=object)
            if da[attribute].attrs.get("kind") in ("categorical", "ordinal")
            else None
        )

        def equal(v: Any) -> np.ndarray:
            hit = values == v
            return hit if as_text is None else hit | (as_text == str(v))

        in_a = known & equal(value)
        in_b = known & ~in_a if other is None else known & equal(other)
        names = (
            f"{attribute} = {value}",
            f"{attribute} = {other}" if other is not None else f"{attribute} != {value}",
        )
    elif _two_id_lists(groups):
        if ids is None:
            raise ValueError("direction(groups=(ids, ids)) needs an 'id' coordinate")
        wanted = [set(map(str, g)) for g in groups]
        # as Python text: NumPy's fixed-width text would drop a trailing NUL ("q\x00" -> "q")
        texts = pd.Index([str(i) for i in ids], dtype=object)
        unknown = sorted((wanted[0] | wanted[1]) - set(texts))
        if unknown:
            raise KeyError(f"direction() got unknown persona id(s) {unknown[:5]!r}")
        in_a = texts.isin(list(wanted[0]))
        in_b = texts.isin(list(wanted[1]))
        names = (f"{len(wanted[0])} chosen personas", f"{len(wanted[1])} chosen personas")
    else:
        mask = _mask_by_id(groups, ids) if _labelled_mask(groups, ids) else np.asarray(groups)
        if mask.dtype != bool or mask.shape != (da.sizes[P],):
            raise ValueError(
                "direction(groups=...) needs two lists of ids or a boolean mask over persona "
                f"(a DataArray with an 'id' coordinate, or {da.sizes[P]} booleans in the "
                f"array's persona order), got {type(groups).__name__} of {mask.dtype} and "
                f"shape {mask.shape}"
            )
        in_a, in_b, names = mask, ~mask, ("mask True", "mask False")
    if (in_a & in_b).any():
        raise ValueError("direction(): a persona is in both groups")
    if not in_a.any() or not in_b.any():
        hint = ""
        if attribute is not None:
            present = sorted({str(v) for v in values[known]})
            hint = f"; {attribute!r} has the values {present[:20]!r}"
        raise ValueError(f"direction(): a group is empty ({names[0]!r} vs {names[1]!r}){hint}")
    return in_a, in_b, names
