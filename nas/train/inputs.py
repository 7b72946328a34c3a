"""Turn a batch of native-size images into a subnet's input: resize, adapt channels, lay out."""

from __future__ import annotations

import torch

from nas.data import match_channels, resize_images


def model_input(
    x: torch.Tensor, resolution: int, in_channels: int, *, channels_last: bool = True
) -> torch.Tensor:
    """(B, C, H, W) -> (B, in_channels, resolution, resolution).

    ``channels_last`` memory layout (same values, NHWC strides) makes CPU convolutions, depthwise
    ones above all, 2-3x faster forward and backward with oneDNN; results agree with the default
    layout to float rounding.
    """
    x = match_channels(resize_images(x, resolution), in_channels)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
