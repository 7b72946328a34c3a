"""The MILP formulation of a search space: variables, structural rows, unit groups, decoding.

Variables (all in one vector; binary unless said otherwise):

- ``y[r]``: resolution one-hot.
- ``w[s, k]``: width one-hot of stage ``s``; ``d[s, k]``: depth one-hot of stage ``s``.
- ``x[s, j, c]``: layer choice ``c`` (an entry of ``stage_layer_choices``) in slot ``j`` of stage ``s``.
  ``sum_c x[s, j, c] = a[s, j]`` where ``a[s, j] = sum_{k: depth_k > j} d[s, k]`` is 1 iff the slot
  is active, so inactive slots choose nothing.
- ``q[s, r, w]`` (in [0, 1], declared binary: see :attr:`Formulation.integrality`): stage ``s`` has width ``w`` at resolution ``r``, with
  ``sum_w q[s, r, .] = y[r]`` and ``sum_r q[s, ., w] = w[s, w]``: a transportation polytope whose
  marginals are one-hot, hence the indicator of the one (resolution, width) pair.
- ``z[s, j, (c, r, w_in, w_out)]`` (in [0, 1], declared binary): slot ``j`` of stage ``s`` runs choice ``c``
  at resolution ``r`` with input width ``w_in`` (the previous stage's width for ``j = 0``, the
  stage's own width after) and output width ``w_out``. Linked by marginals::

      sum_{r, w_in, w_out} z[c, .]  = x[s, j, c]          (one row per choice)
      sum_{c, w_in}        z[., r, ., w] <= q[s, r, w]     (one row per resolution and width;
                                                           "=" for slots every depth keeps)
      sum_{c, w_out}       z[., r, w, .] <= q[s-1, r, w]   (first slot of a stage after the first)

  When the slot is active, ``x``, ``y`` and ``w`` are one-hot, so every marginal of ``z`` is a point
  mass and ``z`` is the indicator of the one (choice, resolution, widths) cell the network runs
  (zero everywhere when inactive). This is an exact linearisation of the AND of the one-hots, so
  ``z`` and ``q`` could stay continuous; they are declared binary all the same, because HiGHS's
  presolve mishandles the mix (:attr:`Formulation.integrality`). Linking
  ``z`` to the joint ``q`` rather than to ``y`` and ``w`` separately gives a tighter LP relaxation
  (a fractional point cannot pair one slot's resolution with another slot's width); measured
  about 1.2x faster on hybrid-cifar and ofa-mbv3 with the DeepMAD objective (10 FLOPs bounds).
  Adding symmetry-breaking rows for the interchangeable non-first slots of a stage measured no
  faster.
- The head at resolution ``r`` after the last stage's width ``w`` is placed by ``q[last, r, w]``.

A *unit group* is a variable that, when it is 1, places some units in the network: ``y[r]`` places
the stem at ``r``; ``z`` the units of one layer slot (a transition and an attention/mixer unit, or
one conv unit); ``q[last]`` the head. Every architecture runs exactly one group per active slot plus the
stem and the head, so any additive per-unit cost is exactly ``cost_vector @ v``, and the network's
peak activation memory is the maximum of the groups' peaks (see :mod:`nas.memory`).

One formulation per space; solving (bounds, objectives, cuts) lives in :mod:`nas.search.mp`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from nas.arch import Architecture, Stage
from nas.memory import BYTES_PER_ELEMENT, unit_graph
from nas.precision import FP32
from nas.spaces.cells import CostRule, space_cells
from nas.spaces.ops import stage_layer_choices
from nas.spaces.schema import SearchSpace
from nas.units import Unit


@dataclass(frozen=True)
class UnitGroup:
    """Column ``col`` places ``units`` (one cell of :mod:`nas.spaces.cells`, in order)."""

    col: int
    units: tuple[Unit, ...]

    @property
    def input_numel(self) -> int:
        return self.units[0].input_numel()

    def peak_bytes(self) -> int:
        """Peak activation bytes while these units run (their input alive from the first one)."""
        return unit_graph(list(self.units), self.input_numel).peak_elements() * BYTES_PER_ELEMENT


@dataclass(frozen=True)
class SlotCell:
    """One ``z`` column: slot (stage, position) runs choice index ``choice`` at resolution index
    ``res``, input-width index ``w_in`` (into the previous stage's widths for position 0, else into
    the stage's own) and output-width index ``w_out``."""

    col: int
    choice: int
    res: int
    w_in: int
    w_out: int


class Formulation:
    """Variables and structural constraints of the MILP over ``space`` (see the module docstring)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._n = 0
        res = space.resolutions
        self.res_cols = self._take(len(res))
        self.width_cols: list[np.ndarray] = []
        self.depth_cols: list[np.ndarray] = []
        self.choice_cols: list[list[np.ndarray]] = []
        self.choices = [stage_layer_choices(stage) for stage in space.stages]
        for s, stage in enumerate(space.stages):
            self.width_cols.append(self._take(len(stage.widths)))
            self.depth_cols.append(self._take(len(stage.depths)))
            self.choice_cols.append(
                [self._take(len(self.choices[s])) for _ in range(stage.max_depth)]
            )
        self.n_binary = self._n
        self.pair_cols = [
            self._take(len(res) * len(stage.widths)).reshape(len(res), -1) for stage in space.stages
        ]
        self.cells: list[list[list[SlotCell]]] = []
        self.groups: list[UnitGroup] = []
        space_cell_units = space_cells(space)
        for r_i in range(len(res)):
            self.groups.append(UnitGroup(int(self.res_cols[r_i]), space_cell_units.stem[r_i]))
        for s, stage in enumerate(space.stages):
            n_in = len(self.input_widths(s))
            per_slot = []
            for j in range(stage.max_depth):
                cells = []
                for c in range(len(self.choices[s])):
                    for r_i in range(len(res)):
                        for wo_i in range(len(stage.widths)):
                            for wi_i in range(n_in) if j == 0 else (wo_i,):
                                col = self._take(1)[0]
                                cells.append(SlotCell(int(col), c, r_i, wi_i, wo_i))
                                units = space_cell_units.slot(s, j, r_i, wi_i, wo_i, c)
                                self.groups.append(UnitGroup(int(col), units))
                per_slot.append(cells)
            self.cells.append(per_slot)
        self.head_cols = self.pair_cols[-1]
        for (r_i, w_i), units in space_cell_units.head.items():
            self.groups.append(UnitGroup(int(self.head_cols[r_i, w_i]), units))
        self.precision = None
        if space.searches_precision:
            from nas.search.mp_precision import PrecisionColumns

            self.precision = PrecisionColumns(self, self._take)
        self.n_vars = self._n
        self._structure = self._build_structure()

    # -- layout ------------------------------------------------------------------------------
    def _take(self, n: int) -> np.ndarray:
        cols = np.arange(self._n, self._n + n)
        self._n += n
        return cols

    def input_widths(self, stage_index: int) -> tuple[int, ...]:
        """Widths that can enter stage ``stage_index`` (the previous stage's, or the stem's)."""
        return space_cells(self.space).input_widths(stage_index)

    @property
    def integrality(self) -> np.ndarray:
        """1 for every variable: the one-hots and the product variables ``z`` and ``q``.

        The product variables are 0/1 at every feasible point whatever they are declared, and were
        declared continuous (fewer integer variables for the branch and bound). HiGHS's MIP presolve
        (SciPy 1.17.1) then returned a suboptimal point reported optimal with gap 0: 1 in 1,500
        random linear objectives under random bounds on hybrid-tiny (found by
        tests/test_search_mp.py; ERGO-Code/HiGHS #3043 and #3073 are of the same kind, a continuous
        variable beside integer ones). Declared binary: 0 in 1,500 and as fast (search_mp.md)."""
        return np.ones(self.n_vars)

    @property
    def n_rows(self) -> int:
        return self._structure[0].shape[0]

    def structure(self) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
        """``(A, lo, hi)`` of the structural rows ``lo <= A v <= hi``."""
        return self._structure

    def _build_structure(self) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
        rows: list[tuple[list[int], list[float], float, float]] = []

        def row(cols: Iterable[int], vals: Sequence[float], lo: float, hi: float) -> None:
            rows.append((list(map(int, cols)), list(map(float, vals)), lo, hi))

        def one_hot(cols: np.ndarray) -> None:
            row(cols, [1.0] * len(cols), 1.0, 1.0)

        one_hot(self.res_cols)
        for s, stage in enumerate(self.space.stages):
            one_hot(self.width_cols[s])
            one_hot(self.depth_cols[s])
            for j in range(stage.max_depth):
                # sum_c x[s, j, c] - a[s, j] = 0, a = sum of the depth indicators with depth > j
                active = [self.depth_cols[s][k] for k, d in enumerate(stage.depths) if d > j]
                x = self.choice_cols[s][j]
                row([*x, *active], [1.0] * len(x) + [-1.0] * len(active), 0.0, 0.0)
                cells = self.cells[s][j]
                for c, col in enumerate(x):
                    members = [cell.col for cell in cells if cell.choice == c]
                    row([*members, col], [1.0] * len(members) + [-1.0], 0.0, 0.0)
                always = j < stage.depths[0]
                q = self.pair_cols[s]
                for (r_i, w_i), col in np.ndenumerate(q):
                    members = [cell.col for cell in cells if (cell.res, cell.w_out) == (r_i, w_i)]
                    lo = 0.0 if always else -np.inf
                    row([*members, col], [1.0] * len(members) + [-1.0], lo, 0.0)
                if j == 0 and s > 0 and len(self.width_cols[s - 1]) > 1:
                    for (r_i, w_i), col in np.ndenumerate(self.pair_cols[s - 1]):
                        members = [
                            cell.col for cell in cells if (cell.res, cell.w_in) == (r_i, w_i)
                        ]
                        row([*members, col], [1.0] * len(members) + [-1.0], -np.inf, 0.0)
            q = self.pair_cols[s]
            for r_i, col in enumerate(self.res_cols):
                row([*q[r_i], col], [1.0] * q.shape[1] + [-1.0], 0.0, 0.0)
            for w_i, col in enumerate(self.width_cols[s]):
                row([*q[:, w_i], col], [1.0] * q.shape[0] + [-1.0], 0.0, 0.0)
        if self.precision is not None:
            rows += self.precision.rows()
        return _to_sparse(rows, self.n_vars)

    # -- vectors -----------------------------------------------------------------------------
    def cost_vector(self, unit_cost: Callable[[Unit], float]) -> np.ndarray:
        """Coefficients of an additive per-unit cost: ``v @ vector`` is the sum over the units."""
        out = np.zeros(self.n_vars)
        for g in self.groups:
            out[g.col] = sum(float(unit_cost(u)) for u in g.units)
        return out

    def rule_vector(self, rule: CostRule) -> np.ndarray:
        """Coefficients of a summed cost rule at every precision: its fp32 cost on the unit
        groups, plus (with precision genes) its int8 difference and its precision boundaries
        (:mod:`nas.search.mp_precision`)."""
        out = self.cost_vector(rule.unit_cost_at(FP32))
        if self.precision is not None:
            self.precision.add_costs(out, rule.unit_cost_at, rule.boundary)
        return out

    def peak_vector(self) -> np.ndarray:
        """Peak activation bytes of each unit group's column (0 for the other columns)."""
        out = np.zeros(self.n_vars)
        for g in self.groups:
            out[g.col] = g.peak_bytes()
        return out

    def families(self) -> list[np.ndarray]:
        """Columns of which exactly one is 1 in every network (stem; each active slot; head)."""
        out = [self.res_cols]
        for per_slot in self.cells:
            out += [np.array([cell.col for cell in cells]) for cells in per_slot]
        out.append(self.head_cols.ravel())
        return out

    def group_mask(self) -> np.ndarray:
        """True on the columns that are unit groups."""
        out = np.zeros(self.n_vars, dtype=bool)
        out[[g.col for g in self.groups]] = True
        return out

    # -- architectures <-> vectors ----------------------------------------------------------
    def decode(self, v: np.ndarray) -> Architecture:
        """The architecture of a (near-)integral solution vector."""
        space = self.space
        resolution = space.resolutions[int(np.argmax(v[self.res_cols]))]
        stages = []
        for s, stage in enumerate(space.stages):
            width = stage.widths[int(np.argmax(v[self.width_cols[s]]))]
            depth = stage.depths[int(np.argmax(v[self.depth_cols[s]]))]
            layers = tuple(
                self.choices[s][int(np.argmax(v[self.choice_cols[s][j]]))] for j in range(depth)
            )
            stages.append(Stage(width=width, layers=layers))
        arch = Architecture(resolution=resolution, stages=tuple(stages))
        if self.precision is not None:
            arch = arch.with_precisions(self.precision.precisions(v, [s.depth for s in stages]))
        return arch

    def binary_ones(self, arch: Architecture) -> list[int]:
        """Binary columns equal to 1 for ``arch`` (resolution, widths, depths, active choices)."""
        space = self.space
        space.validate(arch)
        ones = [int(self.res_cols[space.resolutions.index(arch.resolution)])]
        for s, (spec, stage) in enumerate(zip(space.stages, arch.stages)):
            ones.append(int(self.width_cols[s][spec.widths.index(stage.width)]))
            ones.append(int(self.depth_cols[s][spec.depths.index(stage.depth)]))
            for j, layer in enumerate(stage.layers):
                ones.append(int(self.choice_cols[s][j][self.choices[s].index(layer)]))
        if self.precision is not None:
            ones += self.precision.ones(arch)
        return ones

    def no_good(self, ones: list[int]) -> tuple[np.ndarray, float]:
        """Row and upper bound excluding exactly the architecture whose binary ones are ``ones``:
        +1 on them, -1 on the precision columns that are 0 in it (an fp32 gene turned int8 is
        another architecture), at most ``len(ones) - 1``."""
        row = np.zeros(self.n_vars)
        row[ones] = 1.0
        if self.precision is not None:
            zeros = sorted(set(self.precision.binary_cols) - set(ones))
            row[zeros] = -1.0
        return row, len(ones) - 1.0

    def point(self, arch: Architecture) -> np.ndarray:
        """The full 0/1 vector of ``arch`` (the unique feasible vector that decodes to it)."""
        space = self.space
        v = np.zeros(self.n_vars)
        v[self.binary_ones(arch)] = 1.0
        r_i = space.resolutions.index(arch.resolution)
        prev_w = 0
        for s, (spec, stage) in enumerate(zip(space.stages, arch.stages)):
            wo = spec.widths.index(stage.width)
            v[self.pair_cols[s][r_i, wo]] = 1.0
            for j, layer in enumerate(stage.layers):
                c = self.choices[s].index(layer)
                wi = prev_w if j == 0 else wo
                (cell,) = [
                    cell
                    for cell in self.cells[s][j]
                    if (cell.choice, cell.res, cell.w_in, cell.w_out) == (c, r_i, wi, wo)
                ]
                v[cell.col] = 1.0
            prev_w = wo
        if self.precision is not None:
            self.precision.set_point(v, arch)
        return v


def _to_sparse(
    rows: list[tuple[list[int], list[float], float, float]], n_vars: int
) -> tuple[sparse.csr_array, np.ndarray, np.ndarray]:
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for cols, vals, _, _ in rows:
        indices.extend(cols)
        data.extend(vals)
        indptr.append(len(indices))
    a = sparse.csr_array((data, indices, indptr), shape=(len(rows), n_vars))
    lo = np.array([r[2] for r in rows])
    hi = np.array([r[3] for r in rows])
    return a, lo, hi
