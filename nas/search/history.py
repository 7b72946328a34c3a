"""What a search has evaluated, with O(1) duplicate checks on canonical genomes."""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.search.problem import Evaluation

BITMAP_LIMIT = 1 << 24  # spaces up to 16M genomes keep a seen-flag per genome


class GenomeCodec:
    """Keys of genome rows: the mixed-radix integer code when the space has fewer than 2**62
    genomes (vectorised membership tests), else the row's bytes."""

    def __init__(self, cardinalities: np.ndarray) -> None:
        card = [int(c) for c in cardinalities]
        total = 1
        for c in card:
            total *= c
        self.n_genes = len(card)
        self.total = total
        self.integer = total < 2**62
        weights = [1] * len(card)
        for i in range(len(card) - 2, -1, -1):
            weights[i] = weights[i + 1] * card[i + 1]
        self.weights = np.array(weights, dtype=np.int64) if self.integer else None

    def codes(self, genes: np.ndarray) -> np.ndarray:
        """Keys as an array: int64 codes, or an object array of bytes for huge spaces, (n,)."""
        genes = np.ascontiguousarray(np.asarray(genes, dtype=np.int64).reshape(-1, self.n_genes))
        if self.integer:
            return genes @ self.weights
        out = np.empty(len(genes), dtype=object)
        out[:] = [row.tobytes() for row in genes]
        return out

    def keys(self, genes: np.ndarray) -> list:
        """Hashable keys (Python ints or bytes), one per row."""
        return self.codes(genes).tolist()

    def isin(self, codes: np.ndarray, known: set) -> np.ndarray:
        """Mask of ``codes`` that are in ``known``, (n,) bool."""
        if not known or len(codes) == 0:
            return np.zeros(len(codes), dtype=bool)
        if self.integer:
            return np.isin(codes, np.fromiter(known, dtype=np.int64, count=len(known)))
        return np.array([c in known for c in codes], dtype=bool)

    def first_occurrence(self, codes: np.ndarray) -> np.ndarray:
        """Mask of the first occurrence of each key in ``codes``, (n,) bool."""
        mask = np.zeros(len(codes), dtype=bool)
        if len(codes) == 0:
            return mask
        if self.integer:
            mask[np.unique(codes, return_index=True)[1]] = True
            return mask
        seen: set = set()
        for i, c in enumerate(codes):
            if c not in seen:
                seen.add(c)
                mask[i] = True
        return mask


class History:
    """Evaluated genomes (in order) with their objectives, constraints and metrics.

    Appends are amortised O(1): rows go to chunk lists that are joined lazily.
    """

    def __init__(self, cardinalities: np.ndarray, n_objectives: int, n_constraints: int) -> None:
        self.codec = GenomeCodec(cardinalities)
        self.cardinalities = np.asarray(cardinalities, dtype=np.int64)
        n_genes = len(self.cardinalities)
        self.n_genes = n_genes
        self.n_objectives = n_objectives
        self.n_constraints = n_constraints
        self._genes: list[np.ndarray] = []
        self._evals: list[Evaluation] = []
        self._keys: dict = {}
        self._codes = np.zeros(0, dtype=np.int64 if self.codec.integer else object)
        # small spaces: a flag per genome makes membership tests O(1) and vectorised
        self._seen = np.zeros(self.codec.total, dtype=bool) if self.codec.total <= BITMAP_LIMIT else None
        self._cache: tuple[np.ndarray, Evaluation] | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def index_of(self, key: object) -> int | None:
        return self._keys.get(key)

    def keys(self, genes: np.ndarray) -> list:
        return self.codec.keys(genes)

    def contains(self, codes: np.ndarray) -> np.ndarray:
        """Mask of genome codes (from ``codec.codes``) already in the history, (n,) bool."""
        if len(self._codes) == 0 or len(codes) == 0:
            return np.zeros(len(codes), dtype=bool)
        if self._seen is not None:
            return self._seen[codes]
        # a dict lookup per candidate: the cost is the batch, not the history
        return np.fromiter((c in self._keys for c in codes.tolist()), dtype=bool, count=len(codes))

    def add(self, genes: np.ndarray, evaluation: Evaluation) -> None:
        """Append evaluated genomes; a genome already present raises ValueError."""
        codes = self.codec.codes(genes)
        keys = codes.tolist()
        if len(set(keys)) != len(keys) or any(k in self._keys for k in keys):
            raise ValueError("History.add got a genome that was already evaluated")
        start = len(self._keys)
        for i, k in enumerate(keys):
            self._keys[k] = start + i
        self._codes = np.concatenate([self._codes, codes])
        if self._seen is not None:
            self._seen[codes] = True
        self._genes.append(np.asarray(genes, dtype=np.int64).reshape(-1, self.n_genes))
        self._evals.append(evaluation)
        self._cache = None

    def _joined(self) -> tuple[np.ndarray, Evaluation]:
        if self._cache is None:
            genes = (np.concatenate(self._genes) if self._genes
                     else np.zeros((0, self.n_genes), dtype=np.int64))
            ev = Evaluation.concat(self._evals, self.n_objectives, self.n_constraints)
            self._genes, self._evals = [genes], [ev] if len(ev) else []
            self._cache = (genes, ev)
        return self._cache

    @property
    def genes(self) -> np.ndarray:
        return self._joined()[0]

    @property
    def evaluation(self) -> Evaluation:
        return self._joined()[1]

    @property
    def objectives(self) -> np.ndarray:
        return self.evaluation.objectives

    @property
    def constraints(self) -> np.ndarray:
        return self.evaluation.constraints

    def state_dict(self) -> dict[str, Any]:
        ev = self.evaluation
        return {
            "genes": self.genes.tolist(),
            "objectives": ev.objectives.tolist(),
            "constraints": ev.constraints.tolist(),
            "metrics": {k: v.tolist() for k, v in ev.metrics.items()},
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], cardinalities: np.ndarray, n_objectives: int, n_constraints: int
    ) -> History:
        history = cls(cardinalities, n_objectives, n_constraints)
        n_genes = history.n_genes
        genes = np.asarray(state["genes"], dtype=np.int64).reshape(-1, n_genes)
        if len(genes):
            ev = Evaluation(
                np.asarray(state["objectives"], dtype=np.float64).reshape(len(genes), n_objectives),
                np.asarray(state["constraints"], dtype=np.float64).reshape(len(genes), n_constraints),
                {k: np.asarray(v, dtype=np.float64) for k, v in state["metrics"].items()},
            )
            history.add(genes, ev)
        return history
