"""``random``: uniform random genomes without repetition, the baseline."""

from __future__ import annotations

from typing import Any

from nas.search.registration import register_searcher

BATCH_SIZE = 64  # genomes per proposal batch of 'nas search --algo random'


@register_searcher("random", summary="uniform random architectures, never one twice (baseline)",
                   refinable=True)
def random_search(problem: Any, *, seed: int = 0, batch_size: int = BATCH_SIZE,
                  **options: Any) -> Any:
    from nas.search.random_search import RandomSearch

    return RandomSearch(problem, seed=seed, batch_size=batch_size, **options)
