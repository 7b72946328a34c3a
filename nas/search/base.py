"""The searcher interface: ``ask``/``tell``/``run``, seeded, resumable.

A searcher proposes genomes in natural batches (one generation, one model-guided batch, ...) that wait
in a queue; ``ask(n)`` hands out up to ``n`` of them and refills the queue only when it is empty. The
proposals therefore do not depend on how a caller slices its asks, so a run stopped after 100
evaluations and resumed from its state file continues exactly as the uninterrupted run.

Every genome handed out is canonical (:meth:`Problem.canonical`) and new: never one already evaluated,
pending, or handed out twice. Queries are the budget.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from nas.search.feasibility import FeasibilityReport, ensure_feasible, recheck
from nas.search.history import History
from nas.search.problem import Evaluation, Problem
from nas.search.result import SearchResult

ENUMERATE_LIMIT = 200_000  # spaces up to this many genomes may be enumerated when sampling stalls


class Searcher(ABC):
    """Base class. Subclasses implement :meth:`_propose` (and may keep extra state)."""

    name: ClassVar[str] = "searcher"

    def __init__(self, problem: Problem, *, seed: int = 0) -> None:
        self.problem = problem
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.history = History(
            problem.cardinalities, len(problem.objectives), len(problem.constraints)
        )
        self._queue = np.zeros((0, problem.n_genes), dtype=np.int64)
        self._pending: set = set()
        self._exhausted = False
        self.feasibility: FeasibilityReport | None = None

    # ----------------------------------------------------------------- interface
    def ask(self, n: int = 1) -> np.ndarray:
        """Up to ``n`` new canonical genomes (n', g); fewer when the current batch runs out."""
        if n < 1:
            raise ValueError(f"ask(n) needs n >= 1, got {n}")
        if len(self._queue) == 0 and not self._exhausted:
            proposals = self._propose()
            self._queue = self._keep_new(proposals)
            if len(self._queue) == 0:
                self._queue = self.random_new(max(1, len(proposals)))
            if len(self._queue) == 0:
                self._exhausted = True
        out, self._queue = self._queue[:n], self._queue[n:]
        self._pending.update(self.history.keys(out))
        return out

    def tell(self, genes: np.ndarray, evaluation: Evaluation) -> None:
        """Report the evaluation of genomes that :meth:`ask` handed out."""
        genes = self.problem.validate_genes(genes)
        if len(evaluation) != len(genes):
            raise ValueError(f"tell got {len(genes)} genomes but {len(evaluation)} evaluations")
        keys = self.history.keys(genes)
        self.history.add(genes, evaluation)
        self._pending.difference_update(keys)
        self._observe(genes, evaluation)

    def run(
        self,
        budget: int,
        *,
        callback: Callable[[Searcher], None] | None = None,
        check_feasibility: bool = True,
    ) -> SearchResult:
        """Evaluate genomes until the history holds ``budget`` of them (or the space runs out).

        Raises :class:`~nas.search.feasibility.InfeasibleError` first when the constraints provably
        cannot be met. ``callback(searcher)`` runs after each told batch.
        """
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        if check_feasibility and self.feasibility is None:
            self.feasibility = ensure_feasible(self.problem)
        while len(self.history) < budget:
            genes = self.ask(budget - len(self.history))
            if len(genes) == 0:
                warnings.warn(
                    f"{self.name}: no new genome left to propose after {len(self.history)} "
                    "evaluations; stopping early",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            self.tell(genes, self.problem.evaluate(genes))
            if callback is not None:
                callback(self)
        return self.result()

    def result(self, *, recheck_emitted: bool = True) -> SearchResult:
        """The history as a :class:`SearchResult`; the front and best are re-checked against the
        problem's constraints (a violation raises ``ConstraintViolationError``)."""
        ev = self.history.evaluation
        res = SearchResult(
            genes=self.history.genes.copy(),
            objectives=ev.objectives.copy(),
            constraints=ev.constraints.copy(),
            metrics={k: v.copy() for k, v in ev.metrics.items()},
            objective_names=self.problem.objective_names,
            directions=self.problem.directions,
            constraint_names=self.problem.constraint_names,
            algorithm=self.name,
            seed=self.seed,
        )
        if recheck_emitted and len(res):
            emitted = res.front if res.best is None else np.union1d(res.front, [res.best])
            recheck(self.problem, res.genes[emitted])
        return res

    # ---------------------------------------------------------------- subclass API
    @abstractmethod
    def _propose(self) -> np.ndarray:
        """The next natural batch of genomes (k, g); may contain duplicates (they are filtered)."""

    def _observe(self, genes: np.ndarray, evaluation: Evaluation) -> None:  # noqa: B027
        """Hook after :meth:`tell` stored an evaluation (population updates and the like)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027
        pass

    # ---------------------------------------------------------------- helpers
    def is_new(self, genes: np.ndarray, *, exclude: np.ndarray | None = None) -> np.ndarray:
        """Mask of canonical genomes neither evaluated, pending, queued, in ``exclude``, nor repeated
        earlier in ``genes`` itself, (n,) bool."""
        codec = self.history.codec
        codes = codec.codes(genes)
        mask = codec.first_occurrence(codes) & ~self.history.contains(codes)
        mask &= ~codec.isin(codes, self._pending)
        for other in (self._queue, exclude):
            if other is not None and len(other):
                mask &= ~codec.isin(codes, set(codec.keys(other)))
        return mask

    def _keep_new(self, genes: np.ndarray) -> np.ndarray:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, self.problem.n_genes)
        if len(genes) == 0:
            return genes
        genes = np.asarray(self.problem.canonical(genes), dtype=np.int64)
        return genes[self.is_new(genes)]

    def random_genes(self, n: int) -> np.ndarray:
        """``n`` uniform random genomes (canonical, may repeat), (n, g)."""
        card = self.problem.cardinalities
        genes = (self.rng.random((n, len(card))) * card).astype(np.int64)
        return np.asarray(self.problem.canonical(genes), dtype=np.int64)

    def random_new(self, n: int, *, exclude: np.ndarray | None = None) -> np.ndarray:
        """Up to ``n`` distinct new random genomes (fewer only when the space is nearly exhausted)."""
        g = self.problem.n_genes
        found = np.zeros((0, g), dtype=np.int64)
        for _ in range(8):
            need = n - len(found)
            if need <= 0:
                break
            cand = self.random_genes(2 * need + 8)
            avoid = found if exclude is None or len(exclude) == 0 else np.concatenate([found, exclude])
            cand = cand[self.is_new(cand, exclude=avoid)]
            found = np.concatenate([found, cand[:need]])
        if len(found) < n and self.space_size() <= ENUMERATE_LIMIT:
            avoid = found if exclude is None or len(exclude) == 0 else np.concatenate([found, exclude])
            rest = self._enumerate_new(avoid)
            take = self.rng.permutation(len(rest))[: n - len(found)]
            found = np.concatenate([found, rest[take]])
        return found

    def space_size(self) -> float:
        """Number of genomes (before canonical merging), as a float (it may be huge)."""
        return float(np.prod(self.problem.cardinalities.astype(np.float64)))

    def _enumerate_new(self, exclude: np.ndarray) -> np.ndarray:
        card = self.problem.cardinalities
        grid = np.indices(tuple(int(c) for c in card)).reshape(len(card), -1).T
        grid = np.unique(np.asarray(self.problem.canonical(grid), dtype=np.int64), axis=0)
        return grid[self.is_new(grid, exclude=exclude)]

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (JSON-serialisable)."""
        if self._pending:
            raise RuntimeError("cannot save a searcher with asked but untold genomes; tell them first")
        return {
            "algorithm": self.name,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "history": self.history.state_dict(),
            "queue": self._queue.tolist(),
            "exhausted": self._exhausted,
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the problem must be the same)."""
        p = self.problem
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.history = History.from_state_dict(
            state["history"], p.cardinalities, len(p.objectives), len(p.constraints)
        )
        self._queue = np.asarray(state["queue"], dtype=np.int64).reshape(-1, p.n_genes)
        self._pending = set()
        self._exhausted = bool(state.get("exhausted", False))
        self._load_extra_state(state.get("extra", {}))
