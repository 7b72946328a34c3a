"""BatchNorm recalibration: fresh running statistics for one subnet, from training batches.

Weight sharing leaves the supernet's running statistics a mixture over every subnet it trained,
so a subnet must get its own before it is evaluated or exported (OFA, BigNAS). Recalibration
resets the running mean and variance, then runs ``batches`` training batches through the model
with only the BatchNorm layers in train mode (dropout and everything else stay in eval mode, so no
random numbers are drawn), under ``no_grad``, with a cumulative average (``momentum=None``): the
result is the plain mean of the per-batch statistics. Only running statistics change.

Two variants:

- :func:`recalibrate_bn` works on any module, typically an extracted static subnet, and by default
  returns a recalibrated copy, leaving the input untouched: safe to call from several threads on
  one supernet. **Evaluation** (:func:`nas.train.evaluate.evaluate_subnet`) **uses this one**, on
  ``supernet.extract(arch)``.
- :func:`recalibrate_supernet_bn` writes the statistics into the supernet's shared BatchNorm
  layers (first C channels), for code that must call ``supernet.extract`` after recalibration.
  It mutates the supernet: not thread-safe, and it overwrites statistics other subnets use.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from itertools import islice

import torch
from torch import nn

from nas.arch import Architecture
from nas.data import BatchLoader, Split
from nas.train.inputs import model_input

DEFAULT_RECAL_BATCHES = 8
DEFAULT_RECAL_BATCH_SIZE = 64


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def calibration_inputs(
    split: Split,
    *,
    resolution: int,
    in_channels: int,
    batches: int = DEFAULT_RECAL_BATCHES,
    batch_size: int = DEFAULT_RECAL_BATCH_SIZE,
    seed: int = 0,
    device: torch.device | str | None = None,
    channels_last: bool = True,
) -> Iterator[torch.Tensor]:
    """Up to ``batches`` shuffled, un-augmented batches of ``split`` (use TRAIN), as model inputs at
    ``resolution`` with ``in_channels`` channels. Same seed, same batches."""
    loader = BatchLoader(
        split, batch_size=batch_size, resolution=None, shuffle=True, seed=seed, device=device
    )
    for x, _ in islice(loader, batches):
        yield model_input(x, resolution, in_channels, channels_last=channels_last)


@torch.no_grad()
def _run_calibration(model: nn.Module, inputs: Iterable[torch.Tensor], forward, bns: list) -> int:
    was_training = {m: m.training for m in model.modules()}
    saved_momentum = [bn.momentum for bn in bns]
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches
            bn.train()
        count = 0
        for x in inputs:
            forward(x)
            count += 1
    finally:
        for bn, m in zip(bns, saved_momentum):
            bn.momentum = m
        for m, t in was_training.items():
            m.train(t)
    if count == 0:
        raise ValueError("BN recalibration got no batches; the calibration split is empty")
    return count


def recalibrate_bn(
    model: nn.Module,
    inputs: Iterable[torch.Tensor],
    *,
    batches: int | None = None,
    copy_model: bool = True,
) -> nn.Module:
    """Recalibrate the BatchNorm running statistics of ``model`` on ``inputs`` (see module doc).

    ``inputs`` yields input tensors already at the model's resolution (see
    :func:`calibration_inputs`); at most ``batches`` of them are used (all when ``None``). Returns
    the recalibrated model: a deep copy when ``copy_model`` (the default), else ``model`` itself.
    The train/eval mode of every submodule is restored.
    """
    target = copy.deepcopy(model) if copy_model else model
    bns = _bn_layers(target)
    if not bns:
        return target
    it = inputs if batches is None else islice(inputs, batches)
    _run_calibration(target, it, target, bns)
    return target


def recalibrate_supernet_bn(
    supernet: nn.Module,
    arch: Architecture,
    inputs: Iterable[torch.Tensor],
    *,
    batches: int | None = None,
) -> nn.Module:
    """In place: recalibrate the supernet's shared BatchNorm statistics for ``arch``.

    Every BatchNorm of the supernet is reset first (statistics of channels or layers ``arch`` does
    not use become 0/1), so only ``arch`` (and ``extract(arch)`` afterwards) is meaningful until
    the next recalibration. Returns ``supernet``.
    """
    bns = _bn_layers(supernet)
    it = inputs if batches is None else islice(inputs, batches)
    _run_calibration(supernet, it, lambda x: supernet(x, arch), bns)
    return supernet


__all__ = [
    "DEFAULT_RECAL_BATCHES",
    "DEFAULT_RECAL_BATCH_SIZE",
    "calibration_inputs",
    "recalibrate_bn",
    "recalibrate_supernet_bn",
]
