"""Quality of a predictor: rank correlations, RMSE, their scikit-learn scorers, and the one
learning-curve loop on held-out samples (used by the benchmarks and ``nas predictors evaluate``)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import make_scorer


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=np.float64).ravel()
    b = np.asarray(y_pred, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true has {a.size} values, y_pred {b.size}; expected the same number")
    if a.size < 2:
        raise ValueError(f"need at least 2 samples to compare rankings; got {a.size}")
    return a, b


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b (ties counted as in scipy); 0.0 when either input is constant."""
    a, b = _pair(y_true, y_pred)
    tau = stats.kendalltau(a, b).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation; 0.0 when either input is constant."""
    a, b = _pair(y_true, y_pred)
    rho = stats.spearmanr(a, b).statistic
    return 0.0 if np.isnan(rho) else float(rho)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the target's units."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((a - b) ** 2)))


# scikit-learn scorers of the three (sklearn.model_selection.cross_validate and friends); RMSE is
# reported as it is (not negated): these scorers measure, they do not select models
SCORERS = {
    "kendall_tau": make_scorer(kendall_tau),
    "spearman": make_scorer(spearman),
    "rmse": make_scorer(rmse),
}


def held_out_splits(
    n_rows: int, test_size: int, seeds: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``seeds`` random ``(test rows, training pool)`` splits, all drawn from ``rng`` first: the
    first ``test_size`` rows of a permutation are the test set, training sets are prefixes of the
    rest (so they are nested across sizes), and every model scored on the splits sees the same."""
    orders = [rng.permutation(n_rows) for _ in range(int(seeds))]
    return [(o[:test_size], o[test_size:]) for o in orders]


def scores_on_splits(
    make_model: Callable[[int], BaseEstimator],
    X,
    y,
    sizes: Sequence[int],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
    fit_params: dict | None = None,
    score_against: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The one learning-curve loop: for each split ``k`` and size ``n``, ``make_model(seed + k)``
    is fitted on the first ``n`` rows of the split's pool and scored on its test rows.

    (scikit-learn's ``learning_curve`` takes one scorer, one estimator for every split and scores
    against the fitted target only; here each split's model has its own seed and the same
    predictions are also scored against ``score_against`` targets, e.g. test accuracy for a
    predictor fitted on validation accuracy.) One row per (split, size): ``seed, n_train,
    kendall_tau, spearman, rmse, fit_s`` and ``kendall_tau_<name>, spearman_<name>, rmse_<name>``
    per extra target.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    extra = {name: np.asarray(v, dtype=np.float64) for name, v in (score_against or {}).items()}
    for name, values in extra.items():
        if values.shape != y.shape:
            raise ValueError(f"target {name!r} has shape {values.shape}; expected {y.shape}")
    records = []
    for k, (test, pool) in enumerate(splits):
        for n in sizes:
            train = pool[: int(n)]
            start = time.perf_counter()
            model = make_model(seed + k).fit(X[train], y[train], **(fit_params or {}))
            fit_s = time.perf_counter() - start
            pred = model.predict(X[test])
            record: dict[str, float] = {"seed": k, "n_train": int(n)}
            with warnings.catch_warnings():  # a constant prediction scores 0, no warning
                warnings.simplefilter("ignore", stats.ConstantInputWarning)
                for suffix, target in [("", y), *((f"_{k_}", v) for k_, v in extra.items())]:
                    record[f"kendall_tau{suffix}"] = kendall_tau(target[test], pred)
                    record[f"spearman{suffix}"] = spearman(target[test], pred)
                    record[f"rmse{suffix}"] = rmse(target[test], pred)
            record["fit_s"] = fit_s
            records.append(record)
    return pd.DataFrame.from_records(records)


def seeded_clone(estimator: BaseEstimator) -> Callable[[int], BaseEstimator]:
    """``seed -> clone(estimator)`` with ``random_state=seed`` when it has one."""

    def make(seed: int) -> BaseEstimator:
        model = clone(estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=int(seed))
        return model

    return make


def learning_curve(
    estimator: BaseEstimator,
    X,
    y,
    sizes: Sequence[int],
    test_size: int,
    seeds: int,
    rng: np.random.Generator,
    fit_params: dict | None = None,
    score_against: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Held-out quality for each training size, repeated over ``seeds`` random splits.

    ``rng`` draws the splits (:func:`held_out_splits`), then one base seed; the clone of
    ``estimator`` fitted on split ``k`` gets ``random_state = base + k`` when it has one
    (:func:`scores_on_splits`, the loop ``nas predictors evaluate`` uses too). ``fit_params`` go
    to every ``fit``; ``score_against`` maps names to other targets (same rows as ``y``) that the
    same predictions are also scored against.

    Returns one row per (seed, size): ``seed, n_train, kendall_tau, spearman, rmse, fit_s`` and,
    for each extra target ``name``, ``kendall_tau_<name>, spearman_<name>, rmse_<name>``.
    """
    y = np.asarray(y, dtype=np.float64)
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2:
        raise ValueError(f"training sizes must be >= 2; got {sizes}")
    if test_size + max(sizes) > len(y):
        raise ValueError(
            f"{len(y)} samples cannot hold a test set of {test_size} plus {max(sizes)} training samples"
        )
    splits = held_out_splits(len(y), test_size, seeds, rng)
    base = int(rng.integers(2**31 - 1 - int(seeds)))
    return scores_on_splits(seeded_clone(estimator), X, y, sizes, splits, seed=base,
                            fit_params=fit_params, score_against=score_against)
