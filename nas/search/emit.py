"""What a search emits: the feasible Pareto front, every member re-checked architecture by
architecture, and a :class:`SearchResult` from a set of genomes evaluated at once."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from nas.search.outputs import FrontMember
from nas.search.pareto import feasible_front_mask
from nas.search.problem import Evaluation
from nas.search.result import SearchResult
from nas.search.space_problem import SpaceProblem

log = logging.getLogger(__name__)

_REL_TOL = 1e-9  # vectorised vs per-architecture float metrics (latency, predicted accuracy)


def emitted_front(problem: SpaceProblem, result: SearchResult) -> tuple[list[FrontMember], int]:
    """The feasible Pareto front, every member re-checked with the per-architecture functions.

    Each member's metrics are recomputed architecture by architecture (:meth:`exact_metrics`) and
    must equal the vectorised ones (a mismatch is a bug and raises); a member that breaks a
    constraint by the exact values (float rounding at a bound) is never emitted: it is dropped and
    the front recomputed. Returns the members (best first on the first objective) and how many were
    dropped.
    """
    ok = result.feasible.copy()
    checked: dict[int, FrontMember] = {}
    dropped = 0
    while True:
        mask = feasible_front_mask(result.objectives, np.where(ok, 0.0, 1.0))
        idx = np.flatnonzero(mask)
        idx = idx[np.lexsort(result.objectives[idx].T[::-1])]
        bad = False
        for i in idx.tolist():
            if i in checked:
                continue
            arch = problem.decode(result.genes[i])[0]
            exact = problem.exact_metrics(arch)
            _check_consistent(exact, result, i)
            if problem.violated(exact):
                ok[i] = False
                dropped += 1
                bad = True
                log.warning("front member %s breaks %s by its exact metrics; not emitted",
                            arch.arch_id(), problem.violated(exact))
                continue
            checked[i] = FrontMember(i, arch, tuple(int(v) for v in result.genes[i]), exact)
        if not bad:
            return [checked[i] for i in idx.tolist()], dropped


def _check_consistent(exact: Mapping[str, float], result: SearchResult, i: int) -> None:
    for name, value in exact.items():
        if name not in result.metrics:
            continue
        got = float(result.metrics[name][i])
        if abs(got - value) > _REL_TOL * max(1.0, abs(value)):
            raise RuntimeError(
                f"{name} of genome {result.genes[i].tolist()}: vectorised {got!r} != "
                f"per-architecture {value!r}; the genome tables are wrong"
            )


def result_of(problem: SpaceProblem, genes: np.ndarray, algorithm: str, seed: int
              ) -> SearchResult:
    """The distinct canonical ``genes`` evaluated in one batch, sorted, as a SearchResult."""
    genes = np.unique(np.asarray(problem.canonical(genes), dtype=np.int64), axis=0)
    ev = problem.evaluate(genes) if len(genes) else Evaluation.concat(
        [], len(problem.objectives), len(problem.constraints))
    return SearchResult(genes, ev.objectives, ev.constraints, dict(ev.metrics),
                        problem.objective_names, problem.directions, problem.constraint_names,
                        algorithm, seed)
