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
    """``seeds`` random ``(test rows, training pool)`` splits from ``default_rng(seed)``
    (:func:`predictors.metrics.held_out_splits`): nested training sets, the same for every model."""
    from predictors.metrics import held_out_splits as splits_from

    return splits_from(n_rows, test, seeds, np.random.default_rng(seed))


def evaluate_on_splits(
    X: np.ndarray,
    y: np.ndarray,
    models: Sequence[str],
    sizes: Sequence[int],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, split, n_train): held-out Kendall tau, Spearman, RMSE, fit seconds
    (:func:`predictors.metrics.scores_on_splits`). The model of split ``k`` is seeded ``seed + k``
    (the same for every size)."""
    from predictors.metrics import scores_on_splits

    frames = []
    for model in models:
        frame = scores_on_splits(lambda s, name=model: make_estimator(name, s), X, y, sizes,
                                 splits, seed=seed)
        frame.insert(0, "model", model)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


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
