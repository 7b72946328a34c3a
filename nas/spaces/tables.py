"""Vectorised costs and one-hot encodings over batches of genomes.

Every unit of a subnet depends only on its cell (resolution, previous stage width, stage width,
layer choice, whether it is the stage's first slot; :mod:`nas.spaces.cells`), so per-cell tables
precomputed once turn the cost of n genomes into a few numpy gathers: additive costs (MACs, params, table latency) are sums over
slots, peak memory is a max. ``GenomeTables`` gives exactly what :mod:`nas.costs` gives
architecture by architecture (tested), thousands of times faster, which is what makes
predictor-driven evolution cheap; :class:`predictors.genome_onehot.GenomeOneHot` does the same
for the one-hot encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nas.precision import FP32
from nas.spaces.cells import CostRule, cost_rules, space_cells
from nas.spaces.ops import cardinalities, precision_offset
from nas.spaces.schema import SearchSpace

__all__ = ["CostRule", "GenomeTables", "default_cost_rules"]


def default_cost_rules() -> dict[str, CostRule]:
    """MACs, params (summed) and peak activation memory bytes (max over units)."""
    return cost_rules()


@dataclass(frozen=True)
class _Table:
    stem: np.ndarray  # (R,)
    first: list[np.ndarray]  # per stage (R, W_prev, W, C)
    rest: list[np.ndarray]  # per stage (R, W, C)
    head: np.ndarray  # (R, W_last)


def _build(space: SearchSpace, rule: CostRule, precision: str = FP32) -> _Table:
    cells = space_cells(space)
    n_res = len(space.resolutions)
    stem = np.array([rule.fold(units, precision) for units in cells.stem])
    first, rest = [], []
    for i, stage in enumerate(space.stages):
        shape = (len(cells.input_widths(i)), len(stage.widths), len(cells.choices[i]))
        t0 = np.zeros((n_res, *shape))
        t1 = np.zeros((n_res, *shape[1:]))
        for first_index, units in cells.first[i].items():
            t0[first_index] = rule.fold(units, precision)
        for rest_index, units in cells.rest[i].items():
            t1[rest_index] = rule.fold(units, precision)
        first.append(t0)
        rest.append(t1)
    head = np.zeros((n_res, len(space.stages[-1].widths)))
    for head_index, units in cells.head.items():
        head[head_index] = rule.fold(units, precision)
    return _Table(stem, first, rest, head)


class GenomeTables:
    """Per-choice cost tables of a space; ``costs(genes)`` evaluates a batch of genomes at once.

    A rule that depends on precision (``CostRule.at_precision``) in a space with precision genes
    has one table per allowed precision, and each unit's value is read from the table of its gene.
    """

    def __init__(self, space: SearchSpace, rules: Mapping[str, CostRule] | None = None) -> None:
        self.space = space
        self.rules = dict(rules or default_cost_rules())
        self.cardinalities = cardinalities(space)
        self.offsets: list[int] = []
        pos = 1
        for stage in space.stages:
            self.offsets.append(pos)
            pos += 2 + stage.max_depth
        self.precision_offset = precision_offset(space)
        with_boundaries = [n for n, r in self.rules.items() if r.boundary is not None]
        if with_boundaries and space.searches_precision:
            raise ValueError(f"cost rule(s) {with_boundaries} have precision-boundary costs, "
                             "which depend on two neighbouring units; genome tables sum single "
                             "units (decode and evaluate the rule instead)")
        self._tables = {
            name: [_build(space, rule, p) for p in self._precisions(rule)]
            for name, rule in self.rules.items()
        }

    def _precisions(self, rule: CostRule) -> tuple[str, ...]:
        if rule.at_precision is None or not self.space.searches_precision:
            return (FP32,)
        return self.space.precisions

    def _precision_genes(self, genes: np.ndarray) -> list[np.ndarray]:
        """Per unit group (stem, each slot of each stage, head), the (n,) precision indices."""
        n = len(genes)
        if not self.space.searches_precision:
            return [np.zeros(n, dtype=np.int64)] * (2 + sum(s.max_depth for s in self.space.stages))
        o = self.precision_offset
        return [genes[:, o + k] for k in range(genes.shape[1] - o)]

    def active_slots(self, genes: np.ndarray) -> list[np.ndarray]:
        """Per stage, a boolean (n, max_depth) mask of active slots."""
        out = []
        for i, stage in enumerate(self.space.stages):
            depth = np.asarray(stage.depths)[genes[:, self.offsets[i] + 1]]
            out.append(np.arange(stage.max_depth)[None, :] < depth[:, None])
        return out

    def costs(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        """Costs of a batch of genomes (n, g): {name: (n,)}."""
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        active = self.active_slots(genes)
        precisions = self._precision_genes(genes)
        rows = np.arange(len(genes))
        out = {}
        for name, rule in self.rules.items():
            tables = self._tables[name]

            def pick(values: list[np.ndarray], group: int) -> np.ndarray:
                """Each genome's value from the table of its precision gene for ``group``."""
                if len(values) == 1:
                    return values[0]
                return np.stack(values)[precisions[group], rows]

            join = np.add if rule.combine == "sum" else np.maximum
            res = genes[:, 0]
            total = pick([t.stem[res] for t in tables], 0).astype(np.float64)
            prev = np.zeros(len(genes), dtype=np.int64)
            group = 1
            for i, stage in enumerate(self.space.stages):
                o = self.offsets[i]
                w = genes[:, o]
                first = [t.first[i][res, prev, w, genes[:, o + 2]] for t in tables]
                total = join(total, pick(first, group))
                for j in range(1, stage.max_depth):
                    value = pick([t.rest[i][res, w, genes[:, o + 2 + j]] for t in tables], group + j)
                    total = np.where(active[i][:, j], join(total, value), total)
                prev = w
                group += stage.max_depth
            out[name] = join(total, pick([t.head[res, prev] for t in tables], group)) + rule.offset
        return out
