"""Exact costs of a subnet, as pure functions of the space and the architecture (no model built).

MACs count the multiply-accumulates of convolutions, linear layers and the two attention matmuls
(``q @ k^T`` and ``attn @ v``); ``flops = 2 * macs``. This is what
``torch.utils.flop_counter.FlopCounterMode`` counts on the extracted model (it counts conv, mm,
addmm and bmm). Not counted, by either: batch/layer norm, activations, softmax, pooling, the
squeeze-excite gating multiply, residual additions and bias additions (all elementwise, O(size)).

Each unit's rule lives with its block kind (``Unit.macs``, ``Unit.params``, in
:mod:`nas.blocks.kinds`); this module sums them. Parameters are the trainable tensors of the
extracted model (BN/LN/GN scale and shift included, running statistics excluded). Peak activation memory follows the rule in :mod:`nas.memory`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.arch import Architecture, Layer
from nas.memory import peak_memory_bytes
from nas.spaces.geometry import conv_out, stage_input_sizes
from nas.units import Unit, arch_units, layer_units

BYTES_PER_ELEMENT = 4  # float32

if TYPE_CHECKING:
    from nas.spaces.schema import SearchSpace


def unit_macs(unit: Unit) -> int:
    """MACs of one unit (its kind's rule, ``Unit.macs``)."""
    return unit.macs()


def unit_params(unit: Unit) -> int:
    """Parameters of one unit (its kind's rule, ``Unit.params``)."""
    return unit.params()


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
    space.validate(arch)
    units = arch_units(space, arch)
    return Costs(
        macs=sum(unit_macs(u) for u in units),
        params=sum(unit_params(u) for u in units),
        peak_memory_bytes=peak_memory_bytes(units),
    )
