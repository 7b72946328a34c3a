"""Splits read batch by batch from a torch ``Dataset`` (image folders, or any Dataset given from
Python) through a ``DataLoader`` with worker processes, instead of held whole in memory.

A :class:`StreamSplit` keeps only its labels in memory; its ``dataset[i]`` returns ``(image, label)``
with the image in pixel units (uint8 for image folders), and :meth:`StreamSplit.fetch` reads the
batches it is asked for, in that order, and normalises them in this process. Which images form a
batch and in which order is decided by the caller (:mod:`nas.data.batches`, from a seeded numpy
Generator), and decoding is a pure function of the file, so the batches are the same whatever the
number of workers (0 reads in this process).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nas.errors import DataError

STATS_IMAGES = 10_000  # train images (a seeded sample beyond this) behind the mean and std


def default_data_workers() -> int:
    """Worker processes that read images: one core is left to training, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 0:
        raise DataError(f"data workers must be a non-negative integer (0: read in this process), "
                        f"got {workers!r}")
    return int(workers)


@dataclass(frozen=True)
class Unreadable:
    """What a Dataset item is when its file cannot be read; the batch then stops the run."""

    message: str


def _collate(items: list[Any]) -> Any:
    """Stack ``(image, label)`` items; the first :class:`Unreadable` item, if any, instead."""
    for item in items:
        if isinstance(item, Unreadable):
            return item
    images = [torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
              for x, _ in items]
    return torch.stack(images), torch.as_tensor([int(y) for _, y in items], dtype=torch.int64)


@dataclass(frozen=True, eq=False)
class StreamSplit:
    """One split read on access. ``dataset[i]`` -> ``(image (C, H, W) in pixel units, label)``;
    ``y`` int64 (N,) its labels; ``image_shape`` (C, H, W); ``mean``/``std`` per channel in pixel
    units (batches come out as ``(pixel - mean) / std``, like :class:`nas.data.Split`'s ``x``);
    ``workers`` the DataLoader's worker processes."""

    dataset: Dataset
    y: torch.Tensor
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    workers: int = 0

    def __post_init__(self) -> None:
        if self.y.dtype != torch.int64 or self.y.dim() != 1:
            raise ValueError(f"StreamSplit.y must be int64 (N,), got {self.y.dtype} "
                             f"{tuple(self.y.shape)}")
        check_workers(self.workers)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W), as ``Split.x.shape``."""
        return (len(self), *self.image_shape)

    def raw_batches(self, index_batches: Iterable[Sequence[int]]) -> Iterator[
            tuple[torch.Tensor, torch.Tensor]]:
        """``(pixels, labels)`` of each index batch, in order, read by ``workers`` processes."""
        batches = [[int(i) for i in b] for b in index_batches]
        if not batches:
            return
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers,
                            collate_fn=_collate)
        for batch in loader:
            if isinstance(batch, Unreadable):
                raise DataError(batch.message)
            yield batch

    def fetch(self, index_batches: Iterable[Sequence[int]]) -> Iterator[
            tuple[torch.Tensor, torch.Tensor]]:
        """Normalised float32 images and int64 labels of each index batch, in order."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        for x, y in self.raw_batches(index_batches):
            yield (x.to(torch.float32) - mean) / std, y


def pixel_stats(split: StreamSplit, *, seed: int, batch_size: int = 64) -> tuple[
        tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (pixel units) of ``split``'s images: all of them up to
    :data:`STATS_IMAGES`, else a seeded sample of that many (same seed, same statistics)."""
    n = len(split)
    if n == 0:
        raise DataError("the training split is empty")
    idx = np.arange(n)
    if n > STATS_IMAGES:
        idx = np.sort(np.random.default_rng([seed, 7]).choice(n, STATS_IMAGES, replace=False))
    c = split.image_shape[0]
    total, total_sq, count = np.zeros(c), np.zeros(c), 0
    for x, _ in split.raw_batches(np.array_split(idx, max(1, -(-len(idx) // batch_size)))):
        part = x.to(torch.int64) if not x.is_floating_point() else x.to(torch.float64)
        total += part.sum(dim=(0, 2, 3)).double().numpy()  # exact for integer pixels
        total_sq += part.square_().sum(dim=(0, 2, 3)).double().numpy()
        count += part.shape[0] * part.shape[2] * part.shape[3]
        del x, part
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    std[std < 1e-8] = 1.0  # a constant channel carries no information; leave it centred
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
