"""Learning curves of predictors on a samples CSV: held-out rank correlation per training size."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nas.errors import UserError
from nas.sample.fit import load_training_data, make_encoder, make_estimator
from nas.sample.options import DEFAULT_SIZES


def usable_sizes(sizes: Sequence[int], n_rows: int, test: int) -> tuple[list[int], list[int]]:
    """``(kept, dropped)``: training sizes that fit beside a test set of ``test`` rows."""
    if test < 2:
        raise UserError(f"--test {test}: expected at least 2 held-out subnets")
    if n_rows - test < 2:
        raise UserError(f"{n_rows} samples leave no training rows beside {test} test rows")
    kept = sorted({int(s) for s in sizes if 2 <= int(s) <= n_rows - test})
    dropped = sorted({int(s) for s in sizes} - set(kept))
    if not kept:
        raise UserError(f"no training size in {list(sizes)} fits in {n_rows} samples minus "
                        f"{test} test rows")
    return kept, dropped


def held_out_splits(n_rows: int, test: int, seeds: int, seed: int = 0
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``seeds`` random ``(test rows, training pool)`` splits; training sets are prefixes of the
    pool, so they are nested across sizes and every model sees the same splits."""
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n_rows) for _ in range(int(seeds))]
    return [(o[:test], o[test:]) for o in orders]


def evaluate_on_splits(
    X: np.ndarray,
    y: np.ndarray,
    models: Sequence[str],
    sizes: Sequence[int],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, split, n_train): held-out Kendall tau, Spearman, RMSE, fit seconds.

    The model of split ``k`` is seeded ``seed + k`` (the same for every size)."""
    import time
    import warnings

    from scipy.stats import ConstantInputWarning

    from predictors.metrics import kendall_tau, rmse, spearman

    records = []
    for model in models:
        for k, (test, pool) in enumerate(splits):
            for n in sizes:
                train = pool[:n]
                start = time.perf_counter()
                estimator = make_estimator(model, seed + k).fit(X[train], y[train])
                fit_s = time.perf_counter() - start
                pred = estimator.predict(X[test])
                with warnings.catch_warnings():  # a constant prediction scores 0, no warning
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    tau, rho = kendall_tau(y[test], pred), spearman(y[test], pred)
                records.append({"model": model, "seed": k, "n_train": int(n),
                                "kendall_tau": tau, "spearman": rho,
                                "rmse": rmse(y[test], pred), "fit_s": fit_s})
    return pd.DataFrame.from_records(records)


def predictor_learning_curve(
    samples: str | os.PathLike,
    *,
    models: Sequence[str] = ("ridge", "gbm", "mlp", "ensemble"),
    sizes: Sequence[int] = DEFAULT_SIZES,
    test: int = 200,
    seeds: int = 5,
    target: str = "val_acc",
    features: str = "onehot",
    stats: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[pd.DataFrame, list[int]]:
    """One row per (model, seed, n_train): Kendall tau, Spearman, RMSE, fit seconds.

    Every model sees the same ``seeds`` random splits (:func:`held_out_splits`): ``test``
    held-out rows and nested training sets of each size from the rest. Returns the rows and the
    sizes dropped because they do not fit beside the test set.
    """
    data = load_training_data(samples, target)
    kept, dropped = usable_sizes(sizes, len(data.y), test)
    X = make_encoder(data.space, features, stats).transform(data.archs)
    splits = held_out_splits(len(data.y), test, seeds, seed)
    return evaluate_on_splits(X, data.y, models, kept, splits, seed=seed), dropped


def summarize(curve: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (model, n_train)."""
    g = curve.groupby(["model", "n_train"], sort=False)
    out = g[["kendall_tau", "spearman", "rmse", "fit_s"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()


def markdown_table(summary: pd.DataFrame) -> str:
    """Kendall tau and Spearman (mean ± std over seeds) per model and training size."""
    lines = ["| model | n_train | Kendall tau | Spearman | RMSE | fit s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary.itertuples(index=False):
        lines.append(
            f"| {r.model} | {r.n_train} | {r.kendall_tau_mean:.3f} ± {_nz(r.kendall_tau_std):.3f} | "
            f"{r.spearman_mean:.3f} ± {_nz(r.spearman_std):.3f} | {r.rmse_mean:.4f} | "
            f"{r.fit_s_mean:.2f} |"
        )
    return "\n".join(lines)


def _nz(value: float) -> float:
    return 0.0 if not np.isfinite(value) else float(value)
