"""Choices worth exporting: K models that are different choices along an accuracy/latency front.

:func:`pick_choices` takes the accuracy and latency of candidates (a search's front) and returns up
to K of them, each with a one-line reason, in this order:

1. ``most accurate``: the most accurate candidate under the latency bound (ties: the faster);
2. ``fastest near the best``: the fastest candidate whose accuracy is within ``acc_tolerance`` of
   the most accurate one's;
3. ``knee``: the Pareto point farthest above the straight line joining the front's fastest and
   most accurate points (latency and accuracy each scaled to [0, 1]): the most accuracy for its
   latency;
4. ``spread``: then, while more are asked, the Pareto point farthest in log-latency from every
   pick so far (K spread evenly in latency along the front).

No two picks are within ``min_gap`` (3%) of each other in latency, unless the front has nothing
else: then the remaining Pareto points are added, most accurate first, and their reason says so.
Candidates over the bound and dominated ones (another is at least as accurate and faster) are
never picked. Pure and deterministic: same input, same picks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

MIN_GAP = 0.03
DEFAULT_ACC_TOLERANCE = 0.01  # as a fraction: one accuracy point


@dataclass(frozen=True)
class Pick:
    """One chosen candidate: its index in the input, its role and why it was chosen."""

    index: int
    role: str
    reason: str


def pareto_indices(accuracy: np.ndarray, latency: np.ndarray) -> list[int]:
    """Indices of the non-dominated candidates (higher accuracy, lower latency), by latency."""
    order = np.lexsort((-accuracy, latency))  # by latency, then most accurate first
    out: list[int] = []
    best = -np.inf
    for i in order:
        if accuracy[i] > best:
            out.append(int(i))
            best = accuracy[i]
    return out


def _gap(a: float, b: float) -> float:
    return abs(a - b) / min(a, b)


def pick_choices(
    accuracy: ArrayLike,
    latency: ArrayLike,
    k: int,
    *,
    bound: float | None = None,
    acc_tolerance: float = DEFAULT_ACC_TOLERANCE,
    min_gap: float = MIN_GAP,
) -> list[Pick]:
    """Up to ``k`` picks among the candidates (see the module docstring). ``accuracy`` as a
    fraction in [0, 1] (``acc_tolerance`` likewise), ``latency`` in ms (> 0)."""
    if k < 1:
        raise ValueError(f"k={k}: expected >= 1")
    acc = np.asarray(accuracy, dtype=np.float64)
    lat = np.asarray(latency, dtype=np.float64)
    ok = np.isfinite(acc) & np.isfinite(lat) & (lat > 0)
    if bound is not None:
        ok &= lat <= bound
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return []
    front = [int(idx[i]) for i in pareto_indices(acc[idx], lat[idx])]
    picks: list[Pick] = []

    def free(i: int) -> bool:
        return all(i != p.index and _gap(lat[i], lat[p.index]) >= min_gap for p in picks)

    def desc(i: int) -> str:
        return f"{100 * acc[i]:.2f}% at {lat[i]:.3g} ms"

    best = front[-1]  # the most accurate Pareto point is the slowest one
    where = f" under the {bound:.3g} ms bound" if bound is not None else ""
    picks.append(Pick(best, "most accurate", f"most accurate{where}: {desc(best)}"))

    if len(picks) < k:
        near = [i for i in front if acc[i] >= acc[best] - acc_tolerance - 1e-12 and free(i)]
        if near:
            i = near[0]  # the front is sorted by latency
            picks.append(Pick(i, "fastest near the best", (
                f"fastest within {100 * acc_tolerance:.3g} accuracy points of the most accurate: "
                f"{desc(i)}, {100 * (1 - lat[i] / lat[best]):.0f}% faster")))

    if len(picks) < k and len(front) >= 3:
        knee = _knee(front, acc, lat, free)
        if knee is not None:
            picks.append(Pick(knee, "knee", (
                f"knee of the front: {desc(knee)}, the most accuracy for its latency between "
                f"the fastest ({desc(front[0])}) and the most accurate")))

    while len(picks) < k:
        candidates = [i for i in front if free(i)]
        if not candidates:
            break
        logs = np.log([lat[p.index] for p in picks])
        far = max(candidates, key=lambda i: (np.min(np.abs(np.log(lat[i]) - logs)), acc[i]))
        picks.append(Pick(far, "spread", (
            f"spread along the front: {desc(far)}, the farthest in latency from the picks so "
            "far")))

    if len(picks) < k:
        taken = {p.index for p in picks}
        rest = sorted((i for i in front if i not in taken), key=lambda i: (-acc[i], lat[i]))
        for i in rest[: k - len(picks)]:
            picks.append(Pick(i, "nothing else", (
                f"{desc(i)}: the front has no other choice >= {100 * min_gap:.0f}% apart in "
                "latency from those picked")))
    return picks


def _knee(front: Sequence[int], acc: np.ndarray, lat: np.ndarray, free) -> int | None:
    lo, hi = front[0], front[-1]
    span_lat, span_acc = lat[hi] - lat[lo], acc[hi] - acc[lo]
    if span_lat <= 0 or span_acc <= 0:
        return None
    best, best_d = None, 0.0
    for i in front[1:-1]:
        x = (lat[i] - lat[lo]) / span_lat
        y = (acc[i] - acc[lo]) / span_acc
        d = y - x  # above the line joining the two ends
        if d > best_d and free(i):
            best, best_d = i, d
    return best
