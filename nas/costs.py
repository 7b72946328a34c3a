"""Exact costs of a subnet, as pure functions of the space and the architecture (no model built).

MACs count the multiply-accumulates of convolutions, linear layers and the two attention matmuls
(``q @ k^T`` and ``attn @ v``); ``flops = 2 * macs``. This is what
``torch.utils.flop_counter.FlopCounterMode`` counts on the extracted model (it counts conv, mm,
addmm and bmm). Not counted, by either: batch/layer norm, activations, softmax, pooling, the
squeeze-excite gating multiply, residual additions and bias additions (all elementwise, O(size)).

Each unit's rule lives with its block kind (``Unit.macs``, ``Unit.params``, in
:mod:`nas.blocks.kinds`); this module sums them. Parameters are the trainable tensors of the
extracted model (BN/LN/GN scale and shift included, running statistics excluded). Peak activation memory follows the rule in :mod:`nas.memory`.

``size_bytes`` is the storage of the weights at their precision. An fp32 unit: 4 bytes per
parameter. An int8 unit: its convolution and linear weights at 1 byte per element plus one float32
scale per output channel of each (ONNX Runtime's per-channel QDQ stores exactly these:
:func:`quantized_weights`), its other parameters (biases, norm scales and shifts) at 4 bytes (the
export keeps them float, or int32 for a quantized bias). Not counted: the int8 zero points (one byte
per channel, all zero), activation scales, and the export's folding of BatchNorm into the
convolutions (a few bytes per layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from nas.arch import Architecture, Layer
from nas.memory import peak_memory_bytes
from nas.precision import FP32, INT8, WEIGHT_BYTES
from nas.spaces.geometry import conv_out, stage_input_sizes
from nas.units import Unit, arch_units, layer_units, precision_units

BYTES_PER_ELEMENT = 4  # float32

if TYPE_CHECKING:
    from nas.spaces.shape import SpaceShape


def unit_macs(unit: Unit) -> int:
    """MACs of one unit (its kind's rule, ``Unit.macs``)."""
    return unit.macs()


def unit_params(unit: Unit) -> int:
    """Parameters of one unit (its kind's rule, ``Unit.params``)."""
    return unit.params()


def unit_size_bytes(unit: Unit, precision: str) -> int:
    """Bytes of ``unit``'s weights at ``precision`` (the rule in the module docstring)."""
    if precision != INT8:
        return unit.params() * WEIGHT_BYTES[precision]
    elements, channels = quantized_weights(unit)
    return (elements * WEIGHT_BYTES[INT8] + channels * WEIGHT_BYTES[FP32]
            + (unit.params() - elements) * WEIGHT_BYTES[FP32])


def quantized_weights(unit: Unit) -> tuple[int, int]:
    """``(elements, output channels)`` of the convolution and linear weights of ``unit`` (what an
    INT8 export stores as int8 tensors with one scale per output channel), read from its static
    module, cached per unit."""
    return _quantized_weights(unit)


def layer_macs(
    space: SpaceShape,
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
    size_bytes: int = 0

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
            "size_bytes": self.size_bytes,
        }


def macs(space: SpaceShape, arch: Architecture) -> int:
    return sum(unit_macs(u) for u in arch_units(space, arch))


def flops(space: SpaceShape, arch: Architecture) -> int:
    return 2 * macs(space, arch)


def params(space: SpaceShape, arch: Architecture) -> int:
    return sum(unit_params(u) for u in arch_units(space, arch))


def costs(space: SpaceShape, arch: Architecture) -> Costs:
    """MACs, params and peak activation memory of ``arch`` (validated against ``space``)."""
    space.validate(arch)
    pairs = precision_units(space, arch)
    units = [u for u, _ in pairs]
    return Costs(
        macs=sum(unit_macs(u) for u in units),
        params=sum(unit_params(u) for u in units),
        peak_memory_bytes=peak_memory_bytes(units),
        size_bytes=sum(unit_size_bytes(u, p) for u, p in pairs),
    )


def size_bytes(space: SpaceShape, arch: Architecture) -> int:
    """Bytes of ``arch``'s weights at their precisions (the rule in the module docstring)."""
    return sum(unit_size_bytes(u, p) for u, p in precision_units(space, arch))


@lru_cache(maxsize=65536)
def _quantized_weights(unit: Unit) -> tuple[int, int]:
    from torch import nn

    weights = [m.weight for m in unit.module().modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    return sum(w.numel() for w in weights), sum(w.shape[0] for w in weights)
