"""Conformance of every registered block kind (as timm tests every registered model).

Each kind is checked in a small space of its own, built from the kind's ``example`` spec: a first
stage that strides and widens (so a transition, or the block's own stride, runs), then a hybrid
stage with conv whose input width may equal its own (no transition). Checked for sampled subnets:
exact FLOPs against ``FlopCounterMode``, parameters against ``numel``, peak memory against the
dispatch-level storage trace, supernet forward against the extracted model, string / JSON / genome
/ YAML round trips, latency-table keys (enumerated, reachable, unit modules with the unit's own
costs), the supernet parameter count without building it, the zero-init rule, progressive
shrinking's restriction, and the DeepMAD score against the MILP's linear form. A kind added to
:mod:`nas.blocks.kinds` is covered with no edit here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from nas.arch import Architecture
from nas.blocks.registry import block_kind, kind_names, parse_layer
from nas.budget import supernet_params
from nas.costs import costs
from nas.errors import SpaceError
from nas.latency.space_units import build_unit, space_keys, witness_archs
from nas.memory_trace import measure_peak_memory
from nas.search.mp_model import Formulation
from nas.search.mp_objectives import DeepMADObjective, deepmad_score
from nas.spaces import decode, encode, space_from_dict
from nas.spaces.ops import stage_layer_choices
from nas.supernet import Supernet
from nas.train.init import zero_init_residual_branches
from nas.train.rundir import space_to_dict
from nas.train.schedules import restricted_space
from nas.units import arch_keys, arch_units
from tests.conftest import randomise_bn

KINDS = kind_names()
N_SAMPLES = 6


def kind_space(kind: str):
    example = block_kind(kind).example
    hybrid = {kind: example} if kind == "conv" else {"conv": {"kernels": [3], "expands": [2]},
                                                    kind: example}
    data = {
        "name": f"conformance-{kind}",
        "in_channels": 3,
        "num_classes": 5,
        "resolutions": [10, 12],
        "stem": {"width": 8},
        "stages": [
            {"widths": [8, 12], "depths": [1, 2], "stride": 2, "blocks": {kind: example}},
            {"widths": [12, 16], "depths": [1, 2], "stride": 1, "blocks": hybrid, "act": "hswish"},
        ],
        "head": {"width": 16},
    }
    return space_from_dict(data, where=f"<{kind}>")


@pytest.fixture(scope="module", params=KINDS)
def case(request):
    kind = request.param
    space = kind_space(kind)
    torch.manual_seed(0)
    net = randomise_bn(Supernet(space)).eval()
    with torch.no_grad():  # non-trivial affine norms everywhere, so equivalence tests can fail
        for name, p in net.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.add_(torch.rand(p.shape) - 0.5)
    rng = np.random.default_rng(0)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(N_SAMPLES)]
    return kind, space, net, archs


def test_kind_appears_in_its_space(case):
    kind, _space, _, archs = case
    assert any(layer.kind == kind for a in archs for s in a.stages for layer in s.layers)


@torch.no_grad()
def test_exact_costs_against_torch(case):
    _, space, net, archs = case
    for arch in archs:
        model = net.extract(arch)
        x = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
        with FlopCounterMode(display=False) as counter:
            model(x)
        c = costs(space, arch)
        assert counter.get_total_flops() == c.flops, arch
        assert sum(p.numel() for p in model.parameters()) == c.params, arch
        assert measure_peak_memory(model, x) == c.peak_memory_bytes, arch


@torch.no_grad()
def test_extracted_model_is_made_of_plain_torch_layers(case):
    _, _space, net, archs = case
    for m in net.extract(archs[0]).modules():
        if not list(m.children()):
            assert type(m).__module__.startswith("torch.nn.modules."), type(m)


@torch.no_grad()
def test_supernet_forward_equals_extracted_model(case):
    _, space, net, archs = case
    for arch in archs:
        x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution)
        assert torch.equal(net(x, arch), net.extract(arch)(x)), arch  # max abs difference 0


def test_forward_and_backward_train(case):
    _, space, _, archs = case
    net = Supernet(space).train()
    arch = archs[0]
    out = net(torch.randn(3, space.in_channels, arch.resolution, arch.resolution), arch)
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_round_trips(case):
    _kind, space, _, archs = case
    for arch in archs:
        assert Architecture.from_str(arch.to_str()) == arch
        assert Architecture.from_json(arch.to_json()) == arch
        assert decode(space, encode(space, arch)) == arch
    for layer in stage_layer_choices(space.stages[0]):
        assert parse_layer(layer.to_str()) == layer
    again = space_from_dict(yaml.safe_load(yaml.safe_dump(space_to_dict(space))), where="again")
    assert again.hash() == space.hash() and again.stages == space.stages


def test_layer_string_errors_name_the_field(case):
    kind, space, _, _ = case
    layer = stage_layer_choices(space.stages[0])[0]
    with pytest.raises(SpaceError, match="unknown field 'q7'"):
        parse_layer(layer.to_str() + "_q7")
    with pytest.raises(SpaceError, match="missing option"):
        Architecture.from_dict({"resolution": 10, "stages": [
            {"width": 8, "layers": [{"kind": kind}]}]})


def test_yaml_errors_name_the_field(case):
    kind, _, _, _ = case
    data = yaml.safe_load(yaml.safe_dump(space_to_dict(kind_space(kind))))
    data["stages"][0]["blocks"][kind]["colour"] = "red"
    with pytest.raises(SpaceError, match=rf"stages\[0\]\.blocks\.{kind}: unknown field"):
        space_from_dict(data, where="bad")
    data["stages"][0]["blocks"][kind].pop("colour")
    first_choice = next(f.name for f in dataclasses.fields(block_kind(kind).spec)
                        if "choices" in f.metadata)
    data["stages"][0]["blocks"][kind][first_choice] = []
    with pytest.raises(SpaceError, match=rf"blocks\.{kind}\.{first_choice}: empty choice list"):
        space_from_dict(data, where="bad")


def test_latency_keys_are_enumerated_reachable_and_build(case):
    kind, space, _, archs = case
    keys = space_keys(space)
    assert any(k.startswith(f"{kind}:") for k in keys)
    for arch in archs:
        assert set(arch_keys(space, arch)) <= set(keys)
    witnesses = witness_archs(space)
    assert list(witnesses) == keys
    units = {u.key: u for a in witnesses.values() for u in arch_units(space, a)}
    for key in keys:
        assert key in arch_keys(space, witnesses[key])
        unit = units[key]
        if unit.kind != kind:
            continue
        module, x = build_unit(unit, batch=1, rng=np.random.default_rng(0))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(x)
        assert counter.get_total_flops() == 2 * unit.macs(), key
        assert sum(p.numel() for p in module.parameters()) == unit.params(), key


def test_supernet_parameters_counted_without_building(case):
    _, space, net, _ = case
    assert supernet_params(space) == sum(p.numel() for p in net.parameters())


@torch.no_grad()
def test_zero_init_makes_residual_slots_the_identity(case):
    _kind, space, _, _ = case
    net = Supernet(space).eval()
    assert zero_init_residual_branches(net) > 0
    slot = net.stages[0][1]  # a later slot of the first stage: residual, no transition
    x = torch.randn(2, 12, 5, 5)
    for layer in stage_layer_choices(space.stages[0]):
        assert torch.allclose(slot(x, layer, 12), x), layer


def test_progressive_restriction_pins_hidden_sizes(case):
    kind, space, _, _ = case
    spec = space.stages[0].block(kind)
    pinned = restricted_space(space, 1).stages[0].block(kind)
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        if f.metadata.get("hidden_size"):
            assert getattr(pinned, f.name) == (max(value),)
        else:
            assert getattr(pinned, f.name) == value


def test_deepmad_score_equals_the_milp_linear_form(case):
    _, space, _, archs = case
    formulation = Formulation(space)
    vector, constant = DeepMADObjective().vector(formulation)
    for arch in archs:
        point = formulation.point(arch)
        assert point @ vector + constant == pytest.approx(deepmad_score(space, arch), rel=1e-9)
