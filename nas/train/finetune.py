"""Once-for-all fine-tuning: a few epochs of ordinary training for one extracted subnet.

OFA and BigNAS deploy a subnet with its inherited weights, optionally after a short fine-tune
from those weights (OFA: tens of epochs at a small learning rate). :func:`finetune_model` does
that for a standalone model (what ``Supernet.extract`` returns): AdamW with no decay on norms and
biases, a cosine learning rate from ``lr`` to 0 after a short warm-up, label smoothing, the same
seeded translation augmentation as supernet training, BatchNorm in training mode (so its
statistics follow the weights). The last epoch's weights are the result: nothing is selected on
the validation split (it is only logged) and the test split is never seen.

Determinism: batches come from :class:`nas.data.BatchLoader` seeded with ``seed``; dropout from
``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the caller's RNG is untouched).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nas.data import DatasetSplits
from nas.errors import UserError
from nas.train.distill import supervised_loss
from nas.train.evaluate import evaluate_model
from nas.train.inputs import model_input, train_loader
from nas.train.optim import WarmupCosine, param_groups


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of a fine-tune (``nas export --finetune EPOCHS``). ``lr`` is AdamW's peak."""

    epochs: int
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    warmup_epochs: float = 0.25
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise UserError(f"fine-tune epochs = {self.epochs!r}; expected a positive integer")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise UserError(f"fine-tune batch size = {self.batch_size!r}; expected >= 1")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise UserError(f"fine-tune lr = {self.lr!r}; expected a positive number")
        for name in ("weight_decay", "warmup_epochs", "grad_clip"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise UserError(f"fine-tune {name} = {value!r}; expected a number >= 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"fine-tune label_smoothing = {self.label_smoothing}; expected [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def finetune_model(
    model: nn.Module,
    splits: DatasetSplits,
    *,
    resolution: int,
    in_channels: int,
    config: FinetuneConfig,
    say: Callable[[str], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``splits.train`` for ``config.epochs`` epochs; return one row
    per epoch (``epoch``, ``train_loss``, ``val_acc``, ``seconds``). The model ends in eval mode."""
    say = say or (lambda _msg: None)
    loader = train_loader(
        splits.train, batch_size=config.batch_size, seed=config.seed, augment=config.augment
    )
    steps = len(loader)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr)
    total = config.epochs * steps
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(total, min(total, round(config.warmup_epochs * steps)))
    )
    history: list[dict[str, float]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for epoch in range(config.epochs):
            start = time.perf_counter()
            model.train()
            loader.set_epoch(epoch)
            loss_sum, n = 0.0, 0
            for x, y in loader:
                logits = model(model_input(x, resolution, in_channels))
                loss = supervised_loss(logits, y, label_smoothing=config.label_smoothing)
                if not torch.isfinite(loss):
                    raise UserError(
                        f"fine-tuning diverged (loss {float(loss)}) in epoch {epoch + 1}; "
                        f"try a smaller --finetune-lr than {config.lr:g}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                schedule.step()
                loss_sum += float(loss.detach()) * int(y.numel())
                n += int(y.numel())
            val = (
                evaluate_model(model, splits.val, resolution=resolution, in_channels=in_channels)
                if len(splits.val)
                else None
            )
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(n, 1),
                "val_acc": float("nan") if val is None else val["acc"],
                "seconds": time.perf_counter() - start,
            }
            history.append(row)
            say(
                f"fine-tune epoch {epoch + 1}/{config.epochs}: train loss {row['train_loss']:.4f}, "
                f"val acc {row['val_acc']:.2%} ({row['seconds']:.0f} s)"
            )
    model.eval()
    return history
