"""What the space operations, cost rules and geometry read of a search space, as Protocols.

:class:`nas.spaces.schema.SearchSpace` (and its :class:`StageSpec`, :class:`StemSpec`,
:class:`HeadSpec`) satisfy them structurally. The modules that compute on a space
(:mod:`nas.spaces.ops`, :mod:`nas.costs`, :mod:`nas.units`, :mod:`nas.spaces.geometry`) are typed
against these instead of importing the schema, because the schema's convenience methods
(``space.sample(rng)``, ``space.largest()``, ...) call them: importing the schema back would be an
import circle. This module is a leaf (it imports only the block base), so any module may use it.
Members are read-only properties, as the schema's frozen dataclass fields are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from nas.arch import Architecture
    from nas.blocks.base import BlockSpec

__all__ = ["HeadShape", "SpaceShape", "StageShape", "StemShape"]


class StemShape(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def kernel(self) -> int: ...
    @property
    def stride(self) -> int: ...
    @property
    def act(self) -> str: ...


class HeadShape(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def hidden(self) -> int | None: ...
    @property
    def act(self) -> str: ...


class StageShape(Protocol):
    @property
    def widths(self) -> tuple[int, ...]: ...
    @property
    def depths(self) -> tuple[int, ...]: ...
    @property
    def stride(self) -> int: ...
    @property
    def blocks(self) -> tuple[BlockSpec, ...]: ...
    @property
    def act(self) -> str: ...
    @property
    def kinds(self) -> tuple[str, ...]: ...
    @property
    def max_depth(self) -> int: ...

    def block(self, kind: str) -> BlockSpec: ...

    def __hash__(self) -> int: ...  # stage_layer_choices caches per stage


class SpaceShape(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def in_channels(self) -> int: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def resolutions(self) -> tuple[int, ...]: ...
    @property
    def stem(self) -> StemShape: ...
    @property
    def stages(self) -> tuple[StageShape, ...]: ...
    @property
    def head(self) -> HeadShape: ...
    @property
    def precisions(self) -> tuple[str, ...]: ...
    @property
    def searches_precision(self) -> bool: ...

    def validate(self, arch: Architecture) -> None: ...
