"""The quantization benchmark's summary: hypervolumes, ratios at equal accuracy against (c), and
the fp32 -> int8 drop and speed on the same architectures (on constructed measurements)."""

from __future__ import annotations

import pytest

from nas.benchmarks.quantization import METHODS, summarise


def _row(acc: float, ms: float, size: int) -> dict:
    return {"val_acc": acc, "latency_ms": ms, "size_bytes": size}


def test_summary_ranks_a_dominating_method_first_and_reads_ratios_against_c():
    rows = {
        "a_joint": [_row(0.86, 0.5, 50), _row(0.88, 1.0, 100)],
        "b_fp32": [_row(0.87, 1.0, 400), _row(0.89, 2.0, 800)],
        "c_fp32_then_int8": [_row(0.86, 1.0, 100), _row(0.88, 2.0, 200)],
        "d_random": [_row(0.80, 3.0, 300)],
    }
    summary = summarise({0: rows})
    hv = summary["hypervolume"]
    assert hv["a_joint"]["size"][0] > hv["c_fp32_then_int8"]["size"][0] > hv["d_random"]["size"][0]
    # (c) at 0.86 needs 1.0 ms and 100 B, (a) 0.5 ms and 50 B; at 0.88: 2.0 / 1.0 ms, 200 / 100 B
    assert summary["ratios_vs_c"]["latency"] == [pytest.approx(2.0)]
    assert summary["ratios_vs_c"]["size"] == [pytest.approx(2.0)]
    assert summary["int8_drop_points"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert summary["fp32_over_int8_latency"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert set(hv) == set(METHODS)
