"""NB201 latency benchmark: the analytic FLOPs formula against a real network, and a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.benchmarks import latency_nb201 as bench
from nas.benchmarks import nb201


def relu_conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)
    )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int) -> nn.Module:
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: relu_conv_bn(c, c, 1),
        "nor_conv_3x3": lambda: relu_conv_bn(c, c, 3),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    }[name]()


class Cell(nn.Module):
    """NB201 cell: node i = sum over j < i of op(i, j)(node j); edges in one_hot order."""

    def __init__(self, genes: np.ndarray, c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(nb201.OPS[g], c) for g in genes)
        self.sources = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x, 0, 0, 0]
        for op, (dst, src) in zip(self.ops, self.sources):
            nodes[dst] = nodes[dst] + op(nodes[src])
        return nodes[3]


class Reduction(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = relu_conv_bn(c, 2 * c, 3, stride=2)
        self.b = relu_conv_bn(2 * c, 2 * c, 3)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c, 2 * c, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.short(x)


def nb201_network(genes: np.ndarray) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)]
    for i, (c, _) in enumerate(bench.STAGES):
        layers += [Cell(genes, c) for _ in range(bench.CELLS_PER_STAGE)]
        if i + 1 < len(bench.STAGES):
            layers.append(Reduction(c))
    layers += [
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, bench.N_CLASSES),
    ]
    return nn.Sequential(*layers).eval()


def test_analytic_flops_match_flop_counter_on_real_networks() -> None:
    rng = np.random.default_rng(0)
    cells = np.vstack([rng.integers(0, 5, (4, 6)), np.full((1, 6), 3), np.zeros((1, 6), int)])
    x = torch.randn(1, 3, 32, 32)
    for genes in cells:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            nb201_network(genes)(x)
        # FlopCounterMode counts conv and linear (2 per multiply-add), not pooling
        expected = bench.cell_flops(genes[None], include_pool=False)[0]
        assert counter.get_total_flops() == expected


def test_flops_depend_only_on_op_counts() -> None:
    rng = np.random.default_rng(1)
    genes = rng.integers(0, 5, (50, 6))
    shuffled = rng.permuted(genes, axis=1)
    np.testing.assert_allclose(bench.cell_flops(genes), bench.cell_flops(shuffled))
    assert bench.op_counts(genes).sum(axis=1).tolist() == [6] * 50
    assert bench.pairwise(genes).shape == (50, 15 * 25)
    assert np.all(bench.pairwise(genes).sum(axis=1) == 15)


def test_tiny_benchmark_run() -> None:
    try:
        table = nb201.load()
    except FileNotFoundError as exc:
        pytest.skip(f"NB201 benchmark file absent: {exc}")
    frame = bench.run(table, ["lat_ms_pixel2"], sizes=[10, 100], seeds=1, log=lambda s: None)
    methods = set(frame["method"])
    assert {
        "FLOPs alone",
        "op counts (5 features)",
        "one-hot + pairwise, shared-op prior",
    } <= methods
    flops_rho = frame.loc[frame["method"] == "FLOPs alone", "spearman"].item()
    learned = frame[(frame["method"] == "one-hot, shared-op prior") & (frame["n"] == 100)]
    assert 0.5 < flops_rho < 1 and learned["spearman"].item() > 0.85
    ratios = bench.conv_cost_ratios(table, ["lat_ms_pixel2"])
    assert 1.0 < ratios["lat_ms_pixel2"] < 9.0
    text = bench.report(frame, ratios, ["lat_ms_pixel2"], 1, "cmd", 1.0)
    assert "Reproduce: `cmd`" in text and "0.932" in text
