"""NAS-Bench-201 adapter: the cell as 6 categorical genes over 5 operations.

The table (``../shared/benchmarks/nb201.csv.gz``) holds all 15,625 cells. A cell string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` lists the operation on each of the 6 edges
(node1<-0, node2<-0, node2<-1, node3<-0, node3<-1, node3<-2). Genes are the operation indices
in :data:`OPS` order, so a cell is a point of ``{0..4}^6`` and ``index_of_genes`` maps it back to
its table row in O(1).

Search must select on ``VALID_COLUMN`` and report ``TEST_COLUMN`` (never select on test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_EDGES = 6
VALID_COLUMN = "c10valid_valid_accuracy"
TEST_COLUMN = "cifar10_test_acc"
DEFAULT_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "nb201.csv.gz"


def default_path() -> Path:
    """Where the table is looked for: ``$NAS_BENCHMARKS/nb201.csv.gz`` or ``../shared/benchmarks``."""
    env = os.environ.get("NAS_BENCHMARKS")
    return Path(env) / "nb201.csv.gz" if env else DEFAULT_PATH


def parse_cell(arch_str: str) -> np.ndarray:
    """Cell string -> int genes of shape (6,). Raises ValueError naming the bad part."""
    nodes = [part for part in arch_str.strip().split("+")]
    ops: list[str] = []
    for node in nodes:
        for token in node.strip("|").split("|"):
            if not token:
                continue
            name, _, _src = token.partition("~")
            if name not in OPS:
                raise ValueError(
                    f"unknown NB201 operation {name!r} in {arch_str!r}; expected one of {OPS}"
                )
            ops.append(name)
    if len(ops) != N_EDGES:
        raise ValueError(f"NB201 cell {arch_str!r} has {len(ops)} edges; expected {N_EDGES}")
    return np.array([OPS.index(o) for o in ops], dtype=np.int64)


def format_cell(genes: np.ndarray) -> str:
    """Int genes (6,) -> cell string (inverse of :func:`parse_cell`)."""
    g = [OPS[int(i)] for i in genes]
    return f"|{g[0]}~0|+|{g[1]}~0|{g[2]}~1|+|{g[3]}~0|{g[4]}~1|{g[5]}~2|"


def genes_to_code(genes: np.ndarray) -> np.ndarray:
    """Genes (n, 6) -> base-5 integer code (n,), a dense key in [0, 5**6)."""
    genes = np.atleast_2d(genes)
    weights = len(OPS) ** np.arange(N_EDGES)[::-1]
    return genes @ weights


def one_hot(genes: np.ndarray) -> np.ndarray:
    """Genes (n, 6) -> one-hot features (n, 30)."""
    genes = np.atleast_2d(genes)
    out = np.zeros((genes.shape[0], N_EDGES * len(OPS)), dtype=np.float64)
    rows = np.arange(genes.shape[0])[:, None]
    out[rows, np.arange(N_EDGES) * len(OPS) + genes] = 1.0
    return out


@dataclass(frozen=True)
class NB201Table:
    """The loaded table with genes and an O(1) genes -> row lookup."""

    frame: pd.DataFrame
    genes: np.ndarray  # (15625, 6)
    row_of_code: np.ndarray  # (5**6,) row index for each base-5 code

    @property
    def cardinalities(self) -> np.ndarray:
        return np.full(N_EDGES, len(OPS), dtype=np.int64)

    def rows(self, genes: np.ndarray) -> np.ndarray:
        """Row indices of cells given as genes (n, 6)."""
        return self.row_of_code[genes_to_code(genes)]

    def column(self, name: str) -> np.ndarray:
        if name not in self.frame.columns:
            raise KeyError(f"column {name!r} not in NB201 table; have {list(self.frame.columns)}")
        return self.frame[name].to_numpy(dtype=np.float64)

    def latency_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c.startswith("lat_ms_")]


def load(path: str | os.PathLike | None = None) -> NB201Table:
    """Load the NB201 table; a missing file gives one clear error."""
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"NB201 table not found at {path}; expected the benchmark file nb201.csv.gz "
            "(set NAS_BENCHMARKS to its folder)"
        )
    frame = pd.read_csv(path)
    missing = {"arch_index", "arch_str", VALID_COLUMN, TEST_COLUMN} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} is not an NB201 table: missing columns {sorted(missing)}")
    genes = np.stack([parse_cell(s) for s in frame["arch_str"]])
    row_of_code = np.full(len(OPS) ** N_EDGES, -1, dtype=np.int64)
    row_of_code[genes_to_code(genes)] = np.arange(len(frame))
    return NB201Table(frame=frame, genes=genes, row_of_code=row_of_code)
