"""Decompose an architecture into units: stem, transitions, layers and head.

A unit is one layer configuration at one input shape. Units are what costs sum over, what the
latency table stores (``unit.key``), and what the MILP chooses between, so this module is the single
place that says which operators a subnet runs. Pure Python: no torch.

Channel arithmetic (shared with the supernet, so costs and modules agree):
- MBConv hidden width ``round(c_in * expand)``; squeeze-excite width ``make_divisible(hidden / 4, 8)``.
- Attention width ``heads * head_dim``; MLP hidden ``round(c * mlp_ratio)``.
- Mixer token hidden ``max(1, round(window**2 * token_ratio))``; channel hidden ``round(c * ratio)``.
- The first layer of a stage changes width and stride. A conv layer does it itself; an attention or
  mixer layer is preceded by a transition (3x3 stride-2 conv + BN if the stage strides, else 1x1
  conv + BN) whenever the stride is 2 or the width changes. Later layers of a stage are residual.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch import Architecture, AttnLayer, ConvLayer, Layer, MixerLayer
from nas.spaces.schema import AttnSpec, MixerSpec, SearchSpace, conv_out


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def conv_hidden(c_in: int, expand: float) -> int:
    return max(1, round(c_in * expand))


def se_hidden(hidden: int) -> int:
    return make_divisible(hidden / 4, 8)


def ratio_hidden(c: int, ratio: float) -> int:
    return max(1, round(c * ratio))


@dataclass(frozen=True)
class StemUnit:
    c_in: int
    c_out: int
    size: int
    kernel: int
    stride: int
    act: str

    @property
    def key(self) -> str:
        return (
            f"stem:i{self.c_in}:o{self.c_out}:h{self.size}:k{self.kernel}:s{self.stride}:{self.act}"
        )


@dataclass(frozen=True)
class ConvUnit:
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
    def hidden(self) -> int:
        return conv_hidden(self.c_in, self.expand)

    @property
    def key(self) -> str:
        return (
            f"conv:i{self.c_in}:o{self.c_out}:h{self.size}:s{self.stride}:k{self.kernel}"
            f":e{_fmt(self.expand)}:se{int(self.se)}:{self.act}:r{int(self.residual)}"
        )


@dataclass(frozen=True)
class TransitionUnit:
    c_in: int
    c_out: int
    size: int
    stride: int

    @property
    def kernel(self) -> int:
        return 3 if self.stride > 1 else 1

    @property
    def key(self) -> str:
        return f"trans:i{self.c_in}:o{self.c_out}:h{self.size}:s{self.stride}"


@dataclass(frozen=True)
class AttnUnit:
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
        return f"attn:c{self.c}:h{self.size}:n{self.heads}:d{self.head_dim}:m{_fmt(self.mlp_ratio)}"


@dataclass(frozen=True)
class MixerUnit:
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
        return max(1, round(self.window * self.window * self.token_ratio))

    @property
    def channel_hidden(self) -> int:
        return ratio_hidden(self.c, self.channel_ratio)

    @property
    def key(self) -> str:
        return (
            f"mixer:c{self.c}:h{self.size}:w{self.window}:t{_fmt(self.token_ratio)}"
            f":m{_fmt(self.channel_ratio)}"
        )


@dataclass(frozen=True)
class HeadUnit:
    c_in: int
    size: int
    width: int
    hidden: int | None
    num_classes: int
    act: str

    @property
    def key(self) -> str:
        hidden = self.hidden or 0
        return (
            f"head:i{self.c_in}:h{self.size}:w{self.width}:f{hidden}:c{self.num_classes}:{self.act}"
        )


Unit = StemUnit | ConvUnit | TransitionUnit | AttnUnit | MixerUnit | HeadUnit


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def layer_units(
    space: SearchSpace,
    stage_index: int,
    position: int,
    layer: Layer,
    c_in: int,
    c_out: int,
    size: int,
) -> list[Unit]:
    """Units of one layer at a given position, input width and input size."""
    stage = space.stages[stage_index]
    first = position == 0
    stride = stage.stride if first else 1
    if isinstance(layer, ConvLayer):
        return [
            ConvUnit(
                c_in=c_in,
                c_out=c_out,
                size=size,
                stride=stride,
                kernel=layer.kernel,
                expand=layer.expand,
                se=layer.se,
                act=stage.act,
                residual=not first,
            )
        ]
    units: list[Unit] = []
    if first and (stride != 1 or c_in != c_out):
        units.append(TransitionUnit(c_in=c_in, c_out=c_out, size=size, stride=stride))
        size = conv_out(size, stride)
    if isinstance(layer, AttnLayer):
        spec = stage.block("attn")
        assert isinstance(spec, AttnSpec)
        units.append(
            AttnUnit(
                c=c_out,
                size=size,
                heads=layer.heads,
                head_dim=spec.head_dim,
                mlp_ratio=layer.mlp_ratio,
            )
        )
    elif isinstance(layer, MixerLayer):
        spec = stage.block("mixer")
        assert isinstance(spec, MixerSpec)
        units.append(
            MixerUnit(
                c=c_out,
                size=size,
                window=spec.window,
                token_ratio=layer.token_ratio,
                channel_ratio=layer.channel_ratio,
            )
        )
    return units


def stem_unit(space: SearchSpace, resolution: int) -> StemUnit:
    s = space.stem
    return StemUnit(
        c_in=space.in_channels,
        c_out=s.width,
        size=resolution,
        kernel=s.kernel,
        stride=s.stride,
        act=s.act,
    )


def head_unit(space: SearchSpace, c_in: int, size: int) -> HeadUnit:
    h = space.head
    return HeadUnit(
        c_in=c_in,
        size=size,
        width=h.width,
        hidden=h.hidden,
        num_classes=space.num_classes,
        act=h.act,
    )


def arch_units(space: SearchSpace, arch: Architecture) -> list[Unit]:
    """All units of ``arch`` in execution order (stem, layers with transitions, head)."""
    units: list[Unit] = [stem_unit(space, arch.resolution)]
    size = conv_out(arch.resolution, space.stem.stride)
    c_in = space.stem.width
    for i, stage in enumerate(arch.stages):
        for j, layer in enumerate(stage.layers):
            units.extend(layer_units(space, i, j, layer, c_in, stage.width, size))
            if j == 0:
                size = conv_out(size, space.stages[i].stride)
            c_in = stage.width
    units.append(head_unit(space, c_in, size))
    return units


def arch_keys(space: SearchSpace, arch: Architecture) -> list[str]:
    """Latency-table keys of ``arch`` (one per unit, in execution order)."""
    return [u.key for u in arch_units(space, arch)]
