"""Accuracy and loss of a model or of a supernet's subnet on one split.

Selection (search, ranking, early stopping) must use ``split="val"``; ``"test"`` is for a final
report on an architecture already chosen, never for choosing one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.arch import Architecture
from nas.data import DatasetSplits, Split, iterate_batches
from nas.errors import UserError
from nas.train.bn import (
    DEFAULT_RECAL_BATCH_SIZE,
    DEFAULT_RECAL_BATCHES,
    calibration_inputs,
    recalibrate_bn,
)
from nas.train.inputs import model_input

SPLITS = ("train", "val", "test")


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    split: Split,
    *,
    resolution: int,
    in_channels: int,
    batch_size: int = 256,
) -> dict[str, float]:
    """``{"acc", "loss", "n"}`` of ``model`` in eval mode on ``split`` (images resized to
    ``resolution``); ``acc`` is a fraction in [0, 1], ``loss`` the mean cross-entropy."""
    if len(split) == 0:
        raise UserError("cannot evaluate on an empty split")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    # Sums stay on the device and are read once at the end (no sync per batch on CUDA).
    correct = torch.zeros((), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for x, y in iterate_batches(split, batch_size=batch_size, resolution=None, device=device):
            logits = model(model_input(x, resolution, in_channels))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(-1) == y).sum()
    finally:
        model.train(was_training)
    n = len(split)
    return {"acc": int(correct) / n, "loss": float(loss_sum) / n, "n": n}


def recalibrated_subnet(
    supernet: nn.Module,
    arch: Architecture,
    train_split: Split,
    *,
    recal_batches: int = DEFAULT_RECAL_BATCHES,
    recal_batch_size: int = DEFAULT_RECAL_BATCH_SIZE,
    seed: int = 0,
) -> nn.Module:
    """``supernet.extract(arch)`` with BatchNorm statistics recalibrated on ``train_split``
    (a standalone static model in eval mode; the supernet is not modified)."""
    model = supernet.extract(arch)
    inputs = calibration_inputs(
        train_split,
        resolution=arch.resolution,
        in_channels=supernet.space.in_channels,
        batches=recal_batches,
        batch_size=recal_batch_size,
        seed=seed,
        device=_device_of(supernet),
    )
    return recalibrate_bn(model, inputs, copy_model=False).eval()


def evaluate_subnet(
    supernet: nn.Module,
    arch: Architecture,
    splits: DatasetSplits,
    *,
    split: str = "val",
    recal_batches: int = DEFAULT_RECAL_BATCHES,
    recal_batch_size: int = DEFAULT_RECAL_BATCH_SIZE,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Accuracy and loss of ``arch`` with inherited weights, BN recalibrated on the train split.

    Extracts the subnet, recalibrates the copy (:func:`nas.train.bn.recalibrate_bn`, the supernet
    is untouched, so concurrent calls are safe) and evaluates it on ``splits.<split>``. Returns
    ``{"acc", "loss", "n"}`` with ``acc`` a fraction in [0, 1].
    """
    if split not in SPLITS:
        raise UserError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    model = recalibrated_subnet(
        supernet,
        arch,
        splits.train,
        recal_batches=recal_batches,
        recal_batch_size=recal_batch_size,
        seed=seed,
    )
    return evaluate_model(
        model,
        getattr(splits, split),
        resolution=arch.resolution,
        in_channels=supernet.space.in_channels,
        batch_size=batch_size,
    )
