"""Learned additive latency model: per-choice costs fitted from end-to-end measurements.

For when a device can only be measured end to end (no layer table): an architecture is one-hot
encoded by its per-layer choices, and latency is modelled as ``intercept + sum of choice costs``::

    minimise  ||X w + b - y||^2  +  alpha * ||w - (s * prior + M u)||^2
    subject to w, b, s, u >= 0                                  (when nonnegative=True)

- ``prior`` (optional, one value per column): a prior cost shape, e.g. the FLOPs of that choice; its
  scale ``s`` (ms per unit) is fitted. With 10 samples and 30 columns plain least squares is
  underdetermined; the prior fills in what the data cannot tell.
- ``groups`` (optional, one int per column, -1 for none): columns of one group share a fitted base cost
  ``u_g`` towards which they shrink, e.g. "the same operation on any edge costs about the same".
- ``alpha`` weighs the prior against the data (large: costs follow the prior / group costs; small:
  per-column least squares). A sequence of values is searched by K-fold cross-validation
  (``cv`` folds, held-out squared error) and the chosen one stored in ``alpha_``.

All of it is one bounded linear least-squares problem (augmented rows), solved by
``scipy.optimize.nnls`` when ``nonnegative`` and by the normal equations otherwise. A small ridge
(``1e-6 * max(alpha, 1)``) on ``s`` and ``u`` keeps them identifiable when prior and groups overlap.

Which structure to use (measured on NAS-Bench-201's 27 devices, ``results/benchmarks/
latency_nb201.md``): with ~10 samples, ``groups`` tying the same option across layers works far
better than plain ridge and better than a FLOPs prior (FLOPs misjudge relative op costs, e.g. on
batch-1 GPUs); with hundreds of samples the structures converge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted, validate_data

DEFAULT_ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


class AdditiveLatencyModel(RegressorMixin, BaseEstimator):
    """Per-choice latency costs (ms) by shrunken least squares; see the module docstring.

    Fitted attributes: ``coef_`` (cost per column, ms), ``intercept_`` (ms), ``alpha_``,
    ``prior_scale_`` (ms per prior unit, 0 without prior), ``group_costs_`` (ms per group).
    """

    def __init__(
        self,
        *,
        alpha: float | Sequence[float] = DEFAULT_ALPHAS,
        prior: ArrayLike | None = None,
        groups: ArrayLike | None = None,
        nonnegative: bool = True,
        fit_intercept: bool = True,
        cv: int = 5,
    ) -> None:
        self.alpha = alpha
        self.prior = prior
        self.groups = groups
        self.nonnegative = nonnegative
        self.fit_intercept = fit_intercept
        self.cv = cv

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike) -> AdditiveLatencyModel:
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        p = X.shape[1]
        prior, members = self._structure(p)
        alphas = np.atleast_1d(np.asarray(self.alpha, dtype=np.float64)).ravel()
        if alphas.size == 0 or np.any(~np.isfinite(alphas)) or np.any(alphas < 0):
            raise ValueError(f"alpha must be finite values >= 0, got {self.alpha!r}")
        if alphas.size == 1:
            alpha = float(alphas[0])
        elif X.shape[0] < 3:
            alpha = float(np.sort(alphas)[alphas.size // 2])
        else:
            alpha = self._cross_validate(X, y, prior, members, alphas)
        z = self._solve(X, y, prior, members, alpha)
        self.alpha_ = alpha
        self.coef_ = z[:p]
        at = p
        self.intercept_ = float(z[at]) if self.fit_intercept else 0.0
        at += int(self.fit_intercept)
        self.prior_scale_ = float(z[at]) if prior is not None else 0.0
        at += int(prior is not None)
        self.group_costs_ = z[at:] if members is not None else np.zeros(0)
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_

    # -- internals ---------------------------------------------------------------------------
    def _structure(self, p: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        prior = None
        if self.prior is not None:
            prior = np.asarray(self.prior, dtype=np.float64).ravel()
            if prior.size != p or not np.all(np.isfinite(prior)):
                raise ValueError(f"prior must hold {p} finite values (one per column)")
            if self.nonnegative and np.any(prior < 0):
                raise ValueError("prior must be >= 0 when nonnegative=True")
            if not np.any(prior):
                prior = None
        members = None
        if self.groups is not None:
            groups = np.asarray(self.groups).ravel()
            if groups.size != p or not np.issubdtype(groups.dtype, np.integer):
                raise ValueError(f"groups must hold {p} integers (one per column, -1 for none)")
            labels = np.unique(groups[groups >= 0])
            if labels.size:
                members = (groups[:, None] == labels[None, :]).astype(np.float64)
        return prior, members

    def _solve(
        self,
        X: np.ndarray,
        y: np.ndarray,
        prior: np.ndarray | None,
        members: np.ndarray | None,
        alpha: float,
    ) -> np.ndarray:
        n, p = X.shape
        blocks_data = [X]
        blocks_pen = [np.eye(p)]
        extra = []  # columns of s and u (for the tiny identifiability ridge)
        if self.fit_intercept:
            blocks_data.append(np.ones((n, 1)))
            blocks_pen.append(np.zeros((p, 1)))
        if prior is not None:
            prior_max = np.abs(prior).max()
            blocks_data.append(np.zeros((n, 1)))
            blocks_pen.append(-(prior / prior_max)[:, None])
            extra.append(1)
        if members is not None:
            blocks_data.append(np.zeros((n, members.shape[1])))
            blocks_pen.append(-members)
            extra.append(members.shape[1])
        data = np.hstack(blocks_data)
        pen = np.sqrt(alpha) * np.hstack(blocks_pen)
        n_vars = data.shape[1]
        n_extra = sum(extra)
        tiny = np.zeros((n_extra, n_vars))
        tiny[:, n_vars - n_extra :] = np.sqrt(max(alpha, 1.0) * 1e-6) * np.eye(n_extra)
        a = np.vstack([data, pen, tiny])
        b = np.concatenate([y, np.zeros(p + n_extra)])
        if self.nonnegative:
            z = nnls(a, b, maxiter=50 * n_vars)[0]
        else:
            z = _least_squares(a, b)
        if prior is not None:  # back to ms per prior unit
            z[p + int(self.fit_intercept)] /= np.abs(prior).max()
        return z

    def _cross_validate(
        self,
        X: np.ndarray,
        y: np.ndarray,
        prior: np.ndarray | None,
        members: np.ndarray | None,
        alphas: np.ndarray,
    ) -> float:
        folds = list(KFold(n_splits=min(max(2, int(self.cv)), X.shape[0])).split(X))
        best_alpha, best_err = float(alphas[0]), np.inf
        for alpha in np.sort(alphas)[::-1]:  # ties go to the stronger prior
            err = 0.0
            for train, test in folds:
                z = self._solve(X[train], y[train], prior, members, float(alpha))
                pred = X[test] @ z[: X.shape[1]] + (z[X.shape[1]] if self.fit_intercept else 0.0)
                err += float(np.sum((pred - y[test]) ** 2))
            if err < best_err * (1 - 1e-9):
                best_alpha, best_err = float(alpha), err
        return best_alpha


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unbounded least squares: normal equations (fast; full rank once alpha > 0), else lstsq."""
    try:
        return np.linalg.solve(a.T @ a, a.T @ b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]
