"""``pool``: MetaFormer's pooling token mixer (PoolFormer; Yu et al., "MetaFormer Is Actually What
You Need for Vision", CVPR 2022), channels-first as in the paper::

    x = x + (AvgPool(Norm(x)) - Norm(x))     # token mixer: pooling minus identity
    x = x + fc2(GELU(fc1(Norm(x))))          # channel MLP: 1x1 convolutions

Norm is GroupNorm with one group (the paper's choice: statistics over channels and space); AvgPool
has stride 1, padding ``k // 2`` and ``count_include_pad=False``, so a constant map stays constant
and the mixer's output there is zero. The paper's layer scale is left out (our zero-init rule
starts both branches at zero instead). Elastic pool size (a fixed operator, no weights) and MLP
ratio (hidden width ``round(c * mlp_ratio)``); the width is kept, so a transition precedes the
first slot of a stage that strides or widens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.base import (
    NUMBER,
    BlockSpec,
    LayerValue,
    choices,
    fmt_number,
    half_log,
    ratio_hidden,
    register_block,
)
from nas.blocks.token_mixer import TokenMixerKind, TokenMixerUnit
from nas.errors import SpaceError
from nas.memory import OpGraph
from nas.supernet.elastic import ElasticConv1x1, copy_


@dataclass(frozen=True)
class PoolSpec(BlockSpec):
    """PoolFormer block: average-pooling token mixer (pool sizes), channel MLP (ratios)."""

    kind: ClassVar[str] = "pool"
    pool_sizes: tuple[int, ...] = choices(int, "pool")
    mlp_ratios: tuple[int | float, ...] = choices(NUMBER, "mlp_ratio", hidden_size=True)

    def __post_init__(self) -> None:
        for k in self.pool_sizes:
            if k % 2 == 0:
                raise SpaceError(f"pool.pool_sizes: {k} is even; expected odd sizes (3, 5, 7)")


@dataclass(frozen=True)
class PoolLayer(LayerValue):
    """PoolFormer layer: pool size, MLP ratio (``pf_k3_m4``)."""

    kind: ClassVar[str] = "pool"
    tag: ClassVar[str] = "pf"
    letters: ClassVar[dict[str, str]] = {"k": "pool", "m": "mlp_ratio"}
    pool: int
    mlp_ratio: int | float


@dataclass(frozen=True)
class PoolUnit(TokenMixerUnit):
    kind: ClassVar[str] = "pool"
    c: int
    size: int
    pool: int
    mlp_ratio: float

    @property
    def mlp_hidden(self) -> int:
        return ratio_hidden(self.c, self.mlp_ratio)

    @property
    def key(self) -> str:
        return f"pool:c{self.c}:h{self.size}:k{self.pool}:m{fmt_number(self.mlp_ratio)}"

    def mixer_macs(self) -> int:  # average pooling: additions, no multiply-accumulates
        return 0

    def mixer_params(self) -> int:  # a fixed operator
        return 0

    def add_ops(self, g: OpGraph, x: int) -> int:
        n, hidden = self.c * self.size * self.size, self.mlp_hidden * self.size * self.size
        y = g.op([x], n, 1, 1)  # group norm (+ mean, rstd of its one group)
        p = g.op([y], n)  # average pool
        t = g.op([x, g.op([p, y], n)], n)  # pool - identity, residual add
        z = g.op([t], n, 1, 1)  # group norm
        h = g.op([g.op([z], hidden)], hidden)  # fc1, GELU
        return g.op([t, g.op([h], n)], n)  # fc2, residual add

    def entropy(self) -> float:
        return half_log(self.c, self.mlp_hidden)  # the learned maps: fc1 and fc2

    def module(self) -> nn.Module:
        return PoolFormerBlock(self.c, self.pool, self.mlp_hidden)


class PoolFormerBlock(nn.Module):
    def __init__(self, c: int, pool: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(1, c)
        self.pool = nn.AvgPool2d(pool, 1, pool // 2, count_include_pad=False)
        self.norm2 = nn.GroupNorm(1, c)
        self.fc1 = nn.Conv2d(c, mlp_hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(mlp_hidden, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + (self.pool(y) - y)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ElasticGroupNorm(nn.GroupNorm):
    """One-group GroupNorm over the first C channels of its largest affine parameters."""

    def __init__(self, max_c: int) -> None:
        super().__init__(1, max_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.group_norm(x, 1, self.weight[:c], self.bias[:c], self.eps)

    def export(self, c: int) -> nn.GroupNorm:
        m = nn.GroupNorm(1, c, eps=self.eps)
        copy_(m.weight, self.weight[:c])
        copy_(m.bias, self.bias[:c])
        return m


class ElasticPoolFormer(nn.Module):
    def __init__(self, max_c: int, mlp_ratios: tuple[float, ...]) -> None:
        super().__init__()
        hidden = ratio_hidden(max_c, max(mlp_ratios))
        self.norm1 = ElasticGroupNorm(max_c)
        self.norm2 = ElasticGroupNorm(max_c)
        self.fc1 = ElasticConv1x1(max_c, hidden)
        self.fc2 = ElasticConv1x1(hidden, max_c)

    def forward(
        self, x: torch.Tensor, layer: PoolLayer, c_out: int, stride: int, first: bool
    ) -> torch.Tensor:
        y = self.norm1(x)
        x = x + (F.avg_pool2d(y, layer.pool, 1, layer.pool // 2, count_include_pad=False) - y)
        hidden = ratio_hidden(x.shape[1], layer.mlp_ratio)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x), hidden)), x.shape[1])

    def export(
        self, layer: PoolLayer, c_in: int, c_out: int, stride: int, first: bool
    ) -> PoolFormerBlock:
        c, hidden = c_out, ratio_hidden(c_out, layer.mlp_ratio)
        m = PoolFormerBlock(c, layer.pool, hidden)
        m.norm1, m.norm2 = self.norm1.export(c), self.norm2.export(c)
        m.fc1, m.fc2 = self.fc1.export(c, hidden), self.fc2.export(hidden, c)
        return m


@register_block
class Pool(TokenMixerKind):
    name = "pool"
    order = 3
    spec = PoolSpec
    layer = PoolLayer
    # norm1 at zero makes the mixer's input 0, so pool(0) - 0 = 0 exactly; fc2 ends the MLP
    branch_outputs = ("norm1", "fc2")
    example: ClassVar[dict[str, Any]] = {"pool_sizes": [3, 5], "mlp_ratios": [1, 2]}

    def unit(self, spec: PoolSpec, layer: PoolLayer, *, c_in: int, c_out: int, size: int,
             stride: int, act: str, first: bool) -> PoolUnit:
        return PoolUnit(c=c_out, size=size, pool=layer.pool, mlp_ratio=layer.mlp_ratio)

    def elastic(self, spec: PoolSpec, *, c_in: int, max_out: int, act: str) -> ElasticPoolFormer:
        return ElasticPoolFormer(max_out, spec.mlp_ratios)

    def mixer_elastic_params(self, spec: PoolSpec, max_out: int) -> int:
        return 0
