"""Choices of 'nas fit' and 'nas predictors' (a light module: the CLI's help lists them without
importing scikit-learn)."""

from __future__ import annotations

MODELS: tuple[str, ...] = ("ridge", "gbm", "mlp", "ensemble")
FEATURES: tuple[str, ...] = ("onehot", "ordinal")
TARGETS: tuple[str, ...] = ("val_acc", "val_loss", "latency_ms")
DEFAULT_FOLDS = 5
DEFAULT_SIZES: tuple[int, ...] = (10, 20, 50, 100, 200, 500)  # learning-curve training sizes


def parse_stats(text: str | None) -> tuple[str, ...]:
    """``"macs,params"`` -> ("macs", "params"); empty or None -> ()."""
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())
