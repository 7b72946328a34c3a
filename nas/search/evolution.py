"""Evolutionary searchers: regularised evolution (one objective) and NSGA-II (several).

Both are vectorised over numpy arrays and never propose a genome that was already evaluated:
a duplicate child is mutated again (up to ``retries`` times) and then replaced by a random new genome.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.search.base import Searcher
from nas.search.constraints import total_violation
from nas.search.operators import fitness_order, mutate, tournament, uniform_crossover
from nas.search.pareto import rank_and_crowding
from nas.search.problem import Problem


class _Evolutionary(Searcher):
    retries: int = 8

    def _unique_children(self, children: np.ndarray, rate: float | None) -> np.ndarray:
        """Replace duplicates (of history, pending, queue or each other) by re-mutated or random ones."""
        card = self.problem.cardinalities
        children = np.asarray(self.problem.canonical(children), dtype=np.int64)
        keep = self.is_new(children)
        for _ in range(self.retries):
            if keep.all():
                break
            redo = np.flatnonzero(~keep)
            children[redo] = self.problem.canonical(mutate(children[redo], card, self.rng, rate=rate))
            keep = self.is_new(children)  # order matters: earlier rows win ties
        out = children[keep]
        missing = len(children) - len(out)
        if missing:
            out = np.concatenate([out, self.random_new(missing, exclude=out)])
        return out


class RegularizedEvolution(_Evolutionary):
    """Aging evolution (Real et al. 2019) for the first objective, feasibility first.

    The population is the ``population_size`` most recent evaluations. Each child mutates the best
    of ``sample_size`` random population members (feasible beats infeasible; then the smaller total
    violation; then the objective). ``mutation_rate=0`` changes exactly one gene per child.
    """

    name = "regularized_evolution"

    def __init__(
        self,
        problem: Problem,
        *,
        seed: int = 0,
        population_size: int = 20,
        sample_size: int = 5,
        mutation_rate: float = 0.0,
        batch_size: int = 1,
        objective: int = 0,
    ) -> None:
        super().__init__(problem, seed=seed)
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"need 1 <= sample_size <= population_size, got {sample_size}, {population_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= objective < len(problem.objectives):
            raise ValueError(f"objective index {objective} out of range")
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_rate = mutation_rate
        self.batch_size = batch_size
        self.objective = objective

    def _propose(self) -> np.ndarray:
        n_known = len(self.history) + len(self._pending)
        if n_known < self.population_size:
            return self.random_new(self.population_size - n_known)
        population = np.arange(max(0, len(self.history) - self.population_size), len(self.history))
        objective = self.history.objectives[population, self.objective]
        violation = total_violation(self.history.constraints[population])
        ranks = fitness_order(objective, violation)
        samples = np.stack([
            self.rng.choice(len(population), self.sample_size, replace=False)
            for _ in range(self.batch_size)
        ])
        parents = population[samples[np.arange(self.batch_size), np.argmin(ranks[samples], axis=1)]]
        rate = self.mutation_rate  # 0: exactly one gene changes
        children = mutate(self.history.genes[parents], self.problem.cardinalities, self.rng, rate=rate)
        return self._unique_children(children, rate)


class NSGA2(_Evolutionary):
    """NSGA-II (Deb et al. 2002) with constrained domination, for any number of objectives.

    Each generation: binary tournaments on (front rank, crowding), uniform crossover with
    probability ``crossover_prob``, per-gene mutation with ``mutation_rate`` (default 1/n_genes), then
    survivors are the best ``population_size`` of parents and children by rank and crowding.
    """

    name = "nsga2"

    def __init__(
        self,
        problem: Problem,
        *,
        seed: int = 0,
        population_size: int = 20,
        crossover_prob: float = 0.9,
        mutation_rate: float | None = None,
    ) -> None:
        super().__init__(problem, seed=seed)
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must lie in [0, 1], got {crossover_prob}")
        self.population_size = population_size
        self.crossover_prob = crossover_prob
        self.mutation_rate = mutation_rate
        self._population = np.zeros(0, dtype=np.int64)  # indices into the history
        self._selected_upto = 0  # history entries up to here took part in a selection

    def _select(self) -> None:
        """Environmental selection over the population and everything evaluated since."""
        fresh = np.arange(self._selected_upto, len(self.history))
        pool = np.union1d(self._population, fresh)
        self._selected_upto = len(self.history)
        if len(pool) <= self.population_size:
            self._population = pool
            return
        f = self.history.objectives[pool]
        v = total_violation(self.history.constraints[pool])
        ranks, crowd = rank_and_crowding(f, v)
        order = np.lexsort((pool, -crowd, ranks))
        self._population = np.sort(pool[order[: self.population_size]])

    def _propose(self) -> np.ndarray:
        n_known = len(self.history) + len(self._pending)
        if n_known < self.population_size:
            return self.random_new(self.population_size - n_known)
        self._select()
        pop = self._population
        f = self.history.objectives[pop]
        v = total_violation(self.history.constraints[pop])
        ranks, crowd = rank_and_crowding(f, v)
        order = np.lexsort((np.arange(len(pop)), -crowd, ranks))
        keys = np.empty(len(pop), dtype=np.int64)
        keys[order] = np.arange(len(pop))
        n_pairs = (self.population_size + 1) // 2
        parents = self.history.genes[pop[tournament(keys, 2 * n_pairs, self.rng)]]
        a, b = parents[:n_pairs], parents[n_pairs:]
        ca, cb = uniform_crossover(a, b, self.rng)
        cross = self.rng.random(n_pairs) < self.crossover_prob
        ca = np.where(cross[:, None], ca, a)
        cb = np.where(cross[:, None], cb, b)
        children = np.concatenate([ca, cb])[: self.population_size]
        children = mutate(children, self.problem.cardinalities, self.rng, rate=self.mutation_rate)
        return self._unique_children(children, self.mutation_rate)

    def _extra_state(self) -> dict[str, Any]:
        return {"population": self._population.tolist(), "selected_upto": self._selected_upto}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._population = np.asarray(state.get("population", []), dtype=np.int64)
        self._selected_upto = int(state.get("selected_upto", 0))
