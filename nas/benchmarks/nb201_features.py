"""Features of NAS-Bench-201 cells for accuracy predictors, computed from the 6 genes alone.

The cell is a DAG on 4 nodes; edge ``e`` carries op ``genes[e]`` from ``EDGES[e][0]`` to
``EDGES[e][1]`` and node 3 is the output. Op 0 (``none``) cuts its edge, so an edge whose source is
unreachable from the input, or whose target cannot reach the output, does nothing: it is *dead*.
Cells whose output is cut from the input (341 of 15,625) all train to chance accuracy.

Feature blocks (all functions take genes of shape (n, 6) and are vectorised):

- :func:`effective_genes`: dead edges set to ``none`` (isomorphic cells collapse: 9,445 distinct);
- :func:`is_disconnected`: the output is cut from the input;
- :func:`op_counts`: how many live edges carry each op;
- :func:`path_encoding`: for each of the 4 input->output paths, a one-hot of its op sequence when the
  path is fully open (BANANAS-style, position-aware: 4 + 16 + 16 + 64 = 100 columns);
- :func:`path_op_counts`: per path, whether it is open and how many of each op it carries;
- :func:`cost_statistics`: analytic MACs and parameters of the whole NB201 network (nominal, as
  built, and effective, live edges only), longest conv path and number of open paths. These are the
  "free statistics" used to pretrain predictors (FBNetV3).

:func:`encode` assembles the named feature sets of :data:`FEATURE_SETS` used by the predictor
benchmark (``nas/benchmarks/predictors_nb201.py``).
"""

from __future__ import annotations

import itertools

import numpy as np

from nas.benchmarks.nb201 import N_EDGES, OPS, one_hot

EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_NODES = 4
# Input->output paths as edge indices: 0->3, 0->1->3, 0->2->3, 0->1->2->3.
PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))
NONE, SKIP, CONV1, CONV3, POOL = range(len(OPS))

# The NB201 macro network: a 3x3 stem (3 -> 16), three stages of 5 cells (C = 16, 32, 64 at
# 32, 16, 8 pixels square) joined by two ResNet basic blocks with stride 2, then BN, global pooling
# and a linear layer to 10 classes. Convolutions have no bias; every ReLU-Conv-BN has an affine BN.
STAGES: tuple[tuple[int, int], ...] = ((16, 32), (32, 16), (64, 8))  # (channels, side)
CELLS_PER_STAGE = 5
N_CLASSES = 10
STAT_NAMES: tuple[str, ...] = (
    "macs_m",
    "params_m",
    "effective_macs_m",
    "effective_params_m",
    "conv_depth",
    "open_paths",
)
FEATURE_SETS: tuple[str, ...] = ("onehot", "effective", "compact", "full")


def _genes(genes: np.ndarray) -> np.ndarray:
    genes = np.atleast_2d(np.asarray(genes))
    if genes.ndim != 2 or genes.shape[1] != N_EDGES:
        raise ValueError(f"NB201 genes must have shape (n, {N_EDGES}); got {genes.shape}")
    if genes.size and (genes.min() < 0 or genes.max() >= len(OPS)):
        raise ValueError(f"NB201 genes must be op indices in [0, {len(OPS)}); got {genes.min()}..{genes.max()}")
    return genes.astype(np.int64, copy=False)


def _reach(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward reachability from node 0 and backward reachability to node 3, each (n, 4) bool."""
    n = on.shape[0]
    fwd = np.zeros((n, N_NODES), dtype=bool)
    fwd[:, 0] = True
    for e, (src, dst) in enumerate(EDGES):  # edges are in topological order
        fwd[:, dst] |= fwd[:, src] & on[:, e]
    bwd = np.zeros((n, N_NODES), dtype=bool)
    bwd[:, N_NODES - 1] = True
    for e in reversed(range(N_EDGES)):
        src, dst = EDGES[e]
        bwd[:, src] |= bwd[:, dst] & on[:, e]
    return fwd, bwd


def live_edges(genes: np.ndarray) -> np.ndarray:
    """(n, 6) bool: the edge is not ``none`` and lies on an open input->output path."""
    genes = _genes(genes)
    on = genes != NONE
    fwd, bwd = _reach(on)
    src = np.array([s for s, _ in EDGES])
    dst = np.array([d for _, d in EDGES])
    return on & fwd[:, src] & bwd[:, dst]


def is_disconnected(genes: np.ndarray) -> np.ndarray:
    """(n,) bool: no open path joins the cell input to its output."""
    fwd, _ = _reach(_genes(genes) != NONE)
    return ~fwd[:, N_NODES - 1]


def effective_genes(genes: np.ndarray) -> np.ndarray:
    """Genes with dead edges replaced by ``none``; isomorphic-by-pruning cells become equal."""
    genes = _genes(genes)
    return np.where(live_edges(genes), genes, NONE)


def op_counts(genes: np.ndarray) -> np.ndarray:
    """(n, 5) float: number of edges carrying each op (pass effective genes for live counts)."""
    genes = _genes(genes)
    return np.stack([(genes == k).sum(axis=1) for k in range(len(OPS))], axis=1).astype(np.float64)


def path_encoding(genes: np.ndarray) -> np.ndarray:
    """(n, 100) float: per path, one-hot of its op sequence over the 4 non-``none`` ops if open."""
    genes = _genes(genes)
    n = genes.shape[0]
    blocks = []
    for path in PATHS:
        cols = list(path)
        open_ = np.all(genes[:, cols] != NONE, axis=1)
        code = np.zeros(n, dtype=np.int64)
        for e in cols:
            code = code * (len(OPS) - 1) + np.clip(genes[:, e] - 1, 0, None)
        block = np.zeros((n, (len(OPS) - 1) ** len(path)))
        block[np.flatnonzero(open_), code[open_]] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def path_names() -> list[str]:
    """Column names of :func:`path_encoding`, e.g. ``path0-1-3:skip_connect>nor_conv_3x3``."""
    names = []
    ops = OPS[1:]
    for path in PATHS:
        label = _path_label(path)
        for code in range(len(ops) ** len(path)):
            seq = []
            for _ in path:
                seq.append(ops[code % len(ops)])
                code //= len(ops)
            names.append(f"{label}:{'>'.join(reversed(seq))}")
    return names


def _op_costs() -> tuple[np.ndarray, np.ndarray]:
    """Per-op MACs and parameters summed over all 15 cells of the network, shape (5,) each."""
    macs = np.zeros(len(OPS))
    params = np.zeros(len(OPS))
    for channels, side in STAGES:
        hw = side * side
        macs[CONV1] += CELLS_PER_STAGE * channels * channels * hw
        macs[CONV3] += CELLS_PER_STAGE * 9 * channels * channels * hw
        params[CONV1] += CELLS_PER_STAGE * (channels * channels + 2 * channels)
        params[CONV3] += CELLS_PER_STAGE * (9 * channels * channels + 2 * channels)
    return macs, params


def _fixed_costs() -> tuple[float, float]:
    """MACs and parameters of everything outside the cells (stem, reductions, head)."""
    c0, s0 = STAGES[0]
    macs = 9 * 3 * c0 * s0 * s0
    params = 9 * 3 * c0 + 2 * c0
    for (c_in, _), (c_out, side) in itertools.pairwise(STAGES):
        hw = side * side
        macs += (9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out) * hw
        params += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
    c_last = STAGES[-1][0]
    macs += c_last * N_CLASSES
    params += 2 * c_last + c_last * N_CLASSES + N_CLASSES
    return float(macs), float(params)


def _longest_conv_path(genes: np.ndarray) -> np.ndarray:
    """Most convolutions on one open input->output path (0 when disconnected)."""
    conv = np.isin(genes, (CONV1, CONV3)).astype(np.int64)
    best = np.zeros(genes.shape[0], dtype=np.int64)
    for path in PATHS:
        cols = list(path)
        open_ = np.all(genes[:, cols] != NONE, axis=1)
        best = np.where(open_, np.maximum(best, conv[:, cols].sum(axis=1)), best)
    return best


def cost_statistics(genes: np.ndarray) -> np.ndarray:
    """(n, 6) float, columns :data:`STAT_NAMES`; the label-free statistics of each cell.

    MACs count the multiply-accumulates of convolutions and the linear layer for one 32x32 image
    (BN, pooling and additions excluded); parameters count weights and BN affine terms. "Effective"
    versions count live edges only: a dead convolution is still built, but cannot affect the output.
    """
    genes = _genes(genes)
    op_macs, op_params = _op_costs()
    fixed_macs, fixed_params = _fixed_costs()
    nominal = op_counts(genes)
    live = op_counts(effective_genes(genes))
    open_paths = np.stack(
        [np.all(genes[:, list(p)] != NONE, axis=1) for p in PATHS], axis=1
    ).sum(axis=1)
    return np.stack(
        [
            (fixed_macs + nominal @ op_macs) / 1e6,
            (fixed_params + nominal @ op_params) / 1e6,
            (fixed_macs + live @ op_macs) / 1e6,
            (fixed_params + live @ op_params) / 1e6,
            _longest_conv_path(genes).astype(np.float64),
            open_paths.astype(np.float64),
        ],
        axis=1,
    )


def path_op_counts(genes: np.ndarray) -> np.ndarray:
    """(n, 20) float: per path, whether it is open and how many of each non-``none`` op it has."""
    genes = _genes(genes)
    blocks = []
    for path in PATHS:
        cols = list(path)
        open_ = np.all(genes[:, cols] != NONE, axis=1)
        blocks.append(open_[:, None].astype(np.float64))
        for k in range(1, len(OPS)):
            blocks.append(np.where(open_, (genes[:, cols] == k).sum(axis=1), 0)[:, None].astype(np.float64))
    return np.hstack(blocks)


def _path_label(path: tuple[int, ...]) -> str:
    nodes = [EDGES[path[0]][0]] + [EDGES[e][1] for e in path]
    return "path" + "-".join(str(v) for v in nodes)


def path_op_count_names() -> list[str]:
    """Column names of :func:`path_op_counts`."""
    names = []
    for path in PATHS:
        label = _path_label(path)
        names += [f"{label}:open"] + [f"{label}:n_{op}" for op in OPS[1:]]
    return names


def encode(genes: np.ndarray, kind: str = "full") -> tuple[np.ndarray, list[str]]:
    """Feature matrix and column names for a feature set in :data:`FEATURE_SETS`.

    - ``onehot`` (30): the raw one-hot columns (what an additive model over choices uses);
    - ``effective`` (31): one-hot of :func:`effective_genes` plus the disconnected flag;
    - ``compact`` (28): disconnected flag, live op counts, longest conv path, open paths and
      :func:`path_op_counts`: few dense columns, best for trees with few samples;
    - ``full`` (158): ``effective`` + live op counts + :func:`path_encoding` + the rest of
      ``compact``: the richest set, best for the MLP with many samples.
    """
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown NB201 feature set {kind!r}; expected one of {FEATURE_SETS}")
    genes = _genes(genes)
    onehot_names = [f"edge{e}:{op}" for e in range(N_EDGES) for op in OPS]
    if kind == "onehot":
        return one_hot(genes), onehot_names
    eff = effective_genes(genes)
    disc = is_disconnected(genes).astype(np.float64)[:, None]
    stats = cost_statistics(genes)[:, 4:]  # conv_depth, open_paths
    blocks: list[np.ndarray] = [disc]
    names: list[str] = ["disconnected"]
    if kind in ("effective", "full"):
        blocks.append(one_hot(eff))
        names += [f"live_{n}" for n in onehot_names]
    if kind in ("compact", "full"):
        blocks += [op_counts(eff), stats, path_op_counts(genes)]
        names += [f"count:{op}" for op in OPS] + list(STAT_NAMES[4:]) + path_op_count_names()
    if kind == "full":
        blocks.append(path_encoding(genes))
        names += path_names()
    return np.hstack(blocks), names
