"""Accuracy and latency predictors as scikit-learn estimators over encoded architectures.

- :class:`RidgeOneHot`: additive ridge model (per-choice ``coef_`` for the MILP search);
- :class:`GBMPredictor`: gradient-boosted trees;
- :class:`MLPPredictor`: torch MLP with optional FBNetV3-style pretraining on free statistics;
- :class:`EnsemblePredictor`: seeded members of one or more of these, ``predict(X, return_std=True)``;
- :mod:`predictors.metrics`: ``kendall_tau``, ``spearman``, ``rmse``, ``learning_curve``;
- :func:`save_predictor` / :func:`load_predictor`: safe persistence with a JSON card.
"""

from predictors import metrics
from predictors.ensemble import EnsemblePredictor
from predictors.gbm import GBMPredictor
from predictors.mlp import MLPPredictor
from predictors.persistence import load_predictor, read_card, save_predictor
from predictors.ridge import RidgeOneHot

__all__ = [
    "EnsemblePredictor",
    "GBMPredictor",
    "MLPPredictor",
    "RidgeOneHot",
    "load_predictor",
    "metrics",
    "read_card",
    "save_predictor",
]
