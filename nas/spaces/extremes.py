"""Exact smallest and largest achievable cost over a whole space, without enumerating it.

A subnet's units depend only on its cells (:mod:`nas.spaces.cells`), so an additive cost (MACs,
params, table latency) or a max-type cost (peak memory) is optimised exactly by dynamic programming over stages with the previous width as state.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.spaces.cells import CostRule, UnitCost, cost_rules, memory_cost, space_cells
from nas.spaces.schema import SearchSpace

__all__ = ["cost_extreme", "cost_ranges", "memory_cost"]


def _combine(kind: str) -> Callable[[float, float], float]:
    return (lambda a, b: a + b) if kind == "sum" else max


def cost_extreme(
    space: SearchSpace, unit_cost: UnitCost, *, combine: str = "sum", pick: str = "min"
) -> float:
    """Min or max over all subnets of ``combine``(unit costs); combine is 'sum' or 'max'."""
    join = _combine(combine)
    best = min if pick == "min" else max
    rule = CostRule(unit_cost, combine)
    cells = space_cells(space)
    results = []
    for r in range(len(space.resolutions)):
        # width index after the stage -> best total so far (the stem's single width first)
        values = {0: rule.fold(cells.stem[r])}
        for i, stage in enumerate(space.stages):
            choices = range(len(cells.choices[i]))
            new: dict[int, float] = {}
            for w in range(len(stage.widths)):
                rest = (best(rule.fold(cells.rest[i][r, w, c]) for c in choices)
                        if stage.max_depth > 1 else 0.0)
                for p, acc in values.items():
                    first = best(rule.fold(cells.first[i][r, p, w, c]) for c in choices)
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
        results.append(best(join(v, rule.fold(cells.head[r, p])) for p, v in values.items()))
    return best(results)


def cost_ranges(space: SearchSpace) -> dict[str, tuple[float, float]]:
    """Exact (min, max) of MACs, params and peak memory bytes over every subnet of ``space``."""
    return {
        name: (
            cost_extreme(space, rule.unit_cost, combine=rule.combine, pick="min"),
            cost_extreme(space, rule.unit_cost, combine=rule.combine, pick="max"),
        )
        for name, rule in cost_rules().items()
    }
