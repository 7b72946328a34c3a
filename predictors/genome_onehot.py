"""One-hot encoding of batches of genomes: exactly what :class:`predictors.encoders.OneHotEncoder`
gives architecture by architecture (tested), as numpy gathers over the genome tables of
:mod:`nas.spaces.tables`, which is what makes predictor-driven evolution cheap."""

from __future__ import annotations

import numpy as np

from nas.spaces.ops import stage_layer_choices
from nas.spaces.schema import SearchSpace
from nas.spaces.tables import GenomeTables
from predictors.encoders import OneHotEncoder, precision_gene_names

__all__ = ["GenomeOneHot"]


class GenomeOneHot:
    """Vectorised :class:`predictors.encoders.OneHotEncoder` (without statistics) over genomes."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.encoder = OneHotEncoder(space)
        enc = self.encoder
        n = enc.n_features
        self.n_features = n
        self.res_cols = np.array([enc.columns_of_resolution(r)[0] for r in space.resolutions])
        self.width_cols, self.depth_cols, self.slot_rows = [], [], []
        for i, stage in enumerate(space.stages):
            self.width_cols.append(np.array([enc.columns_of_width(i, w)[0] for w in stage.widths]))
            self.depth_cols.append(np.array([enc.columns_of_depth(i, d)[0] for d in stage.depths]))
            per_slot = []
            for j in range(stage.max_depth):
                rows = np.zeros((len(stage_layer_choices(stage)), n))
                for c, layer in enumerate(stage_layer_choices(stage)):
                    rows[c, enc.columns_of_layer(i, j, layer)] = 1.0
                per_slot.append(rows)
            self.slot_rows.append(per_slot)
        # precision genes (genome order: stem, every slot, head): rows of their columns
        self.precision_rows = []
        for gene in precision_gene_names(space):
            rows = np.zeros((len(space.precisions), n))
            for k, p in enumerate(space.precisions):
                rows[k, enc.columns_of_precision(gene, p)] = 1.0
            self.precision_rows.append(rows)
        self.tables = GenomeTables(space, rules={})

    def transform(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        rows = np.arange(len(genes))
        X = np.zeros((len(genes), self.n_features))
        X[rows, self.res_cols[genes[:, 0]]] = 1.0
        active = self.tables.active_slots(genes)
        for i, stage in enumerate(self.space.stages):
            o = self.tables.offsets[i]
            X[rows, self.width_cols[i][genes[:, o]]] = 1.0
            X[rows, self.depth_cols[i][genes[:, o + 1]]] = 1.0
            for j in range(stage.max_depth):
                X += self.slot_rows[i][j][genes[:, o + 2 + j]] * active[i][:, j : j + 1]
        if self.precision_rows:
            masks = [np.ones((len(genes), 1), dtype=bool)]
            masks += [a[:, j : j + 1] for a in active for j in range(a.shape[1])]
            masks.append(masks[0])
            o = self.tables.precision_offset
            for k, (rows_k, mask) in enumerate(zip(self.precision_rows, masks, strict=True)):
                X += rows_k[genes[:, o + k]] * mask
        return X
