"""Limits before allocation: what a space costs in memory, computed from its definition alone.

:func:`supernet_params` is the exact parameter count of :class:`nas.supernet.Supernet` for a space
(the same construction rules, counted instead of allocated: O(stages), whatever the widths and
depths). :func:`training_estimate`, :func:`sampling_estimate` and :func:`profiling_estimate` add the
activations of the most memory-hungry subnet at the requested batch (the pure per-unit rule of
:mod:`nas.memory`, maximised exactly over the space by :mod:`nas.spaces.extremes`).
:func:`check_memory` compares an estimate with this machine's memory and refuses in one line
(:class:`MemoryLimitError`) unless ``force``. The estimates are lower bounds of what the process
will hold (the interpreter, torch and the data come on top), so a refusal is never a false alarm
of the estimate itself.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from nas.blocks.base import conv_bn_params as _conv_bn
from nas.blocks.base import linear_params as _linear
from nas.errors import UserError
from nas.spaces.schema import SearchSpace

BYTES_PER_PARAM = 4  # float32
# bytes per parameter while training: weights, gradients and AdamW's two moments (float32)
TRAINING_BYTES_PER_PARAM = {"adamw": 16, "sgd": 12}


class MemoryLimitError(UserError):
    """A command would need more memory than the machine has."""


def _slot_params(space: SearchSpace, i: int, first: bool, max_in: int) -> int:
    """Parameters of one LayerSlot of stage ``i`` (see nas.supernet.model.LayerSlot)."""
    from nas.blocks.registry import block_kind  # loads the kinds (and torch) when counting

    stage = space.stages[i]
    max_out = max(stage.widths)
    c_in = max_in if first else max_out
    total = sum(
        block_kind(spec.kind).elastic_params(spec, c_in=c_in, max_out=max_out)
        for spec in stage.blocks
    )
    if first and any(block_kind(b.kind).transition for b in stage.blocks):
        total += _conv_bn(c_in, max_out, 3 if stage.stride > 1 else 1)
    return total


def supernet_params(space: SearchSpace) -> int:
    """Exact number of parameters of ``Supernet(space)``, without building it."""
    total = _conv_bn(space.in_channels, space.stem.width, space.stem.kernel)
    max_in = space.stem.width
    for i, stage in enumerate(space.stages):
        total += _slot_params(space, i, True, max_in)
        if stage.max_depth > 1:  # every later slot of a stage has the same shapes
            total += (stage.max_depth - 1) * _slot_params(space, i, False, max_in)
        max_in = max(stage.widths)
    h = space.head
    total += _conv_bn(max_in, h.width, 1)
    if h.hidden:
        total += _linear(h.width, h.hidden)
    total += _linear(h.hidden or h.width, space.num_classes)
    return total


def peak_activation_bytes(space: SearchSpace) -> int:
    """The largest peak activation memory of any subnet at batch 1, float32 (exact, by DP)."""
    from nas.spaces.extremes import cost_extreme, memory_cost

    return int(cost_extreme(space, memory_cost, combine="max", pick="max"))


def stored_activation_bytes(space: SearchSpace) -> int:
    """The largest sum over a subnet's units of their peak bytes at batch 1: what a training step
    keeps for the backward pass is of this order (each unit's input and intermediates)."""
    from nas.spaces.extremes import cost_extreme, memory_cost

    return int(cost_extreme(space, memory_cost, combine="sum", pick="max"))


def max_subnet_params(space: SearchSpace) -> int:
    """The largest parameter count of any standalone subnet (exact, by DP)."""
    from nas.costs import unit_params
    from nas.spaces.extremes import cost_extreme

    return int(cost_extreme(space, unit_params, combine="sum", pick="max"))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a command will hold: weights (and optimizer state) plus activations."""

    what: str  # "training", "sampling", "profiling"
    space: str
    batch: int
    params: int  # parameters the weights are counted for
    weight_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes

    def describe(self) -> str:
        return (
            f"{self.what} {self.space} at batch {self.batch} needs at least "
            f"{format_bytes(self.total_bytes)} ({format_count(self.params)} parameters: "
            f"{format_bytes(self.weight_bytes)}; activations {format_bytes(self.activation_bytes)})"
        )


def training_estimate(space: SearchSpace, batch: int, optimizer: str = "adamw") -> MemoryEstimate:
    """``nas train``: the supernet with gradients and optimizer state, plus the activations the
    largest subnet keeps for its backward pass at ``batch``."""
    params = supernet_params(space)
    per_param = TRAINING_BYTES_PER_PARAM.get(optimizer, TRAINING_BYTES_PER_PARAM["adamw"])
    return MemoryEstimate(
        "training", space.name, batch, params, params * per_param,
        stored_activation_bytes(space) * batch,
    )


def sampling_estimate(space: SearchSpace, batch: int, copies: int = 1) -> MemoryEstimate:
    """``nas sample``: one supernet per worker (``copies``), each running a subnet at ``batch``
    without gradients (BatchNorm recalibration and evaluation)."""
    params = supernet_params(space)
    return MemoryEstimate(
        "sampling", space.name, batch, params, params * BYTES_PER_PARAM * copies,
        peak_activation_bytes(space) * batch * copies,
    )


def profiling_estimate(space: SearchSpace, batch: int) -> MemoryEstimate:
    """``nas profile``: the largest standalone subnet (timed end to end for the calibration) at
    ``batch``, without gradients."""
    params = max_subnet_params(space)
    return MemoryEstimate(
        "profiling", space.name, batch, params, params * BYTES_PER_PARAM,
        peak_activation_bytes(space) * batch,
    )


def available_memory_bytes() -> int | None:
    """Memory this process may still take: MemAvailable (Linux), else the physical memory;
    None when neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(
    estimate: MemoryEstimate, *, force: bool = False, available: int | None = None
) -> None:
    """Refuse (:class:`MemoryLimitError`, one line with the numbers) when ``estimate`` exceeds
    the memory available here, unless ``force``."""
    available = available_memory_bytes() if available is None else available
    if force or available is None or estimate.total_bytes <= available:
        return
    raise MemoryLimitError(
        f"{estimate.describe()}, but this machine has {format_bytes(available)} available; "
        "use a smaller space or batch, or pass --force to try anyway"
    )


def format_count(value: int) -> str:
    """An integer for people: exact below 10**15, else scientific (never a huge int to decimal:
    :func:`math.log10` takes an int of any size)."""
    if value < 10**15:
        return f"{value:,}"
    log = math.log10(value)
    exponent = math.floor(log)
    mantissa = 10 ** (log - exponent)
    if mantissa >= 9.9995:  # would print as 10.000e+N
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.3f}e{exponent:+03d}"


def format_bytes(value: int) -> str:
    """Bytes in binary units up to EiB, beyond that in scientific notation."""
    if value >= 1024**7:
        return f"{format_count(int(value))} B"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} EiB"
