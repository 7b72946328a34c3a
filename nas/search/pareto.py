"""Constrained domination, non-dominated sorting, crowding distance and 2-D hypervolume (numpy).

All objectives are minimised. ``violation`` is the total constraint violation per point
(:func:`nas.search.constraints.total_violation`; 0 means feasible). Constrained domination (Deb):
a feasible point beats an infeasible one; of two infeasible points the one with the smaller total
violation wins; of two feasible points, Pareto dominance decides.
"""

from __future__ import annotations

import numpy as np


def _as_2d(objectives: np.ndarray) -> np.ndarray:
    objectives = np.asarray(objectives, dtype=np.float64)
    if objectives.ndim == 1:
        objectives = objectives[:, None]
    if objectives.ndim != 2:
        raise ValueError(f"objectives must be (n, m), got shape {objectives.shape}")
    return objectives


def _violation(violation: np.ndarray | None, n: int) -> np.ndarray:
    if violation is None:
        return np.zeros(n)
    violation = np.asarray(violation, dtype=np.float64).reshape(-1)
    if violation.shape[0] != n:
        raise ValueError(f"violation has {violation.shape[0]} values, expected {n}")
    return violation


def pareto_dominance_matrix(objectives: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when point i Pareto-dominates point j (no constraints), (n, n) bool."""
    f = _as_2d(objectives)
    le = (f[:, None, :] <= f[None, :, :]).all(axis=2)
    lt = (f[:, None, :] < f[None, :, :]).any(axis=2)
    return le & lt


def dominance_matrix(objectives: np.ndarray, violation: np.ndarray | None = None) -> np.ndarray:
    """``D[i, j]`` is True when point i constrained-dominates point j, (n, n) bool."""
    f = _as_2d(objectives)
    v = _violation(violation, f.shape[0])
    feasible = v <= 0
    both_feasible = feasible[:, None] & feasible[None, :]
    d = np.where(both_feasible, pareto_dominance_matrix(f), False)
    d |= feasible[:, None] & ~feasible[None, :]
    both_infeasible = ~feasible[:, None] & ~feasible[None, :]
    d |= both_infeasible & (v[:, None] < v[None, :])
    return d


def constrained_dominates(
    f_a: np.ndarray, v_a: float, f_b: np.ndarray, v_b: float
) -> bool:
    """Whether point a constrained-dominates point b (one pair)."""
    d = dominance_matrix(np.stack([np.asarray(f_a, float), np.asarray(f_b, float)]),
                         np.array([v_a, v_b], dtype=np.float64))
    return bool(d[0, 1])


def non_dominated_sort(objectives: np.ndarray, violation: np.ndarray | None = None) -> np.ndarray:
    """Front index of every point (0 = best front) under constrained domination, (n,) int."""
    f = _as_2d(objectives)
    n = f.shape[0]
    ranks = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return ranks
    d = dominance_matrix(f, violation)
    counts = d.sum(axis=0)
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & (counts == 0)
        ranks[front] = rank
        remaining &= ~front
        counts = counts - d[front].sum(axis=0)
        rank += 1
    return ranks


def nondominated_mask(objectives: np.ndarray) -> np.ndarray:
    """Points no other point Pareto-dominates (duplicates all kept), (n,) bool; O(n log n) in 2-D."""
    f = _as_2d(objectives)
    n, m = f.shape
    if n == 0:
        return np.zeros(0, dtype=bool)
    if m == 1:
        return f[:, 0] == f[:, 0].min()
    if m == 2:
        order = np.lexsort((f[:, 1], f[:, 0]))  # by f0, then f1
        s0, s1 = f[order, 0], f[order, 1]
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = (s0[1:] != s0[:-1]) | (s1[1:] != s1[:-1])
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        before = np.empty(n)  # min f1 over all points sorted strictly before position i
        before[0] = np.inf
        before[1:] = np.minimum.accumulate(s1)[:-1]
        mask = np.empty(n, dtype=bool)
        mask[order] = ~(before[group_start] <= s1)
        return mask
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, 512):  # chunks keep memory at O(512 n)
        block = f[start : start + 512]
        le = (f[:, None, :] <= block[None, :, :]).all(axis=2)
        lt = (f[:, None, :] < block[None, :, :]).any(axis=2)
        mask[start : start + 512] = ~(le & lt).any(axis=0)
    return mask


def feasible_front_mask(objectives: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Feasible points that no other feasible point dominates, (n,) bool."""
    f = _as_2d(objectives)
    v = _violation(violation, f.shape[0])
    mask = np.zeros(f.shape[0], dtype=bool)
    feasible = np.flatnonzero(v <= 0)
    if feasible.size:
        mask[feasible[nondominated_mask(f[feasible])]] = True
    return mask


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of points of one front, (n,); boundary points get +inf."""
    f = _as_2d(objectives)
    n = f.shape[0]
    if n <= 2:
        return np.full(n, np.inf)
    order = np.argsort(f, axis=0, kind="stable")  # (n, m)
    sorted_f = np.take_along_axis(f, order, axis=0)
    span = sorted_f[-1] - sorted_f[0]
    span[span == 0] = 1.0
    gaps = np.empty_like(sorted_f)
    gaps[1:-1] = (sorted_f[2:] - sorted_f[:-2]) / span
    gaps[0] = gaps[-1] = np.inf
    distance = np.zeros(n)
    np.add.at(distance, order.reshape(-1), gaps.reshape(-1))
    return distance


def rank_and_crowding(objectives: np.ndarray, violation: np.ndarray | None = None) -> tuple[
    np.ndarray, np.ndarray
]:
    """Front ranks and crowding distance (computed within each front), as NSGA-II uses them."""
    f = _as_2d(objectives)
    ranks = non_dominated_sort(f, violation)
    crowd = np.zeros(f.shape[0])
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        crowd[members] = crowding_distance(f[members])
    return ranks, crowd


def hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact area dominated by ``points`` (minimised, (n, 2)) and bounded by ``reference`` (2,)."""
    p = _as_2d(points)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if p.shape[1] != 2 or ref.shape != (2,):
        raise ValueError(f"hypervolume_2d needs (n, 2) points and a (2,) reference, got {p.shape}")
    p = p[(p < ref).all(axis=1)]
    if p.shape[0] == 0:
        return 0.0
    p = p[np.lexsort((p[:, 1], p[:, 0]))]  # f0 ascending
    level = np.minimum.accumulate(p[:, 1])  # best f1 reached up to each f0
    widths = np.diff(np.append(p[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - level)))
