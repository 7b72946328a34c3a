"""Units of a space for latency tables: key enumeration, unit modules, networks, prediction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks.kinds.attn import AttnUnit
from nas.blocks.kinds.mixer import MixerUnit
from nas.costs import costs, unit_macs
from nas.errors import IncompatibleFileError
from nas.latency.calibration import Calibration
from nas.latency.space_profile import (
    calibration_archs,
    distinct_archs,
    fit_space_calibration,
    validation_archs,
)
from nas.latency.space_units import (
    arch_features,
    build_network,
    build_unit,
    latency_cost_rule,
    predict_latency,
    space_keys,
    space_units,
    unit_builders,
    witness_archs,
)
from nas.latency.table import LatencyTable, MissingKeysError, TableEntry, TableMeta
from nas.latency.timing import TimingProtocol
from nas.spaces import encode, load_space
from nas.spaces.schema import conv_out
from nas.spaces.tables import GenomeTables
from nas.supernet.model import Supernet
from nas.units import HeadUnit, StemUnit, arch_keys
from tests.conftest import SHIPPED, randomise_bn

TINY = load_space("hybrid-tiny")
TINY_UNITS = space_units(TINY)


@pytest.mark.parametrize("name", SHIPPED)
def test_enumerated_keys_contain_every_key_of_200_sampled_subnets(name: str) -> None:
    space = load_space(name)
    keys = set(space_keys(space))
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        missing = set(arch_keys(space, arch)) - keys
        assert not missing, f"{arch}: {sorted(missing)[:3]}"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_enumerated_key_is_reachable(name: str) -> None:
    space = load_space(name)
    witnesses = witness_archs(space)
    assert list(witnesses) == space_keys(space)
    for key, arch in witnesses.items():
        space.validate(arch)
        assert key in arch_keys(space, arch)


def test_every_unit_kind_and_shape_is_enumerated() -> None:
    kinds = {key.split(":")[0] for key in TINY_UNITS}
    assert kinds == {"stem", "conv", "trans", "attn", "mixer", "head"}
    assert len(TINY_UNITS) == len(set(TINY_UNITS))
    # one stem per resolution, one head per (resolution, last width)
    assert sum(isinstance(u, StemUnit) for u in TINY_UNITS.values()) == len(TINY.resolutions)
    n_heads = len(TINY.resolutions) * len(TINY.stages[-1].widths)
    assert sum(isinstance(u, HeadUnit) for u in TINY_UNITS.values()) == n_heads


def _expected_out_shape(unit, batch: int) -> tuple[int, ...]:
    if isinstance(unit, HeadUnit):
        return (batch, unit.num_classes)
    if isinstance(unit, AttnUnit | MixerUnit):
        return (batch, unit.c, unit.size, unit.size)
    o = conv_out(unit.size, unit.stride)
    return (batch, unit.c_out, o, o)


@pytest.mark.parametrize("key", sorted(TINY_UNITS))
def test_unit_module_shape_and_macs(key: str) -> None:
    unit = TINY_UNITS[key]
    module, x = build_unit(unit, batch=1, rng=np.random.default_rng(0))
    assert not module.training
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = module(x)
    assert tuple(y.shape) == _expected_out_shape(unit, 1)
    assert torch.isfinite(y).all()
    assert counter.get_total_flops() == 2 * unit_macs(unit)


@settings(max_examples=15, deadline=None)
@given(index=st.integers(0, 10_000), batch=st.integers(1, 3))
def test_cifar_unit_modules_any_batch(index: int, batch: int) -> None:
    space = load_space("hybrid-cifar")
    units = list(space_units(space).values())
    unit = units[index % len(units)]
    module, x = build_unit(unit, batch=batch, rng=np.random.default_rng(index))
    assert x.shape[0] == batch
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = module(x)
    assert tuple(y.shape) == _expected_out_shape(unit, batch)
    assert counter.get_total_flops() == 2 * batch * unit_macs(unit)


def test_builders_are_seeded_and_independent_of_order() -> None:
    a, b = unit_builders(TINY, seed=3), unit_builders(TINY, seed=3)
    keys = list(a)
    m1, x1 = a[keys[5]]()
    for key in reversed(keys[:5]):
        b[key]()
    m2, x2 = b[keys[5]]()
    assert torch.equal(x1, x2)
    for p, q in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(p, q)
    m3, _ = unit_builders(TINY, seed=4)[keys[5]]()
    assert any(not torch.equal(p, q) for p, q in zip(m1.parameters(), m3.parameters()))


@pytest.mark.parametrize("seed", range(3))
def test_network_is_the_extracted_model(seed: int) -> None:
    """Same modules, same shapes: with the supernet's weights loaded it computes the same."""
    arch = TINY.sample(np.random.default_rng(seed))
    net, x = build_network(TINY, arch, batch=2, rng=np.random.default_rng(seed))
    extracted = randomise_bn(Supernet(TINY), seed).extract(arch)
    assert [type(m) for m in net.modules()] == [type(m) for m in extracted.modules()]
    net.load_state_dict(extracted.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(net(x), extracted(x))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x[:1])
    assert counter.get_total_flops() == costs(TINY, arch).flops


# ----- prediction --------------------------------------------------------------------------


def _table(space, calibration: Calibration | None = None, drop: int = 0) -> LatencyTable:
    meta = TableMeta.for_protocol(
        TimingProtocol(), batch=1, dtype="float32", space_name=space.name, space_hash=space.hash()
    )
    rng = np.random.default_rng(0)
    keys = space_keys(space)[drop:]
    entries = {k: TableEntry(1.0, 0.1, float(rng.uniform(0.01, 1.0)), 10) for k in keys}
    table = LatencyTable(meta, entries)
    table.set_calibration(calibration)
    return table


def test_predict_is_sum_of_medians_then_calibration() -> None:
    archs = [TINY.sample(np.random.default_rng(i)) for i in range(10)]
    table = _table(TINY)
    sums = np.array([table.lookup(arch_keys(TINY, a)).sum() for a in archs])
    np.testing.assert_allclose(predict_latency(table, TINY, archs), sums)
    cal = Calibration(("lut_sum", "n_units", "n_attn"), (1.2, 0.01, 0.05), 0.3, n_fit=20)
    table.set_calibration(cal)
    n_units = np.array([len(arch_keys(TINY, a)) for a in archs])
    n_attn = np.array([sum(k.startswith("attn:") for k in arch_keys(TINY, a)) for a in archs])
    expected = 1.2 * sums + 0.01 * n_units + 0.05 * n_attn + 0.3
    np.testing.assert_allclose(predict_latency(table, TINY, archs), expected)


def test_genome_tables_cost_rule_equals_predict() -> None:
    cal = Calibration(
        ("lut_sum", "n_conv", "n_mixer", "params"), (1.1, -0.02, 0.07, 3e-7), -0.05, n_fit=20
    )
    table = _table(TINY, cal)
    archs = [TINY.sample(np.random.default_rng(i)) for i in range(50)]
    genes = np.stack([encode(TINY, a) for a in archs])
    tables = GenomeTables(TINY, rules={"latency_ms": latency_cost_rule(table, TINY)})
    np.testing.assert_allclose(
        tables.costs(genes)["latency_ms"], predict_latency(table, TINY, archs), rtol=1e-12
    )


def test_missing_keys_are_named() -> None:
    table = _table(TINY, drop=3)
    absent = space_keys(TINY)[:3]
    witnesses = witness_archs(TINY)
    archs = [witnesses[k] for k in absent]
    with pytest.raises(MissingKeysError) as info:
        predict_latency(table, TINY, archs)
    assert set(absent) <= set(info.value.keys)
    assert absent[0] in str(info.value)
    with pytest.raises(MissingKeysError):
        latency_cost_rule(table, TINY)


def test_table_of_another_space_is_refused(tmp_path) -> None:
    table = _table(TINY)
    other = replace(TINY, name="tiny-variant", resolutions=(12,))
    with pytest.raises(IncompatibleFileError, match="hash"):
        predict_latency(table, other, [other.sample(np.random.default_rng(0))])
    path = table.save(tmp_path / "t.csv")
    with pytest.raises(IncompatibleFileError, match=other.hash()):
        LatencyTable.load(path, expected_space_hash=other.hash())


# ----- network sets and calibration ------------------------------------------------------------


def test_calibration_and_validation_networks_never_overlap() -> None:
    cal = calibration_archs(TINY, 20, seed=0)
    val = validation_archs(TINY, 200, seed=0, exclude=cal)
    ids = [a.arch_id() for a in val]
    assert len(set(ids)) == 200
    assert not set(ids) & {a.arch_id() for a in cal}
    assert [a.arch_id() for a in calibration_archs(TINY, 20, seed=0)] == [
        a.arch_id() for a in cal
    ]


def test_calibration_networks_span_the_space_half_stratified_half_uniform() -> None:
    from nas.costs import flops
    from nas.latency.space_profile import CALIBRATION_STREAM, distinct_archs

    for k in (8, 20, 21):
        cal = calibration_archs(TINY, k, seed=3)
        assert len({a.arch_id() for a in cal}) == k
        # the largest and the smallest subnets lead the stratified half
        assert {cal[0].arch_id(), cal[1].arch_id()} == {
            TINY.largest().arch_id(), TINY.smallest().arch_id()}
        half = [flops(TINY, a) for a in cal[: k // 2]]
        assert min(half) == flops(TINY, TINY.smallest())
        assert max(half) == flops(TINY, TINY.largest())
    # three networks, or a space with int8 genes: the uniform set alone, as before
    uniform = distinct_archs(TINY, 3, np.random.default_rng([0, CALIBRATION_STREAM]))
    assert calibration_archs(TINY, 3, seed=0) == uniform
    mixed = TINY.with_precisions("fp32,int8")
    assert calibration_archs(mixed, 20, seed=0) == distinct_archs(
        mixed, 20, np.random.default_rng([0, CALIBRATION_STREAM]))


def test_distinct_archs_fails_clearly_when_the_space_is_too_small() -> None:
    small = replace(
        TINY,
        resolutions=(12,),
        stages=tuple(replace(s, widths=s.widths[:1], depths=(1,)) for s in TINY.stages),
    )
    with pytest.raises(Exception, match="distinct subnets"):
        distinct_archs(small, 10_000, np.random.default_rng(0))


def _synthetic(per_kind: dict[str, float], scale: float, intercept: float,
               per_param: float = 0.0, k: int = 20):
    from nas.latency.space_profile import CALIBRATION_STREAM, distinct_archs

    table = _table(TINY)
    # uniform subnets (the choice logic under test does not depend on how they were drawn; the
    # falling-scale device below has a positive signed fit only over their narrower range)
    archs = distinct_archs(TINY, k, np.random.default_rng([0, CALIBRATION_STREAM]))
    keys = [arch_keys(TINY, a) for a in archs]
    extra = arch_features(TINY, archs)
    y = scale * table.lut_sums(keys) + intercept + per_param * extra["params"]
    for kind, cost in per_kind.items():
        y += cost * np.array([sum(key.startswith(kind + ":") for key in ks) for ks in keys])
    return table, keys, y, extra


def test_calibration_choice_follows_the_data() -> None:
    table, keys, y, extra = _synthetic({"attn": 0.08, "mixer": 0.03, "conv": -0.01}, 1.15, 0.2)
    cal, record = fit_space_calibration(table, keys, y, extra)
    assert record["chosen"] == "per-kind"
    coef = dict(zip(cal.features, cal.coef))
    assert coef["lut_sum"] == pytest.approx(1.15, rel=1e-6)
    assert coef["n_attn"] == pytest.approx(0.08, rel=1e-5)
    assert coef["n_conv"] == pytest.approx(-0.01, rel=1e-5)  # signed overheads are allowed
    assert cal.intercept == pytest.approx(0.2, rel=1e-5)

    noise = 1 + 0.005 * np.random.default_rng(1).standard_normal(20)
    table, keys, y, extra = _synthetic({}, 1.05, -0.05, per_param=2e-5)
    cal, record = fit_space_calibration(table, keys, y * noise, extra)
    assert record["chosen"] == "weights"
    assert dict(zip(cal.features, cal.coef))["params"] == pytest.approx(2e-5, rel=0.1)

    table, keys, y, extra = _synthetic({}, 1.3, 0.0)
    cal, record = fit_space_calibration(table, keys, y * noise, extra)
    assert record["chosen"] == "scale"
    assert dict(zip(cal.features, cal.coef))["lut_sum"] == pytest.approx(1.3, rel=0.02)


def _mixed_synthetic(switch_scale: dict[str, float], scale: float = 1.1, k: int = 30):
    """Networks of hybrid-tiny at fp32 and int8 whose time is the table's, except that switching
    a unit of kind K to int8 costs ``1 + switch_scale[K]`` times what the table says."""
    from nas.latency.space_units import precision_keys
    from nas.precision import FP32, INT8

    mixed = TINY.with_precisions("fp32,int8")
    meta = TableMeta.for_protocol(TimingProtocol(), batch=1, dtype="float32",
                                  space_name=mixed.name, space_hash=mixed.hash())
    rng = np.random.default_rng(0)
    table = LatencyTable(meta, {key: TableEntry(1.0, 0.1, float(rng.uniform(0.01, 1.0)), 10)
                                for key in precision_keys(mixed, (FP32, INT8))})
    archs = calibration_archs(mixed, k, seed=0)
    keys = [arch_keys(mixed, a) for a in archs]
    features = table.calibration_features(keys)
    y = scale * features["lut_sum"] + 0.05
    for kind, extra in switch_scale.items():
        y = y + scale * extra * features[f"int8_excess_{kind}"]
    noise = 1 + 0.002 * np.random.default_rng(1).standard_normal(k)
    return mixed, table, archs, keys, y * noise


def test_calibration_scales_each_kinds_int8_switch_when_the_data_say_so() -> None:
    mixed, table, archs, keys, y = _mixed_synthetic({"mixer": 0.8, "conv": -0.4})
    features = table.calibration_features(keys)
    assert {"int8_excess_conv", "int8_excess_mixer"} <= set(features)
    assert np.ptp(features["int8_excess_mixer"]) > 0
    cal, record = fit_space_calibration(table, keys, y, arch_features(mixed, archs))
    assert record["chosen"].endswith("+int8")
    coef = dict(zip(cal.features, cal.coef))
    assert coef["int8_excess_mixer"] / coef["lut_sum"] == pytest.approx(0.8, abs=0.1)
    assert coef["int8_excess_conv"] / coef["lut_sum"] == pytest.approx(-0.4, abs=0.1)
    table.set_calibration(cal)
    fresh = [mixed.sample(np.random.default_rng(100 + i)) for i in range(30)]
    truth = _mixed_truth(table, mixed, fresh, {"mixer": 0.8, "conv": -0.4})
    np.testing.assert_allclose(predict_latency(table, mixed, fresh), truth, rtol=0.02)

    # a table that prices every switch right keeps a model without the int8 terms
    mixed, table, archs, keys, y = _mixed_synthetic({})
    _, record = fit_space_calibration(table, keys, y, arch_features(mixed, archs))
    assert "+int8" not in record["chosen"]


def _mixed_truth(table, space, archs, switch_scale, scale: float = 1.1) -> np.ndarray:
    features = table.calibration_features([arch_keys(space, a) for a in archs])
    truth = scale * features["lut_sum"] + 0.05
    for kind, extra in switch_scale.items():
        truth = truth + scale * extra * features.get(f"int8_excess_{kind}", 0.0)
    return truth


def test_an_fp32_table_has_no_int8_features_or_candidates() -> None:
    table, keys, y, extra = _synthetic({"attn": 0.08}, 1.15, 0.2)
    assert not any(name.startswith("int8_") for name in table.calibration_features(keys))
    _, record = fit_space_calibration(table, keys, y, extra)
    assert not any("+int8" in name for name in record["loo_rms_relative_error"])


def test_a_calibration_that_falls_as_the_units_get_slower_is_never_chosen() -> None:
    """Networks whose time follows their unit counts and falls with the unit sum (seen on a
    launch-bound GPU at batch 64): the signed per-kind fit is exact there but has a negative
    scale; the choice must keep a positive one."""
    table, keys, y, extra = _synthetic({"attn": 0.5, "mixer": 0.35, "conv": 0.34}, -0.2, 2.0)
    assert y.min() > 0
    cal, record = fit_space_calibration(table, keys, y, extra)
    assert "per-kind" in record["rejected_nonpositive_scale"]
    assert record["chosen"] not in record["rejected_nonpositive_scale"]
    assert dict(zip(cal.features, cal.coef))["lut_sum"] > 0


def test_signed_calibration_round_trips_with_its_model_name() -> None:
    x = np.linspace(1.0, 2.0, 10)
    cal = Calibration.fit({"lut_sum": x}, 1.2 * x - 0.1, nonnegative=False)
    assert cal.intercept == pytest.approx(-0.1) and not cal.nonnegative
    data = cal.to_dict()
    assert data["model"] == "linear"
    assert Calibration.from_dict(data) == cal
    assert Calibration.from_dict(Calibration.fit({"lut_sum": x}, 1.2 * x).to_dict()).nonnegative


# ----- the thread clock ------------------------------------------------------------------------


def test_thread_clock_leaves_out_time_the_thread_does_not_run() -> None:
    import time

    from nas.latency.timing import TimingItem, measure_many

    def sleepy(_x):
        time.sleep(0.002)  # 2 ms of wall time, almost no CPU time

    item = [TimingItem("sleep", sleepy, torch.zeros(1))]
    settings = dict(warmup=1, repeats=3, rounds=2, min_time_per_round=0, min_time_per_read=0)
    wall = measure_many(item, TimingProtocol(clock="wall", **settings))["sleep"].latency_ms
    cpu = measure_many(item, TimingProtocol(clock="thread", **settings))["sleep"].latency_ms
    assert wall >= 2.0 and cpu < 0.5


def test_clock_choice() -> None:
    from nas.errors import UserError
    from nas.latency.space_profile import protocol_for

    assert protocol_for("cpu").clock == "thread"
    assert protocol_for("onnxruntime").clock == "thread"
    assert protocol_for("cpu", threads=2).clock == "wall"
    assert protocol_for("cpu", clock="wall").clock == "wall"
    with pytest.raises(UserError, match="1 thread"):
        TimingProtocol(clock="thread", threads=2)
    with pytest.raises(UserError, match="clock"):
        TimingProtocol(clock="sundial")
    assert "thread_time" in TimingProtocol(clock="thread").describe()["timer"]


def test_calibration_never_extrapolates_below_zero_at_the_extremes() -> None:
    from nas.latency.space_profile import CALIBRATION_STREAM, calibrate_table, distinct_archs

    table = _table(TINY)
    # uniform subnets, none as small as the smallest (the guard is what keeps that one positive;
    # the default calibration set contains the smallest itself)
    archs = distinct_archs(TINY, 20, np.random.default_rng([0, CALIBRATION_STREAM]))
    smallest = TINY.smallest()
    keys = [arch_keys(TINY, a) for a in archs]
    n_min, l_min = len(arch_keys(TINY, smallest)), table.lut_sums([arch_keys(TINY, smallest)])[0]
    n = np.array([len(k) for k in keys])
    assert n.min() > n_min  # every calibration subnet has more units than the smallest one
    # exactly linear in (n_units, lut_sum), positive on the calibration set, -0.1 ms at the smallest
    measured = 0.2 * (n - n_min) - 0.1 + 0.01 * (table.lut_sums(keys) - l_min)
    assert measured.min() > 0
    calibrate_table(table, TINY, archs, measured, seed=0)
    record = table.meta.notes["calibration_set"]
    assert "per-layer" in record["rejected_nonpositive"]
    assert record["chosen"] not in record["rejected_nonpositive"]
    assert predict_latency(table, TINY, [smallest, TINY.largest()]).min() > 0


def test_measured_call_overhead_is_taken_out_of_every_unit_not_fitted() -> None:
    """A network pays the runtime's call overhead once, each unit timed alone once: with the
    overhead measured, the net- candidates recover the true scale from sum(unit - o) + o with
    one coefficient (a fitted per-layer term needs two), stored in lut_sum / n_units."""
    overhead = 0.02
    table, keys, _, extra = _synthetic({}, 1.1, 0.0)
    n_units = np.array([len(k) for k in keys], dtype=float)
    # the table's entries hold compute + overhead; the network pays compute + one overhead
    lut_sum = table.lut_sums(keys)
    y = 1.1 * (lut_sum - overhead * n_units) + overhead
    cal, record = fit_space_calibration(table, keys, y, extra, call_overhead_ms=overhead)
    assert record["call_overhead_ms"] == overhead and record["chosen"] == "net-scale"
    assert "net-per-layer" not in record["loo_rms_relative_error"]
    assert set(cal.features) >= {"lut_sum", "n_units"}
    coef = dict(zip(cal.features, cal.coef))
    assert coef["lut_sum"] == pytest.approx(1.1, rel=1e-6)
    assert coef["n_units"] == pytest.approx(-1.1 * overhead, rel=1e-5)
    features = {**table.calibration_features(keys), **extra}
    np.testing.assert_allclose(cal.predict(features), y, rtol=1e-6)


@pytest.mark.parametrize("precisions", ["fp32", "fp32,int8"])
def test_profile_times_more_calibration_subnets_for_an_int8_table(precisions, monkeypatch, tmp_path):
    """Unless told, an int8 table is calibrated on more whole subnets than an fp32 one: its
    switch scales double the free parameters (int8_calibration.md); an explicit K is kept."""
    import nas.latency.space_profile as sp

    seen: list[int] = []
    monkeypatch.setattr(sp, "_profile_here", lambda space, out, protocol, batch, calibrate, *rest:
                        (seen.append(calibrate), (None, 0, 0, 0, False))[1])
    runtime = TimingProtocol(runtime="onnxruntime")
    sp.profile_space(load_space("hybrid-tiny"), tmp_path / "t.csv", runtime, precisions=precisions)
    sp.profile_space(load_space("hybrid-tiny"), tmp_path / "t.csv", runtime, precisions=precisions,
                     calibrate=7)
    fp32_default = sp.default_calibration_k(("fp32",))
    assert seen[1] == 7
    assert (seen[0] > fp32_default) if "int8" in precisions else (seen[0] == fp32_default)
