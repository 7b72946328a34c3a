"""The outcome of a search: every evaluated genome, the feasible Pareto front and the best one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nas.search.constraints import total_violation
from nas.search.pareto import feasible_front_mask


@dataclass(frozen=True)
class SearchResult:
    """History in evaluation order. ``objectives`` are minimised (maximised metrics negated)."""

    genes: np.ndarray  # (n, g) int
    objectives: np.ndarray  # (n, m), minimised
    constraints: np.ndarray  # (n, c), <= 0 feasible
    metrics: dict[str, np.ndarray]
    objective_names: tuple[str, ...]
    directions: tuple[str, ...]
    constraint_names: tuple[str, ...]
    algorithm: str = ""
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.genes.shape[0])

    @property
    def signs(self) -> np.ndarray:
        return np.array([-1.0 if d == "maximize" else 1.0 for d in self.directions])

    @property
    def objective_values(self) -> np.ndarray:
        """Objectives in their own direction (accuracy positive again), (n, m)."""
        return self.objectives * self.signs

    @property
    def violation(self) -> np.ndarray:
        return total_violation(self.constraints)

    @property
    def feasible(self) -> np.ndarray:
        return self.violation <= 0

    @property
    def front(self) -> np.ndarray:
        """Indices of the feasible Pareto front, sorted by the first objective (best first)."""
        idx = np.flatnonzero(feasible_front_mask(self.objectives, self.violation))
        return idx[np.lexsort(self.objectives[idx].T[::-1])]

    @property
    def best(self) -> int | None:
        """Index of the feasible genome best on the first objective (earliest on ties); None if none."""
        feasible = np.flatnonzero(self.feasible)
        if feasible.size == 0:
            return None
        return int(feasible[np.argmin(self.objectives[feasible, 0])])

    def prefix(self, n: int) -> SearchResult:
        """The result as it stood after the first ``n`` evaluations."""
        return SearchResult(
            self.genes[:n], self.objectives[:n], self.constraints[:n],
            {k: v[:n] for k, v in self.metrics.items()},
            self.objective_names, self.directions, self.constraint_names,
            self.algorithm, self.seed, dict(self.info),
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per evaluated genome: genes, metrics, constraint values, feasible, on_front."""
        data: dict[str, Any] = {f"g{i}": self.genes[:, i] for i in range(self.genes.shape[1])}
        values = self.objective_values
        for j, name in enumerate(self.objective_names):
            data[name] = values[:, j]
        for name, v in self.metrics.items():
            data.setdefault(name, v)
        for j, name in enumerate(self.constraint_names):
            data[f"constraint[{name}]"] = self.constraints[:, j]
        data["feasible"] = self.feasible
        on_front = np.zeros(len(self), dtype=bool)
        on_front[self.front] = True
        data["on_front"] = on_front
        return pd.DataFrame(data)
