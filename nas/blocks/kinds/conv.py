"""``conv``: MBConv / inverted residual (MobileNetV2/V3, OFA): [1x1 expand] -> depthwise kxk ->
[squeeze-excite] -> 1x1 project [+ x]. Elastic kernel (centre crop of the largest), expand ratio
and squeeze-excite. The first slot of a stage changes width and stride itself (no residual).

Channel arithmetic: hidden width ``round(c_in * expand)`` (``c_in`` when expand is 1, no expand
conv); squeeze-excite width ``make_divisible(hidden / 4, 8)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.base import (
    NUMBER,
    BlockKind,
    BlockSpec,
    LayerValue,
    Unit,
    choices,
    conv_out,
    fmt_number,
    half_log,
    make_divisible,
    ratio_hidden,
    register_block,
)
from nas.errors import SpaceError
from nas.memory import OpGraph, conv_bn_ops
from nas.supernet import static
from nas.supernet.elastic import ElasticConv1x1, ElasticConvBN, conv_bn_params


def conv_hidden(c_in: int, expand: float) -> int:
    return ratio_hidden(c_in, expand)


def se_hidden(hidden: int) -> int:
    return make_divisible(hidden / 4, 8)


@dataclass(frozen=True)
class ConvSpec(BlockSpec):
    """MBConv / inverted residual: elastic kernel (centre crop), expand ratio, squeeze-excite."""

    kind: ClassVar[str] = "conv"
    kernels: tuple[int, ...] = choices(int, "kernel")
    expands: tuple[int | float, ...] = choices(NUMBER, "expand", hidden_size=True)
    se: tuple[bool, ...] = choices(bool, "se", default=(False,))

    def __post_init__(self) -> None:
        for k in self.kernels:
            if k % 2 == 0:
                raise SpaceError(f"conv.kernels: {k} is even; expected odd kernel sizes (3, 5, 7)")


@dataclass(frozen=True)
class ConvLayer(LayerValue):
    """MBConv layer: depthwise kernel, expand ratio, squeeze-excite on/off (``ir_k5_e4_se``)."""

    kind: ClassVar[str] = "conv"
    tag: ClassVar[str] = "ir"
    letters: ClassVar[dict[str, str]] = {"k": "kernel", "e": "expand"}
    kernel: int
    expand: int | float
    se: bool = False


@dataclass(frozen=True)
class ConvUnit(Unit):
    kind: ClassVar[str] = "conv"
    c_in: int
    c_out: int
    size: int
    stride: int
    kernel: int
    expand: float
    se: bool
    act: str
    residual: bool

    @property
    def in_channels(self) -> int:
        return self.c_in

    @property
    def hidden(self) -> int:
        return conv_hidden(self.c_in, self.expand)

    @property
    def key(self) -> str:
        return (
            f"conv:i{self.c_in}:o{self.c_out}:h{self.size}:s{self.stride}:k{self.kernel}"
            f":e{fmt_number(self.expand)}:se{int(self.se)}:{self.act}:r{int(self.residual)}"
        )

    def macs(self) -> int:
        o = conv_out(self.size, self.stride)
        hid = self.hidden
        macs = 0
        if self.expand != 1:
            macs += self.size * self.size * self.c_in * hid
        macs += o * o * hid * self.kernel * self.kernel
        if self.se:
            macs += 2 * hid * se_hidden(hid)
        macs += o * o * hid * self.c_out
        return macs

    def params(self) -> int:
        hid = self.hidden
        p = 0
        if self.expand != 1:
            p += self.c_in * hid + 2 * hid
        p += hid * self.kernel * self.kernel + 2 * hid
        if self.se:
            s = se_hidden(hid)
            p += hid * s + s + s * hid + hid
        p += hid * self.c_out + 2 * self.c_out
        return p

    def add_ops(self, g: OpGraph, x: int) -> int:
        o2 = conv_out(self.size, self.stride) ** 2
        hid = self.hidden if self.expand != 1 else self.c_in
        h = conv_bn_ops(g, x, hid * self.size * self.size, act=True) if self.expand != 1 else x
        h = conv_bn_ops(g, h, hid * o2, act=True)
        if self.se:
            s = se_hidden(hid)
            gate = g.op(
                [g.op([g.op([g.op([g.op([h], hid)], s)], s)], hid)], hid
            )  # mean, fc1, relu, fc2, gate
            h = g.op([h, gate], hid * o2)
        y = conv_bn_ops(g, h, self.c_out * o2, act=False)
        return g.op([y, x], self.c_out * o2) if self.residual else y

    def entropy(self) -> float:
        expand = (self.c_in,) if self.expand != 1 else ()
        return half_log(*expand, self.kernel * self.kernel, self.hidden)

    def module(self) -> nn.Module:
        expand = self.expand != 1
        hidden = self.hidden if expand else self.c_in
        return MBConv(
            self.c_in, self.c_out, hidden, self.kernel, self.stride, self.act,
            se_hidden(hidden) if self.se else None, expand=expand, residual=self.residual,
        )


# ----- static modules ---------------------------------------------------------------------------
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
        self, c_in: int, c_out: int, hidden: int, kernel: int, stride: int, act: str,
        se_hidden: int | None, expand: bool, residual: bool,
    ) -> None:
        super().__init__()
        self.expand = static.ConvBN(c_in, hidden, 1, act=act) if expand else None
        self.dw = static.ConvBN(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, se_hidden) if se_hidden else None
        self.project = static.ConvBN(hidden, c_out, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.dw(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return h + x if self.residual else h


# ----- elastic module ---------------------------------------------------------------------------
class ElasticMBConv(nn.Module):
    def __init__(
        self, max_in: int, max_out: int, kernels: tuple[int, ...], expands: tuple[float, ...],
        se: tuple[bool, ...], act: str,
    ) -> None:
        super().__init__()
        self.act = act
        max_hidden = max(conv_hidden(max_in, max(expands)), max_in)
        self.expand = ElasticConvBN(max_in, max_hidden, 1) if any(e != 1 for e in expands) else None
        self.dw = ElasticConvBN(max_hidden, max_hidden, max(kernels), depthwise=True)
        if any(se):
            s = se_hidden(max_hidden)
            self.se_fc1 = ElasticConv1x1(max_hidden, s)
            self.se_fc2 = ElasticConv1x1(s, max_hidden)
        self.project = ElasticConvBN(max_hidden, max_out, 1)

    def forward(
        self, x: torch.Tensor, layer: ConvLayer, c_out: int, stride: int, first: bool
    ) -> torch.Tensor:
        c_in = x.shape[1]
        hidden = conv_hidden(c_in, layer.expand) if layer.expand != 1 else c_in
        expand = self.expand if layer.expand != 1 else None  # the spec has one if expand != 1
        h = expand(x, hidden, 1, act=self.act) if expand is not None else x
        h = self.dw(h, hidden, layer.kernel, stride, act=self.act)
        if layer.se:
            s = h.mean((2, 3), keepdim=True)
            s = F.relu(self.se_fc1(s, se_hidden(hidden)))
            h = h * F.hardsigmoid(self.se_fc2(s, hidden))
        h = self.project(h, c_out, 1)
        return h if first else h + x

    def export(self, layer: ConvLayer, c_in: int, c_out: int, stride: int, first: bool) -> MBConv:
        hidden = conv_hidden(c_in, layer.expand) if layer.expand != 1 else c_in
        se = se_hidden(hidden) if layer.se else None
        m = MBConv(c_in, c_out, hidden, layer.kernel, stride, self.act, se,
                   expand=layer.expand != 1, residual=not first)
        if self.expand is not None and layer.expand != 1:
            m.expand = self.expand.export(c_in, hidden, 1, act=self.act)
        m.dw = self.dw.export(hidden, hidden, layer.kernel, stride, act=self.act)
        if m.se is not None and se is not None:
            m.se.fc1 = self.se_fc1.export(hidden, se)
            m.se.fc2 = self.se_fc2.export(se, hidden)
        m.project = self.project.export(hidden, c_out, 1)
        return m


@register_block
class Conv(BlockKind):
    name = "conv"
    order = 0
    spec = ConvSpec
    layer = ConvLayer
    transition = False
    example: ClassVar[dict[str, Any]] = {"kernels": [3, 5], "expands": [1, 3], "se": [False, True]}

    def unit(self, spec: ConvSpec, layer: ConvLayer, *, c_in: int, c_out: int, size: int,
             stride: int, act: str, first: bool) -> ConvUnit:
        return ConvUnit(c_in=c_in, c_out=c_out, size=size, stride=stride, kernel=layer.kernel,
                        expand=layer.expand, se=layer.se, act=act, residual=not first)

    def elastic(self, spec: ConvSpec, *, c_in: int, max_out: int, act: str) -> ElasticMBConv:
        return ElasticMBConv(c_in, max_out, spec.kernels, spec.expands, spec.se, act)

    def zero_init_(self, block: ElasticMBConv, first: bool) -> int:
        if first:  # changes width or stride: no skip connection
            return 0
        block.project.bn.weight.zero_()
        return 1

    def elastic_params(self, spec: ConvSpec, *, c_in: int, max_out: int) -> int:
        hidden = max(conv_hidden(c_in, max(spec.expands)), c_in)
        total = 0
        if any(e != 1 for e in spec.expands):
            total += conv_bn_params(c_in, hidden, 1)
        total += conv_bn_params(hidden, hidden, max(spec.kernels), depthwise=True)
        if any(spec.se):
            s = se_hidden(hidden)
            total += hidden * s + s + s * hidden + hidden  # two 1x1 convs with bias
        return total + conv_bn_params(hidden, max_out, 1)
