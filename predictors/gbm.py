"""Gradient-boosted trees (scikit-learn) on a standardised target."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted, validate_data

from predictors._base import LearnedState, TargetScaler, seed_from

BACKENDS = ("gbr", "hist")
MODEL_FILE = "trees.skops"
# Types skops does not trust by default that a fitted booster legitimately contains.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


class GBMPredictor(RegressorMixin, BaseEstimator):
    """Gradient boosting regressor with the target standardised internally.

    ``backend="gbr"`` is ``sklearn.ensemble.GradientBoostingRegressor`` (stochastic boosting with
    ``subsample``; best with few samples), ``"hist"`` is ``HistGradientBoostingRegressor``
    (faster on thousands of samples; ``subsample`` is ignored there). The fitted booster is
    ``model_``.
    """

    def __init__(
        self,
        *,
        backend: str = "gbr",
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        max_depth: int = 4,
        min_samples_leaf: int = 2,
        subsample: float = 0.7,
        max_features: float | None = None,
        random_state: int | np.random.Generator | None = None,
    ):
        self.backend = backend
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.subsample = subsample
        self.max_features = max_features
        self.random_state = random_state

    def _make_model(self, seed: int):
        if self.backend == "gbr":
            return GradientBoostingRegressor(
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                subsample=self.subsample,
                max_features=self.max_features,
                random_state=seed,
            )
        if self.backend == "hist":
            return HistGradientBoostingRegressor(
                max_iter=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                min_samples_leaf=self.min_samples_leaf,
                max_features=1.0 if self.max_features is None else self.max_features,
                early_stopping=False,
                random_state=seed,
            )
        raise ValueError(f"backend must be one of {BACKENDS}; got {self.backend!r}")

    def fit(self, X, y) -> GBMPredictor:
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if len(X) < 2:
            raise ValueError(f"GBMPredictor needs at least 2 samples; got {len(X)} sample")
        model = self._make_model(seed_from(self.random_state))
        scaler = TargetScaler.fit(y)
        self.model_ = model.fit(X, scaler.transform(y))
        self.y_mean_, self.y_scale_ = scaler.mean, scaler.scale
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.model_.predict(X) * self.y_scale_ + self.y_mean_

    def _get_state(self) -> LearnedState:
        import skops.io as sio

        return LearnedState(
            meta={"y_mean_": self.y_mean_, "y_scale_": self.y_scale_},
            blobs={MODEL_FILE: sio.dumps(self.model_)},
        )

    def _set_state(self, state: LearnedState) -> None:
        """Load the booster with skops, refusing any type outside sklearn's and :data:`TRUSTED_TYPES`."""
        import skops.io as sio

        data = state.blobs[MODEL_FILE]
        untrusted = sio.get_untrusted_types(data=data)
        unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if unexpected:
            raise ValueError(f"{MODEL_FILE} holds types outside the trusted list: {unexpected}")
        model = sio.loads(data, trusted=list(untrusted))
        expected = GradientBoostingRegressor if self.backend == "gbr" else HistGradientBoostingRegressor
        if type(model) is not expected:
            raise ValueError(f"{MODEL_FILE} holds a {type(model).__name__}; expected {expected.__name__}")
        self.model_ = model
        self.y_mean_ = float(state.meta["y_mean_"])
        self.y_scale_ = float(state.meta["y_scale_"])
