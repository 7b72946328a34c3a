"""The search-space schema: frozen dataclasses validated on construction.

A space is data (loaded from YAML, see :mod:`nas.spaces.loader`), never code. Every list of choices
is a sorted tuple without duplicates; validation errors name the field and the allowed values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from nas.blocks.base import BlockSpec
from nas.errors import SpaceError
from nas.precision import parse_precisions
from nas.spaces import ops
from nas.spaces.geometry import conv_out, stage_input_sizes

if TYPE_CHECKING:
    import numpy as np

    from nas.arch import Architecture

ACTIVATIONS: tuple[str, ...] = ("relu", "hswish", "gelu", "silu")

__all__ = ["ACTIVATIONS", "BlockSpec", "HeadSpec", "SearchSpace", "StageSpec", "StemSpec",
           "block_spec", "conv_out", "stage_input_sizes", "validate_space"]

def _check_act(act: str, where: str) -> str:
    if act not in ACTIVATIONS:
        raise SpaceError(f"{where}: unknown activation {act!r}; allowed: {', '.join(ACTIVATIONS)}")
    return act


def block_spec(kind: str, data: object, where: str) -> BlockSpec:
    """The spec of a registered block kind from its YAML mapping (errors name ``where``)."""
    from nas.blocks.registry import block_kind  # the kinds (and torch) load with the first space

    return block_kind(kind).spec.from_yaml(data, where)


@dataclass(frozen=True)
class StemSpec:
    width: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv to ``width`` + BN + act, global average pool, optional hidden linear + act, classifier."""

    width: int
    hidden: int | None = None
    act: str = "relu"
    dropout: float = 0.0


@dataclass(frozen=True)
class StageSpec:
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    stride: int
    blocks: tuple[BlockSpec, ...]
    act: str = "relu"
    name: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(b.kind for b in self.blocks)

    def block(self, kind: str) -> BlockSpec:
        for b in self.blocks:
            if b.kind == kind:
                return b
        raise SpaceError(
            f"stage {self.name!r}: block kind {kind!r} not allowed; allowed: {', '.join(self.kinds)}"
        )

    @property
    def max_depth(self) -> int:
        return self.depths[-1]


@dataclass(frozen=True)
class SearchSpace:
    """A declarative space of hybrid networks over the registered block kinds (see DESIGN.md)."""

    name: str
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    description: str = ""
    source: str = field(default="", compare=False)
    precisions: tuple[str, ...] = ("fp32",)  # the precision genes allowed (nas.precision)

    @property
    def searches_precision(self) -> bool:
        """Whether the space has precision genes (more than one allowed precision)."""
        return len(self.precisions) > 1

    def with_precisions(self, precisions: str | tuple[str, ...] | list[str]) -> SearchSpace:
        """This space with other allowed precisions (``"fp32,int8"`` or a list); the same weights,
        cells and hash, so a supernet trained on one serves the other."""
        names = precisions.split(",") if isinstance(precisions, str) else list(precisions)
        return replace(self, precisions=parse_precisions(names, "precisions"))

    # Sampling, mutation and counting live in nas.spaces.ops (typed against nas.spaces.shape, so
    # it never imports this module back); they are re-exported as methods for convenience.
    def sample(self, rng: np.random.Generator) -> Architecture:
        return ops.sample(self, rng)

    def mutate(self, arch: Architecture, rng: np.random.Generator,
               prob: float = 0.1) -> Architecture:
        return ops.mutate(self, arch, rng, prob=prob)

    def crossover(self, a: Architecture, b: Architecture,
                  rng: np.random.Generator) -> Architecture:
        return ops.crossover(self, a, b, rng)

    def contains(self, arch: Architecture) -> bool:
        return ops.contains(self, arch)

    def validate(self, arch: Architecture) -> None:
        ops.validate(self, arch)

    def size(self) -> int | float:
        return ops.size(self)

    def largest(self) -> Architecture:
        return ops.largest(self)

    def smallest(self) -> Architecture:
        return ops.smallest(self)

    def hash(self) -> str:
        """Stable 16-hex-digit hash of everything that shapes the weights and costs (not the name)."""
        data = asdict(self)
        data.pop("precisions", None)  # quantization shares the weights and the cells of the space
        data.pop("source", None)
        data.pop("description", None)
        data.pop("name", None)
        data["kinds"] = [[b.kind for b in s.blocks] for s in self.stages]
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:  # short; the whole definition is nas.train.rundir.space_to_dict
        stages = " ".join(f"{s.name}[{'/'.join(s.kinds)}]" for s in self.stages)
        res = list(self.resolutions)
        resolutions = str(res) if len(res) <= 6 else f"[{res[0]}..{res[-1]}] ({len(res)})"
        return (
            f"SearchSpace({self.name!r}, in_channels={self.in_channels}, "
            f"classes={self.num_classes}, resolutions={resolutions}, "
            f"stages: {stages}, hash={self.hash()})"
        )


def validate_space(space: SearchSpace, where: str) -> None:
    """Cross-field checks; raises SpaceError naming the file and field."""
    if space.in_channels <= 0 or space.num_classes <= 1:
        raise SpaceError(f"{where}: in_channels must be > 0 and num_classes > 1")
    _check_act(space.stem.act, f"{where}: stem.act")
    _check_act(space.head.act, f"{where}: head.act")
    if not space.stages:
        raise SpaceError(f"{where}: stages: empty; expected at least one stage")
    for i, stage in enumerate(space.stages):
        _check_act(stage.act, f"{where}: stages[{i}].act")
        if stage.stride not in (1, 2):
            raise SpaceError(f"{where}: stages[{i}].stride = {stage.stride}; allowed: 1, 2")
        if not stage.blocks:
            from nas.blocks.registry import kind_names

            raise SpaceError(
                f"{where}: stages[{i}].blocks: empty; allowed kinds: {', '.join(kind_names())}"
            )
    smallest = space.resolutions[0]
    sizes = stage_input_sizes(space, smallest)
    total_stride = space.stem.stride
    for s in space.stages:
        total_stride *= s.stride
    if smallest < total_stride:
        raise SpaceError(
            f"{where}: resolutions: the smallest resolution {smallest} is below the total stride "
            f"{total_stride}; the feature map would vanish (last stage would see {sizes[-1]}x{sizes[-1]} "
            f"from an input smaller than its stride). Use resolutions >= {total_stride}"
        )
