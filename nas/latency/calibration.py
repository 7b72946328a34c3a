"""Calibration of summed layer latencies to end-to-end latency.

Summing per-layer medians misses the whole network by a systematic amount (per-call overhead of the
framework, cache effects between layers, fusion). On K (default 20) end-to-end measurements of random
networks that are never the validation networks, a non-negative linear model is fitted::

    measured ~= sum_j coef_j * feature_j + intercept       (coef_j >= 0, intercept >= 0)

with the features passed in by name, usually ``lut_sum`` (sum of unit medians, ms) and ``n_units``
(number of timed units), giving ``a * lut_sum + c * n_units + b``: a scale, a per-layer overhead and a
fixed per-network overhead. Residuals are weighted by ``1 / measured`` by default, so the fit
minimises squared RELATIVE error (the quantity "within +/-10%" judges). Solved with
``scipy.optimize.nnls`` on column-scaled features (``nonnegative=False``: signed least squares,
stored as model ``"linear"``). The fit is stored in a table's JSON sidecar
(:meth:`Calibration.to_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import nnls

from nas.errors import IncompatibleFileError, UserError

DEFAULT_FEATURES: tuple[str, ...] = ("lut_sum", "n_units")
DEFAULT_K = 20
MODEL_NAME = "nonnegative-linear"
SIGNED_MODEL_NAME = "linear"  # fitted with nonnegative=False (a signed overhead is allowed)


@dataclass(frozen=True)
class Calibration:
    """A fitted ``measured ~= coef . features + intercept`` (see the module docstring)."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    n_fit: int
    relative: bool = True
    fit_median_ape: float | None = None  # median |relative error| on the fit set
    nonnegative: bool = True  # coefficients constrained to >= 0 when fitted

    @classmethod
    def fit(
        cls,
        features: Mapping[str, ArrayLike],
        measured: ArrayLike,
        *,
        intercept: bool = True,
        relative: bool = True,
        nonnegative: bool = True,
    ) -> Calibration:
        """Fit on ``features`` (name -> (K,) values) and ``measured`` (K,) end-to-end latencies."""
        names = tuple(features)
        if not names:
            raise UserError("calibration needs at least one feature (e.g. 'lut_sum')")
        y = np.asarray(measured, dtype=np.float64).ravel()
        cols = [_column(features, name, y.size) for name in names]
        design = np.column_stack([*cols, np.ones_like(y)] if intercept else cols)
        n_params = design.shape[1]
        if y.size < n_params:
            raise UserError(
                f"calibration: {y.size} end-to-end measurements cannot fit {n_params} "
                f"coefficients ({', '.join(names)}{', intercept' if intercept else ''})"
            )
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise UserError("calibration: measured latencies must be finite and > 0 ms")
        weights = 1.0 / y if relative else np.ones_like(y)
        scale = np.abs(design).max(axis=0)
        scale[scale == 0] = 1.0
        a = design / scale * weights[:, None]
        b = y * weights
        if nonnegative:
            solution, _ = nnls(a, b)
        else:
            solution = np.linalg.lstsq(a, b, rcond=None)[0]
        solution = solution / scale
        coef = solution[: len(names)]
        icpt = float(solution[-1]) if intercept else 0.0
        pred = design[:, : len(names)] @ coef + icpt
        ape = float(np.median(np.abs(pred - y) / y))
        return cls(
            features=names,
            coef=tuple(float(c) for c in coef),
            intercept=icpt,
            n_fit=int(y.size),
            relative=relative,
            fit_median_ape=ape,
            nonnegative=nonnegative,
        )

    def predict(self, features: Mapping[str, ArrayLike]) -> np.ndarray:
        """Calibrated latency (ms) from features by name; a missing feature is an error."""
        missing = [n for n in self.features if n not in features]
        if missing:
            raise UserError(f"calibration needs features {list(self.features)}; missing {missing}")
        n = np.asarray(features[self.features[0]]).size
        out = np.full(n, self.intercept, dtype=np.float64)
        for name, c in zip(self.features, self.coef):
            out += c * _column(features, name, n)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": MODEL_NAME if self.nonnegative else SIGNED_MODEL_NAME,
            "features": list(self.features),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "n_fit": self.n_fit,
            "relative": self.relative,
            "fit_median_ape": self.fit_median_ape,
            "formula": " + ".join(
                [f"{c:.6g}*{n}" for n, c in zip(self.features, self.coef)]
                + [f"{self.intercept:.6g}"]
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "calibration") -> Calibration:
        try:
            model = data.get("model", MODEL_NAME)
            if model not in (MODEL_NAME, SIGNED_MODEL_NAME):
                raise ValueError(
                    f"model {model!r} is not {MODEL_NAME!r} or {SIGNED_MODEL_NAME!r}"
                )
            features = tuple(str(f) for f in data["features"])
            coef = tuple(float(c) for c in data["coef"])
            if len(features) != len(coef):
                raise ValueError(f"{len(features)} features but {len(coef)} coefficients")
            return cls(
                features=features,
                coef=coef,
                intercept=float(data["intercept"]),
                n_fit=int(data["n_fit"]),
                relative=bool(data.get("relative", True)),
                fit_median_ape=None
                if data.get("fit_median_ape") is None
                else float(data["fit_median_ape"]),
                nonnegative=model == MODEL_NAME,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IncompatibleFileError(f"{where}: not a valid calibration ({exc})") from None


def fit_calibration(
    lut_sums: ArrayLike,
    n_units: ArrayLike,
    measured: ArrayLike,
    *,
    extra: Mapping[str, ArrayLike] | None = None,
    relative: bool = True,
) -> Calibration:
    """The default calibration: ``a * lut_sum + c * n_units + b`` (plus any ``extra`` features)."""
    features: dict[str, ArrayLike] = {"lut_sum": lut_sums, "n_units": n_units}
    features.update(extra or {})
    return Calibration.fit(features, measured, relative=relative)


def _column(features: Mapping[str, ArrayLike], name: str, n: int) -> np.ndarray:
    col = np.asarray(features[name], dtype=np.float64).ravel()
    if col.size != n:
        raise UserError(f"calibration feature {name!r} has {col.size} values; expected {n}")
    if not np.all(np.isfinite(col)):
        raise UserError(f"calibration feature {name!r} has non-finite values")
    return col
