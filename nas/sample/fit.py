"""``nas fit``: fit an accuracy (or latency) predictor on a samples CSV, cross-validated, and save it.

The predictor is an estimator of the :mod:`predictors` package over an architecture encoder
(one-hot or ordinal, optionally with free statistics). It is saved with
:func:`predictors.persistence.save_predictor` (no code is executed on load) and a card that also
records what :func:`nas.sample.predictor.load_predictor_for` needs to rebuild the encoder: the space
name and hash, the encoder kind and statistics, the feature names, the training size, the
cross-validated Kendall tau, Spearman and RMSE, and the model's parameters.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold

from nas.arch import Architecture
from nas.errors import UserError
from nas.sample.options import (  # noqa: F401 - their home is the light options module
    DEFAULT_FOLDS,
    FEATURES,
    MODELS,
    TARGETS,
    parse_stats,
)
from nas.sample.store import read_samples, space_of
from nas.spaces import SearchSpace


def make_estimator(model: str, seed: int = 0) -> BaseEstimator:
    """A fresh, seeded estimator by short name (see :data:`MODELS`)."""
    from predictors.ensemble import EnsemblePredictor
    from predictors.gbm import GBMPredictor
    from predictors.mlp import MLPPredictor
    from predictors.ridge import RidgeOneHot

    if model == "ridge":
        return RidgeOneHot()
    if model == "gbm":
        return GBMPredictor(random_state=seed)
    if model == "mlp":
        return MLPPredictor(random_state=seed)
    if model == "ensemble":
        return EnsemblePredictor([GBMPredictor(), MLPPredictor()], n_members=3, random_state=seed)
    raise UserError(f"model {model!r}: expected one of {', '.join(MODELS)}")


def make_encoder(space: SearchSpace, features: str = "onehot", stats: tuple[str, ...] = ()):
    """The architecture encoder by kind, with free statistics appended (log10)."""
    from predictors.encoders import STATS, OneHotEncoder, OrdinalEncoder

    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise UserError(f"statistics {unknown}: expected any of {', '.join(STATS)}")
    if features == "onehot":
        return OneHotEncoder(space, stats=tuple(stats))
    if features == "ordinal":
        return OrdinalEncoder(space, stats=tuple(stats))
    raise UserError(f"features {features!r}: expected one of {', '.join(FEATURES)}")


@dataclass(frozen=True)
class TrainingData:
    """Architectures and one target column of a samples file, with its space and sidecar."""

    space: SearchSpace
    archs: list[Architecture]
    y: np.ndarray
    target: str
    meta: dict[str, Any]
    path: Path
    dropped: int = 0  # rows left out: no finite value for the target (NaN, inf, empty)


def load_training_data(samples: str | os.PathLike, target: str = "val_acc") -> TrainingData:
    """Rows of ``samples`` with a finite value for ``target``; the rows without one (NaN, inf,
    empty) are left out and counted in ``dropped``."""
    if target not in TARGETS:
        raise UserError(f"target {target!r}: expected one of {', '.join(TARGETS)}")
    table = read_samples(samples)
    space = space_of(table.meta, where=str(samples))
    y = np.asarray(table.column(target), dtype=np.float64)
    keep = np.isfinite(y)
    if not keep.any():
        hint = " (give 'nas sample' a --table)" if target == "latency_ms" else ""
        raise UserError(f"{samples}: no row has a value for {target!r}{hint}")
    archs = [a for a, k in zip(table.architectures(), keep) if k]
    dropped = int((~keep).sum())
    return TrainingData(space, archs, y[keep], target, table.meta, Path(samples), dropped)


def cross_validate(
    estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, *, folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> dict[str, Any]:
    """K-fold (shuffled, seeded) Kendall tau, Spearman and RMSE: per-fold mean and std, and the
    values over all out-of-fold predictions pooled."""
    from predictors.metrics import kendall_tau, rmse, spearman

    if folds < 2:
        raise UserError(f"folds={folds}: expected at least 2")
    if len(y) < 2 * folds:
        raise UserError(f"{len(y)} samples are too few for {folds}-fold cross-validation "
                        f"(need at least {2 * folds})")
    metrics = {"kendall_tau": kendall_tau, "spearman": spearman, "rmse": rmse}
    per_fold: dict[str, list[float]] = {k: [] for k in metrics}
    pooled = np.zeros_like(y)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
        model = clone(estimator).fit(X[train], y[train])
        pred = model.predict(X[test])
        pooled[test] = pred
        for name, fn in metrics.items():
            per_fold[name].append(fn(y[test], pred))
    out: dict[str, Any] = {"folds": folds, "seed": seed}
    for name, fn in metrics.items():
        values = np.asarray(per_fold[name])
        out[name] = {"mean": float(values.mean()), "std": float(values.std()),
                     "pooled": float(fn(y, pooled))}
    return out


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, BaseEstimator):
            return {"class": type(v).__name__, "params": _json_params(v.get_params(deep=False))}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, (np.integer, np.floating)):
            return v.item()
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        return repr(v)

    return {k: conv(v) for k, v in sorted(params.items())}


@dataclass(frozen=True)
class FitResult:
    """A fitted predictor, its encoder and card (and where it was saved, if it was)."""

    estimator: BaseEstimator
    encoder: Any
    card: dict[str, Any]
    path: Path | None


def fit_predictor(
    samples: str | os.PathLike,
    *,
    target: str = "val_acc",
    model: str = "ridge",
    features: str = "onehot",
    stats: tuple[str, ...] = (),
    seed: int = 0,
    folds: int = DEFAULT_FOLDS,
    out: str | os.PathLike | None = None,
) -> FitResult:
    """Cross-validate, refit on every row, and (with ``out``) save the predictor and its card."""
    from nas.sample.measure import file_sha256
    from predictors.persistence import save_predictor

    data = load_training_data(samples, target)
    encoder = make_encoder(data.space, features, stats)
    X = encoder.transform(data.archs)
    estimator = make_estimator(model, seed)
    cv = cross_validate(estimator, X, data.y, folds=folds, seed=seed)
    start = time.perf_counter()
    fitted = clone(estimator).fit(X, data.y)
    fit_s = time.perf_counter() - start
    card = {
        "space_hash": data.space.hash(),
        "space_name": data.space.name,
        "target": target,
        "encoder": {"kind": features, "stats": list(stats)},
        "feature_names": [str(n) for n in encoder.get_feature_names_out()],
        "n_train": len(data.y),
        "n_dropped": data.dropped,
        "target_range": [float(data.y.min()), float(data.y.max())],
        "cv": cv,
        "model": {"name": model, "class": type(fitted).__name__,
                  "params": _json_params(fitted.get_params(deep=False))},
        "seed": seed,
        "fit_seconds": round(fit_s, 3),
        "samples": {"path": str(data.path), "sha256": file_sha256(data.path),
                    "run": data.meta.get("run"), "evaluation": data.meta.get("evaluation")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path = None
    if out is not None:
        path = Path(save_predictor(fitted, out, card)).parent
    return FitResult(fitted, encoder, card, path)
