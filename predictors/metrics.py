"""Quality of a predictor: rank correlations, RMSE, and learning curves on held-out samples."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, clone


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

    For each repetition, ``rng`` draws a permutation: the first ``test_size`` rows are the test
    set, the next ``n`` rows the training set for each ``n`` in ``sizes`` (so the training sets are
    nested and share one test set). A fresh clone of ``estimator`` is fitted each time, seeded from
    ``rng`` when it has a ``random_state`` parameter; ``fit_params`` go to every ``fit``.
    ``score_against`` maps names to other targets (same rows as ``y``) that the same predictions
    are also scored against, e.g. test accuracy for a predictor fitted on validation accuracy.

    Returns one row per (seed, size): ``seed, n_train, kendall_tau, spearman, rmse, fit_s`` and,
    for each extra target ``name``, ``kendall_tau_<name>, spearman_<name>, rmse_<name>``.
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2:
        raise ValueError(f"training sizes must be >= 2; got {sizes}")
    if test_size + max(sizes) > len(y):
        raise ValueError(
            f"{len(y)} samples cannot hold a test set of {test_size} plus {max(sizes)} training samples"
        )
    extra = {name: np.asarray(v, dtype=np.float64) for name, v in (score_against or {}).items()}
    for name, values in extra.items():
        if values.shape != y.shape:
            raise ValueError(f"target {name!r} has shape {values.shape}; expected {y.shape}")
    records = []
    for seed in range(int(seeds)):
        order = rng.permutation(len(y))
        test, pool = order[:test_size], order[test_size:]
        for n in sizes:
            train = pool[:n]
            model = clone(estimator)
            if "random_state" in model.get_params():
                model.set_params(random_state=int(rng.integers(2**31 - 1)))
            start = time.perf_counter()
            model.fit(X[train], y[train], **(fit_params or {}))
            fit_s = time.perf_counter() - start
            pred = model.predict(X[test])
            record = {"seed": seed, "n_train": n, "fit_s": fit_s}
            for suffix, target in [("", y), *((f"_{k}", v) for k, v in extra.items())]:
                record[f"kendall_tau{suffix}"] = kendall_tau(target[test], pred)
                record[f"spearman{suffix}"] = spearman(target[test], pred)
                record[f"rmse{suffix}"] = rmse(target[test], pred)
            records.append(record)
    return pd.DataFrame.from_records(records)
