"""Random search without repetition: the baseline every result is set beside."""

from __future__ import annotations

import numpy as np

from nas.search.base import Searcher
from nas.search.problem import Problem


class RandomSearch(Searcher):
    """Uniform random genomes, never the same canonical genome twice."""

    name = "random"

    def __init__(self, problem: Problem, *, seed: int = 0, batch_size: int = 32) -> None:
        super().__init__(problem, seed=seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size

    def _propose(self) -> np.ndarray:
        return self.random_new(self.batch_size)
