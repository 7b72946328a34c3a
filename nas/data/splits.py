"""Data set splits: the containers, seeded stratified splitting, and train-statistics normalisation.

Policy: the ``test`` split is held out. Training uses ``train``; model selection, search and every
reported search-time accuracy use ``val``. ``test`` is only for a final report on an already chosen
architecture, never for choosing one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nas.data.stream import StreamSplit
from nas.errors import DataError


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` float32 (N, C, H, W), normalised; ``y`` int64 (N,) class indices."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.float32 or self.x.dim() != 4:
            raise ValueError(
                f"Split.x must be float32 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(
                f"Split.y must be int64 ({self.x.shape[0]},), "
                f"got {self.y.dtype} {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) of ``x``."""
        return tuple(self.x.shape)  # type: ignore[return-value]

    def fetch(self, index_batches: Iterable[Sequence[int]]) -> Iterator[
            tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` of each index batch, in order (the interface of
        :class:`nas.data.stream.StreamSplit`, which reads them from storage)."""
        for idx in index_batches:
            i = torch.as_tensor(np.asarray(idx, dtype=np.int64))
            yield self.x.index_select(0, i), self.y.index_select(0, i)


AnySplit = Split | StreamSplit  # in memory, or read from storage batch by batch


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A loaded data set: train / val / test splits sharing one normalisation (train statistics).

    ``test`` is never used for selection or search; use ``val`` for that (see the module docstring).
    ``mean`` and ``std`` are per channel, in units of pixels scaled to [0, 1] (uint8 / 255, digits
    / 16; float arrays as given), so ``(pixel - mean) / std`` reproduces the stored tensors.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    train: AnySplit
    val: AnySplit
    test: AnySplit
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    source: str = ""

    def fingerprint(self) -> str:
        """A short hash of labels, shapes and train statistics; it changes when the split does."""
        h = hashlib.sha256()
        h.update(repr((self.name, self.num_classes, self.image_size, self.mean, self.std)).encode())
        for split in (self.train, self.val, self.test):
            h.update(repr(tuple(split.shape)).encode())
            h.update(split.y.numpy().tobytes())
        return h.hexdigest()[:16]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise DataError unless 0 <= val, 0 <= test and val + test < 1."""
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0):
        raise DataError(
            f"split fractions must lie in [0, 1): got val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}"
        )
    if val_fraction + test_fraction >= 1.0:
        raise DataError(
            f"val_fraction + test_fraction must be < 1 to leave a training split: got "
            f"{val_fraction} + {test_fraction}"
        )


def _systematic(m: int, fraction: float) -> np.ndarray:
    """Mask over ``m`` positions taking every (1/fraction)-th one: round(m * fraction) in all."""
    i = np.arange(m, dtype=np.float64)
    return np.floor((i + 1) * fraction + 0.5) > np.floor(i * fraction + 0.5)


def stratified_split(
    y: np.ndarray, *, val_fraction: float, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified split of ``range(len(y))`` into sorted (train, val, test) index arrays.

    Samples are grouped by class (classes in random order, members in random order) and every
    k-th one goes to test, then to val, so the totals are exact (``round(n * test_fraction)`` and
    about ``n * val_fraction``) and each class's share is within two samples of its proportion,
    even when classes are too small for per-class rounding.
    """
    check_fractions(val_fraction, test_fraction)
    y = np.asarray(y)
    classes, inverse = np.unique(y, return_inverse=True)
    class_rank = rng.permutation(len(classes))
    perm = rng.permutation(len(y))
    grouped = perm[np.argsort(class_rank[inverse[perm]], kind="stable")]
    test_mask = _systematic(len(grouped), test_fraction)
    test, rest = grouped[test_mask], grouped[~test_mask]
    val_mask = _systematic(len(rest), val_fraction / (1.0 - test_fraction))
    val, train = rest[val_mask], rest[~val_mask]
    return np.sort(train), np.sort(val), np.sort(test)


def require_nonempty(name: str, n: int, fraction: float, where: str) -> None:
    """Raise DataError when a split asked for (fraction > 0) came out empty."""
    if fraction > 0 and n == 0:
        raise DataError(
            f"{where}: too few samples for a {name} split of {fraction:.0%}; "
            f"add data or change the split fraction"
        )


def _channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float64) of (N, C, H, W) ``x``, in chunks to bound memory."""
    c = x.shape[1]
    total = np.zeros(c)
    total_sq = np.zeros(c)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].astype(np.float64)
        total += part.sum(axis=(0, 2, 3))
        total_sq += np.square(part).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    std = np.sqrt(var)
    std[std < 1e-8] = 1.0  # a constant channel carries no information; leave it centred
    return mean, std


def _normalised(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    out = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    out.sub_(torch.from_numpy(mean).float().view(1, -1, 1, 1))
    out.div_(torch.from_numpy(std).float().view(1, -1, 1, 1))
    return out


def build_splits(
    *,
    name: str,
    source: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...],
    pixel_scale: float = 1.0,
) -> DatasetSplits:
    """Normalise raw (N, C, H, W) pixel arrays with the train split's per-channel statistics.

    ``pixel_scale`` is the raw value meaning 1.0 (255 for uint8); the recorded ``mean``/``std``
    are divided by it. Labels must already be validated indices in ``range(len(class_names))``.
    """
    x_train = train[0]
    if x_train.shape[0] == 0:
        raise DataError(f"{source}: the training split is empty")
    mean, std = _channel_stats(x_train)
    splits = []
    for x, y in (train, val, test):
        splits.append(
            Split(_normalised(x, mean, std), torch.from_numpy(np.asarray(y, dtype=np.int64).copy()))
        )
    return DatasetSplits(
        name=name,
        num_classes=len(class_names),
        in_channels=int(x_train.shape[1]),
        image_size=(int(x_train.shape[2]), int(x_train.shape[3])),
        train=splits[0],
        val=splits[1],
        test=splits[2],
        class_names=tuple(class_names),
        mean=tuple(float(v) / pixel_scale for v in mean),
        std=tuple(float(v) / pixel_scale for v in std),
        source=source,
    )


def describe(splits: DatasetSplits) -> str:
    """One line for logs: name, classes, shape and split sizes."""
    h, w = splits.image_size
    return (
        f"{splits.name}: {splits.num_classes} classes, {splits.in_channels}x{h}x{w}, "
        f"train {len(splits.train)} / val {len(splits.val)} / test {len(splits.test)} "
        f"(test held out from selection)"
    )
