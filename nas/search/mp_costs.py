"""Named costs for the MILP search: additive ones (a sum over units plus a constant) and the peak.

``flops``, ``macs`` and ``params`` are built in (exact, from :mod:`nas.costs`); ``memory`` (peak
activation bytes, a maximum over units) is handled by the solver itself. Any other additive cost, such
as a latency table's prediction (:func:`latency_cost`), is a summed :class:`~nas.spaces.cells.CostRule`: ``offset + sum of
unit_cost(unit)`` over the units of the architecture, with an optional independent ``evaluate`` used
to re-check every emitted architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from nas.arch import Architecture
from nas.costs import costs, size_bytes
from nas.spaces.cells import CostRule, cost_rules, size_rule
from nas.spaces.schema import SearchSpace
from nas.units import Unit

from .mp_model import Formulation

MEMORY = "memory"
BUILTIN = ("flops", "macs", "params", "size_bytes")

AdditiveCost = CostRule  # the MILP's name for a summed cost rule (one type, nas.spaces.cells)


def _exact(metric: str) -> Callable[[SearchSpace, Architecture], float]:
    def evaluate(space: SearchSpace, arch: Architecture) -> float:
        return float(costs(space, arch).as_dict()[metric])

    return evaluate


def _flops(u: Unit) -> int:
    return 2 * u.macs()


def builtin_costs() -> dict[str, CostRule]:
    """``flops``, ``macs`` and ``params`` (the summed rules of
    :func:`nas.spaces.cells.cost_rules`), re-checked with :func:`nas.costs.costs`, and
    ``size_bytes`` (weights at their precision, :func:`nas.spaces.cells.size_rule`)."""
    rules = cost_rules()
    return {
        "flops": CostRule(_flops, evaluate=_exact("flops")),
        "macs": CostRule(rules["macs"].unit_cost, evaluate=_exact("macs")),
        "params": CostRule(rules["params"].unit_cost, evaluate=_exact("params")),
        "size_bytes": replace(size_rule(), evaluate=_size_bytes),
    }


def _size_bytes(space: SearchSpace, arch: Architecture) -> float:
    return float(size_bytes(space, arch))


def space_unit_keys(space: SearchSpace) -> list[str]:
    """Every latency-table key the MILP over ``space`` can place (deduplicated, first-seen order)."""
    seen: dict[str, None] = {}
    for group in Formulation(space).groups:
        for u in group.units:
            seen.setdefault(u.key, None)
    return list(seen)


def latency_cost(table: Any, space: SearchSpace) -> CostRule:
    """The table's latency prediction (ms) as an additive MILP cost over ``space``: the one
    builder, :func:`nas.latency.space_units.latency_cost_rule` (per unit at its precision, the
    calibration's intercept as the offset, re-checked with the table's own prediction); a
    calibration that is not a sum over units and missing keys are refused, all named."""
    from nas.latency.space_units import latency_cost_rule

    return latency_cost_rule(table, space)
