"""Learning curves of predictors on a samples CSV: held-out rank correlation per training size."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nas.errors import UserError
from nas.sample.fit import load_training_data, make_encoder, make_estimator

DEFAULT_SIZES: tuple[int, ...] = (10, 20, 50, 100, 200, 500)


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

    Every model sees the same ``seeds`` random splits: ``test`` held-out rows and nested training
    sets of each size from the rest (:func:`predictors.metrics.learning_curve`). Returns the rows
    and the sizes dropped because they do not fit beside the test set.
    """
    from predictors.metrics import learning_curve

    data = load_training_data(samples, target)
    kept, dropped = usable_sizes(sizes, len(data.y), test)
    X = make_encoder(data.space, features, stats).transform(data.archs)
    frames = []
    for model in models:
        rng = np.random.default_rng(seed)  # the same splits for every model
        df = learning_curve(make_estimator(model, seed), X, data.y, kept, test, seeds, rng)
        df.insert(0, "model", model)
        frames.append(df)
    return pd.concat(frames, ignore_index=True), dropped


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
