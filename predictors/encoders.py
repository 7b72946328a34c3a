"""Encode architectures as fixed-length numeric vectors for predictors.

``OneHotEncoder`` is additive by construction: the vector of an architecture is the sum of the
columns set by its resolution, each stage's width and depth, and each active layer's kind and
options (skipped layers set nothing, as in OFA's arch2feature). So a linear model on it is a sum of
per-choice costs, which is what the MILP search optimises exactly (``columns_of_*`` give the
columns one decision sets).

``OrdinalEncoder`` keeps numbers as numbers (resolution, width, depth, kernel, ratios scaled to
[0, 1]) and the layer kind one-hot; skipped layers are all zeros.

Both are scikit-learn transformers over lists of :class:`~nas.arch.Architecture` and can append
free statistics (``stats=("macs", "params", "memory")`` as log10, or any ``extra`` callable such as
a latency table's prediction), as in FBNetV3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from nas import costs
from nas.arch import Architecture, Layer
from nas.precision import INT8
from nas.spaces.schema import SearchSpace

STATS = ("macs", "params", "memory")


def _as_list(archs: Architecture | Sequence[Architecture]) -> list[Architecture]:
    return [archs] if isinstance(archs, Architecture) else list(archs)


def _stat_columns(
    space: SearchSpace, archs: list[Architecture], stats: Sequence[str]
) -> np.ndarray:
    unknown = set(stats) - set(STATS)
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; allowed: {', '.join(STATS)}")
    out = np.zeros((len(archs), len(stats)))
    for r, arch in enumerate(archs):
        c = costs.costs(space, arch).as_dict()
        out[r] = [np.log10(max(c[s], 1)) for s in stats]
    return out


class _ArchEncoder(TransformerMixin, BaseEstimator):
    """Shared plumbing: validation, statistics and the ``extra`` callable."""

    def __init__(
        self,
        space: SearchSpace,
        *,
        stats: tuple[str, ...] = (),
        extra: Callable[[Architecture], float] | None = None,
    ) -> None:
        self.space = space
        self.stats = stats
        self.extra = extra

    def fit(self, archs=None, y=None):
        """Nothing to learn: the layout comes from the space."""
        return self

    def _base_names(self) -> list[str]:
        raise NotImplementedError

    def _encode(self, arch: Architecture, row: np.ndarray) -> None:
        raise NotImplementedError

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        names = self._base_names() + [f"stat.{s}" for s in self.stats]
        if self.extra is not None:
            names.append("extra")
        return np.array(names, dtype=object)

    @property
    def n_features(self) -> int:
        return len(self.get_feature_names_out())

    def transform(self, archs: Architecture | Sequence[Architecture]) -> np.ndarray:
        archs = _as_list(archs)
        base = len(self._base_names())
        out = np.zeros((len(archs), self.n_features))
        for r, arch in enumerate(archs):
            self.space.validate(arch)
            self._encode(arch, out[r, :base])
        col = base
        if self.stats:
            out[:, col : col + len(self.stats)] = _stat_columns(self.space, archs, self.stats)
            col += len(self.stats)
        if self.extra is not None:
            out[:, col] = [float(self.extra(a)) for a in archs]
        return out


@lru_cache(maxsize=64)
def _one_hot_layout(space: SearchSpace) -> dict[str, int]:
    """Column of every one-hot feature name (cached per space; spaces are frozen values)."""
    names: list[str] = [f"res={r}" for r in space.resolutions]
    for i, stage in enumerate(space.stages):
        names += [f"s{i}.width={w}" for w in stage.widths]
        names += [f"s{i}.depth={d}" for d in stage.depths]
        for j in range(stage.max_depth):
            for block in stage.blocks:
                names.append(f"s{i}.l{j}.kind={block.kind}")
                for opt, values in block.option_choices().items():
                    if len(values) > 1:
                        names += [f"s{i}.l{j}.{block.kind}.{opt}={v}" for v in values]
    names += [f"{gene}.precision={p}" for gene in precision_gene_names(space)
              for p in space.precisions]
    return {n: k for k, n in enumerate(names)}


def precision_gene_names(space: SearchSpace) -> list[str]:
    """The precision genes' names in genome order (none in an fp32-only space): ``stem``, each
    slot ``s<i>.l<j>``, ``head``."""
    if not space.searches_precision:
        return []
    slots = [f"s{i}.l{j}" for i, stage in enumerate(space.stages) for j in range(stage.max_depth)]
    return ["stem", *slots, "head"]


def arch_precision_genes(arch: Architecture) -> dict[str, str]:
    """``{gene name: precision}`` of the active genes of ``arch`` (see precision_gene_names)."""
    out = {"stem": arch.stem_precision, "head": arch.head_precision}
    for i, stage in enumerate(arch.stages):
        out.update({f"s{i}.l{j}": p for j, p in enumerate(stage.precisions)})
    return out


class OneHotEncoder(_ArchEncoder):
    """Additive one-hot features: resolution, width, depth, and per active layer kind + options."""

    def _layout(self) -> dict[str, int]:
        return _one_hot_layout(self.space)

    def _base_names(self) -> list[str]:
        return list(self._layout())

    def columns_of_resolution(self, resolution: int) -> list[int]:
        return [self._layout()[f"res={resolution}"]]

    def columns_of_width(self, stage: int, width: int) -> list[int]:
        return [self._layout()[f"s{stage}.width={width}"]]

    def columns_of_depth(self, stage: int, depth: int) -> list[int]:
        return [self._layout()[f"s{stage}.depth={depth}"]]

    def columns_of_layer(self, stage: int, position: int, layer: Layer) -> list[int]:
        layout = self._layout()
        cols = [layout[f"s{stage}.l{position}.kind={layer.kind}"]]
        for opt, value in layer.options().items():
            key = f"s{stage}.l{position}.{layer.kind}.{opt}={value}"
            if key in layout:
                cols.append(layout[key])
        return cols

    def _encode(self, arch: Architecture, row: np.ndarray) -> None:
        row[self.columns_of_resolution(arch.resolution)] = 1.0
        for i, stage in enumerate(arch.stages):
            row[self.columns_of_width(i, stage.width)] = 1.0
            row[self.columns_of_depth(i, stage.depth)] = 1.0
            for j, layer in enumerate(stage.layers):
                row[self.columns_of_layer(i, j, layer)] = 1.0
        if self.space.searches_precision:
            row[[self.columns_of_precision(g, p) for g, p in arch_precision_genes(arch).items()]] = 1.0

    def columns_of_precision(self, gene: str, precision: str) -> int:
        """Column of precision gene ``gene`` (``stem``, ``s<i>.l<j>``, ``head``) at ``precision``."""
        return self._layout()[f"{gene}.precision={precision}"]


def _scale(value: float, choices: Sequence[float]) -> float:
    lo, hi = float(min(choices)), float(max(choices))
    return 1.0 if hi == lo else (float(value) - lo) / (hi - lo)


class OrdinalEncoder(_ArchEncoder):
    """Numbers as numbers in [0, 1]; layer kind one-hot; skipped layers all zeros."""

    def _base_names(self) -> list[str]:
        names = ["resolution"]
        for i, stage in enumerate(self.space.stages):
            names += [f"s{i}.width", f"s{i}.depth"]
            for j in range(stage.max_depth):
                for block in stage.blocks:
                    names.append(f"s{i}.l{j}.{block.kind}")
                    names += [f"s{i}.l{j}.{block.kind}.{opt}" for opt in block.option_choices()]
        return names + [f"{gene}.int8" for gene in precision_gene_names(self.space)]

    def _encode(self, arch: Architecture, row: np.ndarray) -> None:
        row[0] = _scale(arch.resolution, self.space.resolutions)
        col = 1
        for spec, stage in zip(self.space.stages, arch.stages):
            row[col] = _scale(stage.width, spec.widths)
            row[col + 1] = _scale(stage.depth, spec.depths)
            col += 2
            for j in range(spec.max_depth):
                layer = stage.layers[j] if j < stage.depth else None
                for block in spec.blocks:
                    choices = block.option_choices()
                    if layer is not None and layer.kind == block.kind:
                        row[col] = 1.0
                        for k, (opt, values) in enumerate(choices.items()):
                            row[col + 1 + k] = _scale(float(layer.options()[opt]), values) + 1e-3
                    col += 1 + len(choices)
        genes = arch_precision_genes(arch)
        for gene in precision_gene_names(self.space):  # 1 for int8; 0 for fp32 or inactive
            row[col] = float(genes.get(gene) == INT8)
            col += 1
