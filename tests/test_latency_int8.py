"""INT8 latency tables: keys per precision, boundary keys, profiling through the quantize path,
mixed-precision predict and validate, and the bad inputs (a precision the space does not allow, an
INT8 table missing a unit, int8 on a runtime without its kernels)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.arch import Architecture
from nas.cli import main
from nas.latency.quantized_units import _without_edges
from nas.latency.space_profile import table_precisions
from nas.latency.space_units import (
    boundary_keys,
    int8_unit_keys,
    precision_keys,
    predict_latency,
    space_keys,
)
from nas.latency.table import LatencyTable
from nas.latency.timing import Measurement
from nas.latency.validate import validate_table
from nas.precision import FP32, INT8
from nas.spaces import load_space
from nas.units import arch_keys, arch_units, precision_boundaries

# INT8 profiling exports and quantizes every unit (~30 s in all): make test's second pass runs it
pytestmark = pytest.mark.long

TINY = load_space("hybrid-tiny")
MIXED = TINY.with_precisions("fp32,int8")
FAST = ["--warmup", "1", "--repeats", "2", "--rounds", "1", "--min-round-ms", "0",
        "--min-read-ms", "0", "--no-progress"]
# hybrid-tiny cut to a few units (every unit kind but the mixer), so profiling it at two
# precisions, each int8 unit exported and quantized, stays a few seconds
MICRO = """\
name: hybrid-micro
in_channels: 3
num_classes: 10
resolutions: [12]
stem: {width: 8, kernel: 3, stride: 1, act: relu}
stages:
  - {name: conv, widths: [8], depths: [1], stride: 2, act: relu,
     blocks: {conv: {kernels: [3], expands: [1]}}}
  - {name: hybrid, widths: [16], depths: [1, 2], stride: 2, act: hswish,
     blocks: {conv: {kernels: [3], expands: [2], se: [true]},
              attn: {heads: [1], mlp_ratios: [2], head_dim: 8}}}
head: {width: 32, act: hswish}
"""


# ----- keys -------------------------------------------------------------------------------------


def test_precision_keys_keep_fp32_keys_and_add_int8_units_and_boundaries() -> None:
    fp32 = space_keys(TINY)
    assert precision_keys(TINY) == fp32  # an fp32 profile measures exactly what it did
    keys = precision_keys(TINY, (FP32, INT8))
    assert keys[: len(fp32)] == fp32
    assert set(int8_unit_keys(TINY)) == {f"{k}@int8" for k in fp32}
    assert set(keys) == set(fp32) | set(int8_unit_keys(TINY)) | set(boundary_keys(TINY))
    assert all(k.split(":")[0] in ("quant", "dequant") for k in boundary_keys(TINY))
    assert len(set(keys)) == len(keys)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_every_mixed_subnet_key_is_profiled_and_boundaries_sit_at_changes(seed: int) -> None:
    arch = MIXED.sample(np.random.default_rng(seed))
    keys = arch_keys(MIXED, arch)
    assert set(keys) <= set(precision_keys(MIXED, (FP32, INT8)))
    units = arch_units(MIXED, arch)
    assert len(keys) == len(units) + len(precision_boundaries(MIXED, arch))
    # a boundary wherever the precision entering a unit differs from the one before it, the
    # network's input and output being float
    from nas.units import arch_unit_precisions

    precisions = [FP32, *arch_unit_precisions(MIXED, arch), FP32]
    changes = [i for i in range(len(precisions) - 1) if precisions[i] != precisions[i + 1]]
    assert [i for i, _ in precision_boundaries(MIXED, arch)] == changes
    for i, key in precision_boundaries(MIXED, arch):
        kind = "quant" if precisions[i + 1] == INT8 else "dequant"
        assert key.startswith(f"{kind}:")


def test_fp32_and_all_int8_subnets() -> None:
    arch = TINY.sample(np.random.default_rng(3))
    assert arch_keys(TINY, arch) == [u.key for u in arch_units(TINY, arch)]  # unchanged
    int8 = arch.at_precision(INT8)
    keys = arch_keys(MIXED, int8)
    n = len(arch_units(MIXED, int8))
    assert keys[n:] == [f"quant:c3:h{arch.resolution}", "dequant:c10:h1"]  # in and out only


def test_int8_entry_leaves_out_its_own_quantize_and_dequantize() -> None:
    def m(ms: float) -> Measurement:
        return Measurement(ms, 0.001, ms, 100, ms)

    entry = _without_edges(m(0.050), m(0.007), m(0.006), overhead_ms=0.004)
    assert entry.median_ms == pytest.approx(0.050 - 0.003 - 0.002)
    floor = _without_edges(m(0.005), m(0.009), m(0.009), overhead_ms=0.004)
    assert floor.median_ms == pytest.approx(0.004 + 1e-3)  # never below one call


# ----- profile, predict, validate -----------------------------------------------------------------


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("int8")
    space = folder / "micro.yaml"
    space.write_text(MICRO)
    table = folder / "micro.csv"
    assert main(["profile", "--space", str(space), "--out", str(table), "--latency-device",
                 "onnxruntime", "--precisions", "fp32,int8", "--calibrate", "0", *FAST]) == 0
    return space, table


def test_profile_measures_every_unit_at_each_precision_and_the_boundaries(micro, capsys) -> None:
    space_path, table_path = micro
    space = load_space(str(space_path))
    table = LatencyTable.load(table_path)
    assert sorted(table.keys()) == sorted(precision_keys(space, (FP32, INT8)))
    assert table_precisions(table) == (FP32, INT8)
    assert all(e.median_ms > 0 for e in table.entries.values())
    # resuming measures nothing; an fp32-only run keeps the int8 entries (they are not stale)
    assert main(["profile", "--space", str(space_path), "--out", str(table_path),
                 "--latency-device", "onnxruntime", "--calibrate", "0", *FAST]) == 0
    assert "0 measured now" in capsys.readouterr().out
    assert len(LatencyTable.load(table_path)) == len(table)


def test_predict_mixed_is_units_at_their_precision_plus_boundaries(micro, capsys) -> None:
    space_path, table_path = micro
    space = load_space(str(space_path)).with_precisions("fp32,int8")
    table = LatencyTable.load(table_path)
    arch = Architecture.from_str("r12 head@int8 | w8: ir_k3_e1@int8 | w16: at_h1_m2")
    expected = sum(table.entries[k].median_ms for k in arch_keys(space, arch))
    assert predict_latency(table, space, [arch])[0] == pytest.approx(expected)
    assert "dequant:c10:h1" in arch_keys(space, arch)
    assert main(["latency", "predict", "--space", str(space_path), "--table", str(table_path),
                 arch.to_str()]) == 0
    assert f"{expected:.4f} ms" in capsys.readouterr().out


def test_validate_measures_mixed_subnets_through_the_quantize_path(micro, tmp_path) -> None:
    space_path, table_path = micro
    result = validate_table(load_space(str(space_path)), table_path, n=3, repeat_subset=0,
                            seed=5, progress=False, say=lambda _: None)
    assert any(any(p == INT8 for p in a.precisions()) for a in result.archs)
    assert np.all(result.measured > 0) and result.predicted.shape == (3,)


def test_bad_precision_inputs_are_one_line_exit_2(micro, tmp_path, capsys) -> None:
    space_path, table_path = micro
    fp32_table = tmp_path / "fp32.csv"  # the same table as an fp32-only profile writes it
    table = LatencyTable.load(table_path)
    table.entries = {k: e for k, e in table.entries.items() if k in space_keys(
        load_space(str(space_path)))}
    table.meta = replace(table.meta, notes={})
    table.save(fp32_table)
    capsys.readouterr()
    arch = "r12 | w8: ir_k3_e1@int8 | w16: at_h1_m2"
    cases = [
        # a precision the space (as the fp32 table was profiled) does not allow
        (["latency", "predict", "--space", str(space_path), "--table", str(fp32_table), arch],
         "int8"),
        # an INT8 table missing a unit: asked for int8 of a table without int8 entries
        (["latency", "predict", "--space", str(space_path), "--table", str(fp32_table),
          "--precisions", "fp32,int8", arch], "@int8"),
        (["latency", "predict", "--space", str(space_path), "--table", str(table_path),
          "--precisions", "fp32,int4", arch], "int4"),
        (["profile", "--space", str(space_path), "--out", str(tmp_path / "t.csv"),
          "--precisions", "fp32,int8", *FAST], "onnxruntime"),
    ]
    for argv, word in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and word in err, err
    assert not (tmp_path / "t.csv").exists()


# ----- the one "table latency as a cost" builder ----------------------------------------------


PLAIN_CALIBRATION = (("lut_sum", "n_units", "n_attn", "params"), (1.2, 0.01, 0.05, 2e-7))
INT8_CALIBRATION = (("lut_sum", "n_units", "int8_excess_mixer", "int8_excess_conv"),
                    (1.2, 0.01, 0.9, -0.5))


def _synthetic_table(space, drop: str | None = None,
                     calibration: tuple = PLAIN_CALIBRATION) -> LatencyTable:
    from nas.latency.calibration import Calibration
    from nas.latency.table import TableEntry, TableMeta
    from nas.latency.timing import TimingProtocol

    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=space.name, space_hash=space.hash())
    rng = np.random.default_rng(0)
    keys = [k for k in precision_keys(space, (FP32, INT8)) if k != drop]
    table = LatencyTable(meta, {k: TableEntry(1.0, 0.1, float(rng.uniform(0.01, 1.0)), 10)
                                for k in keys})
    table.set_calibration(Calibration(*calibration, 0.3, n_fit=20))
    return table


@pytest.mark.parametrize("calibration", [PLAIN_CALIBRATION, INT8_CALIBRATION],
                         ids=["plain", "int8-switch-scales"])
def test_one_cost_builder_is_precision_aware_with_boundaries(calibration) -> None:
    from nas.latency.space_units import latency_cost_rule
    from nas.search.mp_costs import latency_cost
    from nas.search.space_problem import TableLatency
    from nas.spaces import encode
    from nas.spaces.tables import GenomeTables

    table = _synthetic_table(MIXED, calibration=calibration)
    rule = latency_cost_rule(table, MIXED)
    archs = [MIXED.sample(np.random.default_rng(i)) for i in range(40)]
    predicted = predict_latency(table, MIXED, archs)
    boundaries = np.array([
        sum(1.2 * table.entries[k].median_ms + 0.01 for _, k in precision_boundaries(MIXED, a))
        for a in archs])
    assert np.all(boundaries[[bool(precision_boundaries(MIXED, a)) for a in archs]] > 0)
    np.testing.assert_allclose([rule.additive_value(MIXED, a) for a in archs], predicted,
                               rtol=1e-12)
    np.testing.assert_allclose([rule(MIXED, a) for a in archs], predicted, rtol=1e-12)
    units_only = replace(rule, boundary=None)  # what summing single units gives
    np.testing.assert_allclose([units_only.additive_value(MIXED, a) for a in archs],
                               predicted - boundaries, rtol=1e-12)
    genes = np.stack([encode(MIXED, a) for a in archs])
    np.testing.assert_allclose(GenomeTables(MIXED, {"lat": units_only}).costs(genes)["lat"],
                               predicted - boundaries, rtol=1e-12)
    with pytest.raises(ValueError, match="boundary"):
        GenomeTables(MIXED, {"lat": rule})
    assert latency_cost(table, MIXED).additive_value(MIXED, archs[0]) == pytest.approx(
        predicted[0], rel=1e-12)
    latency = TableLatency(table, MIXED)  # genomes decode (exact); the MILP takes the rule
    assert not latency.additive and "dequantize" in latency.reason
    assert latency.additive_cost() is latency.rule
    assert TableLatency(table, TINY).additive


def test_one_cost_builder_names_a_missing_int8_unit() -> None:
    from nas.latency.space_units import latency_cost_rule
    from nas.latency.table import MissingKeysError

    missing = int8_unit_keys(TINY)[5]
    table = _synthetic_table(MIXED, drop=missing)
    with pytest.raises(MissingKeysError, match=missing.replace("[", r"\[")):
        latency_cost_rule(table, MIXED)
    latency_cost_rule(table, TINY)  # an fp32 space needs no int8 entry


def test_switch_cost_benchmark_pairs_each_kind_and_writes_its_report(micro, tmp_path) -> None:
    from nas.benchmarks import int8_switch_cost as bench

    space_path, table_path = micro
    space = load_space(str(space_path)).with_precisions("fp32,int8")
    arch = Architecture.from_str("r12 stem@int8 | w8: ir_k3_e1@int8 | w16: at_h1_m2@int8")
    assert bench.gene_kinds(arch) == ["stem", "conv", "attn", "head"]
    assert bench.switched_off(arch, "conv").precisions() == (INT8, FP32, INT8, FP32)
    for a, b in bench.pairs(space, "attn", 3, 0, []):
        assert INT8 in [p for k, p in zip(bench.gene_kinds(a), a.precisions()) if k == "attn"]
        assert b == bench.switched_off(a, "attn") and b != a
    out = tmp_path / "switch.md"
    assert bench.main(["--space", str(space_path), "--table", str(table_path), "--n", "2",
                       "--out", str(out)]) == 0
    text = out.read_text()
    assert "| stem | 2 |" in text and "| attn | 2 |" in text and "| head | 2 |" in text
