"""Predictor-guided search for two objectives: pick the genomes whose predicted point adds the most
hypervolume to the feasible front found so far.

After ``n_init`` random genomes, each batch:

1. fits :class:`~nas.search.surrogate.BayesianLinear` to both objectives and every constraint;
2. builds a pool: every genome one gene away from a member of the feasible front (or, before any
   feasible genome is found, from the least-violating ones), plus ``global_pool`` random genomes;
3. picks greedily: the candidate predicted feasible with the largest predicted hypervolume
   improvement (HVI) joins the batch and its predicted point joins a virtual front, so the next pick
   fills another gap (up to 20 picks per batch). When no candidate is predicted to improve the
   front any more, the rest are the candidates predicted closest behind it (cheap exploration where
   the model is least sure of being right).
"""

from __future__ import annotations

import numpy as np

from nas.search.base import Searcher
from nas.search.constraints import total_violation
from nas.search.guided import FeatureCache, neighbours
from nas.search.pareto import feasible_front_mask, nondominated_mask
from nas.search.problem import Evaluation, Problem
from nas.search.surrogate import BayesianLinear


def hypervolume_improvement_2d(
    candidates: np.ndarray, front: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """Exact HVI of each candidate point (p, 2) added alone to ``front`` (k, 2), all minimised."""
    cand = np.asarray(candidates, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    f = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    f = f[(f < ref).all(axis=1)]
    f = f[np.argsort(f[:, 0], kind="stable")]
    # staircase: on [lo_i, hi_i) the front already dominates every y >= level_i
    lo = np.concatenate([[-np.inf], f[:, 0]])
    hi = np.concatenate([f[:, 0], [ref[0]]])
    level = np.minimum.accumulate(np.concatenate([[ref[1]], f[:, 1]]))
    width = np.clip(np.minimum(hi[None, :], ref[0]) - np.maximum(lo[None, :], cand[:, :1]), 0, None)
    height = np.clip(level[None, :] - cand[:, 1:2], 0, None)
    return (width * height).sum(axis=1)


def distance_to_front_2d(candidates: np.ndarray, front: np.ndarray) -> np.ndarray:
    """How far each candidate (p, 2) lies behind ``front`` (k, 2), all minimised: over the front
    points that dominate it (weakly), the largest of their smallest per-objective gaps; 0 when no
    front point dominates it, (p,). O(p log k): on the non-dominated front sorted by the first
    objective, a candidate's dominators form a contiguous run along which one gap shrinks while the
    other grows, so the best one sits where ``f0 - f1`` crosses ``c0 - c1`` (a binary search)."""
    cand = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(cand))
    f = np.asarray(front, dtype=np.float64).reshape(-1, 2)
    if len(f) == 0 or len(cand) == 0:
        return out
    f = f[nondominated_mask(f)]
    f = f[np.lexsort((f[:, 1], f[:, 0]))]  # f0 ascending, f1 descending
    f0, f1 = f[:, 0], f[:, 1]
    hi = np.searchsorted(f0, cand[:, 0], side="right")  # dominators have index < hi (f0 <= c0)
    lo = np.searchsorted(-f1, -cand[:, 1], side="left")  # ... and index >= lo (f1 <= c1)
    has = lo < hi
    cross = np.searchsorted(f0 - f1, cand[:, 0] - cand[:, 1], side="right")
    best = np.zeros(len(cand))
    for j in (cross - 1, cross):
        j = np.clip(j, lo, np.maximum(hi - 1, lo))
        j = np.clip(j, 0, len(f) - 1)
        gap = np.minimum(cand[:, 0] - f0[j], cand[:, 1] - f1[j])
        best = np.maximum(best, np.where(has, gap, 0.0))
    out[:] = np.clip(best, 0.0, None)
    return out


SEQUENTIAL_PICKS = 20  # picks per batch chosen one by one against the updated virtual front


class GuidedParetoSearch(Searcher):
    """Surrogate-guided search for exactly two objectives, with constraints."""

    name = "guided_pareto"

    def __init__(
        self,
        problem: Problem,
        *,
        seed: int = 0,
        n_init: int = 20,
        batch_size: int = 20,
        batch_fraction: float = 0.2,
        global_pool: int = 500,
        alpha: float | None = None,
        noise: float = 0.1,
    ) -> None:
        super().__init__(problem, seed=seed)
        if len(problem.objectives) != 2:
            raise ValueError(
                f"GuidedParetoSearch needs exactly 2 objectives, got {len(problem.objectives)}; "
                "use NSGA2 for more"
            )
        if min(n_init, batch_size) < 1 or global_pool < 0 or not 0 <= batch_fraction <= 1:
            raise ValueError("need n_init, batch_size >= 1, global_pool >= 0, batch_fraction in [0, 1]")
        self.n_init = n_init
        self.batch_size = batch_size
        self.batch_fraction = batch_fraction
        self.global_pool = global_pool
        self.alpha = alpha
        self.noise = noise
        self._cache = FeatureCache(problem.features)

    def _observe(self, genes: np.ndarray, evaluation: Evaluation) -> None:
        self._cache.sync(self.history.genes)

    def _load_extra_state(self, state: dict) -> None:
        self._cache = FeatureCache(self.problem.features)

    def _propose(self) -> np.ndarray:
        n_known = len(self.history) + len(self._pending)
        if n_known < self.n_init:
            return self.random_new(self.n_init - n_known)
        X = self._cache.sync(self.history.genes)
        obj = self.history.objectives
        cons = self.history.constraints
        violation = total_violation(cons)
        alpha = self.alpha if self.alpha is not None else float(np.mean(X.sum(axis=1)))
        model = BayesianLinear(alpha=alpha, noise=self.noise).fit(
            X, np.column_stack([obj, cons]), **self._cache.products()
        )
        on_front = feasible_front_mask(obj, violation)
        if on_front.any():
            centres = self.history.genes[on_front]
        else:
            centres = self.history.genes[np.argsort(violation, kind="stable")[:10]]
        pool = self._keep_new(np.concatenate([
            neighbours(centres, self.problem.cardinalities),
            self.random_genes(self.global_pool),
        ]))
        if len(pool) == 0:
            return self.random_new(self.batch_size)
        pred = model.predict(self._cache.featurize(pool))
        p_obj, p_viol = pred[:, :2], np.clip(pred[:, 2:], 0, None).sum(axis=1)
        feasible = violation <= 0
        front = obj[on_front]
        span = obj[feasible].max(axis=0) - obj[feasible].min(axis=0) if feasible.any() else np.ones(2)
        span[span <= 0] = 1.0
        reference = (obj[feasible].max(axis=0) if feasible.any() else obj.max(axis=0)) + 0.1 * span
        k = max(self.batch_size, int(self.batch_fraction * len(self.history)))
        return pool[self._greedy(p_obj, p_viol, front, reference, k)]

    def _greedy(self, p_obj: np.ndarray, p_viol: np.ndarray, front: np.ndarray,
                reference: np.ndarray, k: int) -> np.ndarray:
        """Indices of a batch of ``k`` candidates (see the module docstring)."""
        k = min(k, len(p_obj))
        ok = np.flatnonzero(p_viol <= 0)
        if len(ok) < k:  # too few predicted feasible: add the least violating ones
            others = np.setdiff1d(np.arange(len(p_obj)), ok)
            return np.concatenate([ok, others[np.argsort(p_viol[others], kind="stable")][: k - len(ok)]])
        picks: list[int] = []
        virtual = front
        hvi = hypervolume_improvement_2d(p_obj[ok], virtual, reference)
        top = np.argsort(-hvi, kind="stable")[: 4 * min(k, SEQUENTIAL_PICKS)]
        short = ok[top[hvi[top] > 0]]
        while len(picks) < min(k, SEQUENTIAL_PICKS) and len(short):
            gain = hypervolume_improvement_2d(p_obj[short], virtual, reference)
            best = int(np.argmax(gain))
            if gain[best] <= 0:
                break
            picks.append(int(short[best]))
            virtual = np.concatenate([virtual, p_obj[short[best]][None]])
            short = np.delete(short, best)
        if len(picks) < k:  # the rest: the candidates predicted closest to the (virtual) front
            rest = np.setdiff1d(ok, picks)
            need = distance_to_front_2d(p_obj[rest], virtual)
            picks.extend(rest[np.argsort(need, kind="stable")[: k - len(picks)]].tolist())
        return np.asarray(picks, dtype=np.int64)
