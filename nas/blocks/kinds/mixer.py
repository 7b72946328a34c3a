"""``mixer``: MLP-Mixer block whose token-mixing MLP acts inside fixed w x w windows (zero-padded,
so it works at every resolution), then a channel MLP; pre-norm, both residual. Elastic token and
channel hidden ratios: token hidden ``max(1, round(window**2 * token_ratio))``, channel hidden
``round(c * channel_ratio)``.
"""

from __future__ import annotations

from collections.abc import Callable
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
    mlp_params,
    ratio_hidden,
    register_block,
    scalar,
)
from nas.blocks.token_mixer import ElasticChannelMLP, TokenMixerKind, TokenMixerUnit
from nas.memory import OpGraph, layer_norm_op, mlp_ops
from nas.supernet.elastic import ElasticLayerNorm, ElasticLinear, linear_params


def token_hidden(window: int, ratio: float) -> int:
    return max(1, round(window * window * ratio))


@dataclass(frozen=True)
class MixerSpec(BlockSpec):
    """MLP-Mixer block: token mixing inside fixed w x w windows (zero-padded), then a channel MLP."""

    kind: ClassVar[str] = "mixer"
    token_ratios: tuple[int | float, ...] = choices(NUMBER, "token_ratio", hidden_size=True)
    channel_ratios: tuple[int | float, ...] = choices(NUMBER, "channel_ratio", hidden_size=True)
    window: int = scalar(4)


@dataclass(frozen=True)
class MixerLayer(LayerValue):
    """Windowed MLP-Mixer layer: token-MLP and channel-MLP hidden ratios (``mx_t0.5_c4``)."""

    kind: ClassVar[str] = "mixer"
    tag: ClassVar[str] = "mx"
    letters: ClassVar[dict[str, str]] = {"t": "token_ratio", "c": "channel_ratio"}
    token_ratio: int | float
    channel_ratio: int | float


@dataclass(frozen=True)
class MixerUnit(TokenMixerUnit):
    kind: ClassVar[str] = "mixer"
    c: int
    size: int
    window: int
    token_ratio: float
    channel_ratio: float

    @property
    def padded(self) -> int:
        return -(-self.size // self.window) * self.window

    @property
    def token_hidden(self) -> int:
        return token_hidden(self.window, self.token_ratio)

    @property
    def mlp_hidden(self) -> int:  # the channel MLP's
        return ratio_hidden(self.c, self.channel_ratio)

    @property
    def key(self) -> str:
        return (
            f"mixer:c{self.c}:h{self.size}:w{self.window}:t{fmt_number(self.token_ratio)}"
            f":m{fmt_number(self.channel_ratio)}"
        )

    def mixer_macs(self) -> int:  # the token MLP in every window
        windows = (self.padded // self.window) ** 2
        return 2 * windows * self.c * self.window * self.window * self.token_hidden

    def mixer_params(self) -> int:
        return mlp_params(self.window * self.window, self.token_hidden)

    def add_ops(self, g: OpGraph, x: int) -> int:
        tokens, c, p2 = self.size * self.size, self.c, self.padded * self.padded
        th = self.token_hidden
        windows = p2 // (self.window * self.window)
        y = layer_norm_op(g, x, tokens, c)
        if self.padded != self.size:
            y = g.op([y], p2 * c)  # zero pad
        z = g.op([y], p2 * c)  # window partition (copy)
        z = g.op([g.op([g.op([z], windows * c * th)], windows * c * th)], p2 * c)  # token MLP
        z = g.op([z], p2 * c)  # window merge (copy)
        t = g.op([x, z], tokens * c)  # residual add (of the cropped view)
        return mlp_ops(g, t, tokens, c, self.mlp_hidden)

    def entropy(self) -> float:
        return half_log(self.window * self.window, self.token_hidden, self.c, self.mlp_hidden)

    def module(self) -> nn.Module:
        return MixerBlock(self.c, self.window, self.token_hidden, self.mlp_hidden)


def mix_tokens(
    y: torch.Tensor, window: int, mlp: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply ``mlp`` over the w*w tokens of each window of ``y`` (B, H, W, C); zero-pad to fit."""
    b, h, w, c = y.shape
    ph, pw = (h + window - 1) // window * window, (w + window - 1) // window * window
    if ph != h or pw != w:
        y = nn.functional.pad(y, (0, 0, 0, pw - w, 0, ph - h))
    nh, nw = ph // window, pw // window
    z = y.reshape(b, nh, window, nw, window, c).permute(0, 1, 3, 5, 2, 4)
    z = mlp(z.reshape(b, nh, nw, c, window * window))  # (B, nh, nw, C, T)
    z = z.reshape(b, nh, nw, c, window, window).permute(0, 1, 4, 2, 5, 3).reshape(b, ph, pw, c)
    return z[:, :h, :w, :]


class MixerBlock(nn.Module):
    """Pre-norm token-mixing MLP inside w x w windows (zero-padded), then a channel MLP."""

    def __init__(self, c: int, window: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.window = window
        tokens = window * window
        self.norm1 = nn.LayerNorm(c)
        self.token_fc1 = nn.Linear(tokens, token_hidden)
        self.token_act = nn.GELU()
        self.token_fc2 = nn.Linear(token_hidden, tokens)
        self.norm2 = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, channel_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(channel_hidden, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = mix_tokens(
            self.norm1(t), self.window, lambda z: self.token_fc2(self.token_act(self.token_fc1(z)))
        )
        t = t + y
        t = t + self.fc2(self.act(self.fc1(self.norm2(t))))
        return t.permute(0, 3, 1, 2)


class ElasticMixer(ElasticChannelMLP):
    def __init__(
        self, max_c: int, window: int, token_ratios: tuple[float, ...],
        channel_ratios: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.window = window
        tokens = window * window
        self.max_token_hidden = token_hidden(window, max(token_ratios))
        self.norm1 = ElasticLayerNorm(max_c)
        self.token_fc1 = ElasticLinear(tokens, self.max_token_hidden)
        self.token_fc2 = ElasticLinear(self.max_token_hidden, tokens)
        self.add_channel_mlp(max_c, channel_ratios)

    def forward(
        self, x: torch.Tensor, layer: MixerLayer, c_out: int, stride: int, first: bool
    ) -> torch.Tensor:
        tokens = self.window * self.window
        th = token_hidden(self.window, layer.token_ratio)
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = mix_tokens(
            self.norm1(t),
            self.window,
            lambda z: self.token_fc2(F.gelu(self.token_fc1(z, th)), tokens),
        )
        return self.channel_mlp(t + y, layer.channel_ratio).permute(0, 3, 1, 2)

    def export(
        self, layer: MixerLayer, c_in: int, c_out: int, stride: int, first: bool
    ) -> MixerBlock:
        c = c_out
        tokens = self.window * self.window
        th = token_hidden(self.window, layer.token_ratio)
        hidden = ratio_hidden(c, layer.channel_ratio)
        m = MixerBlock(c, self.window, th, hidden)
        m.token_fc1 = self.token_fc1.export(tokens, th)
        m.token_fc2 = self.token_fc2.export(th, tokens)
        self.export_channel_mlp(m, c, layer.channel_ratio)
        return m


@register_block
class Mixer(TokenMixerKind):
    name = "mixer"
    order = 2
    spec = MixerSpec
    layer = MixerLayer
    branch_outputs = ("token_fc2", "fc2")  # the output layers of both branches
    mlp_ratios_field = "channel_ratios"
    example: ClassVar[dict[str, Any]] = {
        "token_ratios": [0.5, 1], "channel_ratios": [1, 2], "window": 2,
    }

    def unit(self, spec: MixerSpec, layer: MixerLayer, *, c_in: int, c_out: int, size: int,
             stride: int, act: str, first: bool) -> MixerUnit:
        return MixerUnit(c=c_out, size=size, window=spec.window, token_ratio=layer.token_ratio,
                         channel_ratio=layer.channel_ratio)

    def elastic(self, spec: MixerSpec, *, c_in: int, max_out: int, act: str) -> ElasticMixer:
        return ElasticMixer(max_out, spec.window, spec.token_ratios, spec.channel_ratios)

    def mixer_elastic_params(self, spec: MixerSpec, max_out: int) -> int:
        tokens = spec.window * spec.window
        th = token_hidden(spec.window, max(spec.token_ratios))
        return linear_params(tokens, th) + linear_params(th, tokens)
