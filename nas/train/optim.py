"""Optimizer (AdamW or SGD, no weight decay on norms and biases) and a warm-up + cosine LR schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.train.config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights of convs/linears with decay; 1-D tensors (norms, biases) without."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


class WarmupCosine:
    """LR multiplier at optimizer step ``s``: linear warm-up from ``1/warmup`` to 1 over ``warmup``
    steps, then a cosine from 1 down to ``min_ratio`` at ``total`` steps. Plain attributes only, so
    the scheduler's state_dict stays ``weights_only``-loadable."""

    def __init__(self, total: int, warmup: int, min_ratio: float = 0.0) -> None:
        self.total, self.warmup, self.min_ratio = int(total), int(warmup), float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = config.epochs * steps_per_epoch
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(total, warmup, config.min_lr_ratio)
    )
