"""Supernet forward vs extracted model, exact costs against torch's own counters."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import costs
from nas.blocks.kinds.mixer import mix_tokens
from nas.errors import SpaceError
from nas.memory_trace import measure_peak_memory
from nas.spaces import load_space
from nas.supernet import Supernet
from tests.conftest import randomise_bn

SAMPLES = {"hybrid-tiny": 25, "hybrid-cifar": 12, "ofa-mbv3": 3, "hybrid-metaformer": 4}


@pytest.fixture(scope="module", params=list(SAMPLES))
def case(request):
    torch.manual_seed(0)
    space = load_space(request.param)
    net = randomise_bn(Supernet(space)).eval()
    rng = np.random.default_rng(0)
    archs = [space.largest(), space.smallest()]
    archs += [space.sample(rng) for _ in range(SAMPLES[request.param])]
    return space, net, archs


@torch.no_grad()
def test_extract_equals_supernet_forward(case):
    space, net, archs = case
    for arch in archs:
        x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution)
        model = net.extract(arch)
        assert (net(x, arch) - model(x)).abs().max().item() <= 1e-5


@torch.no_grad()
def test_extracted_model_is_static_and_standalone(case):
    space, net, archs = case
    model = net.extract(archs[0])
    for m in model.modules():  # plain torch layers only (any kind's, not a hand-kept list)
        if not list(m.children()):
            assert type(m).__module__.startswith("torch.nn.modules."), type(m)
    # it owns its weights: changing the supernet afterwards does not change it
    x = torch.randn(1, space.in_channels, archs[0].resolution, archs[0].resolution)
    before = model(x)
    for p in net.parameters():
        p.add_(1.0)
    assert torch.equal(model(x), before)
    for p in net.parameters():
        p.sub_(1.0)


@torch.no_grad()
def test_costs_are_exact(case):
    space, net, archs = case
    for arch in archs:
        model = net.extract(arch)
        x = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
        with FlopCounterMode(display=False) as counter:
            model(x)
        c = costs.costs(space, arch)
        assert counter.get_total_flops() == c.flops
        assert sum(p.numel() for p in model.parameters()) == c.params
        if space.name != "ofa-mbv3" or arch == archs[-1]:
            assert measure_peak_memory(model, x) == c.peak_memory_bytes


def test_forward_has_no_hidden_state_between_architectures():
    space = load_space("hybrid-tiny")
    net = randomise_bn(Supernet(space)).eval()
    rng = np.random.default_rng(5)
    a, b = space.sample(rng), space.sample(rng)
    xa = torch.randn(2, 3, a.resolution, a.resolution)
    xb = torch.randn(2, 3, b.resolution, b.resolution)
    with torch.no_grad():
        ya, yb = net(xa, a), net(xb, b)
        results = {}

        def run(key, x, arch):
            for _ in range(5):
                results[key] = net(x, arch)

        threads = [
            threading.Thread(target=run, args=("a", xa, a)),
            threading.Thread(target=run, args=("b", xb, b)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert torch.equal(results["a"], ya) and torch.equal(results["b"], yb)


def test_wrong_input_is_refused_clearly():
    space = load_space("hybrid-tiny")
    net = Supernet(space)
    arch = space.smallest()
    with pytest.raises(SpaceError, match="resolution"):
        net(torch.randn(1, 3, 20, 20), arch)
    with pytest.raises(SpaceError, match="expected"):
        net(torch.randn(1, 1, arch.resolution, arch.resolution), arch)


@pytest.mark.parametrize(
    "arch_str",
    [
        "r12 | w12: ir_k5_e2 ir_k3_e1 | w24: ir_k3_e3_se",  # MBConv with and without expand, SE
        "r12 | w12: ir_k3_e1 | w24: at_h2_m2 at_h1_m2",  # attention after a transition
        "r16 | w8: ir_k3_e2 | w16: mx_t2_c2 mx_t1_c2",  # mixer, padded windows at 12 -> 3x3
        "r12 | w8: ir_k3_e2 | w16: ir_k3_e2_se mx_t1_c2",  # hybrid stage
    ],
)
def test_every_block_kind_trains_forward_and_backward(arch_str):
    from nas.arch import Architecture

    space = load_space("hybrid-tiny")
    net = Supernet(space).train()
    arch = Architecture.from_str(arch_str)
    out = net(torch.randn(4, 3, arch.resolution, arch.resolution), arch)
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert out.shape == (4, space.num_classes)


def test_mix_tokens_pads_and_crops():
    y = torch.arange(2 * 3 * 3 * 4, dtype=torch.float32).reshape(2, 3, 3, 4)
    out = mix_tokens(y, 2, lambda z: z)
    assert torch.equal(out, y)
