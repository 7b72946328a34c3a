"""Initialisation for weight-sharing training: every residual branch starts as zero.

BigNAS (Yu et al., 2020, section 3.1) found this essential for training a single-stage supernet:
with the last scale of each residual branch at zero, every block starts as the identity, so a
subnet that skips layers (elastic depth) or swaps a layer's kind computes nearly the same function
early in training, and the sandwich rule does not blow up. The branches still learn: the gradient
of a zero scale or zero output projection is not zero.

Each block kind says what it zeroes (``BlockKind.zero_init_`` in :mod:`nas.blocks.kinds`): the last
BatchNorm scale of each residual MBConv (not the first layer of a stage, which changes width or
stride and has no skip connection), and the output projections (weight and bias) of both branches
of attention and mixer blocks (``proj``/``fc2``, ``token_fc2``/``fc2``).
"""

from __future__ import annotations

import torch

from nas.blocks.registry import block_kind
from nas.supernet import Supernet


@torch.no_grad()
def zero_init_residual_branches(supernet: Supernet) -> int:
    """Zero the last scale of every residual branch in place (each kind's rule,
    ``BlockKind.zero_init_``); returns how many branches."""
    count = 0
    for slots in supernet.stages:
        for slot in slots:
            for kind, block in slot.blocks.items():
                count += block_kind(kind).zero_init_(block, slot.first)
    return count
