"""Helpers shared by the estimators: target scaling, seeds, and the persistence protocol."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TargetScaler:
    """Affine map of the target to zero mean and unit variance (scale 1 for a constant target)."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScaler:
        y = np.asarray(y, dtype=np.float64)
        scale = float(np.std(y))
        return cls(mean=float(np.mean(y)), scale=scale if scale > 1e-12 else 1.0)

    def transform(self, y: np.ndarray) -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean


def seed_from(random_state: int | np.random.Generator | None) -> int:
    """A 31-bit integer seed from an int, a Generator (consumes one draw) or None (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state) % (2**31 - 1)
    raise ValueError(
        f"random_state must be an int, a numpy Generator or None; got {type(random_state).__name__}"
    )


@dataclass
class LearnedState:
    """What a fitted estimator persists: JSON scalars, numpy arrays and opaque payload files.

    ``meta`` must be JSON-serialisable, ``arrays`` are written to one ``.npz`` (read back with
    ``allow_pickle=False``), ``blobs`` are files written verbatim (their loader is the estimator's).
    """

    meta: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
