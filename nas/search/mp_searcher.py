"""The MILP of :mod:`nas.search.mp` behind the :class:`~nas.search.base.Searcher` interface.

One objective: the ``points`` best architectures (top-k); two: a Pareto front by sweeping the bound
of the cost objective to minimise over ``points`` values. The solutions are found once, on the first
:meth:`~MILPSearcher.ask`, and handed out in genome order; after them the searcher proposes nothing
(it never falls back to random genomes), so its budget is ``points``, not the caller's.

Accuracy objectives need an additive predictor (a ridge on one-hot features); without one the
problem's ``deepmad`` metric (the DeepMAD expressiveness score) is maximised instead.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from nas.errors import UserError
from nas.metrics import canonical, cost_base
from nas.search.base import Searcher


def _milp_objective(name: str) -> str:
    """The MILP cost to minimise for ``name`` (``param_memory`` orders subnets as ``params``)."""
    base = cost_base(name)
    return base[0] if base is not None and name == "param_memory" else canonical(name)


def mp_genes(problem: Any, points: int, progress: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve with :class:`~nas.search.mp.MILPSearch`: the genomes of its solutions and a record."""
    from nas.search.mp import MILPSearch
    from nas.search.mp_objectives import CostObjective
    from nas.search.space_problem import ACCURACY_METRICS, DEEPMAD
    from nas.spaces import encode

    objectives = problem.objectives
    if len(objectives) > 2:
        raise UserError("--algo mp handles 1 or 2 objectives (a front by sweeping one bound); "
                        "use --algo evolution for more")
    bounds = problem.milp_bounds()
    if bounds is None:
        raise UserError(
            "--algo mp takes upper bounds (<=) on flops, macs, params, memory, param_memory and "
            f"an additive table latency only; got {', '.join(problem.constraint_names)}"
        )
    primary = next((o for o in objectives if o.metric in (*ACCURACY_METRICS, DEEPMAD)),
                   objectives[0])
    if primary.metric in ACCURACY_METRICS:
        objective, kind = problem.linear_objective(), "additive predictor (ridge on one-hot)"
    elif primary.metric == DEEPMAD:
        objective, kind = None, "DeepMAD expressiveness score (no predictor given)"
    else:
        objective = CostObjective(_milp_objective(primary.metric),
                                  maximize=primary.direction == "maximize")
        kind = f"cost {primary.metric}"
    search = MILPSearch(problem.space, objective, constraints=bounds, costs=problem.milp_costs())
    start = time.perf_counter()
    swept = None
    if len(objectives) == 1:
        sols = search.top_k(points, progress=progress)
    else:
        other = next(o for o in objectives if o is not primary)
        if other.direction != "minimize" or other.metric in (*ACCURACY_METRICS, DEEPMAD):
            raise UserError(f"--algo mp sweeps a bound on a cost to minimise; {other} is not one")
        swept = _milp_objective(other.metric)
        sols = search.pareto_front(swept, n_points=max(2, points), progress=progress)
    seconds = time.perf_counter() - start
    genes = np.stack([encode(problem.space, s.arch) for s in sols])
    record = {
        "objective": kind,
        "swept": swept,
        "points": points,
        "solutions": len(sols),
        "seconds": round(seconds, 3),
        "problem_size": search.problem_size(),
        "statuses": sorted({s.status for s in sols}),
        "max_mip_gap": max(float(s.mip_gap) for s in sols),
    }
    return genes, record


class MILPSearcher(Searcher):
    """The MILP's solutions as a searcher over a :class:`~nas.search.space_problem.SpaceProblem`."""

    name = "mp"

    def __init__(self, problem: Any, *, seed: int = 0, points: int = 20,
                 progress: bool = False) -> None:
        if points < 1:
            raise ValueError(f"points must be >= 1, got {points}")
        if not hasattr(problem, "milp_bounds"):
            raise UserError("--algo mp searches one of our spaces (a SpaceProblem), not "
                            f"a {type(problem).__name__}")
        super().__init__(problem, seed=seed)
        self.points = int(points)
        self.progress = progress
        self.record: dict[str, Any] | None = None
        self._solved = False

    def solve(self) -> np.ndarray:
        """The distinct canonical genomes of the MILP's solutions, sorted (solved once)."""
        genes, self.record = mp_genes(self.problem, self.points, self.progress)
        self._solved = True
        return np.unique(np.asarray(self.problem.canonical(genes), dtype=np.int64), axis=0)

    def ask(self, n: int = 1) -> np.ndarray:
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        if not self._solved:
            genes = self.solve()
            self._queue = genes[self.is_new(genes)]
        out, self._queue = self._queue[:n], self._queue[n:]
        self._pending.update(self.history.keys(out))
        return out

    def _propose(self) -> np.ndarray:
        return np.zeros((0, self.problem.n_genes), dtype=np.int64)

    def _extra_state(self) -> dict[str, Any]:
        return {"solved": self._solved, "record": self.record}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._solved = bool(state.get("solved", False))
        self.record = state.get("record")
