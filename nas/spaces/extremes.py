"""Exact smallest and largest achievable cost over a whole space, without enumerating it.

A subnet's units depend only on the resolution, the previous stage's width, the stage's width and
the layer choice, so an additive cost (MACs, params, table latency) or a max-type cost (peak
memory) is optimised exactly by dynamic programming over stages with the previous width as state.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.memory import unit_peak_bytes
from nas.spaces.ops import stage_layer_choices
from nas.spaces.schema import SearchSpace, conv_out, stage_input_sizes
from nas.units import Unit, head_unit, layer_units, stem_unit

UnitCost = Callable[[Unit], float]


def _combine(kind: str) -> Callable[[float, float], float]:
    return (lambda a, b: a + b) if kind == "sum" else max


def memory_cost(unit: Unit) -> float:
    """Per-unit peak bytes (the network's peak is the max over units)."""
    return float(unit_peak_bytes(unit, unit.input_numel()))


def cost_extreme(
    space: SearchSpace, unit_cost: UnitCost, *, combine: str = "sum", pick: str = "min"
) -> float:
    """Min or max over all subnets of ``combine``(unit costs); combine is 'sum' or 'max'."""
    join = _combine(combine)
    best = min if pick == "min" else max
    results = []
    for res in space.resolutions:
        sizes = stage_input_sizes(space, res)
        stem = stem_unit(space, res)
        values = {space.stem.width: unit_cost(stem)}  # width after the stage -> best total so far
        for i, stage in enumerate(space.stages):
            choices = stage_layer_choices(stage)
            inner = conv_out(sizes[i], stage.stride)
            new: dict[int, float] = {}
            for w in stage.widths:
                rest = (
                    best(
                        sum(unit_cost(u) for u in layer_units(space, i, 1, c, w, w, inner))
                        if combine == "sum"
                        else max(unit_cost(u) for u in layer_units(space, i, 1, c, w, w, inner))
                        for c in choices
                    )
                    if stage.max_depth > 1
                    else 0.0
                )
                for w_prev, acc in values.items():
                    first = best(
                        _fold(
                            join,
                            [
                                unit_cost(u)
                                for u in layer_units(space, i, 0, c, w_prev, w, sizes[i])
                            ],
                        )
                        for c in choices
                    )
                    for d in stage.depths:
                        # first slot, then d - 1 equal slots: in closed form (depth may be huge)
                        if d == 1:
                            total = first
                        elif combine == "sum":
                            total = first + (d - 1) * rest
                        else:
                            total = max(first, rest)
                        candidate = join(acc, total)
                        new[w] = candidate if w not in new else best(new[w], candidate)
            values = new
        results.append(
            best(join(v, unit_cost(head_unit(space, w, sizes[-1]))) for w, v in values.items())
        )
    return best(results)


def _fold(join: Callable[[float, float], float], values: list[float]) -> float:
    out = values[0]
    for v in values[1:]:
        out = join(out, v)
    return out


def cost_ranges(space: SearchSpace) -> dict[str, tuple[float, float]]:
    """Exact (min, max) of MACs, params and peak memory bytes over every subnet of ``space``."""
    from nas.costs import unit_macs, unit_params

    out = {}
    for name, fn, combine in (
        ("macs", unit_macs, "sum"),
        ("params", unit_params, "sum"),
        ("memory", memory_cost, "max"),
    ):
        out[name] = (
            cost_extreme(space, fn, combine=combine, pick="min"),
            cost_extreme(space, fn, combine=combine, pick="max"),
        )
    return out
