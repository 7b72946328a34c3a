"""Constrained architecture search: evolution, mathematical programming, Optuna, random.

Over categorical genomes: a :class:`Problem` evaluates batches of int genomes; a :class:`Searcher`
(``ask``/``tell``/``run``, seeded, resumable through :func:`save_state`/:func:`load_state`) proposes
them; a :class:`SearchResult` holds every evaluation, the feasible Pareto front and the best genome.
The MILP over our own spaces lives in :mod:`nas.search.mp` (as a searcher:
:class:`MILPSearcher`). Every searcher is registered (:func:`register_searcher`, one module of
:mod:`nas.search.algorithms` each) and built by name with :func:`make_searcher`; any searcher can
be checked with the conformance suite :mod:`nas.search.testing`.

Names are imported lazily (``from nas.search import GuidedSearch`` loads only what it needs), so
importing a submodule such as :mod:`nas.search.mp` does not pull in Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "Searcher": "base",
    "Constraint": "constraints",
    "Objective": "constraints",
    "parse_constraint": "constraints",
    "parse_constraints": "constraints",
    "parse_objective": "constraints",
    "total_violation": "constraints",
    "NSGA2": "evolution",
    "RegularizedEvolution": "evolution",
    "ConstraintViolationError": "feasibility",
    "FeasibilityReport": "feasibility",
    "InfeasibleError": "feasibility",
    "check_feasibility": "feasibility",
    "ensure_feasible": "feasibility",
    "GuidedSearch": "guided",
    "GuidedParetoSearch": "guided_pareto",
    "OptunaSearch": "optuna_search",
    "crowding_distance": "pareto",
    "dominance_matrix": "pareto",
    "feasible_front_mask": "pareto",
    "hypervolume_2d": "pareto",
    "non_dominated_sort": "pareto",
    "Evaluation": "problem",
    "MetricProblem": "problem",
    "Problem": "problem",
    "TabularProblem": "problem",
    "RandomSearch": "random_search",
    "ALGORITHMS": "registry",
    "SearcherSpec": "registry",
    "make_searcher": "registry",
    "register_searcher": "registry",
    "searcher_names": "registry",
    "searcher_specs": "registry",
    "MILPSearcher": "mp_searcher",
    "SearchJob": "job",
    "SearchResult": "result",
    "load_state": "state",
    "save_state": "state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nas.search.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
