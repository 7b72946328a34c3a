"""Exact costs of a subnet, as pure functions of the space and the architecture (no torch).

MACs count the multiply-accumulates of convolutions, linear layers and the two attention matmuls
(``q @ k^T`` and ``attn @ v``); ``flops = 2 * macs``. This is what
``torch.utils.flop_counter.FlopCounterMode`` counts on the extracted model (it counts conv, mm,
addmm and bmm). Not counted, by either: batch/layer norm, activations, softmax, pooling, the
squeeze-excite gating multiply, residual additions and bias additions (all elementwise, O(size)).

Parameters are the trainable tensors of the extracted model (BN/LN scale and shift included,
running statistics excluded). Peak activation memory follows the rule in :mod:`nas.memory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatch

from nas.arch import Architecture, Layer
from nas.spaces.schema import SearchSpace, conv_out, stage_input_sizes
from nas.units import (
    AttnUnit,
    ConvUnit,
    HeadUnit,
    MixerUnit,
    StemUnit,
    TransitionUnit,
    Unit,
    arch_units,
    layer_units,
    se_hidden,
)

BYTES_PER_ELEMENT = 4  # float32


@singledispatch
def unit_macs(unit: Unit) -> int:
    raise TypeError(f"no MACs rule for {type(unit).__name__}")


@unit_macs.register
def _(u: StemUnit) -> int:
    o = conv_out(u.size, u.stride)
    return o * o * u.c_out * u.c_in * u.kernel * u.kernel


@unit_macs.register
def _(u: ConvUnit) -> int:
    o = conv_out(u.size, u.stride)
    hid = u.hidden
    macs = 0
    if u.expand != 1:
        macs += u.size * u.size * u.c_in * hid
    macs += o * o * hid * u.kernel * u.kernel
    if u.se:
        macs += 2 * hid * se_hidden(hid)
    macs += o * o * hid * u.c_out
    return macs


@unit_macs.register
def _(u: TransitionUnit) -> int:
    o = conv_out(u.size, u.stride)
    return o * o * u.c_in * u.c_out * u.kernel * u.kernel


@unit_macs.register
def _(u: AttnUnit) -> int:
    t = u.size * u.size
    qkv = t * u.c * 3 * u.inner
    attention = 2 * t * t * u.inner
    proj = t * u.inner * u.c
    mlp = 2 * t * u.c * u.mlp_hidden
    return qkv + attention + proj + mlp


@unit_macs.register
def _(u: MixerUnit) -> int:
    windows = (u.padded // u.window) ** 2
    tokens = u.window * u.window
    token_mlp = 2 * windows * u.c * tokens * u.token_hidden
    channel_mlp = 2 * u.size * u.size * u.c * u.channel_hidden
    return token_mlp + channel_mlp


@unit_macs.register
def _(u: HeadUnit) -> int:
    macs = u.size * u.size * u.c_in * u.width
    last = u.width
    if u.hidden:
        macs += u.width * u.hidden
        last = u.hidden
    return macs + last * u.num_classes


@singledispatch
def unit_params(unit: Unit) -> int:
    raise TypeError(f"no parameter rule for {type(unit).__name__}")


@unit_params.register
def _(u: StemUnit) -> int:
    return u.c_out * u.c_in * u.kernel * u.kernel + 2 * u.c_out


@unit_params.register
def _(u: ConvUnit) -> int:
    hid = u.hidden
    p = 0
    if u.expand != 1:
        p += u.c_in * hid + 2 * hid
    p += hid * u.kernel * u.kernel + 2 * hid
    if u.se:
        s = se_hidden(hid)
        p += hid * s + s + s * hid + hid
    p += hid * u.c_out + 2 * u.c_out
    return p


@unit_params.register
def _(u: TransitionUnit) -> int:
    return u.c_in * u.c_out * u.kernel * u.kernel + 2 * u.c_out


@unit_params.register
def _(u: AttnUnit) -> int:
    ln = 2 * u.c
    qkv = u.c * 3 * u.inner + 3 * u.inner
    proj = u.inner * u.c + u.c
    mlp = u.c * u.mlp_hidden + u.mlp_hidden + u.mlp_hidden * u.c + u.c
    return 2 * ln + qkv + proj + mlp


@unit_params.register
def _(u: MixerUnit) -> int:
    tokens = u.window * u.window
    th, ch = u.token_hidden, u.channel_hidden
    token_mlp = tokens * th + th + th * tokens + tokens
    channel_mlp = u.c * ch + ch + ch * u.c + u.c
    return 2 * (2 * u.c) + token_mlp + channel_mlp


@unit_params.register
def _(u: HeadUnit) -> int:
    p = u.c_in * u.width + 2 * u.width
    last = u.width
    if u.hidden:
        p += u.width * u.hidden + u.hidden
        last = u.hidden
    return p + last * u.num_classes + u.num_classes


def layer_macs(
    space: SearchSpace,
    resolution: int,
    stage_index: int,
    position: int,
    layer: Layer,
    c_in: int,
    c_out: int,
) -> int:
    """MACs of one layer slot (with its transition, if any) at a resolution."""
    size = stage_input_sizes(space, resolution)[stage_index]
    if position > 0:
        size = conv_out(size, space.stages[stage_index].stride)
    units = layer_units(space, stage_index, position, layer, c_in, c_out, size)
    return sum(unit_macs(u) for u in units)


@dataclass(frozen=True)
class Costs:
    """Exact costs of one architecture at batch 1, float32."""

    macs: int
    params: int
    peak_memory_bytes: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def param_memory_bytes(self) -> int:
        return self.params * BYTES_PER_ELEMENT

    def as_dict(self) -> dict[str, int]:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "memory": self.peak_memory_bytes,
            "param_memory": self.param_memory_bytes,
        }


def macs(space: SearchSpace, arch: Architecture) -> int:
    return sum(unit_macs(u) for u in arch_units(space, arch))


def flops(space: SearchSpace, arch: Architecture) -> int:
    return 2 * macs(space, arch)


def params(space: SearchSpace, arch: Architecture) -> int:
    return sum(unit_params(u) for u in arch_units(space, arch))


def costs(space: SearchSpace, arch: Architecture) -> Costs:
    """MACs, params and peak activation memory of ``arch`` (validated against ``space``)."""
    from nas.memory import peak_memory_bytes

    space.validate(arch)
    units = arch_units(space, arch)
    return Costs(
        macs=sum(unit_macs(u) for u in units),
        params=sum(unit_params(u) for u in units),
        peak_memory_bytes=peak_memory_bytes(units),
    )
