"""Which subnets to measure: distinct architectures drawn uniformly or stratified by FLOPs.

Both strategies are pure functions of (space, n, seed): the same seed draws the same list, whatever
has already been measured, so an interrupted ``nas sample`` resumes the same list.

- ``uniform``: ``space.sample(rng)`` repeated, duplicates skipped. The list for ``n`` is a prefix of
  the list for any larger ``n`` with the same seed, so a sample can be extended.
- ``flops``: equal counts per bin of log-FLOPs between the space's exact minimum and maximum; the
  largest and the smallest subnets are always included (first in the list). Candidates come from a
  seeded pool: uniform genomes plus genomes crossed gene by gene with the largest or the smallest
  one at every mixing rate, so the extreme bins, which uniform sampling almost never reaches, are
  populated too. A bin with fewer distinct candidates than its share passes the rest to the other
  bins. The list is shuffled (largest and smallest first) so that any prefix is also stratified.
"""

from __future__ import annotations

import numpy as np

from nas.arch import Architecture
from nas.errors import UserError
from nas.spaces import SearchSpace, canonical, cardinalities, decode, encode
from nas.spaces.cells import cost_rules
from nas.spaces.tables import GenomeTables

STRATEGIES: tuple[str, ...] = ("uniform", "flops")
DEFAULT_BINS = 10
MAX_DRAWS_PER_ARCH = 50  # uniform: give up after 50 * n + 1000 draws (a near-exhausted space)
POOL_PER_ARCH = 40  # flops: candidate genomes per requested architecture (at least MIN_POOL)
MIN_POOL = 20_000


def draw_architectures(
    space: SearchSpace,
    n: int,
    *,
    strategy: str = "uniform",
    seed: int = 0,
    bins: int = DEFAULT_BINS,
) -> list[Architecture]:
    """``n`` distinct architectures of ``space`` (see the module docstring for the strategies)."""
    if strategy not in STRATEGIES:
        raise UserError(f"sampling strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise UserError(f"n={n}: expected at least 1 architecture to draw")
    size = space.size()
    if n > size:
        raise UserError(f"n={n}: space {space.name!r} has only {size} distinct subnets")
    rng = np.random.default_rng(seed)
    if strategy == "uniform":
        return _uniform(space, n, rng)
    if n < 2:
        raise UserError("strategy 'flops' always includes the largest and the smallest: n >= 2")
    if bins < 1:
        raise UserError(f"bins={bins}: expected at least 1")
    return _stratified(space, n, rng, bins)


def _uniform(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Architecture]:
    seen: dict[Architecture, None] = {}
    limit = MAX_DRAWS_PER_ARCH * n + 1000
    for _ in range(limit):
        seen.setdefault(space.sample(rng), None)
        if len(seen) == n:
            return list(seen)
    raise UserError(
        f"drew only {len(seen)} distinct subnets of {space.name!r} in {limit} draws; "
        f"ask for fewer than {n}"
    )


def _macs_tables(space: SearchSpace) -> GenomeTables:

    return GenomeTables(space, rules={"macs": cost_rules()["macs"]})


def candidate_pool(space: SearchSpace, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` canonical genomes: a third uniform per gene, the rest crossed gene by gene with the
    largest or the smallest genome at a uniform mixing rate."""
    card = cardinalities(space)
    genes = (rng.random((size, len(card))) * card).astype(np.int64)
    anchors = np.stack([encode(space, space.largest()), encode(space, space.smallest())])
    mixed = np.arange(size) >= size // 3
    which = rng.integers(2, size=size)
    rate = rng.random(size)
    take = (rng.random(genes.shape) < rate[:, None]) & mixed[:, None]
    genes = np.where(take, anchors[which], genes)
    return canonical(space, genes)


def _quotas(capacity: np.ndarray, floor: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Counts per bin summing to ``total`` (or to the capacity, if less), as equal as possible
    (water-filling from ``floor``), never above ``capacity``; ties broken at random."""
    quota = floor.copy()
    left = total - int(quota.sum())
    while left > 0:
        open_ = np.flatnonzero(quota < capacity)
        if len(open_) == 0:
            break
        level = quota[open_].min()
        lowest = open_[quota[open_] == level]
        if len(lowest) > left:
            lowest = rng.choice(lowest, size=left, replace=False)
        quota[lowest] += 1
        left -= len(lowest)
    return quota


def _stratified(
    space: SearchSpace, n: int, rng: np.random.Generator, bins: int
) -> list[Architecture]:
    tables = _macs_tables(space)
    big, small = space.largest(), space.smallest()
    g_big, g_small = encode(space, big), encode(space, small)
    lo, hi = (float(tables.costs(g)["macs"][0]) for g in (g_small, g_big))
    pool = candidate_pool(space, max(MIN_POOL, POOL_PER_ARCH * n), rng)
    pool = np.unique(pool, axis=0)
    pool = pool[rng.permutation(len(pool))]  # np.unique sorts; restore a random order
    keep = ~((pool == g_big).all(axis=1) | (pool == g_small).all(axis=1))
    pool = pool[keep]
    macs = tables.costs(pool)["macs"]
    edges = np.linspace(np.log(lo), np.log(hi), bins + 1)
    which = np.clip(np.searchsorted(edges, np.log(macs), side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    # The largest and the smallest count in the first and last bins.
    fixed = np.zeros(bins, dtype=np.int64)
    fixed[0] += 1
    fixed[-1] += 1
    target = _quotas(counts + fixed, fixed, n, rng) - fixed
    chosen = [pool[np.flatnonzero(which == b)[: target[b]]] for b in range(bins)]
    picked = np.concatenate(chosen) if chosen else np.zeros((0, len(g_big)), dtype=np.int64)
    if len(picked) < n - 2:
        raise UserError(
            f"found only {len(picked) + 2} distinct subnets of {space.name!r} for strategy "
            f"'flops'; ask for fewer than {n}"
        )
    picked = picked[rng.permutation(len(picked))]
    return [big, small] + [decode(space, g) for g in picked]


def flops_bins(space: SearchSpace, archs: list[Architecture], bins: int = DEFAULT_BINS) -> np.ndarray:
    """Bin index (0 .. bins-1) of each architecture's log-FLOPs over the space's exact range."""
    tables = _macs_tables(space)
    lo, hi = (
        float(tables.costs(encode(space, a))["macs"][0]) for a in (space.smallest(), space.largest())
    )
    genes = np.stack([encode(space, a) for a in archs])
    edges = np.linspace(np.log(lo), np.log(hi), bins + 1)
    which = np.searchsorted(edges, np.log(tables.costs(genes)["macs"]), side="right") - 1
    return np.clip(which, 0, bins - 1)
