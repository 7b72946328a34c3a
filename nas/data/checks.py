"""Validation shared by the data sources (labels, arrays, paths); each failure is one DataError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import DataError


@dataclass(frozen=True, eq=False)
class RawData:
    """Loaded, validated, not yet normalised data: x arrays (N, C, H, W) in pixel units."""

    name: str
    source: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    class_names: tuple[str, ...]
    pixel_scale: float  # raw pixel value that means "1.0" (255 for uint8, 16 for digits)


def check_labels(y: np.ndarray, *, n: int, num_classes: int | None, where: str) -> np.ndarray:
    """Return ``y`` as int64 (n,) class indices or raise a DataError naming ``where``.

    Accepts integer arrays, float arrays holding whole numbers, and (n, 1) columns.
    ``num_classes=None`` checks only that labels are non-negative.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{where}: expected class indices of shape ({n},), got shape {y.shape} "
            f"(one-hot labels are not accepted; use argmax)"
        )
    if y.shape[0] != n:
        raise DataError(f"{where}: {n} images but {y.shape[0]} labels; they must match one to one")
    if y.dtype.kind == "f":
        if not (np.isfinite(y).all() and (y == np.round(y)).all()):
            bad = y[~(np.isfinite(y) & (y == np.round(y)))][0]
            raise DataError(f"{where}: labels must be integer class indices, found {bad.item()}")
    elif y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    high = num_classes if num_classes is not None else None
    bad_mask = (y < 0) if high is None else (y < 0) | (y >= high)
    if bad_mask.any():
        i = int(np.flatnonzero(bad_mask)[0])
        expected = "non-negative" if high is None else f"in 0..{high - 1}"
        raise DataError(f"{where}: labels must be {expected}, found {y[i]} at index {i}")
    return y


def check_finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where}: contains NaN or infinite values")


def existing_path(path: str, kind: str, expected: str) -> Path:
    """``path`` with ``~`` expanded; a DataError saying what was expected if it does not exist."""
    if not path:
        raise DataError(f"{kind}: no path given; expected {kind}:PATH to {expected}")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{kind}: {p} does not exist; expected {expected} (nothing is downloaded)")
    return p
