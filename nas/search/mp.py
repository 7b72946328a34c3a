"""Mathematical-programming search: an exact MILP over one-hot layer choices (HiGHS via SciPy).

The formulation (:mod:`nas.search.mp_model`) is one MILP over all resolutions and widths: a layer's
cost depends on its choice, the resolution and its input and output widths, and a continuous
product variable per (choice, resolution, input width, output width) cell carries it exactly. So
FLOPs, MACs, params and any additive per-unit cost (a latency table with an additive calibration) are
exact linear constraints, and peak activation memory, a maximum over units, is exact too: a bound
forbids every cell whose units would exceed it.

Why one MILP over all resolutions rather than one per resolution: the product variables make the
single MILP exact at a modest size (hybrid-cifar 1,743 variables, ofa-mbv3 with 25 resolutions
4,903), and HiGHS branches on the resolution itself. Solving the fixed-resolution MILPs in turn
measured slower on single FLOPs bounds (hybrid-cifar 1.0-1.5 s vs 0.4-0.7 s; ofa-mbv3 3.1-4.2 s
vs 1.9-3.0 s), though faster on one two-knapsack case (FLOPs + params, 3.1 s vs 5.4 s).

What it returns:

- :meth:`MILPSearch.solve`: the optimum, with HiGHS's status and MIP gap (``status == "optimal"``
  means certified within ``mip_rel_gap``);
- :meth:`MILPSearch.top_k`: the k best distinct architectures, by no-good cuts on the binary one-hot
  variables (two solutions with the same resolution, widths, depths and active layers are the same
  architecture; inactive slots choose nothing, so they cannot create duplicates);
- :meth:`MILPSearch.pareto_front`: objective against one cost, by sweeping a bound on that cost
  from its smallest achievable value (under the other constraints) to its value at the optimum.

Every emitted architecture is decoded, validated against the space and re-checked against every
constraint with :mod:`nas.costs` (or the cost's own ``evaluate``); one that breaks a bound after
solver tolerances is cut off and the MILP solved again. Constraints no architecture can meet raise
:class:`InfeasibleError` with the smallest achievable value of each constrained quantity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from tqdm.auto import tqdm

from nas.arch import Architecture
from nas.costs import costs as exact_costs
from nas.errors import UserError
from nas.metrics import canonical, cost_base
from nas.search import feasibility
from nas.spaces.schema import SearchSpace

from .mp_costs import MEMORY, AdditiveCost, builtin_costs
from .mp_model import Formulation
from .mp_objectives import CostObjective, DeepMADObjective, Objective

log = logging.getLogger(__name__)

STATUS = {0: "optimal", 1: "limit", 2: "infeasible", 3: "unbounded", 4: "error"}
DEFAULT_MIP_REL_GAP = 1e-6
MAX_RECHECK_CUTS = 100
_REL_TOL = 1e-9


@dataclass(frozen=True)
class MPSolution:
    """One emitted architecture with its directly computed objective and costs.

    ``mip_gap`` and ``dual_bound`` come from HiGHS (``dual_bound`` in the objective's own sense: an
    upper bound on any better architecture's objective when maximising). ``swept_bound`` is the bound
    of the Pareto sweep that produced it, if any. ``rejected`` counts the solver's proposals that
    failed the re-check before this one (cut off; 0 unless solver tolerances let one through).
    """

    arch: Architecture
    objective: float
    metrics: Mapping[str, float]
    status: str
    mip_gap: float
    dual_bound: float
    seconds: float
    swept_bound: float | None = None
    rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "arch_str": self.arch.to_str(),
            "objective": self.objective,
            "metrics": dict(self.metrics),
            "status": self.status,
            "mip_gap": self.mip_gap,
            "dual_bound": self.dual_bound,
            "seconds": self.seconds,
            "swept_bound": self.swept_bound,
            "rejected": self.rejected,
        }


class InfeasibleError(feasibility.InfeasibleError):
    """No architecture of the space meets every constraint (the MILP's own proof of it).

    ``minima`` holds the smallest achievable value of each constrained quantity over the whole space
    (each on its own), ``bounds`` the requested bounds.
    """

    def __init__(
        self, space: str, bounds: Mapping[str, float], minima: Mapping[str, float]
    ) -> None:
        self.space = space
        self.bounds = dict(bounds)
        self.minima = dict(minima)
        parts = []
        for name, bound in self.bounds.items():
            low = self.minima[name]
            verdict = "unreachable" if low > bound else "reachable alone"
            parts.append(f"{name}<={bound:.6g} (smallest achievable {low:.6g}: {verdict})")
        alone = all(self.minima[n] <= b for n, b in self.bounds.items())
        tail = "; each bound is reachable alone but not all together" if alone else ""
        super().__init__(
            f"no architecture of space {space!r} meets the constraints: {', '.join(parts)}{tail}"
        )


@dataclass
class _Raw:
    """A solver answer: solution vector (None if none), status, gap, bound, seconds."""

    v: np.ndarray | None
    status: str
    message: str
    mip_gap: float
    dual_bound: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def normalize_constraints(constraints: Any) -> dict[str, float]:
    """``{metric: upper bound}`` from a mapping, or from parsed constraint objects or strings.

    Objects need ``metric`` (or ``name``) and ``bound`` (or ``value``) attributes and an ``op`` of
    ``<=`` if they have one. Strings go through :func:`nas.search.constraints.parse_constraint`.
    Repeated metrics keep the tightest bound. ``peak_memory`` is ``memory``; ``param_memory`` (bytes)
    becomes a ``params`` bound.
    """
    if constraints is None:
        return {}
    items: Iterable[tuple[str, float]]
    if isinstance(constraints, Mapping):
        items = constraints.items()
    else:
        if isinstance(constraints, str):
            constraints = [constraints]
        items = [_constraint_item(c) for c in constraints]
    out: dict[str, float] = {}
    for name, bound in items:
        value = float(bound)
        name = canonical(name)
        if name == "param_memory":  # float32 bytes of the weights: a bound on params
            base, scale = cost_base(name) or (name, 1.0)
            name, value = base, value / scale
        if not math.isfinite(value):
            raise UserError(f"constraint {name}<={bound!r}: the bound must be a finite number")
        out[str(name)] = min(value, out.get(str(name), math.inf))
    return out


def _constraint_item(c: Any) -> tuple[str, float]:
    if isinstance(c, str):
        try:
            from nas.search.constraints import parse_constraint
        except ImportError:
            raise UserError(
                f"constraint {c!r}: pass constraints as {{metric: bound}} (no parser available)"
            ) from None
        c = parse_constraint(c)
    op = getattr(c, "op", "<=")
    if op != "<=":
        raise UserError(f"constraint {c!r}: the MP search takes upper bounds (<=) only")
    name = getattr(c, "metric", None) or getattr(c, "name", None)
    bound = getattr(c, "bound", None)
    if bound is None:
        bound = getattr(c, "value", None)
    if name is None or bound is None:
        raise UserError(f"constraint {c!r}: expected a metric and an upper bound")
    return str(name), float(bound)


class MILPSearch:
    """Exact constrained search over ``space`` by mixed-integer linear programming.

    ``objective``: a :class:`~nas.search.mp_objectives.LinearObjective` (additive predictor),
    :class:`~nas.search.mp_objectives.DeepMADObjective` (the default when None) or
    :class:`~nas.search.mp_objectives.CostObjective` (minimise a named cost).
    ``constraints``: upper bounds by metric (``{"flops": 60e6, "memory": 512e3}``, parsed constraint
    objects or strings). Metrics: ``flops``, ``macs``, ``params``, ``memory`` (peak activation
    bytes) and every name in ``costs`` (additional :class:`~nas.search.mp_costs.AdditiveCost`, e.g.
    ``{"latency_ms": latency_cost(table, space)}``).
    ``mip_rel_gap``: HiGHS's relative optimality gap (its default is 1e-4; 1e-6 here).
    ``time_limit``: seconds per MILP solve (None: no limit).
    """

    def __init__(
        self,
        space: SearchSpace,
        objective: Objective | CostObjective | None = None,
        *,
        constraints: Any = None,
        costs: Mapping[str, AdditiveCost] | None = None,
        mip_rel_gap: float = DEFAULT_MIP_REL_GAP,
        time_limit: float | None = None,
    ) -> None:
        self.space = space
        self.objective = DeepMADObjective() if objective is None else objective
        builtin = builtin_costs()
        clash = sorted(set(costs or {}) & {*builtin, MEMORY})
        if clash:
            raise UserError(
                f"cost name(s) {', '.join(clash)} are built in (exact, from nas.costs); "
                "name your own costs otherwise"
            )
        not_summed = sorted(name for name, rule in (costs or {}).items() if rule.combine != "sum")
        if not_summed:
            raise UserError(
                f"cost(s) {', '.join(not_summed)} combine units by a maximum; the MILP takes "
                "summed costs (and bounds peak memory itself as 'memory')"
            )
        self.costs: dict[str, AdditiveCost] = {**builtin, **dict(costs or {})}
        self.bounds = normalize_constraints(constraints)
        self._check_metrics(self.bounds)
        if isinstance(self.objective, CostObjective):
            self._check_metrics({self.objective.metric: 0.0})
        self.mip_rel_gap = float(mip_rel_gap)
        self.time_limit = time_limit
        self.formulation = Formulation(space)
        self._cost_vectors: dict[str, np.ndarray] = {}
        self._objective_vectors: dict[int, tuple[Any, np.ndarray, float]] = {}
        self._peaks: np.ndarray | None = None

    # -- metadata ----------------------------------------------------------------------------
    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric that can be bounded, swept or minimised."""
        return (*self.costs, MEMORY)

    def _check_metrics(self, names: Iterable[str]) -> None:
        unknown = [n for n in names if n not in self.metrics]
        if unknown:
            raise UserError(
                f"unknown metric(s) {', '.join(unknown)} for the MP search; known: "
                f"{', '.join(self.metrics)} (latency needs a latency table)"
            )

    def problem_size(self) -> dict[str, int]:
        """Variables (one-hot choices and their products, all binary) and structural rows of the
        base MILP."""
        f = self.formulation
        return {
            "variables": f.n_vars,
            "one_hot": f.n_binary,
            "products": f.n_vars - f.n_binary,
            "rows": f.n_rows,
            "constraint_rows": f.n_rows + sum(1 for m in self.bounds if m != MEMORY),
        }

    # -- evaluation (never trusting the solver) ------------------------------------------------
    def evaluate(self, arch: Architecture) -> dict[str, float]:
        """Every metric of ``arch``, computed directly (validates ``arch`` against the space)."""
        exact = exact_costs(self.space, arch).as_dict()
        out = {name: float(exact[name]) for name in ("flops", "macs", "params", MEMORY)}
        for name, cost in self.costs.items():
            if name not in out:
                out[name] = float(cost(self.space, arch))
        return out

    def violations(self, metrics: Mapping[str, float], bounds: Mapping[str, float]) -> list[str]:
        """Constraints ``metrics`` break (exact for integer costs, 1e-9 relative for others)."""
        bad = []
        for name, bound in bounds.items():
            value = metrics[name]
            slack = 0.0 if name in ("flops", "macs", "params", MEMORY) else _REL_TOL * abs(bound)
            if value > bound + slack:
                bad.append(f"{name}={value:.6g} > {bound:.6g}")
        return bad

    def objective_value(self, objective: Objective | CostObjective, arch: Architecture) -> float:
        if isinstance(objective, CostObjective):
            return self.evaluate(arch)[objective.metric]
        return float(objective.value(self.space, arch))

    # -- public searches -----------------------------------------------------------------------
    def solve(self) -> MPSolution:
        """The optimum under every constraint; raises :class:`InfeasibleError` if there is none."""
        sol = self._best(self.objective, self.bounds, [])
        if sol is None:
            raise self.infeasible_error()
        return sol

    def top_k(self, k: int, *, progress: bool = False) -> list[MPSolution]:
        """The ``k`` best distinct feasible architectures, best first (fewer if fewer exist)."""
        if k < 1:
            raise UserError(f"top_k: k={k}; expected k >= 1")
        cuts: list[list[int]] = []
        out: list[MPSolution] = []
        with tqdm(total=k, desc="MP top-k", unit="arch", disable=not progress) as bar:
            while len(out) < k:
                sol = self._best(self.objective, self.bounds, cuts)
                if sol is None:
                    if not out:
                        raise self.infeasible_error()
                    break
                out.append(sol)
                cuts.append(self.formulation.binary_ones(sol.arch))
                bar.update()
        return out

    def check_feasible(self) -> Architecture:
        """Some architecture meeting every constraint (no objective: fast); raises
        :class:`InfeasibleError` with the smallest achievable values when there is none. Usable
        before any search, whatever the algorithm."""
        sol = self._best(_Feasibility(), self.bounds, [])
        if sol is None:
            raise self.infeasible_error()
        return sol.arch

    def minimum(self, metric: str, *, constrained: bool = False) -> MPSolution:
        """The architecture with the smallest ``metric`` (over the whole space, or under the other
        constraints when ``constrained``); its ``objective`` is that smallest value."""
        self._check_metrics([metric])
        bounds = {n: b for n, b in self.bounds.items() if n != metric} if constrained else {}
        sol = self._best(CostObjective(metric), bounds, [])
        if sol is None:
            raise self.infeasible_error()
        return sol

    def minima(self, metrics: Iterable[str] | None = None) -> dict[str, float]:
        """Smallest achievable value of each metric over the whole space (each on its own)."""
        names = list(self.bounds) if metrics is None else list(metrics)
        return {name: self.minimum(name).objective for name in names}

    def infeasible_error(self) -> InfeasibleError:
        return InfeasibleError(self.space.name, self.bounds, self.minima())

    def pareto_front(
        self, metric: str, n_points: int = 20, *, progress: bool = False
    ) -> list[MPSolution]:
        """Non-dominated (objective, ``metric``) architectures from ``n_points`` bounds on ``metric``
        evenly spaced between its smallest achievable value under the other constraints and its
        value at the optimum; sorted by ``metric``. Each member is optimal for its bound
        (``swept_bound``; a bound whose optimum is already known from a looser one is not
        re-solved)."""
        self._check_metrics([metric])
        if n_points < 2:
            raise UserError(f"pareto_front: n_points={n_points}; expected >= 2")
        if isinstance(self.objective, CostObjective) and self.objective.metric == metric:
            raise UserError(f"pareto_front: the objective is already {metric!r}; sweep another")
        others = {n: b for n, b in self.bounds.items() if n != metric}
        best = self.solve()
        low = self.minimum(metric, constrained=True)
        lo, hi = low.metrics[metric], best.metrics[metric]
        sols = [best]
        incumbent = best
        grid = np.linspace(lo, hi, n_points)[::-1]
        for bound in tqdm(grid, desc="MP Pareto sweep", unit="bound", disable=not progress):
            b = float(bound)
            if incumbent.metrics[metric] <= b:
                continue  # optimal for a looser bound and feasible here: optimal here too
            bounds = {**others, metric: min(b, self.bounds.get(metric, math.inf))}
            sol = self._best(self.objective, bounds, [])
            if sol is None:
                break  # cannot happen above the smallest achievable value; kept for safety
            incumbent = replace(sol, swept_bound=b)
            sols.append(incumbent)
        return _non_dominated(sols, metric, self.objective.maximize)

    # -- the solver core -------------------------------------------------------------------------
    def _cost_vector(self, name: str) -> np.ndarray:
        if name not in self._cost_vectors:
            self._cost_vectors[name] = self.formulation.rule_vector(self.costs[name])
        return self._cost_vectors[name]

    def _peak_vector(self) -> np.ndarray:
        if self._peaks is None:
            self._peaks = self.formulation.peak_vector()
        return self._peaks

    def _objective_vector(self, objective: Objective | CostObjective) -> tuple[np.ndarray, float]:
        if isinstance(objective, CostObjective):
            if objective.metric == MEMORY:
                raise AssertionError("memory objective is an epigraph")
            return self._cost_vector(objective.metric), self.costs[objective.metric].offset
        key = id(objective)
        if key not in self._objective_vectors:  # keeps the objective alive, so ids stay unique
            vec, const = objective.vector(self.formulation)
            self._objective_vectors[key] = (objective, vec, float(const))
        _, vec, const = self._objective_vectors[key]
        return vec, const

    def _best(
        self,
        objective: Objective | CostObjective,
        bounds: Mapping[str, float],
        cuts: list[list[int]],
    ) -> MPSolution | None:
        """Best architecture under ``bounds`` and no-good ``cuts``, re-checked; None if infeasible."""
        extra: list[list[int]] = []
        for _ in range(MAX_RECHECK_CUTS):
            raw = self._solve(objective, bounds, [*cuts, *extra])
            if raw.v is None:
                return None
            arch = self.formulation.decode(raw.v)
            self.space.validate(arch)
            metrics = self.evaluate(arch)
            bad = self.violations(metrics, bounds)
            if bad:
                log.warning("MILP solution %s breaks %s after tolerances; cut off", arch, bad)
                extra.append(self.formulation.binary_ones(arch))
                continue
            value = self._checked_value(objective, arch, metrics)
            return MPSolution(
                arch=arch,
                objective=value,
                metrics=metrics,
                status=raw.status,
                mip_gap=raw.mip_gap,
                dual_bound=raw.dual_bound,
                seconds=raw.seconds,
                rejected=len(extra),
            )
        raise RuntimeError(
            f"{MAX_RECHECK_CUTS} MILP solutions in a row broke a bound after solver tolerances"
        )

    def _checked_value(
        self, objective: Objective | CostObjective, arch: Architecture, metrics: Mapping[str, float]
    ) -> float:
        """The direct objective of ``arch``, checked against the formulation's linear form."""
        if isinstance(objective, CostObjective):
            return metrics[objective.metric]
        value = float(objective.value(self.space, arch))
        vec, const = self._objective_vector(objective)
        linear = float(vec @ self.formulation.point(arch) + const)
        if abs(linear - value) > 1e-7 * max(1.0, abs(value)):
            raise RuntimeError(
                f"objective {objective.name!r}: linear form {linear!r} != direct value {value!r} "
                f"for {arch}; the MILP formulation is wrong"
            )
        return value

    def _solve(
        self,
        objective: Objective | CostObjective,
        bounds: Mapping[str, float],
        cuts: list[list[int]],
    ) -> _Raw:
        f = self.formulation
        n = f.n_vars
        a, lo, hi = f.structure()
        blocks, los, his = [a], [lo], [hi]
        ub = np.ones(n)
        for name, bound in bounds.items():
            if name == MEMORY:
                ub[(self._peak_vector() > bound) & f.group_mask()] = 0.0
                continue
            vec = self._cost_vector(name)
            scale = float(np.abs(vec).max()) or 1.0
            blocks.append(sparse.csr_array(vec[None, :] / scale))
            los.append(np.array([-np.inf]))
            his.append(np.array([(bound - self.costs[name].offset) / scale]))
        for cut in cuts:
            row, top = f.no_good(cut)
            blocks.append(sparse.csr_array(row[None, :]))
            los.append(np.array([-np.inf]))
            his.append(np.array([top]))
        memory_objective = isinstance(objective, CostObjective) and objective.metric == MEMORY
        sign = -1.0 if objective.maximize else 1.0
        integrality = f.integrality
        lb = np.zeros(n)
        if memory_objective:
            # epigraph: t >= peak of the chosen column of every family (scaled by the largest peak)
            peaks = self._peak_vector()
            scale = float(peaks.max())
            fams = f.families()
            rows = np.zeros((len(fams), n + 1))
            for i, cols in enumerate(fams):
                rows[i, cols] = peaks[cols] / scale
            rows[:, n] = -1.0
            blocks = [sparse.hstack([b, sparse.csr_array((b.shape[0], 1))]) for b in blocks]
            blocks.append(sparse.csr_array(rows))
            los.append(np.full(len(fams), -np.inf))
            his.append(np.zeros(len(fams)))
            c = np.zeros(n + 1)
            c[n] = sign
            const, unscale = 0.0, scale
            integrality = np.append(integrality, 0)
            lb, ub = np.append(lb, 0.0), np.append(ub, np.inf)
        else:
            vec, const = self._objective_vector(objective)
            c = sign * vec
            unscale = 1.0
        options: dict[str, Any] = {"mip_rel_gap": self.mip_rel_gap}
        if self.time_limit is not None:
            options["time_limit"] = float(self.time_limit)
        start = time.perf_counter()
        res = milp(
            c,
            integrality=integrality,
            bounds=Bounds(lb, ub),
            constraints=LinearConstraint(
                sparse.vstack(blocks, format="csr"), np.concatenate(los), np.concatenate(his)
            ),
            options=options,
        )
        seconds = time.perf_counter() - start
        status = STATUS.get(int(res.status), "error")
        if status in ("error", "unbounded"):
            raise RuntimeError(f"HiGHS failed on the MP search: {res.message}")
        if res.x is None:
            if status == "limit":
                raise UserError(
                    f"the MP search hit its time limit ({self.time_limit} s) before finding any "
                    "feasible architecture; raise the time limit"
                )
            return _Raw(None, status, res.message, math.nan, math.nan, seconds)
        dual = getattr(res, "mip_dual_bound", math.nan)
        dual = sign * float(dual) * unscale + const if dual is not None else math.nan
        gap = getattr(res, "mip_gap", math.nan)
        return _Raw(
            np.asarray(res.x)[:n],
            status,
            res.message,
            float(gap) if gap is not None else math.nan,
            dual,
            seconds,
        )


class _Feasibility:
    """No objective: any feasible architecture will do."""

    name = "feasibility"
    maximize = False

    def vector(self, formulation: Formulation) -> tuple[np.ndarray, float]:
        return np.zeros(formulation.n_vars), 0.0

    def value(self, space: SearchSpace, arch: Architecture) -> float:
        return 0.0


def _non_dominated(sols: list[MPSolution], metric: str, maximize: bool) -> list[MPSolution]:
    """Distinct architectures not dominated in (objective, ``metric`` to minimise), by ``metric``."""
    seen: dict[Architecture, MPSolution] = {}
    for s in sols:
        seen.setdefault(s.arch, s)
    key = (lambda s: -s.objective) if maximize else (lambda s: s.objective)
    ordered = sorted(seen.values(), key=lambda s: (s.metrics[metric], key(s)))
    front: list[MPSolution] = []
    for s in ordered:
        if not front or key(s) < key(front[-1]):
            front.append(s)
    return front
