"""NAS-Bench-201 as a search problem: genomes are the 6 edge operations, metrics are table columns.

The surrogate features of a cell (:func:`cell_features`) are its one-hot operations, a one-hot of
the operation sequence on each of the 4 input-to-output paths (as in BANANAS' path encoding), and a
few structural counts that do not depend on which path carries them (is there an identity path,
how many convolutions lie on live paths, ...). They are computed once for all 15,625 cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nas.benchmarks import nb201
from nas.search.constraints import Constraint, Objective
from nas.search.problem import TabularProblem

# edges: 0: 1<-0, 1: 2<-0, 2: 2<-1, 3: 3<-0, 4: 3<-1, 5: 3<-2; paths from node 0 to node 3
PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
NONE, SKIP, CONV1, CONV3, POOL = range(5)


def _path_one_hot(genes: np.ndarray) -> np.ndarray:
    blocks = []
    for path in PATHS:
        code = np.zeros(len(genes), dtype=np.int64)
        for edge in path:
            code = code * len(nb201.OPS) + genes[:, edge]
        block = np.zeros((len(genes), len(nb201.OPS) ** len(path)))
        block[np.arange(len(genes)), code] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def _structure(genes: np.ndarray) -> np.ndarray:
    n = len(genes)
    cols: list[np.ndarray] = []
    identity = np.zeros(n)
    alive_paths = np.zeros(n)
    deepest = np.zeros(n)
    active = np.zeros((n, nb201.N_EDGES), dtype=bool)
    for path in PATHS:
        ops = genes[:, list(path)]
        alive = (ops != NONE).all(axis=1)
        conv3 = (ops == CONV3).sum(axis=1)
        conv1 = (ops == CONV1).sum(axis=1)
        pure_skip = (ops == SKIP).all(axis=1)
        cols += [alive, alive * conv3, alive * conv1, alive * (ops == POOL).sum(axis=1), alive & pure_skip]
        identity += alive & pure_skip
        alive_paths += alive
        deepest = np.maximum(deepest, alive * (conv3 + conv1))
        for edge in path:
            active[:, edge] |= alive
    conv_active = ((genes == CONV3) | (genes == CONV1)) & active
    cols += [
        identity > 0, identity, alive_paths, deepest, conv_active.sum(axis=1),
        ((genes == CONV3) & active).sum(axis=1), ((genes == POOL) & active).sum(axis=1), alive_paths == 0,
    ]
    return np.column_stack(cols).astype(np.float64)


def cell_features(genes: np.ndarray) -> np.ndarray:
    """Surrogate features of cells (n, 6) -> (n, 238): one-hot, path one-hot, structure counts."""
    genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
    return np.hstack([nb201.one_hot(genes), _path_one_hot(genes), _structure(genes)])


def make_problem(
    table: nb201.NB201Table,
    objectives: Sequence[Objective | str],
    constraints: Sequence[Constraint | str] = (),
    *,
    extra_metrics: Sequence[str] = (nb201.TEST_COLUMN,),
) -> TabularProblem:
    """A :class:`TabularProblem` over the table's numeric columns, with :func:`cell_features`."""
    columns = {
        c: table.column(c)
        for c in table.frame.columns
        if c not in ("arch_index", "arch_str") and np.issubdtype(table.frame[c].dtype, np.number)
    }
    features = cell_features(table.genes).astype(np.uint8)  # small counts: 8x less to gather

    def lookup_features(genes: np.ndarray) -> np.ndarray:
        return features[table.rows(genes)].astype(np.float64)

    return TabularProblem(
        table.cardinalities, table.rows, columns, objectives, constraints,
        features=lookup_features, extra_metrics=extra_metrics,
    )
