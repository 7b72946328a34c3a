"""The units of a search space: enumerate every latency-table key, build each unit alone, predict.

A latency table stores one entry per unit key (:attr:`nas.units.StemUnit.key` and friends): one
layer configuration at one input shape. :func:`space_units` lists every unit a subnet of the space
can contain, by walking the same choices :mod:`nas.units` walks for one architecture (resolution,
previous stage width, stage width, layer choice, first slot of a stage or not), so the key set is
exactly the union of ``arch_keys(space, arch)`` over all subnets (tested both ways: sampled
subnets' keys are enumerated, and :func:`witness_archs` gives for every enumerated key a subnet
that contains it).

:func:`build_unit` makes the static module of one unit (the classes of
:mod:`nas.supernet.static` that ``Supernet.extract`` produces) with seeded random weights and an
example input of batch ``B``; :func:`build_network` assembles the same modules into a whole
:class:`~nas.supernet.static.StaticNet`, structurally identical to ``Supernet(space).extract(arch)``
(tested), for end-to-end measurements that need no supernet.

:func:`predict_latency` turns a table into predicted end-to-end latencies of architectures (the sum
of unit medians, then the table's calibration). :func:`latency_cost_rule` gives the same numbers
as an additive per-unit cost for :class:`nas.spaces.tables.GenomeTables` (vectorised search).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nas.arch import Architecture, Stage
from nas.blocks.registry import kind_names
from nas.costs import unit_params
from nas.errors import IncompatibleFileError
from nas.latency.table import LatencyTable
from nas.precision import FP32, INT8, PRECISIONS
from nas.spaces.cells import CostRule, space_cells
from nas.spaces.ops import stage_layer_choices
from nas.spaces.schema import SearchSpace
from nas.supernet import static
from nas.units import DEQUANT, QUANT, Unit, arch_keys, arch_units, boundary_key, unit_key

# unit kinds (the text before a key's first ':'): the network's own units and every block kind.
# The first six keep the order files and fitted models were written in (indices into it are
# stored, e.g. by nas.latency.fewshot); kinds registered later follow in registry order.
_FIRST_UNIT_KINDS: tuple[str, ...] = ("stem", "conv", "trans", "attn", "mixer", "head")
UNIT_KINDS: tuple[str, ...] = (
    *_FIRST_UNIT_KINDS, *(k for k in kind_names() if k not in _FIRST_UNIT_KINDS)
)
Builder = Callable[[], tuple[nn.Module, torch.Tensor]]


@dataclass(frozen=True)
class _Where:
    """Where a unit occurs: enough to rebuild a subnet that contains it."""

    resolution: int
    stage: int = -1  # -1: the stem; len(stages): the head
    prev_width: int | None = None  # input width of a first slot or of the head (None: any)
    width: int | None = None
    layer_index: int = 0  # index into stage_layer_choices(stage)
    position: int = 0  # 0: first slot of the stage, 1: a later slot


def _walk(space: SearchSpace) -> Iterator[tuple[Unit, _Where]]:
    """Every (unit, where) reachable in ``space``, in a fixed order (duplicates included): the
    units of every cell of :func:`nas.spaces.cells.space_cells`."""
    cells = space_cells(space)
    n = len(space.stages)
    for index, units in cells.walk():
        resolution = space.resolutions[index.res]
        if index.stage < 0:
            where = _Where(resolution)
        elif index.stage == n:
            where = _Where(resolution, n, space.stages[-1].widths[index.w_in])
        else:
            prev = cells.input_widths(index.stage)[index.w_in] if index.position == 0 else None
            width = space.stages[index.stage].widths[index.w_out]
            where = _Where(resolution, index.stage, prev, width, index.choice, index.position)
        for unit in units:
            yield unit, where


def space_units(space: SearchSpace) -> dict[str, Unit]:
    """Every distinct unit reachable in ``space`` by key (stem, layers, transitions, head)."""
    out: dict[str, Unit] = {}
    for unit, _ in _walk(space):
        out.setdefault(unit.key, unit)
    return out


def space_keys(space: SearchSpace) -> list[str]:
    """The latency-table keys of ``space`` (what ``nas profile`` measures), in a fixed order."""
    return list(space_units(space))


def boundary_keys(space: SearchSpace) -> list[str]:
    """Every quantize/dequantize boundary key a subnet of ``space`` can contain, in fixed order."""
    seen: dict[str, None] = {}
    for index, units in space_cells(space).walk():
        first = units[0]  # a layer's transition and block share its precision
        for kind in (QUANT,) if index.stage < 0 else (QUANT, DEQUANT):  # the input is float
            seen.setdefault(boundary_key(kind, first.in_channels, first.size), None)
    seen.setdefault(boundary_key(DEQUANT, space.num_classes, 1), None)
    return list(seen)


def int8_unit_keys(space: SearchSpace) -> list[str]:
    """``<key>@int8`` for every unit of ``space``."""
    return [unit_key(u, INT8) for u in space_units(space).values()]


def precision_keys(space: SearchSpace, precisions: Sequence[str] = (FP32,)) -> list[str]:
    """The table keys ``nas profile --precisions`` measures: every unit at each precision, plus
    the boundaries when int8 is among them (fp32 keys first, unchanged)."""
    keys = [u.key for u in space_units(space).values()]
    if INT8 in precisions:
        keys += boundary_keys(space) + int8_unit_keys(space)
    return keys


def all_precision_keys(space: SearchSpace) -> set[str]:
    """Every key any ``--precisions`` could put in a table of ``space`` (what is not stale)."""
    return set(precision_keys(space, PRECISIONS))


def witness_archs(space: SearchSpace) -> dict[str, Architecture]:
    """For every key of the space, a subnet whose units include it (proof it is reachable)."""
    out: dict[str, Architecture] = {}
    for unit, where in _walk(space):
        if unit.key not in out:
            out[unit.key] = _arch_at(space, where)
    return out


def _arch_at(space: SearchSpace, where: _Where) -> Architecture:
    n = len(space.stages)
    stages = []
    for i, spec in enumerate(space.stages):
        choices = stage_layer_choices(spec)
        width = spec.widths[0]
        depth = spec.depths[0]
        layers = [choices[0]] * depth
        feeds = i == where.stage - 1 or (where.stage == n and i == n - 1)
        if feeds and where.prev_width is not None:
            width = where.prev_width  # the stage feeding the unit's stage (or the head)
        if i == where.stage:
            width = where.width
            depth = min(d for d in spec.depths if d > where.position)
            layers = [choices[0]] * depth
            layers[where.position] = choices[where.layer_index]
        stages.append(Stage(width=int(width), layers=tuple(layers)))
    return Architecture(resolution=where.resolution, stages=tuple(stages))


def unit_kind(key: str) -> str:
    """The kind of a unit key: the text before its first ``:`` (``conv``, ``attn``, ...)."""
    return key.split(":", 1)[0]


# ----- modules ------------------------------------------------------------------------------


def unit_module(unit: Unit) -> nn.Module:
    """The static module that runs ``unit`` (same classes as ``Supernet.extract``), torch init."""
    return unit.module()


def unit_input_shape(unit: Unit, batch: int = 1) -> tuple[int, ...]:
    """Shape of the unit's input: ``(B, C, H, W)``."""
    return (int(batch), unit.in_channels, unit.size, unit.size)


def randomize_(module: nn.Module, rng: np.random.Generator) -> nn.Module:
    """Overwrite every parameter and BatchNorm statistic with seeded random values, in place.

    Weights of dimension >= 2 get N(0, 1/fan_in) (activations keep their scale, so no denormals
    or overflows change timings), biases and shifts small normals, norm scales and BN variances
    values around 1. Same generator state, same weights.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                values = rng.standard_normal(p.shape) / np.sqrt(max(fan_in, 1))
            elif name.endswith("weight"):
                values = 1.0 + 0.1 * rng.standard_normal(p.shape)
            else:
                values = 0.1 * rng.standard_normal(p.shape)
            p.copy_(torch.as_tensor(values, dtype=p.dtype))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.as_tensor(0.1 * rng.standard_normal(n)))
                m.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, n)))
    return module


def example_input(shape: Sequence[int], rng: np.random.Generator) -> torch.Tensor:
    """A float32 standard-normal tensor of ``shape`` drawn from ``rng``."""
    return torch.as_tensor(rng.standard_normal(tuple(shape)), dtype=torch.float32)


def build_unit(
    unit: Unit, batch: int = 1, rng: np.random.Generator | None = None
) -> tuple[nn.Module, torch.Tensor]:
    """``(module in eval mode, example input)`` for one unit, weights and input from ``rng``."""
    rng = rng if rng is not None else np.random.default_rng(0)
    module = randomize_(unit_module(unit), rng).eval()
    return module, example_input(unit_input_shape(unit, batch), rng)


def unit_builders(
    space: SearchSpace, batch: int = 1, seed: int = 0
) -> dict[str, Callable[[], tuple[nn.Module, torch.Tensor]]]:
    """Per key of the space, a builder ``() -> (module, input)`` for :func:`fill_missing`.

    Each key's weights come from its own generator, ``default_rng([seed, index])`` with the key's
    index in :func:`space_keys` order, so a builder gives the same module whatever else is built.
    """
    units = space_units(space)

    def builder(unit: Unit, index: int) -> Builder:
        return lambda: build_unit(unit, batch, np.random.default_rng([seed, index]))

    return {key: builder(unit, i) for i, (key, unit) in enumerate(units.items())}


def arch_modules(space: SearchSpace, arch: Architecture) -> list[tuple[Unit, nn.Module]]:
    """Units of ``arch`` in execution order, each with its (torch-initialised) static module."""
    return [(u, unit_module(u)) for u in arch_units(space, arch)]


def build_network(
    space: SearchSpace,
    arch: Architecture,
    batch: int = 1,
    rng: np.random.Generator | None = None,
) -> tuple[static.StaticNet, torch.Tensor]:
    """The whole static subnet ``arch`` (same structure as ``Supernet(space).extract(arch)``),
    with seeded random weights, in eval mode, and an example input of batch ``batch``."""
    space.validate(arch)
    rng = rng if rng is not None else np.random.default_rng(0)
    mods = arch_modules(space, arch)
    net = static.StaticNet(mods[0][1], [m for _, m in mods[1:-1]], mods[-1][1], arch=arch.to_str())
    randomize_(net, rng).eval()
    return net, example_input((int(batch), space.in_channels, arch.resolution, arch.resolution), rng)


# ----- prediction ---------------------------------------------------------------------------


def check_table(table: LatencyTable, space: SearchSpace) -> None:
    """Refuse a table profiled for another space (by hash), naming both."""
    if table.meta.space_hash != space.hash():
        raise IncompatibleFileError(
            f"latency table for space {table.meta.space_name!r} (hash {table.meta.space_hash}) "
            f"cannot predict space {space.name!r} (hash {space.hash()}); profile this space with "
            f"'nas profile --space {space.source or space.name}'"
        )


def arch_features(space: SearchSpace, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
    """Calibration features a table cannot get from keys alone: ``params`` (parameter count,
    the same number as ``nas.costs.costs(space, arch).params``) per architecture."""
    return {
        "params": np.array(
            [sum(unit_params(u) for u in arch_units(space, a)) for a in archs], dtype=np.float64
        )
    }


def predict_latency(
    table: LatencyTable, space: SearchSpace, archs: Sequence[Architecture]
) -> np.ndarray:
    """Predicted end-to-end latency (ms) of each architecture: the sum of its unit medians, then
    the table's calibration if fitted. Every missing key of every architecture is named at once
    (:class:`~nas.latency.table.MissingKeysError`); a table of another space is refused."""
    check_table(table, space)
    keys = [arch_keys(space, a) for a in archs]
    return table.predict_from_keys(keys, extra_features=arch_features(space, archs))


ADDITIVE_FEATURES = frozenset({"lut_sum", "n_units", "params"}
                              | {f"n_{k}" for k in (*UNIT_KINDS, QUANT, DEQUANT)}
                              | {f"int8_excess_{k}" for k in UNIT_KINDS})


def unit_cost_ms(table: LatencyTable, precision: str = FP32) -> Callable[[Unit], float]:
    """Per-unit calibrated cost (ms) at ``precision`` (the unit's ``@int8`` entry for int8) such
    that the sum over an architecture's units equals :func:`predict_latency` minus the
    calibration's intercept and the precision boundaries' costs (exact for the linear calibration
    features ``lut_sum``, ``n_units``, ``n_<kind>``, ``params`` and ``int8_excess_<kind>``, all
    sums over units). A calibration on any other feature is refused
    (:class:`IncompatibleFileError`)."""
    cal = table.calibration
    coef = dict(zip(cal.features, cal.coef)) if cal is not None else {"lut_sum": 1.0}
    unknown = sorted(set(coef) - ADDITIVE_FEATURES)
    if unknown:
        raise IncompatibleFileError(
            f"the table's calibration uses features {unknown} that are not per-unit additive"
        )

    def cost(unit: Unit) -> float:
        key = unit.key
        ms = float(table.lookup([unit_key(unit, precision)])[0])
        excess = coef.get(f"int8_excess_{unit_kind(key)}", 0.0)
        if precision == INT8 and excess:
            excess *= ms - float(table.lookup([unit_key(unit, FP32)])[0])
        else:
            excess = 0.0
        return (
            coef.get("lut_sum", 0.0) * ms
            + coef.get("n_units", 0.0)
            + coef.get(f"n_{unit_kind(key)}", 0.0)
            + coef.get("params", 0.0) * unit_params(unit)
            + excess
        )

    return cost


def latency_cost_rule(table: LatencyTable, space: SearchSpace) -> CostRule:
    """The table's latency as a cost: THE builder every search uses (the vectorised genome tables
    of :class:`~nas.spaces.tables.GenomeTables`, the MILP of :mod:`nas.search.mp`,
    :class:`nas.search.space_problem.TableLatency`).

    Per unit, its calibrated cost at its precision (:func:`unit_cost_ms`, one table per precision
    the space allows); the calibration's intercept is the offset; ``evaluate`` is
    :func:`predict_latency`; with int8 in the space, ``boundary`` costs each quantize/dequantize
    boundary key (:func:`boundary_cost_ms`), so ``additive_value`` equals ``predict_latency`` for
    every architecture. The MILP linearises the boundaries (:mod:`nas.search.mp_precision`);
    genome tables, which sum single units, cannot (they refuse such a rule). Refuses a table of another space, one
    missing any key the space's subnets can use (all named), and a calibration that is not a sum
    over units."""
    check_table(table, space)
    missing = table.missing(precision_keys(space, space.precisions))
    if missing:
        from nas.latency.table import MissingKeysError

        raise MissingKeysError(missing, table=f"latency table ({table.meta.space_name})")
    per_precision = {p: unit_cost_ms(table, p) for p in space.precisions}
    cal = table.calibration
    intercept = float(cal.intercept) if cal is not None else 0.0

    def evaluate(space_: SearchSpace, arch: Architecture) -> float:
        return float(predict_latency(table, space_, [arch])[0])

    return CostRule(per_precision[FP32], "sum", offset=intercept, evaluate=evaluate,
                    at_precision=per_precision.__getitem__,
                    boundary=boundary_cost_ms(table) if INT8 in space.precisions else None)


def boundary_cost_ms(table: LatencyTable) -> Callable[[str], float]:
    """Calibrated cost (ms) of one precision boundary key, as :func:`unit_cost_ms` costs a unit
    (a boundary key counts in ``lut_sum``, ``n_units`` and ``n_quant``/``n_dequant``)."""
    cal = table.calibration
    coef = dict(zip(cal.features, cal.coef)) if cal is not None else {"lut_sum": 1.0}

    def cost(key: str) -> float:
        return (coef.get("lut_sum", 0.0) * float(table.lookup([key])[0])
                + coef.get("n_units", 0.0) + coef.get(f"n_{unit_kind(key)}", 0.0))

    return cost
