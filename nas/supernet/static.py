"""Static building blocks of extracted subnets: plain torch layers with fixed shapes.

An extracted model is a :class:`StaticNet` made only of ``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear``, ``nn.LayerNorm``, activations and pooling, so it runs, traces and exports to ONNX
without this package's elastic code.
"""

from __future__ import annotations

import torch
from torch import nn


def make_act(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "hswish": nn.Hardswish, "gelu": nn.GELU, "silu": nn.SiLU}
    return acts[name]()


class ConvBN(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation, 'same' padding."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        groups: int = 1,
        act: str | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act is not None:
            layers.append(make_act(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> [SE] -> 1x1 project [+ x]."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        hidden: int,
        kernel: int,
        stride: int,
        act: str,
        se_hidden: int | None,
        expand: bool,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand = ConvBN(c_in, hidden, 1, act=act) if expand else None
        self.dw = ConvBN(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, se_hidden) if se_hidden else None
        self.project = ConvBN(hidden, c_out, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.dw(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return h + x if self.residual else h


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


def mix_tokens(y: torch.Tensor, window: int, mlp) -> torch.Tensor:
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


class Head(nn.Module):
    """1x1 conv + BN + act, global average pool, optional hidden linear + act, dropout, classifier."""

    def __init__(
        self, c_in: int, width: int, hidden: int | None, num_classes: int, act: str, dropout: float
    ) -> None:
        super().__init__()
        self.conv = ConvBN(c_in, width, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.hidden = nn.Sequential(nn.Linear(width, hidden), make_act(act)) if hidden else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden or width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.pool(self.conv(x)))
        if self.hidden is not None:
            x = self.hidden(x)
        return self.classifier(self.dropout(x))


class StaticNet(nn.Module):
    """A standalone subnet: stem, a sequence of blocks, head. ``arch`` is kept as a string."""

    def __init__(
        self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module, arch: str = ""
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
