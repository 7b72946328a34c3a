"""Named costs for the MILP search: additive ones (a sum over units plus a constant) and the peak.

``flops``, ``macs`` and ``params`` are built in (exact, from :mod:`nas.costs`); ``memory`` (peak
activation bytes, a maximum over units) is handled by the solver itself. Any other additive cost, such
as a latency table's prediction, is a summed :class:`~nas.spaces.cells.CostRule`: ``offset + sum of
unit_cost(unit)`` over the units of the architecture, with an optional independent ``evaluate`` used
to re-check every emitted architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nas.arch import Architecture
from nas.costs import costs
from nas.errors import UserError
from nas.spaces.cells import CostRule, cost_rules
from nas.spaces.schema import SearchSpace
from nas.units import Unit, arch_keys

from .mp_model import Formulation

MEMORY = "memory"
BUILTIN = ("flops", "macs", "params")
ADDITIVE_CALIBRATION_FEATURES = frozenset({"lut_sum", "n_units"})

AdditiveCost = CostRule  # the MILP's name for a summed cost rule (one type, nas.spaces.cells)


def _exact(metric: str) -> Callable[[SearchSpace, Architecture], float]:
    def evaluate(space: SearchSpace, arch: Architecture) -> float:
        return float(costs(space, arch).as_dict()[metric])

    return evaluate


def _flops(u: Unit) -> int:
    return 2 * u.macs()


def builtin_costs() -> dict[str, CostRule]:
    """``flops``, ``macs`` and ``params`` (the summed rules of
    :func:`nas.spaces.cells.cost_rules`), re-checked with :func:`nas.costs.costs`."""
    rules = cost_rules()
    return {
        "flops": CostRule(_flops, evaluate=_exact("flops")),
        "macs": CostRule(rules["macs"].unit_cost, evaluate=_exact("macs")),
        "params": CostRule(rules["params"].unit_cost, evaluate=_exact("params")),
    }


def space_unit_keys(space: SearchSpace) -> list[str]:
    """Every latency-table key the MILP over ``space`` can place (deduplicated, first-seen order)."""
    seen: dict[str, None] = {}
    for group in Formulation(space).groups:
        for u in group.units:
            seen.setdefault(u.key, None)
    return list(seen)


def latency_cost(table: Any, space: SearchSpace, keys: Iterable[str] | None = None) -> CostRule:
    """The table's latency prediction (ms) as an additive cost over ``space``.

    Without a calibration the prediction is the sum of unit medians. A calibration
    ``a * lut_sum + c * n_units + b`` is additive too (per unit ``a * median + c``, constant ``b``);
    one using any other feature is not, and is refused. Every key the MILP can place must be in the
    table (all missing keys are named at once). Re-checks use ``table.predict_from_keys``.
    """
    keys = space_unit_keys(space) if keys is None else list(keys)
    absent = table.missing(keys)
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise UserError(
            f"latency table lacks {len(absent)} unit keys that the MP search over space "
            f"{space.name!r} may place ({shown}); profile them first"
        )
    median = dict(zip(keys, (float(v) for v in table.lookup(keys))))
    scale, per_unit, offset = 1.0, 0.0, 0.0
    calibration = table.calibration
    if calibration is not None:
        coef = dict(zip(calibration.features, calibration.coef))
        other = set(coef) - ADDITIVE_CALIBRATION_FEATURES
        if other:
            raise UserError(
                f"latency calibration uses features {sorted(other)}, which are not sums over "
                "units; the MP search needs an additive latency (lut_sum, n_units, intercept)"
            )
        scale = coef.get("lut_sum", 0.0)
        per_unit = coef.get("n_units", 0.0)
        offset = float(calibration.intercept)

    def unit_cost(u: Unit) -> float:
        return scale * median[u.key] + per_unit

    def evaluate(space_: SearchSpace, arch: Architecture) -> float:
        return float(table.predict_from_keys([arch_keys(space_, arch)])[0])

    return CostRule(unit_cost, offset=offset, evaluate=evaluate)
