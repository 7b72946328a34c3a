"""Decompose an architecture into units: stem, transitions, layers and head.

A unit is one layer configuration at one input shape. Units are what costs sum over, what the
latency table stores (``unit.key``), and what the MILP chooses between, so this module is the single
place that says which operators a subnet runs. Each unit carries its own rules (key, exact MACs and
parameters, memory operators, DeepMAD entropy, static module; see :class:`nas.blocks.base.Unit`):
the stem, transition and head units here, a layer's unit in the module of its block kind
(:mod:`nas.blocks.kinds`).

The first layer of a stage changes width and stride. A kind that keeps both
(``BlockKind.transition``: attention, mixer, ...) is preceded by a transition (3x3 stride-2 conv +
BN if the stage strides, else 1x1 conv + BN) whenever the stride is 2 or the width changes; a conv
layer does it itself. Later layers of a stage are residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from nas.arch import Architecture, Layer
from nas.blocks.base import Unit, conv_out, half_log
from nas.memory import OpGraph, conv_bn_ops
from nas.precision import with_suffix

if TYPE_CHECKING:
    from torch import nn

    from nas.spaces.shape import SpaceShape

__all__ = ["HeadUnit", "StemUnit", "TransitionUnit", "Unit", "arch_keys", "arch_unit_precisions",
           "arch_units", "head_unit", "layer_units", "precision_units", "stem_unit",
           "unit_key"]


@dataclass(frozen=True)
class StemUnit(Unit):
    kind: ClassVar[str] = "stem"
    c_in: int
    c_out: int
    size: int
    kernel: int
    stride: int
    act: str

    @property
    def in_channels(self) -> int:
        return self.c_in

    @property
    def key(self) -> str:
        return (
            f"stem:i{self.c_in}:o{self.c_out}:h{self.size}:k{self.kernel}:s{self.stride}:{self.act}"
        )

    def macs(self) -> int:
        o = conv_out(self.size, self.stride)
        return o * o * self.c_out * self.c_in * self.kernel * self.kernel

    def params(self) -> int:
        return self.c_out * self.c_in * self.kernel * self.kernel + 2 * self.c_out

    def add_ops(self, g: OpGraph, x: int) -> int:
        return conv_bn_ops(g, x, self.c_out * conv_out(self.size, self.stride) ** 2, act=True)

    def entropy(self) -> float:
        return half_log(self.c_in * self.kernel * self.kernel)

    def module(self) -> nn.Module:
        from nas.supernet import static

        return static.ConvBN(self.c_in, self.c_out, self.kernel, self.stride, act=self.act)


@dataclass(frozen=True)
class TransitionUnit(Unit):
    kind: ClassVar[str] = "trans"
    c_in: int
    c_out: int
    size: int
    stride: int

    @property
    def in_channels(self) -> int:
        return self.c_in

    @property
    def kernel(self) -> int:
        return 3 if self.stride > 1 else 1

    @property
    def key(self) -> str:
        return f"trans:i{self.c_in}:o{self.c_out}:h{self.size}:s{self.stride}"

    def macs(self) -> int:
        o = conv_out(self.size, self.stride)
        return o * o * self.c_in * self.c_out * self.kernel * self.kernel

    def params(self) -> int:
        return self.c_in * self.c_out * self.kernel * self.kernel + 2 * self.c_out

    def add_ops(self, g: OpGraph, x: int) -> int:
        return conv_bn_ops(g, x, self.c_out * conv_out(self.size, self.stride) ** 2, act=False)

    def entropy(self) -> float:
        return half_log(self.c_in * self.kernel * self.kernel)

    def module(self) -> nn.Module:
        from nas.supernet import static

        return static.ConvBN(self.c_in, self.c_out, self.kernel, self.stride)


@dataclass(frozen=True)
class HeadUnit(Unit):
    kind: ClassVar[str] = "head"
    c_in: int
    size: int
    width: int
    hidden: int | None
    num_classes: int
    act: str

    @property
    def in_channels(self) -> int:
        return self.c_in

    @property
    def key(self) -> str:
        hidden = self.hidden or 0
        return (
            f"head:i{self.c_in}:h{self.size}:w{self.width}:f{hidden}:c{self.num_classes}:{self.act}"
        )

    def macs(self) -> int:
        macs = self.size * self.size * self.c_in * self.width
        last = self.width
        if self.hidden:
            macs += self.width * self.hidden
            last = self.hidden
        return macs + last * self.num_classes

    def params(self) -> int:
        p = self.c_in * self.width + 2 * self.width
        last = self.width
        if self.hidden:
            p += self.width * self.hidden + self.hidden
            last = self.hidden
        return p + last * self.num_classes + self.num_classes

    def add_ops(self, g: OpGraph, x: int) -> int:
        y = conv_bn_ops(g, x, self.width * self.size * self.size, act=True)
        y = g.op([y], self.width)  # global average pool
        if self.hidden:
            y = g.op([g.op([y], self.hidden)], self.hidden)
        return g.op([y], self.num_classes)

    def entropy(self) -> float:
        return half_log(self.c_in)  # DeepMAD scores the features before global pooling

    def module(self) -> nn.Module:
        from nas.supernet import static

        return static.Head(self.c_in, self.width, self.hidden, self.num_classes, self.act,
                           dropout=0.0)


def layer_units(
    space: SpaceShape,
    stage_index: int,
    position: int,
    layer: Layer,
    c_in: int,
    c_out: int,
    size: int,
) -> list[Unit]:
    """Units of one layer at a given position, input width and input size."""
    from nas.blocks.registry import block_kind  # loaded with the first space already

    stage = space.stages[stage_index]
    first = position == 0
    stride = stage.stride if first else 1
    kind = block_kind(layer.kind)
    units: list[Unit] = []
    if kind.transition and first and (stride != 1 or c_in != c_out):
        units.append(TransitionUnit(c_in=c_in, c_out=c_out, size=size, stride=stride))
        size, c_in, stride = conv_out(size, stride), c_out, 1
    units.append(kind.unit(stage.block(layer.kind), layer, c_in=c_in, c_out=c_out, size=size,
                           stride=stride, act=stage.act, first=first))
    return units


def stem_unit(space: SpaceShape, resolution: int) -> StemUnit:
    s = space.stem
    return StemUnit(
        c_in=space.in_channels,
        c_out=s.width,
        size=resolution,
        kernel=s.kernel,
        stride=s.stride,
        act=s.act,
    )


def head_unit(space: SpaceShape, c_in: int, size: int) -> HeadUnit:
    h = space.head
    return HeadUnit(
        c_in=c_in,
        size=size,
        width=h.width,
        hidden=h.hidden,
        num_classes=space.num_classes,
        act=h.act,
    )


def precision_units(space: SpaceShape, arch: Architecture) -> list[tuple[Unit, str]]:
    """All units of ``arch`` in execution order (stem, layers with transitions, head), each with
    its precision (a transition runs at its layer's)."""
    units: list[tuple[Unit, str]] = [(stem_unit(space, arch.resolution), arch.stem_precision)]
    size = conv_out(arch.resolution, space.stem.stride)
    c_in = space.stem.width
    for i, stage in enumerate(arch.stages):
        for j, (layer, precision) in enumerate(zip(stage.layers, stage.precisions)):
            units.extend((u, precision)
                         for u in layer_units(space, i, j, layer, c_in, stage.width, size))
            if j == 0:
                size = conv_out(size, space.stages[i].stride)
            c_in = stage.width
    units.append((head_unit(space, c_in, size), arch.head_precision))
    return units


def arch_units(space: SpaceShape, arch: Architecture) -> list[Unit]:
    """All units of ``arch`` in execution order (stem, layers with transitions, head)."""
    return [u for u, _ in precision_units(space, arch)]


def arch_unit_precisions(space: SpaceShape, arch: Architecture) -> list[str]:
    """The precision of each unit of :func:`arch_units`."""
    return [p for _, p in precision_units(space, arch)]


def unit_key(unit: Unit, precision: str) -> str:
    """The latency-table key of ``unit`` at ``precision`` (``<key>@int8``; fp32 keys unchanged)."""
    return with_suffix(unit.key, precision)


def arch_keys(space: SpaceShape, arch: Architecture) -> list[str]:
    """Latency-table keys of ``arch`` (one per unit, in execution order, at each unit's precision)."""
    return [unit_key(u, p) for u, p in precision_units(space, arch)]
