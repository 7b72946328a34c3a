"""An ensemble of seeded (optionally bootstrapped) regressors that also reports its spread."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, validate_data

from predictors._base import seed_from
from predictors.gbm import GBMPredictor
from predictors.mlp import MLPPredictor


def _accepted(estimator: BaseEstimator, fit_params: dict) -> dict:
    """The subset of ``fit_params`` that ``estimator.fit`` takes by name."""
    names = inspect.signature(estimator.fit).parameters
    return {k: v for k, v in fit_params.items() if k in names}


class EnsemblePredictor(RegressorMixin, BaseEstimator):
    """Mean of ``n_members`` copies of each base estimator, each with its own seed.

    ``estimator`` is one regressor or a list of them (a mix; by default one
    :class:`GBMPredictor` and one :class:`MLPPredictor`, the best pair on NAS-Bench-201); the
    ensemble holds ``n_members`` clones of each, seeded from ``random_state`` (for those with a
    ``random_state`` parameter) and, with ``bootstrap``, fitted on a bootstrap resample. Members
    are combined with equal weight per base estimator. ``predict(X, return_std=True)`` returns
    the mean and the standard deviation across members, a cheap epistemic uncertainty.
    Fit keyword arguments (e.g. ``X_pretrain``) go to the members whose ``fit`` accepts them.
    """

    def __init__(
        self,
        estimator: BaseEstimator | Sequence[BaseEstimator] | None = None,
        *,
        n_members: int = 3,
        bootstrap: bool = False,
        random_state: int | np.random.Generator | None = None,
    ):
        self.estimator = estimator
        self.n_members = n_members
        self.bootstrap = bootstrap
        self.random_state = random_state

    def _bases(self) -> list[BaseEstimator]:
        if self.estimator is None:
            return [GBMPredictor(), MLPPredictor()]
        if isinstance(self.estimator, (list, tuple)):
            if not self.estimator:
                raise ValueError("estimator list is empty; give at least one regressor")
            return list(self.estimator)
        return [self.estimator]

    def fit(self, X, y, **fit_params) -> EnsemblePredictor:
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if int(self.n_members) < 1:
            raise ValueError(f"n_members must be >= 1; got {self.n_members}")
        rng = np.random.default_rng(seed_from(self.random_state))
        members = []
        groups = []
        for g, base in enumerate(self._bases()):
            for _ in range(int(self.n_members)):
                member = clone(base)
                if "random_state" in member.get_params():
                    member.set_params(random_state=int(rng.integers(2**31 - 1)))
                rows = rng.integers(len(X), size=len(X)) if self.bootstrap else np.arange(len(X))
                member.fit(X[rows], y[rows], **_accepted(member, fit_params))
                members.append(member)
                groups.append(g)
        self.estimators_ = members
        self.groups_ = np.asarray(groups, dtype=np.int64)
        return self

    def _member_predictions(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.stack([m.predict(X) for m in self.estimators_])  # (members, n)

    def predict(self, X, return_std: bool = False):
        """Mean prediction (n,); with ``return_std``, also the std across members (n,)."""
        preds = self._member_predictions(X)
        groups = np.unique(self.groups_)
        mean = np.mean([preds[self.groups_ == g].mean(axis=0) for g in groups], axis=0)
        if not return_std:
            return mean
        return mean, np.sqrt(np.mean((preds - mean) ** 2, axis=0))
