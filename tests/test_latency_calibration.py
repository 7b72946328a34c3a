"""Calibration of summed unit latencies: recovers known coefficients, round-trips, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.errors import IncompatibleFileError, UserError
from nas.latency.calibration import Calibration, fit_calibration


def synthetic(rng: np.random.Generator, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
    lut = rng.uniform(2.0, 30.0, k)
    n_units = rng.integers(6, 40, k).astype(float)
    return lut, n_units


def test_recovers_known_coefficients_with_noise() -> None:
    rng = np.random.default_rng(0)
    lut, n_units = synthetic(rng)
    measured = (1.17 * lut + 0.045 * n_units + 0.8) * rng.normal(1.0, 0.005, lut.size)
    cal = fit_calibration(lut, n_units, measured)
    a, c = cal.coef
    assert cal.features == ("lut_sum", "n_units") and cal.n_fit == 20
    assert a == pytest.approx(1.17, rel=0.03)
    assert c == pytest.approx(0.045, abs=0.02)
    assert cal.intercept == pytest.approx(0.8, abs=0.4)
    assert cal.fit_median_ape is not None and cal.fit_median_ape < 0.01
    pred = cal.predict({"lut_sum": lut, "n_units": n_units})
    assert np.median(np.abs(pred / measured - 1)) < 0.01


@settings(max_examples=30, deadline=None)
@given(
    a=st.floats(0.5, 2.0),
    c=st.floats(0.0, 0.2),
    b=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**16),
)
def test_exact_recovery_without_noise(a: float, c: float, b: float, seed: int) -> None:
    lut, n_units = synthetic(np.random.default_rng(seed))
    cal = fit_calibration(lut, n_units, a * lut + c * n_units + b)
    np.testing.assert_allclose(cal.coef, [a, c], atol=1e-6)
    assert cal.intercept == pytest.approx(b, abs=1e-5)


def test_coefficients_stay_nonnegative() -> None:
    rng = np.random.default_rng(1)
    lut, n_units = synthetic(rng)
    cal = fit_calibration(lut, n_units, 1.0 * lut - 0.05 * n_units + 3.0)  # negative per-unit term
    assert min(cal.coef) >= 0 and cal.intercept >= 0


def test_extra_features_and_plain_least_squares() -> None:
    rng = np.random.default_rng(2)
    lut, n_units = synthetic(rng)
    n_attn = rng.integers(0, 5, lut.size).astype(float)
    measured = 1.1 * lut + 0.3 * n_attn + 0.5
    cal = fit_calibration(lut, n_units, measured, extra={"n_attn": n_attn})
    assert cal.features == ("lut_sum", "n_units", "n_attn")
    assert cal.coef[2] == pytest.approx(0.3, abs=1e-6)
    signed = Calibration.fit({"lut_sum": lut}, 2.0 * lut - 1.0, nonnegative=False, relative=False)
    assert signed.intercept == pytest.approx(-1.0, abs=1e-8)


def test_dict_round_trip_and_errors() -> None:
    rng = np.random.default_rng(3)
    lut, n_units = synthetic(rng)
    cal = fit_calibration(lut, n_units, 1.1 * lut + 0.2)
    again = Calibration.from_dict(cal.to_dict())
    assert again == cal
    with pytest.raises(UserError, match="missing \\['n_units'\\]"):
        cal.predict({"lut_sum": lut})
    with pytest.raises(UserError, match="2 end-to-end measurements cannot fit 3"):
        fit_calibration(lut[:2], n_units[:2], lut[:2])
    with pytest.raises(UserError, match="must be finite and > 0"):
        fit_calibration(lut, n_units, -lut)
    with pytest.raises(IncompatibleFileError, match="not a valid calibration"):
        Calibration.from_dict({"features": ["lut_sum"], "coef": []})
