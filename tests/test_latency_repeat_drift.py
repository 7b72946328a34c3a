"""The device's repeatability in exported-file validation: a machine that runs a whole second pass
faster or slower (drift) is told apart from network-to-network noise."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nas.latency.validate_exported import ExportedValidation, markdown_table


def _result(first: np.ndarray, again: np.ndarray) -> ExportedValidation:
    return ExportedValidation(
        space="s", table_path="t.csv", table_meta={}, models=[], predicted=first.copy(),
        measured={"onnxruntime": first}, measured_again={"onnxruntime": again}, seconds=0.0,
        load_before=(0.0, 0.0, 0.0), load_after=(0.0, 0.0, 0.0))


@given(times=st.lists(st.floats(0.05, 50.0), min_size=3, max_size=40),
       drift=st.floats(0.5, 2.0))
def test_a_uniform_drift_is_found_and_divided_out(times, drift):
    first = np.array(times)
    rep = _result(first, first * drift).repeatability("onnxruntime")
    assert np.isclose(rep["drift"], drift)
    assert rep["within10_drift_removed_pct"] == 100.0
    if abs(drift - 1) > 0.11:  # beyond +/-10% against the two passes' mean
        assert rep["within10_pct"] == 0.0


def test_noise_stays_after_the_drift_is_divided_out():
    rng = np.random.default_rng(0)
    first = rng.uniform(0.2, 0.6, 200)
    noise = np.where(np.arange(200) % 2 == 0, 1.0, 1.3)  # half the networks 30% slower
    rep = _result(first, first * 0.85 * noise).repeatability("onnxruntime")
    assert 0.85 <= rep["drift"] <= 0.85 * 1.3
    assert rep["within10_drift_removed_pct"] <= 60.0
    row = markdown_table(_result(first, first * 0.85))[2]
    assert "| 0.850 | 100% |" in row
