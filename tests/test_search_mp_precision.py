"""The MILP over per-layer precision: exact linear costs (int8 units and quantize/dequantize
boundaries included) on hybrid-tiny, and optima equal to enumeration on a cut-down space."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from nas.arch import Architecture
from nas.costs import size_bytes
from nas.latency.calibration import Calibration
from nas.latency.space_units import latency_cost_rule, precision_keys, predict_latency
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol
from nas.precision import FP32, INT8
from nas.search.mp import MILPSearch
from nas.search.mp_model import Formulation
from nas.search.mp_objectives import CostObjective
from nas.spaces import load_space
from nas.spaces.ops import stage_layer_choices

MIXED = load_space("hybrid-tiny").with_precisions("fp32,int8")


def _table(space, seed: int = 0) -> LatencyTable:
    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=space.name, space_hash=space.hash())
    rng = np.random.default_rng(seed)
    table = LatencyTable(meta, {k: TableEntry(1.0, 0.1, float(rng.uniform(0.01, 1.0)), 10)
                                for k in precision_keys(space, (FP32, INT8))})
    # signed coefficients: the linearisation must be exact whatever the sign on a product
    table.set_calibration(Calibration(("lut_sum", "n_units", "n_quant", "params"),
                                      (1.1, -0.004, 0.03, 1e-7), 0.2, n_fit=20))
    return table


def test_linear_costs_equal_the_table_prediction_and_exact_size_on_mixed_subnets() -> None:
    f = Formulation(MIXED)
    a, lo, hi = f.structure()
    rule = latency_cost_rule(_table(MIXED), MIXED)
    search = MILPSearch(MIXED, costs={"latency_ms": rule})
    lat_vec = f.rule_vector(rule)
    size_vec = search._cost_vector("size_bytes")
    archs = [MIXED.sample(np.random.default_rng(i)) for i in range(60)]
    archs += [a_.at_precision(INT8) for a_ in archs[:10]]
    predicted = predict_latency(_table(MIXED), MIXED, archs)
    for arch, want in zip(archs, predicted):
        v = f.point(arch)
        row = a @ v
        assert np.all(row >= lo - 1e-9) and np.all(row <= hi + 1e-9)  # the point is feasible
        assert f.decode(v) == arch
        assert lat_vec @ v + rule.offset == pytest.approx(want, rel=1e-10)
        assert size_vec @ v == size_bytes(MIXED, arch)


def _micro():
    """hybrid-tiny cut to one resolution, one width per stage and one depth for the first:
    every architecture and policy enumerable (a few thousand)."""
    stages = (replace(MIXED.stages[0], widths=(8,), depths=(1,)),
              replace(MIXED.stages[1], widths=(16,)))
    return replace(MIXED, name="tiny-cut", resolutions=(12,), stages=stages)


def _all_archs(space) -> list[Architecture]:
    from nas.arch import Stage

    per_stage = []
    for spec in space.stages:
        choices = stage_layer_choices(spec)
        per_stage.append([Stage(width=spec.widths[0], layers=layers) for d in spec.depths
                          for layers in itertools.product(choices, repeat=d)])
    out = []
    for stages in itertools.product(*per_stage):
        arch = Architecture(resolution=space.resolutions[0], stages=tuple(stages))
        n = len(arch.precisions())
        out += [arch.with_precisions(list(p)) for p in itertools.product((FP32, INT8), repeat=n)]
    return out


def test_milp_optima_over_precision_equal_enumeration() -> None:
    space = _micro()
    rule = latency_cost_rule(_table(space, seed=3), space)
    archs = _all_archs(space)
    lat = np.array([rule.additive_value(space, a) for a in archs])  # = the prediction (above)
    size = np.array([size_bytes(space, a) for a in archs])
    search = MILPSearch(space, CostObjective("latency_ms"), costs={"latency_ms": rule})
    assert search.solve().objective == pytest.approx(lat.min(), rel=1e-9)
    for q in (0.3,):  # smallest size under a latency bound; fastest under a size bound
        bound = float(np.quantile(lat, q))
        sol = MILPSearch(space, CostObjective("size_bytes"), constraints={"latency_ms": bound},
                         costs={"latency_ms": rule}).solve()
        assert sol.objective == size[lat <= bound * (1 + 1e-9)].min()
        assert sol.metrics["latency_ms"] <= bound * (1 + 1e-9)
        s_bound = float(np.quantile(size, q))
        sol = MILPSearch(space, CostObjective("latency_ms"), constraints={"size_bytes": s_bound},
                         costs={"latency_ms": rule}).solve()
        assert sol.objective == pytest.approx(lat[size <= s_bound].min(), rel=1e-9)
    # the k best are distinct and in order: precision variants are other architectures
    top = MILPSearch(space, CostObjective("latency_ms"), costs={"latency_ms": rule}).top_k(5)
    assert [s.objective for s in top] == pytest.approx(np.sort(lat)[:5], rel=1e-9)
    assert len({s.arch.to_str() for s in top}) == 5
