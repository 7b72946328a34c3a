"""The calibration-set benchmark at toy size: a quick hybrid-tiny table, both rules, both test sets."""

from __future__ import annotations

import pytest

from nas.api import profile_latency
from nas.benchmarks import calibration_set


@pytest.mark.long
def test_benchmark_writes_its_report(tmp_path) -> None:
    table = tmp_path / "t.csv"
    profile_latency("hybrid-tiny", table, device="onnxruntime", calibrate=0, rounds=1,
                    repeats=3, progress=False)
    out = tmp_path / "cal.md"
    argv = ["--table", str(table), "--k", "6", "--n-test", "6", "--out", str(out)]
    assert calibration_set.main(argv) == 0
    text = out.read_text()
    assert f"python -m nas.benchmarks.calibration_set --table {table}" in text
    for rule in ("uniform (before)", "half FLOPs-stratified, half uniform (now)"):
        assert text.count(f"| {rule} |") == 3  # two test sets and the smallest fifth
