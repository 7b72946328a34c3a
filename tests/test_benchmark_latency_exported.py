"""The exported-file latency benchmark (nas/benchmarks/latency_exported.py) end to end at toy size:
random-weight exports of hybrid-tiny, a batch-2 ONNX Runtime table profiled for just the units they
need, every export timed against it, the table's calibration subnets timed again, and the report
with its command."""

from __future__ import annotations

import csv
import re

import pytest

from nas.benchmarks import latency_exported
from nas.latency.table import LatencyTable

pytestmark = pytest.mark.long


def test_random_weight_exports_are_timed_against_a_batch_two_table(tmp_path):
    table, work, out = tmp_path / "t.csv", tmp_path / "work", tmp_path / "report.md"
    argv = ["--random-weights", "hybrid-tiny", "--profile", f"hybrid-tiny:onnxruntime:{table}:2",
            "--config", f"hybrid-tiny:{table}", "--n", "3", "--work", str(work), "--out", str(out),
            "--remeasure-calibration"]
    assert latency_exported.main(argv) == 0

    assert LatencyTable.load(table).meta.batch == 2
    exports = [p for p in (work / "hybrid-tiny").iterdir() if p.is_dir()]
    assert len(exports) == 3
    for folder in exports:  # the state dict too, so a torch table can time eager
        assert list(folder.glob("*.state_dict.pt")) and list(folder.glob("*.onnx"))
    text = out.read_text()
    assert "python -m nas.benchmarks.latency_exported --random-weights hybrid-tiny" in text
    assert "## hybrid-tiny, onnxruntime table, batch 2, 1 thread" in text
    ratio = re.search(r"calibration subnets timed again in this run: median ([0-9.]+)x", text)
    assert ratio and 0.2 < float(ratio.group(1)) < 5  # the same networks, the same protocol
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["runtime"], r["batch"], float(r["table_n"])) for r in rows] == [
        ("onnxruntime", "2", 3.0)]
