"""Variation and selection operators on categorical genomes (vectorised, seeded by a Generator)."""

from __future__ import annotations

import numpy as np


def mutate(
    genes: np.ndarray,
    cardinalities: np.ndarray,
    rng: np.random.Generator,
    *,
    rate: float | None = None,
) -> np.ndarray:
    """Change each gene with probability ``rate`` (default ``1 / n_genes``) to a *different* value;
    a row where no gene changed gets exactly one change. ``rate=0`` means exactly one gene per row.

    Genes with a single choice never change; rows with no changeable gene are returned as they are.
    """
    genes = np.array(genes, dtype=np.int64, copy=True).reshape(-1, len(cardinalities))
    n, g = genes.shape
    card = np.asarray(cardinalities, dtype=np.int64)
    mutable = card > 1
    if n == 0 or not mutable.any():
        return genes
    p = (1.0 / g) if rate is None else float(rate)
    hit = (rng.random((n, g)) < p) & mutable
    # rows with no change: flip one random mutable gene
    none = ~hit.any(axis=1)
    if none.any():
        choices = np.flatnonzero(mutable)
        hit[np.flatnonzero(none), choices[rng.integers(0, len(choices), none.sum())]] = True
    # shift by 1..card-1 so that the new value differs from the old one
    shift = 1 + (rng.random((n, g)) * np.maximum(card - 1, 1)).astype(np.int64)
    genes[hit] = ((genes + shift) % card)[hit]
    return genes


def uniform_crossover(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, *, swap: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Two children per parent pair: each gene comes from either parent with probability ``swap``."""
    take = rng.random(a.shape) < swap
    return np.where(take, b, a), np.where(take, a, b)


def tournament(keys: np.ndarray, n: int, rng: np.random.Generator, *, size: int = 2) -> np.ndarray:
    """``n`` winners of random tournaments of ``size`` members; lower ``keys`` rank wins.

    ``keys`` is a (k,) array of integer ranks (0 best) over the candidates.
    """
    contestants = rng.integers(0, len(keys), size=(n, size))
    best = np.argmin(keys[contestants], axis=1)
    return contestants[np.arange(n), best]


def fitness_order(objective: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Ranks (0 best) for one minimised objective under feasibility-first rules: feasible before
    infeasible, infeasible by total violation, feasible by objective; ties keep the earlier index."""
    order = np.lexsort((np.arange(len(objective)), np.where(violation > 0, 0.0, objective), violation))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks
