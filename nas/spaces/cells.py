"""The cell engine: every (resolution, input width, width, layer choice, slot) cell of a space
with the units it runs, enumerated once, and the one per-unit cost type, :class:`CostRule`.

A subnet's units depend only on the resolution, the width entering a slot, the stage's width, the
layer choice and whether the slot is its stage's first (every later slot of a stage runs the same
units), so a space has few cells even when it has astronomically many subnets. Every consumer
reads them here: genome cost tables (:mod:`nas.spaces.tables`), exact cost extremes
(:mod:`nas.spaces.extremes`), the MILP's unit groups (:mod:`nas.search.mp_model`) and the
latency-table keys (:mod:`nas.latency.space_units`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING

from nas.blocks.base import Unit, conv_out
from nas.costs import unit_macs, unit_params, unit_size_bytes
from nas.memory import unit_peak_bytes
from nas.precision import FP32
from nas.spaces.geometry import stage_input_sizes
from nas.spaces.ops import stage_layer_choices
from nas.units import head_unit, layer_units, precision_boundaries, precision_units, stem_unit

if TYPE_CHECKING:
    from nas.arch import Architecture
    from nas.spaces.schema import SearchSpace

UnitCost = Callable[[Unit], float]
Units = tuple[Unit, ...]


# ----- one cost type --------------------------------------------------------------------------
def memory_cost(unit: Unit) -> float:
    """Per-unit peak bytes, its input alive from its first operator (the network's peak is the
    max over its units, see :mod:`nas.memory`)."""
    return float(unit_peak_bytes(unit, unit.input_numel()))


@dataclass(frozen=True)
class CostRule:
    """A named cost of an architecture: ``offset + combine(unit_cost(u) for u in its units)``.

    ``combine``: ``"sum"`` (MACs, params, table latency: additive, exact in the MILP) or ``"max"``
    (peak memory). ``evaluate`` (optional): the same quantity by another route (e.g. the latency
    table's own prediction), used to re-check architectures a search emits. ``at_precision``
    (optional): the unit cost at a precision gene (``size_bytes``: weights at 4 or 1 byte); a rule
    without it ignores precision (MACs, params and memory do not change with it), and
    ``unit_cost`` is its cost at fp32.
    """

    unit_cost: UnitCost
    combine: str = "sum"
    offset: float = 0.0
    evaluate: Callable[[SearchSpace, Architecture], float] | None = None
    at_precision: Callable[[str], UnitCost] | None = None
    boundary: Callable[[str], float] | None = None

    def unit_cost_at(self, precision: str) -> UnitCost:
        """The per-unit cost at ``precision``."""
        return self.unit_cost if self.at_precision is None else self.at_precision(precision)

    def __post_init__(self) -> None:
        if self.combine not in ("sum", "max"):
            raise ValueError(f"combine must be 'sum' or 'max', got {self.combine!r}")

    def fold(self, units: Units | list[Unit], precision: str = FP32) -> float:
        """``combine`` of the unit costs at one precision (without the offset; integers exact)."""
        cost = self.unit_cost_at(precision)
        values = [cost(u) for u in units]
        return sum(values) if self.combine == "sum" else max(values)

    def additive_value(self, space: SearchSpace, arch: Architecture) -> float:
        """The cost computed from ``arch``'s units (what the MILP computes), plus, for a rule
        with ``boundary`` (a summed cost of each precision boundary key, e.g. a latency table's
        quantize/dequantize), its boundaries (:func:`nas.units.precision_boundaries`)."""
        values = [self.unit_cost_at(p)(u) for u, p in precision_units(space, arch)]
        total = self.offset + (sum(values) if self.combine == "sum" else max(values))
        if self.boundary is not None:
            total += sum(self.boundary(k) for _, k in precision_boundaries(space, arch))
        return total

    def __call__(self, space: SearchSpace, arch: Architecture) -> float:
        if self.evaluate is not None:
            return float(self.evaluate(space, arch))
        return self.additive_value(space, arch)


def cost_rules() -> dict[str, CostRule]:
    """The exact costs every space has: MACs and params (summed), peak memory bytes (max)."""
    return {
        "macs": CostRule(unit_macs),
        "params": CostRule(unit_params),
        "memory": CostRule(memory_cost, "max"),
    }


def size_cost_at(precision: str) -> UnitCost:
    """Bytes of a unit's weights at ``precision`` (see :func:`nas.costs.size_bytes`)."""
    return partial(unit_size_bytes, precision=precision)


def size_rule() -> CostRule:
    """``size_bytes``: every weight at its unit's precision (summed)."""
    return CostRule(size_cost_at(FP32), at_precision=size_cost_at)


# ----- the cells ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CellIndex:
    """Where a cell sits. ``stage``: -1 for the stem, ``len(stages)`` for the head. ``res``: index
    into the resolutions. ``w_in``: index into :meth:`SpaceCells.input_widths` of the stage (for
    the head, into the last stage's widths; -1 for the stem and for later slots, whose input is
    the stage's own width). ``w_out``: index into the stage's widths (-1 for stem and head).
    ``choice``: index into ``stage_layer_choices``. ``position``: 0 first slot, 1 a later slot."""

    stage: int
    res: int
    w_in: int = -1
    w_out: int = -1
    choice: int = -1
    position: int = 0


class SpaceCells:
    """Every cell of ``space`` and its units (build with :func:`space_cells`, which caches)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        res = space.resolutions
        self.choices = [stage_layer_choices(stage) for stage in space.stages]
        self.stem: list[Units] = [(stem_unit(space, r),) for r in res]
        self.first: list[dict[tuple[int, int, int, int], Units]] = []
        self.rest: list[dict[tuple[int, int, int], Units]] = []
        for i, stage in enumerate(space.stages):
            first: dict[tuple[int, int, int, int], Units] = {}
            rest: dict[tuple[int, int, int], Units] = {}
            for r, resolution in enumerate(res):
                size = stage_input_sizes(space, resolution)[i]
                inner = conv_out(size, stage.stride)
                for w, width in enumerate(stage.widths):
                    for c, layer in enumerate(self.choices[i]):
                        for p, prev in enumerate(self.input_widths(i)):
                            first[r, p, w, c] = tuple(
                                layer_units(space, i, 0, layer, prev, width, size))
                        if stage.max_depth > 1:
                            rest[r, w, c] = tuple(
                                layer_units(space, i, 1, layer, width, width, inner))
            self.first.append(first)
            self.rest.append(rest)
        last = space.stages[-1].widths
        self.head: dict[tuple[int, int], Units] = {
            (r, p): (head_unit(space, w, stage_input_sizes(space, resolution)[-1]),)
            for r, resolution in enumerate(res)
            for p, w in enumerate(last)
        }

    def input_widths(self, stage_index: int) -> tuple[int, ...]:
        """Widths that can enter stage ``stage_index`` (the previous stage's, or the stem's)."""
        if stage_index == 0:
            return (self.space.stem.width,)
        return self.space.stages[stage_index - 1].widths

    def slot(self, stage: int, position: int, res: int, w_in: int, w_out: int,
             choice: int) -> Units:
        """Units of slot ``position`` (0: first; any later slot runs the same units) of
        ``stage``; ``w_in`` is ignored after the first slot."""
        if position == 0:
            return self.first[stage][res, w_in, w_out, choice]
        return self.rest[stage][res, w_out, choice]

    def walk(self) -> Iterator[tuple[CellIndex, Units]]:
        """Every cell in a fixed order: per resolution the stem, then per stage, width and choice
        the first-slot cells (per input width) and the later-slot cell, then the heads."""
        n = len(self.space.stages)
        for r in range(len(self.space.resolutions)):
            yield CellIndex(-1, r), self.stem[r]
            for i, stage in enumerate(self.space.stages):
                for w in range(len(stage.widths)):
                    for c in range(len(self.choices[i])):
                        for p in range(len(self.input_widths(i))):
                            yield CellIndex(i, r, p, w, c, 0), self.first[i][r, p, w, c]
                        if stage.max_depth > 1:
                            yield CellIndex(i, r, -1, w, c, 1), self.rest[i][r, w, c]
            for p in range(len(self.space.stages[-1].widths)):
                yield CellIndex(n, r, p), self.head[r, p]


@lru_cache(maxsize=32)
def space_cells(space: SearchSpace) -> SpaceCells:
    """The cells of ``space`` (built once per space)."""
    return SpaceCells(space)
