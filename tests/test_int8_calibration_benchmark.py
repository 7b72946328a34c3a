"""The INT8 calibration benchmark (nas.benchmarks.int8_calibration) on a synthetic device whose
int8 mixer switch costs 1.8x and conv switch 0.6x what the table says: refitted from the table's
stored calibration subnets, the rule with switch scales must predict the validation subnets
better than the rule without, and the report must say so."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nas.benchmarks.int8_calibration import main
from nas.latency.space_profile import calibration_archs, validation_archs
from nas.latency.space_units import precision_keys
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol
from nas.precision import FP32, INT8
from nas.spaces import load_space
from nas.units import arch_keys

MIXED = load_space("hybrid-tiny").with_precisions("fp32,int8")
SWITCH = {"mixer": 0.8, "conv": -0.4}


def _device_ms(table: LatencyTable, archs, rng: np.random.Generator) -> np.ndarray:
    features = table.calibration_features([arch_keys(MIXED, a) for a in archs])
    ms = 1.1 * features["lut_sum"] + 0.05
    for kind, extra in SWITCH.items():
        ms = ms + 1.1 * extra * features[f"int8_excess_{kind}"]
    return ms * (1 + 0.003 * rng.standard_normal(len(archs)))


def test_switch_scales_predict_a_device_that_misprices_switches_better(tmp_path) -> None:
    rng = np.random.default_rng(0)
    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=MIXED.name, space_hash=MIXED.hash())
    table = LatencyTable(meta, {key: TableEntry(1.0, 0.1, float(rng.uniform(0.01, 1.0)), 10)
                                for key in precision_keys(MIXED, (FP32, INT8))})
    cal = calibration_archs(MIXED, 30, seed=0)
    notes = {"precisions": [FP32, INT8],
             "calibration_set": {"archs": [a.to_str() for a in cal],
                                 "measured_ms": _device_ms(table, cal, rng).tolist()}}
    table.meta = replace(table.meta, notes=notes)
    table.save(tmp_path / "t.csv")
    val = validation_archs(MIXED, 60, seed=1, exclude=cal)
    measured = _device_ms(table, val, rng)
    rows = ["arch_id,arch,lut_sum_ms,predicted_ms,measured_ms,measured_again_ms"]
    rows += [f'{a.arch_id()},"{a.to_str()}",0,0,{m},' for a, m in zip(val, measured)]
    (tmp_path / "v.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.md"
    assert main(["--table", str(tmp_path / "t.csv"), "--validation", str(tmp_path / "v.csv"),
                 "--k", "30", "--out", str(out)]) == 0
    lines = {line.split(" | ")[1]: line.split(" | ") for line in out.read_text().splitlines()
             if line.startswith("| 30 |")}
    without, with_ = lines["without switch scales"], lines["with switch scales"]
    assert "+int8" in with_[2] and "+int8" not in without[2]
    assert float(with_[4].rstrip("%")) > float(without[4].rstrip("%"))  # within +/-10%
    assert float(with_[4].rstrip("%")) >= 95
