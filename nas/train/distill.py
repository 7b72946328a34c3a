"""Losses: label-smoothed cross-entropy for the teacher, in-place distillation for the students."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def supervised_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy on hard labels, optionally label-smoothed."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    *,
    kind: str = "soft_ce",
    temperature: float = 1.0,
) -> torch.Tensor:
    """Distillation of ``teacher`` logits (detached here) into ``student`` logits, batch mean.

    ``soft_ce``: cross-entropy with the teacher's softened probabilities as targets (BigNAS/OFA
    in-place distillation); ``kl``: KL(teacher || student), the same gradient minus the teacher's
    entropy. Both are scaled by ``temperature**2`` so the gradient size does not depend on it.
    """
    t = temperature
    target = F.softmax(teacher.detach() / t, dim=-1)
    log_p = F.log_softmax(student / t, dim=-1)
    if kind == "soft_ce":
        loss = -(target * log_p).sum(-1).mean()
    elif kind == "kl":
        loss = F.kl_div(log_p, target, reduction="batchmean")
    else:
        raise ValueError(f"distillation loss {kind!r}: expected soft_ce or kl")
    return loss * (t * t)


def student_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    teacher: torch.Tensor | None,
    *,
    kind: str = "soft_ce",
    temperature: float = 1.0,
    weight: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``weight * distill + (1 - weight) * supervised``; supervised only without a teacher."""
    hard = supervised_loss(logits, targets, label_smoothing=label_smoothing)
    if teacher is None or kind == "none" or weight == 0.0:
        return hard
    soft = distill_loss(logits, teacher, kind=kind, temperature=temperature)
    return soft if weight == 1.0 else weight * soft + (1.0 - weight) * hard
