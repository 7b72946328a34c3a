"""``mp``: the exact MILP over one of our spaces (:class:`~nas.search.mp_searcher.MILPSearcher`)."""

from __future__ import annotations

from typing import Any

from nas.search.registration import register_searcher

DEFAULT_POINTS = 20  # MILP solutions when --mp-points is not given (at most --budget)


@register_searcher("mp", options=("points",), max_objectives=2, space_only=True, solver=True,
                   summary="exact MILP: the top solutions for one objective, a front by sweeping "
                           "a cost bound for two (--mp-points)")
def milp(problem: Any, *, seed: int = 0, points: int = DEFAULT_POINTS, progress: bool = False,
         **options: Any) -> Any:
    from nas.search.mp_searcher import MILPSearcher

    return MILPSearcher(problem, seed=seed, points=points, progress=progress, **options)
