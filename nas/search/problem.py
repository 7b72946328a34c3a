"""Search problems over categorical genomes.

A genome is a row of ints, gene ``i`` in ``[0, cardinalities[i])``. A problem evaluates many genomes
at once and returns an :class:`Evaluation`: objectives to minimise (a maximised metric is negated),
Optuna-style constraint values (``<= 0`` feasible) and the raw metric values by name.

:class:`MetricProblem` is the usual base: a subclass computes named metrics for a batch of genomes
(``metrics(genes) -> {name: (n,)}``) and the base class turns them into objectives and constraints.
:class:`TabularProblem` looks metrics up in a table (NAS-Bench-201 and the like).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from nas.errors import UserError
from nas.search.constraints import Constraint, Objective, parse_constraints, parse_objective


@dataclass(frozen=True)
class Evaluation:
    """Values for ``n`` genomes: ``objectives`` (n, m) minimised, ``constraints`` (n, c), metrics."""

    objectives: np.ndarray
    constraints: np.ndarray
    metrics: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        obj = np.asarray(self.objectives, dtype=np.float64)
        con = np.asarray(self.constraints, dtype=np.float64)
        if obj.ndim != 2:
            raise ValueError(f"objectives must be (n, m), got shape {obj.shape}")
        if con.ndim != 2 or con.shape[0] != obj.shape[0]:
            raise ValueError(f"constraints must be (n, c) with n={obj.shape[0]}, got {con.shape}")
        if np.isnan(obj).any() or np.isnan(con).any():
            raise ValueError("objectives and constraints must not hold NaN")
        metrics = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in self.metrics.items()}
        for name, values in metrics.items():
            if values.shape[0] != obj.shape[0]:
                raise ValueError(f"metric {name!r} has {values.shape[0]} values, expected {obj.shape[0]}")
        object.__setattr__(self, "objectives", obj)
        object.__setattr__(self, "constraints", con)
        object.__setattr__(self, "metrics", metrics)

    def __len__(self) -> int:
        return self.objectives.shape[0]

    def take(self, index: np.ndarray) -> Evaluation:
        """The evaluation of a subset of the genomes."""
        return Evaluation(
            self.objectives[index],
            self.constraints[index],
            {k: v[index] for k, v in self.metrics.items()},
        )

    @staticmethod
    def concat(parts: Sequence[Evaluation], n_objectives: int, n_constraints: int) -> Evaluation:
        """Stack evaluations (an empty list gives an empty evaluation of the right width)."""
        if not parts:
            return Evaluation(np.zeros((0, n_objectives)), np.zeros((0, n_constraints)))
        names = list(parts[0].metrics)
        return Evaluation(
            np.concatenate([p.objectives for p in parts]),
            np.concatenate([p.constraints for p in parts]),
            {k: np.concatenate([p.metrics[k] for p in parts]) for k in names},
        )


class Problem(ABC):
    """What a searcher needs: the genome layout and a batched evaluation.

    Subclasses set :attr:`cardinalities`, :attr:`objectives` and :attr:`constraints` and implement
    :meth:`evaluate`. The optional hooks have safe defaults.
    """

    cardinalities: np.ndarray
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]

    @abstractmethod
    def evaluate(self, genes: np.ndarray) -> Evaluation:
        """Evaluate genomes (n, g) int -> :class:`Evaluation` with n rows."""

    @property
    def n_genes(self) -> int:
        return len(self.cardinalities)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.metric for o in self.objectives)

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def constraint_names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.constraints)

    def canonical(self, genes: np.ndarray) -> np.ndarray:
        """Map equivalent genomes to one representative (default: identity).

        A space with inactive genes (layers beyond the chosen depth) sets them to 0 here, so that
        searchers never query two genomes that encode the same network.
        """
        return genes

    def features(self, genes: np.ndarray) -> np.ndarray:
        """Numeric features for surrogate models (default: one-hot of every gene)."""
        return one_hot(genes, self.cardinalities)

    def achievable_range(self, metric: str) -> tuple[float, float] | None:
        """Smallest and largest value ``metric`` can take over the space, if the problem knows it."""
        return None

    def jointly_feasible(self) -> bool | None:
        """Whether one genome meets every constraint at once, if the problem can tell exactly."""
        return None

    def validate_genes(self, genes: np.ndarray) -> np.ndarray:
        """Check shape and ranges; return an int64 (n, g) array."""
        genes = np.asarray(genes)
        if genes.ndim == 1:
            genes = genes[None, :]
        if genes.ndim != 2 or genes.shape[1] != self.n_genes:
            raise UserError(f"genomes must have shape (n, {self.n_genes}), got {genes.shape}")
        if not np.issubdtype(genes.dtype, np.integer):
            raise UserError(f"genomes must be integers, got dtype {genes.dtype}")
        genes = genes.astype(np.int64, copy=False)
        if genes.size and ((genes < 0).any() or (genes >= self.cardinalities).any()):
            raise UserError(f"genes out of range; gene i must lie in [0, {self.cardinalities.tolist()}[i])")
        return genes


def one_hot(genes: np.ndarray, cardinalities: np.ndarray) -> np.ndarray:
    """Genomes (n, g) -> one-hot features (n, sum(cardinalities))."""
    genes = np.atleast_2d(genes)
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]])
    out = np.zeros((genes.shape[0], int(np.sum(cardinalities))), dtype=np.float64)
    out[np.arange(genes.shape[0])[:, None], offsets + genes] = 1.0
    return out


class MetricProblem(Problem):
    """A problem defined by named metrics: objectives and constraints refer to metric names.

    Subclasses implement :meth:`metrics` (and may override the hooks of :class:`Problem`). Objectives
    and constraints are given as objects or strings (``"max:accuracy"``, ``"flops<=60M"``).
    """

    def __init__(
        self,
        cardinalities: Sequence[int] | np.ndarray,
        objectives: Sequence[Objective | str],
        constraints: Sequence[Constraint | str] = (),
        *,
        available: Sequence[str] | None = None,
    ) -> None:
        self.cardinalities = np.asarray(cardinalities, dtype=np.int64)
        if self.cardinalities.ndim != 1 or (self.cardinalities < 1).any():
            raise UserError(f"cardinalities must be positive ints, got {cardinalities}")
        self.objectives = tuple(o if isinstance(o, Objective) else parse_objective(o) for o in objectives)
        if not self.objectives:
            raise UserError("a search problem needs at least one objective")
        self.constraints = parse_constraints(constraints)
        if available is not None:
            missing = [n for n in self.metric_names() if n not in available]
            if missing:
                raise UserError(
                    f"metrics {missing} are not provided by this problem; available: {sorted(available)}"
                )

    def metric_names(self) -> list[str]:
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        return list(dict.fromkeys(names))

    @abstractmethod
    def metrics(self, genes: np.ndarray) -> Mapping[str, np.ndarray]:
        """Named metric values (n,) for genomes (n, g); must include every objective/constraint metric."""

    def evaluate(self, genes: np.ndarray) -> Evaluation:
        genes = self.validate_genes(genes)
        values = self.metrics(genes)
        names = self.metric_names()
        missing = [n for n in names if n not in values]
        if missing:
            raise UserError(f"problem did not compute metrics {missing}")
        objectives = np.stack([o.sign * np.asarray(values[o.metric], float) for o in self.objectives], 1)
        if self.constraints:
            constraints = np.stack([c.violation(values[c.metric]) for c in self.constraints], 1)
        else:
            constraints = np.zeros((genes.shape[0], 0))
        return Evaluation(objectives, constraints, {k: values[k] for k in values})


class TabularProblem(MetricProblem):
    """Metrics looked up in a table: every genome maps to one row (``lookup(genes) -> rows``).

    ``columns`` holds every metric over the whole table, so the achievable range of each metric
    and the joint feasibility of the constraints are exact.
    """

    def __init__(
        self,
        cardinalities: Sequence[int] | np.ndarray,
        lookup: Callable[[np.ndarray], np.ndarray],
        columns: Mapping[str, np.ndarray],
        objectives: Sequence[Objective | str],
        constraints: Sequence[Constraint | str] = (),
        *,
        features: Callable[[np.ndarray], np.ndarray] | None = None,
        extra_metrics: Sequence[str] = (),
    ) -> None:
        super().__init__(cardinalities, objectives, constraints, available=list(columns))
        self._lookup = lookup
        self._columns = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
        self._features = features
        self._reported = list(dict.fromkeys([*self.metric_names(), *extra_metrics]))

    def metrics(self, genes: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(self._lookup(genes))
        if (rows < 0).any():
            raise UserError("some genomes are not in the table")
        return {k: self._columns[k][rows] for k in self._reported}

    def features(self, genes: np.ndarray) -> np.ndarray:
        if self._features is None:
            return super().features(genes)
        return self._features(genes)

    def achievable_range(self, metric: str) -> tuple[float, float] | None:
        if metric not in self._columns:
            return None
        column = self._columns[metric]
        return float(column.min()), float(column.max())

    def jointly_feasible(self) -> bool | None:
        if not self.constraints:
            return True
        ok = np.ones(len(next(iter(self._columns.values()))), dtype=bool)
        for c in self.constraints:
            ok &= c.satisfied(self._columns[c.metric])
        return bool(ok.any())
