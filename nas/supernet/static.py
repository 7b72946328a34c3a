"""Static building blocks of extracted subnets: plain torch layers with fixed shapes.

An extracted model is a :class:`StaticNet` made only of ``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear``, ``nn.LayerNorm``, activations and pooling, so it runs, traces and exports to ONNX
without this package's elastic code. The static block of each kind lives in the kind's module of
:mod:`nas.blocks.kinds`; this module holds what they share (conv + BN, activations), the head
and the network.
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
