"""``attn``: pre-norm multi-head self-attention over the H*W tokens, then an MLP; both residual
(ViT). Elastic heads (head dim fixed by the space, so heads slice the q, k, v and projection
weights) and MLP ratio. Width ``heads * head_dim``; MLP hidden ``round(c * mlp_ratio)``.
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
    scalar,
)
from nas.blocks.token_mixer import ElasticChannelMLP, TokenMixerKind, TokenMixerUnit
from nas.memory import OpGraph, layer_norm_op, mlp_ops
from nas.supernet.elastic import ElasticLayerNorm, ElasticLinear, copy_, linear_params


@dataclass(frozen=True)
class AttnSpec(BlockSpec):
    """Pre-norm multi-head self-attention over spatial tokens + MLP. Head dim is fixed."""

    kind: ClassVar[str] = "attn"
    heads: tuple[int, ...] = choices(int, "heads", hidden_size=True)
    mlp_ratios: tuple[int | float, ...] = choices(NUMBER, "mlp_ratio", hidden_size=True)
    head_dim: int = scalar(16)


@dataclass(frozen=True)
class AttnLayer(LayerValue):
    """Multi-head self-attention layer: number of heads, MLP ratio (``at_h4_m2``)."""

    kind: ClassVar[str] = "attn"
    tag: ClassVar[str] = "at"
    letters: ClassVar[dict[str, str]] = {"h": "heads", "m": "mlp_ratio"}
    heads: int
    mlp_ratio: int | float


@dataclass(frozen=True)
class AttnUnit(TokenMixerUnit):
    kind: ClassVar[str] = "attn"
    c: int
    size: int
    heads: int
    head_dim: int
    mlp_ratio: float

    @property
    def inner(self) -> int:
        return self.heads * self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return ratio_hidden(self.c, self.mlp_ratio)

    @property
    def key(self) -> str:
        return (f"attn:c{self.c}:h{self.size}:n{self.heads}:d{self.head_dim}"
                f":m{fmt_number(self.mlp_ratio)}")

    def mixer_macs(self) -> int:
        t = self.size * self.size
        qkv = t * self.c * 3 * self.inner
        attention = 2 * t * t * self.inner  # q @ k^T and attn @ v
        proj = t * self.inner * self.c
        return qkv + attention + proj

    def mixer_params(self) -> int:
        qkv = self.c * 3 * self.inner + 3 * self.inner
        proj = self.inner * self.c + self.c
        return qkv + proj

    def add_ops(self, g: OpGraph, x: int) -> int:
        tokens, c, heads = self.size * self.size, self.c, self.heads
        y = layer_norm_op(g, x, tokens, c)
        qkv = g.op([y], tokens * 3 * self.inner)
        scores = g.op([qkv], heads * tokens * tokens)  # q @ k^T
        scores = g.op([scores], heads * tokens * tokens)  # * scale
        attn = g.op([scores], heads * tokens * tokens)  # softmax
        o = g.op([attn, qkv], tokens * self.inner)  # attn @ v
        o = g.op([o], tokens * self.inner)  # merge heads (copy)
        t = g.op([x, g.op([o], tokens * c)], tokens * c)  # proj, residual add
        return mlp_ops(g, t, tokens, c, self.mlp_hidden)

    def entropy(self) -> float:
        # the attention matmul aggregates over all T tokens: a kernel covering the whole map
        return half_log(self.c, self.size * self.size, self.inner, self.c, self.mlp_hidden)

    def module(self) -> nn.Module:
        return AttentionBlock(self.c, self.heads, self.head_dim, self.mlp_hidden)


class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over the H*W tokens, then an MLP; both residual."""

    def __init__(self, c: int, heads: int, head_dim: int, mlp_hidden: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm1 = nn.LayerNorm(c)
        self.qkv = nn.Linear(c, 3 * inner)
        self.proj = nn.Linear(inner, c)
        self.norm2 = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, mlp_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_hidden, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, T, C)
        qkv = self.qkv(self.norm1(t)).reshape(b, h * w, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.head_dim**-0.5, dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(b, h * w, self.heads * self.head_dim)
        t = t + self.proj(o)
        t = t + self.fc2(self.act(self.fc1(self.norm2(t))))
        return t.transpose(1, 2).reshape(b, c, h, w)


class ElasticAttention(ElasticChannelMLP):
    def __init__(
        self, max_c: int, heads: tuple[int, ...], head_dim: int, mlp_ratios: tuple[float, ...]
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.max_heads = max(heads)
        inner = self.max_heads * head_dim
        self.norm1 = ElasticLayerNorm(max_c)
        self.qkv = ElasticLinear(max_c, 3 * inner)
        self.proj = ElasticLinear(inner, max_c)
        self.add_channel_mlp(max_c, mlp_ratios)

    def _qkv_rows(self, heads: int) -> torch.Tensor:
        inner_max, inner = self.max_heads * self.head_dim, heads * self.head_dim
        device = self.qkv.weight.device  # index on the weights' device (no host-device copy)
        return torch.cat(
            [torch.arange(i * inner_max, i * inner_max + inner, device=device) for i in range(3)]
        )

    def forward(
        self, x: torch.Tensor, layer: AttnLayer, c_out: int, stride: int, first: bool
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, hd = layer.heads, self.head_dim
        t = x.flatten(2).transpose(1, 2)  # (B, T, C)
        inner_max = self.max_heads * hd
        wq = self.qkv.weight.view(3, inner_max, -1)[:, : heads * hd, :c].reshape(3 * heads * hd, c)
        bq = self.qkv.bias.view(3, inner_max)[:, : heads * hd].reshape(-1)
        qkv = F.linear(self.norm1(t), wq, bq).reshape(b, h * w, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hd)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * hd**-0.5, dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(b, h * w, heads * hd)
        t = self.channel_mlp(t + self.proj(o, c), layer.mlp_ratio)
        return t.transpose(1, 2).reshape(b, c, h, w)

    def export(
        self, layer: AttnLayer, c_in: int, c_out: int, stride: int, first: bool
    ) -> AttentionBlock:
        c = c_out
        hidden = ratio_hidden(c, layer.mlp_ratio)
        inner = layer.heads * self.head_dim
        m = AttentionBlock(c, layer.heads, self.head_dim, hidden)
        rows = self._qkv_rows(layer.heads)
        copy_(m.qkv.weight, self.qkv.weight[rows, :c])
        copy_(m.qkv.bias, self.qkv.bias[rows])
        m.proj = self.proj.export(inner, c)
        self.export_channel_mlp(m, c, layer.mlp_ratio)
        return m


@register_block
class Attn(TokenMixerKind):
    name = "attn"
    order = 1
    spec = AttnSpec
    layer = AttnLayer
    branch_outputs = ("proj", "fc2")  # the output projections of both branches
    example: ClassVar[dict[str, Any]] = {"heads": [1, 2], "mlp_ratios": [1, 2], "head_dim": 8}

    def unit(self, spec: AttnSpec, layer: AttnLayer, *, c_in: int, c_out: int, size: int,
             stride: int, act: str, first: bool) -> AttnUnit:
        return AttnUnit(c=c_out, size=size, heads=layer.heads, head_dim=spec.head_dim,
                        mlp_ratio=layer.mlp_ratio)

    def elastic(self, spec: AttnSpec, *, c_in: int, max_out: int, act: str) -> ElasticAttention:
        return ElasticAttention(max_out, spec.heads, spec.head_dim, spec.mlp_ratios)

    def mixer_elastic_params(self, spec: AttnSpec, max_out: int) -> int:
        inner = max(spec.heads) * spec.head_dim
        return linear_params(max_out, 3 * inner) + linear_params(inner, max_out)
