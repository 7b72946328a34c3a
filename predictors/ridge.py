"""Additive ridge regression over one-hot architecture features (the MILP search's objective)."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.utils.validation import check_is_fitted, validate_data

from predictors._base import LearnedState, TargetScaler

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 3, 13))


class RidgeOneHot(RegressorMixin, BaseEstimator):
    """Ridge regression ``y ~ intercept_ + X @ coef_`` with the target standardised internally.

    With one-hot features, ``coef_[j]`` is the additive contribution of choice ``j`` in target
    units, so a linear program can maximise the predicted target exactly.

    Parameters
    ----------
    alpha : float or "auto"
        L2 penalty on the standardised target. ``"auto"`` picks it from ``alphas`` by efficient
        leave-one-out cross-validation (``sklearn.linear_model.RidgeCV``); the choice is ``alpha_``.
    alphas : sequence of float
        Grid searched when ``alpha="auto"``.
    """

    def __init__(self, *, alpha: float | str = "auto", alphas: tuple[float, ...] = DEFAULT_ALPHAS):
        self.alpha = alpha
        self.alphas = alphas

    def fit(self, X, y) -> RidgeOneHot:
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        scaler = TargetScaler.fit(y)
        z = scaler.transform(y)
        if isinstance(self.alpha, str):
            if self.alpha != "auto":
                raise ValueError(f"alpha must be a non-negative float or 'auto'; got {self.alpha!r}")
            if len(X) < 3:  # leave-one-out needs a few samples
                alpha = float(np.median(self.alphas))
                model = Ridge(alpha=alpha).fit(X, z)
            else:
                model = RidgeCV(alphas=np.asarray(self.alphas, dtype=np.float64)).fit(X, z)
                alpha = float(model.alpha_)
        elif isinstance(self.alpha, numbers.Real) and self.alpha >= 0:
            alpha = float(self.alpha)
            model = Ridge(alpha=alpha).fit(X, z)
        else:
            raise ValueError(f"alpha must be a non-negative float or 'auto'; got {self.alpha!r}")
        self.alpha_ = alpha
        self.coef_ = np.asarray(model.coef_, dtype=np.float64) * scaler.scale
        self.intercept_ = float(model.intercept_) * scaler.scale + scaler.mean
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_ + self.intercept_

    def _get_state(self) -> LearnedState:
        return LearnedState(
            meta={"alpha_": self.alpha_, "intercept_": self.intercept_},
            arrays={"coef_": self.coef_},
        )

    def _set_state(self, state: LearnedState) -> None:
        self.alpha_ = float(state.meta["alpha_"])
        self.intercept_ = float(state.meta["intercept_"])
        self.coef_ = np.asarray(state.arrays["coef_"], dtype=np.float64)
