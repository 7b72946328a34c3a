"""Every setting of a supernet training run, validated on construction and saved in ``config.json``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from nas.errors import UserError

SCHEDULES: tuple[str, ...] = ("sandwich", "progressive", "delayed", "fixed")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
DISTILL: tuple[str, ...] = ("soft_ce", "kl", "none")
DEVICES: tuple[str, ...] = ("cpu", "cuda")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")  # bf16: autocast of forward passes and losses

# Defaults that depend on the optimizer. The AdamW learning rate, the batch size, the epochs and the
# distillation weight were chosen by results/benchmarks/supernet_sweep.md (hybrid-cifar on digits).
DEFAULT_LR = {"adamw": 3e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 0.05, "sgd": 4e-5}

# Settings that may change when a run is resumed: they decide where and how fast it runs, not what
# it computes (a resumed run must end with the weights an uninterrupted run would have).
EXECUTION_FIELDS: frozenset[str] = frozenset({"device", "threads"})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of ``nas train``. ``lr`` and ``weight_decay`` default per optimizer.

    ``schedule``: ``sandwich`` (largest, smallest and ``sandwich_n`` random subnets every step),
    ``delayed`` (largest only for the first ``delay_fraction`` of epochs, then sandwich),
    ``progressive`` (OFA order, phases split at ``phase_fractions`` of the epochs, see
    :mod:`nas.train.schedules`), or ``fixed`` (only ``arch``, no distillation: a from-scratch baseline).
    ``precision``: ``fp32``, or ``bf16`` (forward passes and losses under ``torch.autocast`` with
    bfloat16; weights, gradients, optimizer and validation stay float32). It changes what a run
    computes, so a run resumes only with its own precision.
    """

    space: str
    data: str = "digits"
    data_seed: int = 0
    val_fraction: float | None = None  # None: the data source's own split (nas.data.SOURCES)
    test_fraction: float | None = None
    image_size: int | None = None
    epochs: int = 15
    batch_size: int = 16
    schedule: str = "sandwich"
    sandwich_n: int = 2
    delay_fraction: float = 0.5
    phase_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    arch: str | None = None
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    distill: str = "soft_ce"
    temperature: float = 1.0
    distill_weight: float = 0.25
    augment: bool = True
    zero_init_residual: bool = True
    channels_last: bool = True
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None
    eval_every: int = 1
    recal_batches: int = 8
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "phase_fractions", tuple(float(f) for f in self.phase_fractions))
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        _one_of("distill", self.distill, DISTILL)
        _one_of("precision", self.precision, PRECISIONS)
        if self.device.split(":")[0] not in DEVICES:
            raise UserError(f"device {self.device!r}: expected cpu, cuda or cuda:N")
        if self.lr is None:
            set_(self, "lr", DEFAULT_LR[self.optimizer])
        if self.weight_decay is None:
            set_(self, "weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])
        for name in ("epochs", "batch_size", "eval_every", "recal_batches", "eval_batch_size"):
            _positive_int(name, getattr(self, name))
        _non_negative_int("sandwich_n", self.sandwich_n)
        _non_negative_int("seed", self.seed)
        _non_negative_int("data_seed", self.data_seed)
        if self.threads is not None:
            _positive_int("threads", self.threads)
        for name in ("lr", "temperature"):
            _positive(name, getattr(self, name))
        for name in ("weight_decay", "warmup_epochs", "grad_clip"):
            _non_negative(name, getattr(self, name))
        for name in ("momentum", "min_lr_ratio", "distill_weight", "delay_fraction"):
            _unit(name, getattr(self, name))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing = {self.label_smoothing}; expected 0 <= value < 1")
        fr = self.phase_fractions
        if len(fr) != 3 or any(not 0.0 <= f <= 1.0 for f in fr) or list(fr) != sorted(fr):
            raise UserError(
                f"phase_fractions = {list(fr)}; expected three increasing fractions in [0, 1] "
                "(where the operator, depth and width phases of the progressive schedule start)"
            )
        if self.schedule == "fixed" and not self.arch:
            raise UserError("schedule 'fixed' trains one architecture: give it with --arch")
        if self.schedule != "fixed" and self.arch:
            raise UserError(f"--arch is only used by schedule 'fixed', not {self.schedule!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phase_fractions"] = list(self.phase_fractions)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise a UserError naming them."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a JSON object of training settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
        if "space" not in data:
            raise UserError(f"{where}: missing setting 'space'")
        try:
            return cls(**data)
        except TypeError as exc:
            raise UserError(f"{where}: {exc}") from None

    def differences(self, other: TrainConfig, *, ignore: frozenset[str] = EXECUTION_FIELDS) -> dict:
        """``{name: (self value, other value)}`` for settings that differ, except ``ignore``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name} {value!r}: expected one of {', '.join(allowed)}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} = {value!r}; expected a positive integer")


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{name} = {value!r}; expected a non-negative integer")


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{name} = {value!r}; expected a finite number")
    return float(value)


def _positive(name: str, value: Any) -> None:
    if _finite(name, value) <= 0:
        raise UserError(f"{name} = {value!r}; expected a number > 0")


def _non_negative(name: str, value: Any) -> None:
    if _finite(name, value) < 0:
        raise UserError(f"{name} = {value!r}; expected a number >= 0")


def _unit(name: str, value: Any) -> None:
    if not 0.0 <= _finite(name, value) <= 1.0:
        raise UserError(f"{name} = {value!r}; expected a number in [0, 1]")
