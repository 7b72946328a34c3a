"""``optuna``, ``optuna-tpe``, ``optuna-nsga2``: Optuna's samplers through ``ask``/``tell``."""

from __future__ import annotations

from typing import Any

from nas.errors import UserError
from nas.search.registration import register_searcher

SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")
POPULATION = 20  # Optuna NSGA-II's population unless --population says otherwise


def _optuna(problem: Any, seed: int, sampler: str, population: int | None,
            options: dict[str, Any]) -> Any:
    from nas.search.optuna_search import OptunaSearch

    if sampler not in SAMPLERS:
        raise UserError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if sampler == "tpe" and population is not None:
        raise UserError("--population sets Optuna NSGA-II's population; TPE has none")
    pop = POPULATION if population is None else population
    return OptunaSearch(problem, seed=seed, sampler=sampler, population_size=pop, **options)


_STUDY = ("population", "storage", "study_name")


@register_searcher("optuna", options=("sampler", *_STUDY), tune_trials=True,
                   summary="Optuna: TPE for one objective, NSGA-II for several (--sampler)")
def optuna_default(problem: Any, *, seed: int = 0, sampler: str | None = None,
                   population: int | None = None, **options: Any) -> Any:
    chosen = sampler or ("nsga2" if len(problem.objectives) > 1 else "tpe")
    return _optuna(problem, seed, chosen, population, options)


@register_searcher("optuna-tpe", options=_STUDY, tune_trials=True,
                   summary="Optuna's multivariate TPE with constraints")
def optuna_tpe(problem: Any, *, seed: int = 0, population: int | None = None,
               **options: Any) -> Any:
    return _optuna(problem, seed, "tpe", population, options)


@register_searcher("optuna-nsga2", options=_STUDY, tune_trials=True,
                   summary="Optuna's NSGA-II with constraints")
def optuna_nsga2(problem: Any, *, seed: int = 0, population: int | None = None,
                 **options: Any) -> Any:
    return _optuna(problem, seed, "nsga2", population, options)
