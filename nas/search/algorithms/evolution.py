"""``evolution``, ``regularized_evolution`` and ``nsga2``: the evolutionary searchers."""

from __future__ import annotations

from typing import Any

from nas.search.registration import register_searcher

# Regularised evolution: population 50, tournaments of 10, 10 children per batch. On hybrid-cifar
# with a ridge predictor under a latency bound (3 seeds) it beat the searcher's own default
# (20, 5, 1) at 1,000-20,000 evaluations (77.98 vs 77.45 predicted accuracy at 1,000), tied it at
# 200, and ran 1.7x faster; see results/benchmarks/search_hybrid.md.
RE_POPULATION = 50


@register_searcher("regularized_evolution", options=("population",), refinable=True,
                   max_objectives=1,
                   summary="aging evolution on the first objective (population 50, "
                           "tournaments and batches of population/5)")
def regularized_evolution(problem: Any, *, seed: int = 0, population: int | None = None,
                          **options: Any) -> Any:
    from nas.search.evolution import RegularizedEvolution

    pop = RE_POPULATION if population is None else population
    kw = {"population_size": pop, "sample_size": max(2, pop // 5),
          "batch_size": max(1, pop // 5), **options}
    return RegularizedEvolution(problem, seed=seed, **kw)


@register_searcher("nsga2", options=("population",), refinable=True,
                   summary="NSGA-II with constrained domination (population 20)")
def nsga2(problem: Any, *, seed: int = 0, population: int | None = None, **options: Any) -> Any:
    from nas.search.evolution import NSGA2

    kw = {} if population is None else {"population_size": population}
    return NSGA2(problem, seed=seed, **kw, **options)


@register_searcher("evolution", options=("population",), refinable=True,
                   summary="NSGA-II for several objectives, regularised evolution for one")
def evolution(problem: Any, *, seed: int = 0, population: int | None = None,
              **options: Any) -> Any:
    build = nsga2 if len(problem.objectives) > 1 else regularized_evolution
    return build(problem, seed=seed, population=population, **options)
