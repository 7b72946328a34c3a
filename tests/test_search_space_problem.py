"""SpaceProblem: our spaces as a search problem over genomes.

Every vectorised metric equals the per-architecture function (nas.costs, the latency table's
prediction, the predictor on architectures); canonical genomes merge equivalent ones; the
achievable ranges and the joint feasibility answer equal exhaustive enumeration of hybrid-tiny.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import costs
from nas.errors import IncompatibleFileError, UserError
from nas.latency.calibration import Calibration
from nas.latency.space_units import predict_latency, space_keys
from nas.latency.table import LatencyTable, TableEntry, TableMeta
from nas.sample import draw_architectures
from nas.sample.fit import fit_predictor
from nas.sample.predictor import load_predictor_for
from nas.search.evolution import NSGA2
from nas.search.feasibility import InfeasibleError, check_feasibility, ensure_feasible
from nas.search.space_problem import SpaceProblem
from nas.spaces import cardinalities, decode, encode, load_space
from tests.test_fit_cli import write_synthetic_samples

TINY = load_space("hybrid-tiny")
CIFAR = load_space("hybrid-cifar")


def fake_table(space, path: Path, *, calibration: Calibration | None = None) -> LatencyTable:
    """Every unit key of ``space`` with a deterministic median (ms), optionally calibrated."""
    meta = TableMeta.for_this_machine(device="cpu", runtime="torch", threads=1, batch=1,
                                      dtype="float32", space_name=space.name,
                                      space_hash=space.hash(), protocol={})
    entries = {}
    for k in space_keys(space):
        ms = 0.01 + (sum(map(ord, k)) % 97) / 970.0
        entries[k] = TableEntry(ms, 0.0, ms, 10)
    table = LatencyTable(meta, entries)
    table.set_calibration(calibration)
    table.save(path)
    return LatencyTable.load(path, expected_space_hash=space.hash())


PER_KIND = Calibration(features=("lut_sum", "n_conv", "n_attn", "params"),
                       coef=(1.3, 0.02, -0.01, 1e-6), intercept=0.05, n_fit=20,
                       nonnegative=False)


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("predictor")
    write_synthetic_samples(root / "samples.csv", n=90)
    fit_predictor(root / "samples.csv", out=root / "ridge")
    return root / "ridge"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> LatencyTable:
    return fake_table(TINY, tmp_path_factory.mktemp("lut") / "lut.csv", calibration=PER_KIND)


def all_genomes(space) -> np.ndarray:
    """Every canonical genome of a small space (inactive slots zero), deduplicated."""
    card = cardinalities(space)
    grid = np.array(list(itertools.product(*(range(int(c)) for c in card))), dtype=np.int64)
    from nas.spaces import canonical

    return np.unique(canonical(space, grid), axis=0)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), space_name=st.sampled_from(["hybrid-tiny", "hybrid-cifar"]))
def test_cost_metrics_equal_nas_costs(seed, space_name):
    space = TINY if space_name == "hybrid-tiny" else CIFAR
    archs = draw_architectures(space, 12, seed=seed)
    problem = SpaceProblem(space, ["min:flops"])
    m = problem.metrics(np.stack([encode(space, a) for a in archs]))
    for i, arch in enumerate(archs):
        c = costs.costs(space, arch)
        assert m["macs"][i] == c.macs and m["flops"][i] == c.flops == costs.flops(space, arch)
        assert m["params"][i] == c.params and m["param_memory"][i] == c.param_memory_bytes
        assert m["memory"][i] == m["peak_memory"][i] == c.peak_memory_bytes
        assert problem.exact_metrics(arch) == pytest.approx(
            {k: m[k][i] for k in problem.exact_metrics(arch)}, rel=0, abs=0)


def test_table_latency_and_predicted_accuracy_equal_the_per_architecture_functions(
        table, predictor_dir):
    predictor = load_predictor_for(TINY, predictor_dir)
    problem = SpaceProblem(TINY, ["max:accuracy", "min:latency_ms"], predictor=predictor,
                           table=table)
    assert problem.latency.additive  # lut_sum, n_<kind> and params are sums over units
    archs = draw_architectures(TINY, 40, seed=1)
    m = problem.metrics(np.stack([encode(TINY, a) for a in archs]))
    np.testing.assert_allclose(m["latency_ms"], predict_latency(table, TINY, archs),
                               rtol=1e-12)
    np.testing.assert_allclose(m["val_acc"], predictor.predict(archs), rtol=1e-12)
    np.testing.assert_allclose(m["accuracy"], 100 * m["val_acc"], rtol=1e-15)
    exact = problem.exact_metrics(archs[3])
    assert exact["latency_ms"] == pytest.approx(m["latency_ms"][3], rel=1e-12)


def test_a_calibration_that_is_not_additive_is_evaluated_by_decoding(table, monkeypatch):
    import nas.latency.space_units as su

    def refuse(*args, **kwargs):
        raise IncompatibleFileError("calibration feature 'x' is not per-unit additive")

    monkeypatch.setattr(su, "latency_cost_rule", refuse)
    problem = SpaceProblem(TINY, ["min:latency_ms"], ["latency_ms<=1"], table=table)
    assert not problem.latency.additive
    archs = draw_architectures(TINY, 10, seed=2)
    m = problem.metrics(np.stack([encode(TINY, a) for a in archs]))
    np.testing.assert_allclose(m["latency_ms"], predict_latency(table, TINY, archs), rtol=1e-12)
    assert problem.achievable_range("latency_ms") is None  # unknown, not guessed
    with pytest.raises(UserError, match="sum over units"):
        problem.latency.additive_cost()


def test_canonical_merges_genomes_that_differ_only_in_inactive_slots():
    problem = SpaceProblem(TINY, ["min:flops"])
    rng = np.random.default_rng(0)
    card = problem.cardinalities
    genes = (rng.random((200, len(card))) * card).astype(np.int64)
    canon = problem.canonical(genes)
    for g, c in zip(genes, canon):
        assert decode(TINY, g) == decode(TINY, c)
        assert np.array_equal(encode(TINY, decode(TINY, g)), c)
    # a search never evaluates the same network twice
    result = NSGA2(problem, seed=0).run(300)
    ids = [decode(TINY, g).arch_id() for g in result.genes]
    assert len(set(ids)) == len(ids) == 300


def test_achievable_ranges_equal_enumeration(predictor_dir, table):
    predictor = load_predictor_for(TINY, predictor_dir)
    problem = SpaceProblem(TINY, ["max:accuracy"], predictor=predictor, table=table)
    genes = all_genomes(TINY)
    m = problem.metrics(genes)
    for name in ("macs", "flops", "params", "param_memory", "memory", "latency_ms"):
        lo, hi = problem.achievable_range(name)
        assert lo == pytest.approx(m[name].min(), rel=1e-9), name
        assert hi == pytest.approx(m[name].max(), rel=1e-9), name
    lo, hi = problem.achievable_range("accuracy")
    assert (lo, hi) == pytest.approx((m["accuracy"].min(), m["accuracy"].max()), rel=1e-9)


@settings(max_examples=12, deadline=None)
@given(q=st.tuples(*[st.floats(0.0, 0.3)] * 3), acc=st.floats(0.0, 1.0))
def test_joint_feasibility_equals_enumeration(q, acc, predictor_dir, table):
    """Bounds near the small end of each metric, so both answers occur."""
    predictor = load_predictor_for(TINY, predictor_dir)
    genes = all_genomes(TINY)
    probe = SpaceProblem(TINY, ["max:accuracy"], predictor=predictor, table=table)
    m = probe.metrics(genes)
    bounds = {name: float(np.quantile(m[name], f)) for name, f in
              zip(("flops", "memory", "latency_ms"), q)}
    acc_bound = float(np.quantile(m["accuracy"], acc))
    constraints = [f"{k}<={v!r}" for k, v in bounds.items()] + [f"accuracy>={acc_bound!r}"]
    problem = SpaceProblem(TINY, ["max:accuracy"], constraints, predictor=predictor, table=table)
    ok = np.ones(len(genes), dtype=bool)
    for c in problem.constraints:
        ok &= c.satisfied(m[c.metric])
    assert problem.jointly_feasible() == bool(ok.any())
    assert check_feasibility(problem).feasible == bool(ok.any())


def test_infeasible_constraints_are_reported_with_the_smallest_achievable_values():
    problem = SpaceProblem(TINY, ["min:flops"], ["flops<=10K", "params<=1M", "memory<=1KB"])
    with pytest.raises(InfeasibleError) as info:
        ensure_feasible(problem)
    text = str(info.value)
    lo_flops = problem.achievable_range("flops")[0]
    lo_mem = problem.achievable_range("memory")[0]
    assert f"smallest achievable flops = {lo_flops:.6g} (INFEASIBLE)" in text
    assert f"smallest achievable memory = {lo_mem:.6g} (INFEASIBLE)" in text
    assert "params<=1000000: smallest achievable params" in text and "(ok)" in text


def test_metrics_without_a_source_are_refused_with_what_is_needed():
    with pytest.raises(UserError, match="--table"):
        SpaceProblem(TINY, ["min:latency_ms"])
    with pytest.raises(UserError, match="--predictor"):
        SpaceProblem(TINY, ["max:accuracy"])
    with pytest.raises(UserError, match="unknown metric"):
        SpaceProblem(TINY, ["min:bogus"])
