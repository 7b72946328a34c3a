"""``guided``: a cheap surrogate picks each batch (our best on NAS-Bench-201)."""

from __future__ import annotations

from typing import Any

from nas.search.registration import register_searcher


@register_searcher("guided", max_objectives=2,
                   summary="predictor-guided local search (one objective) or hypervolume "
                           "improvement (two)")
def guided(problem: Any, *, seed: int = 0, **options: Any) -> Any:
    from nas.search.guided import GuidedSearch
    from nas.search.guided_pareto import GuidedParetoSearch

    cls = GuidedParetoSearch if len(problem.objectives) > 1 else GuidedSearch
    return cls(problem, seed=seed, **options)
