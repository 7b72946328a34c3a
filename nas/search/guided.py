"""Predictor-guided search: a cheap surrogate, fitted on every evaluated genome, picks each batch.

After ``n_init`` random genomes, each batch of ``batch_size``:

1. fits :class:`~nas.search.surrogate.BayesianLinear` on the problem's features (the objective,
   clipped from below at its ``clip_quantile`` so the model spends its capacity on the good region,
   plus one output per constraint);
2. takes ``n_global`` genomes with the best predicted score from ``global_pool`` random ones (the
   whole batch while fewer than ``n_init + n_explore`` genomes are known). These *exploratory* picks
   are scored by a second model fitted only on the exploratory genomes (random starts, global picks,
   restarts): a local search piles its samples into one basin, and a model fitted on them keeps
   pointing back there, while the spread-out sample still points to good regions elsewhere;
3. fills the rest with the best-predicted genomes one gene away from the ``n_centres`` best genomes
   of the current *region* (a local search steered by the model).

When a region has not improved for ``patience`` evaluations, the untried neighbours of its best
genome are evaluated (``polish``); if none is better, that genome is a certified local optimum and
becomes a *basin* (no genome within ``tabu_radius`` genes of a basin is used as a centre again, nor
proposed by a restart), and a new region starts from the ``restart_size`` best-predicted genomes
far from every basin. Predicted constraint violations are penalised and evaluated infeasible genomes
rank after feasible ones, so the search steers to feasible regions.

A surrogate fit costs about a millisecond for a few hundred genomes (the Gram matrix is updated
incrementally), so a query costs far less than with TPE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nas.search.base import Searcher
from nas.search.constraints import total_violation
from nas.search.operators import fitness_order
from nas.search.problem import Evaluation, Problem
from nas.search.surrogate import BayesianLinear


def neighbours(genes: np.ndarray, cardinalities: np.ndarray) -> np.ndarray:
    """Every genome that differs from a row of ``genes`` in exactly one gene, (k * sum(c - 1), g)."""
    genes = np.atleast_2d(genes)
    card = np.asarray(cardinalities, dtype=np.int64)
    gene_idx = np.repeat(np.arange(len(card)), card - 1)
    if gene_idx.size == 0:
        return np.zeros((0, len(card)), dtype=np.int64)
    shift = np.concatenate([np.arange(1, c) for c in card if c > 1])
    out = np.repeat(genes[:, None, :], len(gene_idx), axis=1)  # (k, s, g)
    cols = np.arange(len(gene_idx))
    out[:, cols, gene_idx] = (out[:, cols, gene_idx] + shift) % card[gene_idx]
    return out.reshape(-1, len(card))


def hamming_far(genes: np.ndarray, anchors: np.ndarray, radius: int) -> np.ndarray:
    """Rows of ``genes`` at least ``radius`` genes away from every anchor, (n,) bool."""
    if len(anchors) == 0 or len(genes) == 0:
        return np.ones(len(genes), dtype=bool)
    dist = (genes[:, None, :] != anchors[None, :, :]).sum(axis=2)
    return (dist >= radius).all(axis=1)


class FeatureCache:
    """Features of the evaluated genomes with ``X @ X.T`` (while n <= d) and ``X.T @ X``, both
    extended incrementally as genomes are appended (the history only grows)."""

    def __init__(self, features: Callable[[np.ndarray], np.ndarray]) -> None:
        self._features = features
        self.X = np.zeros((0, 0))
        self.gram: np.ndarray | None = None
        self.xtx = np.zeros((0, 0))

    def featurize(self, genes: np.ndarray) -> np.ndarray:
        return np.asarray(self._features(genes), dtype=np.float64)

    def sync(self, genes: np.ndarray) -> np.ndarray:
        """Bring the cache up to ``genes`` (the whole history, in order); returns X."""
        n_old, n = len(self.X), len(genes)
        if n_old > n:
            raise ValueError("FeatureCache.sync: the history shrank")
        if n_old == n:
            return self.X
        new = self.featurize(genes[n_old:])
        X = new if n_old == 0 else np.concatenate([self.X, new])
        d = X.shape[1]
        self.xtx = new.T @ new if n_old == 0 else self.xtx + new.T @ new
        if n <= d:
            cross = new @ X.T  # (n_new, n)
            gram = np.empty((n, n))
            if n_old:
                gram[:n_old, :n_old] = self.gram
                gram[:n_old, n_old:] = cross[:, :n_old].T
            gram[n_old:, :] = cross
            self.gram = gram
        else:
            self.gram = None
        self.X = X
        return X

    def products(self) -> dict[str, np.ndarray]:
        """Keyword arguments for :meth:`BayesianLinear.fit`."""
        return {"gram": self.gram} if self.gram is not None else {"xtx": self.xtx}


class GuidedSearch(Searcher):
    """Surrogate-guided local search with global proposals and restarts, for one objective."""

    name = "guided"

    def __init__(
        self,
        problem: Problem,
        *,
        seed: int = 0,
        n_init: int = 8,
        batch_size: int = 10,
        n_explore: int = 20,
        n_global: int = 2,
        global_pool: int = 500,
        n_centres: int = 10,
        patience: int = 20,
        tabu_radius: int = 3,
        restart_size: int = 10,
        polish: bool = True,
        clip_quantile: float = 0.5,
        alpha: float | None = None,
        noise: float = 0.1,
        objective: int = 0,
    ) -> None:
        super().__init__(problem, seed=seed)
        if min(n_init, batch_size, n_centres, restart_size) < 1:
            raise ValueError("n_init, batch_size, n_centres and restart_size must be >= 1")
        if min(n_explore, n_global, global_pool, patience, tabu_radius) < 0:
            raise ValueError("n_explore, n_global, global_pool, patience, tabu_radius must be >= 0")
        if n_global > batch_size:
            raise ValueError(f"n_global ({n_global}) cannot exceed batch_size ({batch_size})")
        if not 0.0 <= clip_quantile < 1.0:
            raise ValueError(f"clip_quantile must lie in [0, 1), got {clip_quantile}")
        if not 0 <= objective < len(problem.objectives):
            raise ValueError(f"objective index {objective} out of range")
        self.n_init = n_init
        self.batch_size = batch_size
        self.n_explore = n_explore
        self.n_global = n_global
        self.global_pool = global_pool
        self.n_centres = n_centres
        self.patience = patience
        self.tabu_radius = tabu_radius
        self.restart_size = restart_size
        self.polish = polish
        self.clip_quantile = clip_quantile
        self.alpha = alpha
        self.noise = noise
        self.objective = objective
        self._region_start = 0
        self._basins = np.zeros((0, problem.n_genes), dtype=np.int64)
        self._cache = FeatureCache(problem.features)
        self._explore_flags: list[bool] = []  # per history row: was it an exploratory pick?
        self._explore_pending: set = set()  # keys of exploratory picks not told yet

    # ------------------------------------------------------------ features and model
    def _features(self, genes: np.ndarray) -> np.ndarray:
        return self._cache.featurize(genes)

    def _observe(self, genes: np.ndarray, evaluation: Evaluation) -> None:
        self._cache.sync(self.history.genes)
        for key in self.history.keys(genes):
            self._explore_flags.append(key in self._explore_pending)
            self._explore_pending.discard(key)

    def _exploratory(self, genes: np.ndarray) -> np.ndarray:
        """Mark proposals as exploratory (their evaluations train the global model)."""
        self._explore_pending.update(self.history.keys(genes))
        return genes

    def _fit(self) -> BayesianLinear:
        X = self._cache.sync(self.history.genes)
        utility = -self.history.objectives[:, self.objective]
        floor = np.sort(utility)[int(self.clip_quantile * (len(utility) - 1))]
        targets = np.column_stack([np.maximum(utility, floor), self.history.constraints])
        alpha = self.alpha if self.alpha is not None else float(np.mean(X.sum(axis=1)))
        return BayesianLinear(alpha=alpha, noise=self.noise).fit(X, targets, **self._cache.products())

    def _fit_exploratory(self, local: BayesianLinear) -> BayesianLinear:
        """The model of the exploratory genomes only (``local`` when there are too few)."""
        X = self._cache.X
        idx = np.flatnonzero(np.asarray(self._explore_flags, dtype=bool))
        if len(idx) < self.n_init or len(idx) == len(X):
            return local
        utility = -self.history.objectives[idx, self.objective]
        floor = np.sort(utility)[int(self.clip_quantile * (len(utility) - 1))]
        targets = np.column_stack([np.maximum(utility, floor), self.history.constraints[idx]])
        alpha = self.alpha if self.alpha is not None else float(np.mean(X.sum(axis=1)))
        gram = self._cache.gram
        extra = {"gram": gram[np.ix_(idx, idx)]} if gram is not None else {}
        return BayesianLinear(alpha=alpha, noise=self.noise).fit(X[idx], targets, **extra)

    def _score(self, model: BayesianLinear, genes: np.ndarray) -> np.ndarray:
        """Predicted utility minus a large penalty per unit of predicted constraint violation."""
        predicted = model.predict(self._features(genes))
        utility = predicted[:, 0]
        if predicted.shape[1] == 1:
            return utility
        spread = float(np.ptp(utility)) + 1.0
        return utility - 10.0 * spread * np.clip(predicted[:, 1:], 0, None).sum(axis=1)

    def _best_predicted(self, model: BayesianLinear, pool: np.ndarray, k: int) -> np.ndarray:
        if len(pool) == 0 or k <= 0:
            return pool[:0]
        order = np.argsort(-self._score(model, pool), kind="stable")[:k]
        return pool[order]

    # ------------------------------------------------------------ proposals
    def _ranks(self, index: np.ndarray) -> np.ndarray:
        objective = self.history.objectives[index, self.objective]
        violation = total_violation(self.history.constraints[index])
        return fitness_order(objective, violation)

    def _global_pool(self) -> np.ndarray:
        pool = self._keep_new(self.random_genes(self.global_pool))
        return pool[hamming_far(pool, self._basins, self.tabu_radius)]

    def _propose(self) -> np.ndarray:
        n_known = len(self.history) + len(self._pending)
        if n_known < self.n_init:
            return self._exploratory(self.random_new(self.n_init - n_known))
        model = self._fit()
        explorer = self._fit_exploratory(model)
        genes = self.history.genes
        region = np.arange(self._region_start, len(genes))
        if self.patience and len(region):
            best = int(np.argmin(self._ranks(region)))
            if len(region) - 1 - best >= self.patience:
                # stagnation: first evaluate the best genome's remaining neighbours (certify it);
                # if none is better, it is a local optimum and the search restarts elsewhere
                untried = self._keep_new(neighbours(genes[region[best]], self.problem.cardinalities))
                if self.polish and len(untried):
                    return self._best_predicted(model, untried, self.batch_size)
                self._basins = np.concatenate([self._basins, genes[region[best]][None]])
                self._region_start = len(genes)
                return self._exploratory(
                    self._best_predicted(explorer, self._global_pool(), self.restart_size))
        n_global = self.batch_size if n_known < self.n_init + self.n_explore else self.n_global
        picks = self._exploratory(self._best_predicted(explorer, self._global_pool(), n_global))
        centres = region[hamming_far(genes[region], self._basins, self.tabu_radius)]
        if len(centres) == 0:
            centres = region if len(region) else np.arange(len(genes))
        centres = centres[np.argsort(self._ranks(centres), kind="stable")[: self.n_centres]]
        local = self._keep_new(neighbours(genes[centres], self.problem.cardinalities))
        if len(picks):
            local = local[self.is_new(local, exclude=picks)]
        picks = np.concatenate([picks, self._best_predicted(model, local, self.batch_size - len(picks))])
        return picks if len(picks) else self.random_new(self.batch_size)

    # ------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        pending = [g for g in self._queue.tolist()
                   if self.history.keys(np.asarray([g]))[0] in self._explore_pending]
        return {"region_start": self._region_start, "basins": self._basins.tolist(),
                "explore_flags": list(self._explore_flags), "explore_queued": pending}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._region_start = int(state.get("region_start", 0))
        basins = np.asarray(state.get("basins", []), dtype=np.int64)
        self._basins = basins.reshape(-1, self.problem.n_genes)
        self._cache = FeatureCache(self.problem.features)
        self._explore_flags = [bool(f) for f in state.get("explore_flags", [])]
        queued = np.asarray(state.get("explore_queued", []), dtype=np.int64).reshape(-1, self.problem.n_genes)
        self._explore_pending = set(self.history.keys(queued)) if len(queued) else set()
