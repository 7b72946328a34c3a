"""One front door for the searchers: ``make_searcher("guided", problem, seed=0, **options)``."""

from __future__ import annotations

from typing import Any

from nas.errors import UserError
from nas.search.base import Searcher
from nas.search.evolution import NSGA2, RegularizedEvolution
from nas.search.guided import GuidedSearch
from nas.search.guided_pareto import GuidedParetoSearch
from nas.search.optuna_search import OptunaSearch
from nas.search.problem import Problem
from nas.search.random_search import RandomSearch

ALGORITHMS: tuple[str, ...] = (
    "random",
    "evolution",
    "regularized_evolution",
    "nsga2",
    "guided",
    "optuna",
    "optuna-tpe",
    "optuna-nsga2",
)


def make_searcher(algorithm: str, problem: Problem, *, seed: int = 0, **options: Any) -> Searcher:
    """Build a searcher by name.

    ``evolution`` is regularised evolution for one objective and NSGA-II for several; ``guided`` is
    :class:`GuidedSearch` for one objective and :class:`GuidedParetoSearch` for two; ``optuna`` is
    TPE for one objective and NSGA-II for several (``optuna-tpe`` / ``optuna-nsga2`` force one).
    ``options`` go to the searcher's constructor.
    """
    multi = len(problem.objectives) > 1
    if algorithm == "random":
        return RandomSearch(problem, seed=seed, **options)
    if algorithm == "evolution":
        cls = NSGA2 if multi else RegularizedEvolution
        return cls(problem, seed=seed, **options)
    if algorithm == "regularized_evolution":
        return RegularizedEvolution(problem, seed=seed, **options)
    if algorithm == "nsga2":
        return NSGA2(problem, seed=seed, **options)
    if algorithm == "guided":
        if len(problem.objectives) > 2:
            raise UserError("guided search handles 1 or 2 objectives; use --algo evolution for more")
        cls = GuidedParetoSearch if multi else GuidedSearch
        return cls(problem, seed=seed, **options)
    if algorithm in ("optuna", "optuna-tpe", "optuna-nsga2"):
        sampler = {"optuna-tpe": "tpe", "optuna-nsga2": "nsga2"}.get(algorithm)
        sampler = options.pop("sampler", sampler or ("nsga2" if multi else "tpe"))
        return OptunaSearch(problem, seed=seed, sampler=sampler, **options)
    raise UserError(f"unknown search algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
