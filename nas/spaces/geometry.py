"""Feature-map sizes of a space at a resolution (pure arithmetic on the space's fields)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.blocks.base import conv_out

if TYPE_CHECKING:
    from nas.spaces.shape import SpaceShape

__all__ = ["conv_out", "stage_input_sizes"]


def stage_input_sizes(space: SpaceShape, resolution: int) -> list[int]:
    """Spatial input size of each stage at a given resolution (after the stem), then the head's."""
    size = conv_out(resolution, space.stem.stride)
    sizes = []
    for stage in space.stages:
        sizes.append(size)
        size = conv_out(size, stage.stride)
    sizes.append(size)  # head input
    return sizes
