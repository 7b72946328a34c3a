"""Per-layer precision in the MILP (spaces with ``precisions: [fp32, int8]``), linearised exactly.

Variables added to :class:`nas.search.mp_model.Formulation` (after its own):

- ``p[g]`` (binary): precision gene ``g`` (stem, every slot of every stage, head; genome order) is
  int8. An inactive slot is fp32 (``p <= a``), as the genome decodes it.
- ``e[g]`` (continuous): the precision of the tensor LEAVING gene ``g``'s position: ``p[g]`` for an
  active slot, the previous ``e`` for an inactive one (``e = p + m``, ``m = (1 - a) AND e_prev``),
  so a skipped slot passes its predecessor's precision on.
- ``u[col] = col AND p[g]`` for every unit-group column of gene ``g``: the group runs at int8; a
  cost's int8 part is ``sum (cost_int8 - cost_fp32) * u`` beside ``cost_fp32 * col``.
- ``tq[g] = p[g] AND NOT e_prev``, ``tdq[g] = a[g] AND NOT p[g] AND e_prev`` (a quantize or a
  dequantize enters gene ``g``; the network's input is float) and ``vq[col] = col AND tq``,
  ``vdq[col] = col AND tdq``: the boundary's cost depends on the tensor entering the group, known
  from its column (resolution and widths). The logits leave an int8 head through a dequantize,
  ``p[head]`` itself.

Every AND of 0/1 values is the usual exact linearisation (``x <= each factor``, ``x >= sum of the
factors - (k - 1)``), so at every integral point each variable IS the product, whatever the sign
of the costs on it: the MILP's additive costs are exact for mixed precision, boundaries included
(checked against the table's prediction of every emitted architecture, and against enumeration of
hybrid-tiny in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nas.arch import Architecture
from nas.precision import FP32, INT8
from nas.units import DEQUANT, QUANT, Unit, boundary_key

Row = tuple[list[int], list[float], float, float]


@dataclass(frozen=True)
class Gene:
    """One precision gene: its column ``p``, its carry ``e`` and, for a slot that can be
    inactive, the depth columns that make it active (``None``: always active)."""

    p: int
    e: int
    active: tuple[int, ...] | None
    groups: tuple[int, ...]  # unit-group columns it sets the precision of


class PrecisionColumns:
    """The precision part of a formulation (module docstring); built by ``Formulation``."""

    def __init__(self, formulation: object, take: Callable[[int], np.ndarray]) -> None:
        f = formulation
        space = f.space  # type: ignore[attr-defined]
        self.space = space
        genes: list[Gene] = []

        def gene(groups: Sequence[int], active: tuple[int, ...] | None) -> None:
            p, e = (int(c) for c in take(2))
            genes.append(Gene(p, e, active, tuple(int(g) for g in groups)))

        gene(f.res_cols, None)  # type: ignore[attr-defined]
        for s, stage in enumerate(space.stages):
            for j in range(stage.max_depth):
                active = None if j < stage.depths[0] else tuple(
                    int(f.depth_cols[s][k]) for k, d in enumerate(stage.depths) if d > j)  # type: ignore[attr-defined]
                gene([c.col for c in f.cells[s][j]], active)  # type: ignore[attr-defined]
        gene(f.head_cols.ravel(), None)  # type: ignore[attr-defined]
        self.genes = genes
        group_units = {g.col: g.units for g in f.groups}  # type: ignore[attr-defined]
        self.units: dict[int, tuple[Unit, ...]] = group_units
        self.u: dict[int, int] = {}
        self.vq: dict[int, int] = {}
        self.vdq: dict[int, int] = {}
        self.tq: list[int] = []
        self.tdq: list[int] = []
        self.m: list[int] = []
        for g in genes:
            self.tq.append(int(take(1)[0]))
            self.tdq.append(int(take(1)[0]))
            self.m.append(int(take(1)[0]))
            for col in g.groups:
                self.u[col], self.vq[col], self.vdq[col] = (int(c) for c in take(3))

    @property
    def binary_cols(self) -> list[int]:
        return [g.p for g in self.genes]

    def rows(self) -> list[Row]:
        """The linking rows (module docstring)."""
        rows: list[Row] = []

        def add(terms: dict[int, float], lo: float, hi: float) -> None:
            rows.append((list(terms), list(terms.values()), lo, hi))

        def both(x: int, c1: int, c2: int) -> None:
            """``x = c1 AND c2``."""
            add({x: 1.0, c1: -1.0}, -np.inf, 0.0)
            add({x: 1.0, c2: -1.0}, -np.inf, 0.0)
            add({x: 1.0, c1: -1.0, c2: -1.0}, -1.0, np.inf)

        prev: int | None = None  # e of the gene before; None: the network's float input
        for k, g in enumerate(self.genes):
            act = {c: -1.0 for c in g.active or ()}  # -a (a: the sum of the depth indicators)
            p, e, m, tq, tdq = g.p, g.e, self.m[k], self.tq[k], self.tdq[k]
            one = 0.0 if g.active is not None else 1.0  # a is 1 for an always-active gene
            if g.active is not None:
                add({p: 1.0, **act}, -np.inf, 0.0)  # p <= a
            add({e: 1.0, p: -1.0, m: -1.0}, 0.0, 0.0)  # e = p + m
            if g.active is None or prev is None:
                add({m: 1.0}, 0.0, 0.0)
            else:  # m = (1 - a) AND e_prev
                add({m: 1.0, **{c: 1.0 for c in g.active}}, -np.inf, 1.0)
                add({m: 1.0, prev: -1.0}, -np.inf, 0.0)
                add({m: 1.0, **{c: 1.0 for c in g.active}, prev: -1.0}, 0.0, np.inf)
            if prev is None:  # tq = p; tdq = 0
                add({tq: 1.0, p: -1.0}, 0.0, 0.0)
                add({tdq: 1.0}, 0.0, 0.0)
            else:
                # tq = p AND NOT e_prev
                add({tq: 1.0, p: -1.0}, -np.inf, 0.0)
                add({tq: 1.0, prev: 1.0}, -np.inf, 1.0)
                add({tq: 1.0, p: -1.0, prev: 1.0}, 0.0, np.inf)
                # tdq = (a - p) AND e_prev  (a - p is 0/1 since p <= a)
                add({tdq: 1.0, p: 1.0, **act}, -np.inf, one)
                add({tdq: 1.0, prev: -1.0}, -np.inf, 0.0)
                add({tdq: 1.0, p: 1.0, **act, prev: -1.0}, one - 1.0, np.inf)
            for col in g.groups:
                both(self.u[col], col, p)
                both(self.vq[col], col, tq)
                both(self.vdq[col], col, tdq)
            prev = e
        return rows

    # -- costs -------------------------------------------------------------------------------
    def add_costs(self, out: np.ndarray, at_precision: Callable[[str], Callable[[Unit], float]],
                  boundary: Callable[[str], float] | None) -> None:
        """Add a rule's int8 part (and its boundaries' costs) to the cost vector ``out``."""
        fp32, int8 = at_precision(FP32), at_precision(INT8)
        for col, u in self.u.items():
            units = self.units[col]
            out[u] += sum(float(int8(x)) - float(fp32(x)) for x in units)
        if boundary is None:
            return
        for k, g in enumerate(self.genes):
            kinds = ((QUANT, self.vq),) if k == 0 else ((QUANT, self.vq), (DEQUANT, self.vdq))
            for col in g.groups:  # the input is float: no dequantize enters the stem
                first = self.units[col][0]
                for kind, v in kinds:
                    out[v[col]] += boundary(boundary_key(kind, first.in_channels, first.size))
        out[self.genes[-1].p] += boundary(boundary_key(DEQUANT, self.space.num_classes, 1))

    # -- architectures -----------------------------------------------------------------------
    def precisions(self, v: np.ndarray, depths: Sequence[int]) -> list[str]:
        """The active genes' precisions of a solution (stem, active slots, head)."""
        out = [INT8 if v[self.genes[0].p] > 0.5 else FP32]
        k = 1
        for stage, depth in zip(self.space.stages, depths):
            out += [INT8 if v[self.genes[k + j].p] > 0.5 else FP32 for j in range(depth)]
            k += stage.max_depth
        out.append(INT8 if v[self.genes[-1].p] > 0.5 else FP32)
        return out

    def set_point(self, v: np.ndarray, arch: Architecture) -> None:
        """Fill the precision variables of ``arch``'s vector ``v`` (its other columns set)."""
        names = self._names(arch)
        active = [1.0]
        for stage, spec in zip(arch.stages, self.space.stages):
            active += [1.0 if j < stage.depth else 0.0 for j in range(spec.max_depth)]
        active.append(1.0)
        prev = 0.0
        for k, (g, name, a) in enumerate(zip(self.genes, names, active)):
            p = 1.0 if name == INT8 else 0.0
            m = (1.0 - a) * prev
            v[g.p], v[g.e], v[self.m[k]] = p, p + m, m
            v[self.tq[k]] = p * (1.0 - prev)
            v[self.tdq[k]] = a * (1.0 - p) * prev
            for col in g.groups:
                v[self.u[col]] = v[col] * p
                v[self.vq[col]] = v[col] * v[self.tq[k]]
                v[self.vdq[col]] = v[col] * v[self.tdq[k]]
            prev = p + m

    def _names(self, arch: Architecture) -> list[str]:
        names = [arch.stem_precision]
        for stage, spec in zip(arch.stages, self.space.stages):
            names += list(stage.precisions) + [FP32] * (spec.max_depth - stage.depth)
        return [*names, arch.head_precision]

    def ones(self, arch: Architecture) -> list[int]:
        """The ``p`` columns equal to 1 for ``arch``."""
        return [g.p for g, name in zip(self.genes, self._names(arch)) if name == INT8]
