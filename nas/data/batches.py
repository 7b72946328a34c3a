"""Mini-batches with on-the-fly resize, channel adaptation and seeded translation augmentation.

Every random choice comes from a passed ``numpy.random.Generator``: the same seed gives the same
batches. :class:`BatchLoader` derives one generator per epoch from ``(seed, epoch)``, so a run
resumed at epoch e sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.splits import Split
from nas.errors import DataError


def resize_images(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W) to (B, C, resolution, resolution), antialiased if shrinking.

    ``None`` or the current size returns ``x`` unchanged.
    """
    h, w = x.shape[-2:]
    if resolution is None or (h, w) == (resolution, resolution):
        return x
    shrinking = resolution < h or resolution < w
    return F.interpolate(
        x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrinking
    )


def check_channels(data_channels: int, in_channels: int | None) -> None:
    """Raise DataError unless ``data_channels`` can feed a model with ``in_channels``."""
    if in_channels is None or in_channels == data_channels or data_channels == 1:
        return
    raise DataError(
        f"the data has {data_channels} channel(s) but the model expects {in_channels}; only "
        f"1-channel data can be adapted (by repeating it), so pick a space with in_channels="
        f"{data_channels}"
    )


def match_channels(x: torch.Tensor, in_channels: int | None) -> torch.Tensor:
    """(B, 1, H, W) -> (B, k, H, W) by repetition when the model wants k channels, else as is."""
    c = x.shape[1]
    check_channels(c, in_channels)
    if in_channels is None or in_channels == c:
        return x
    return x.repeat(1, in_channels, 1, 1)


def random_translate(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Pad by 1/8 of the size (edge replicated) and crop back at a random offset per image.

    No flips (digits must not be mirrored). Output shape equals input shape.
    """
    b, _, h, w = x.shape
    pad = max(1, round(min(h, w) / 8))
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.from_numpy(rng.integers(0, 2 * pad + 1, size=(b, 2))).to(x.device)
    rows = (offsets[:, 0:1] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offsets[:, 1:2] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _check_args(batch_size: int, resolution: int | None) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size!r}")
    if resolution is not None and (not isinstance(resolution, int) or resolution < 1):
        raise DataError(f"resolution must be a positive integer, got {resolution!r}")


def iterate_batches(
    split: Split,
    *,
    batch_size: int,
    resolution: int | None,
    in_channels: int | None = None,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    augment: bool = False,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)``: x float32 (B, in_channels, resolution, resolution), y int64 (B,).

    ``resolution=None`` keeps the native size (resize later with :func:`resize_images`, e.g. per
    subnet). ``shuffle`` and ``augment`` draw from ``rng``, which they require. Arguments are
    checked here, before the first batch; batches are moved to ``device`` before resizing.
    """
    _check_args(batch_size, resolution)
    check_channels(split.x.shape[1], in_channels)
    if (shuffle or augment) and rng is None:
        raise ValueError("shuffle=True or augment=True needs rng (a seeded numpy Generator)")
    return _batches(
        split, batch_size, resolution, in_channels, shuffle, rng, augment, drop_last, device
    )


def _batches(
    split: Split,
    batch_size: int,
    resolution: int | None,
    in_channels: int | None,
    shuffle: bool,
    rng: np.random.Generator | None,
    augment: bool,
    drop_last: bool,
    device: torch.device | str | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = len(split)
    order = torch.from_numpy(rng.permutation(n)) if shuffle else torch.arange(n)
    for i in range(num_batches(n, batch_size, drop_last)):
        idx = order[i * batch_size : (i + 1) * batch_size]
        x = split.x.index_select(0, idx)
        y = split.y.index_select(0, idx)
        if device is not None:
            if torch.device(device).type == "cuda":  # page-locked: the copy is asynchronous
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = resize_images(x, resolution)
        if augment:
            x = random_translate(x, rng)
        yield match_channels(x, in_channels), y


class BatchLoader:
    """Re-iterable batches for a trainer: ``len(loader)`` batches per epoch, epoch set explicitly.

    Each ``iter(loader)`` uses ``numpy.random.default_rng([seed, epoch])``, where ``epoch`` is the
    value last given to :meth:`set_epoch` (0 at first), so iterating twice in one epoch, or in a
    resumed run, yields the same batches.
    """

    def __init__(
        self,
        split: Split,
        *,
        batch_size: int,
        resolution: int | None,
        in_channels: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        augment: bool = False,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        _check_args(batch_size, resolution)
        check_channels(split.x.shape[1], in_channels)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DataError(f"seed must be a non-negative integer, got {seed!r}")
        self.split = split
        self.batch_size = batch_size
        self.resolution = resolution
        self.in_channels = in_channels
        self.shuffle = shuffle
        self.seed = int(seed)
        self.augment = augment
        self.drop_last = drop_last
        self.device = device
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next ``iter()`` yields."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return num_batches(len(self.split), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iterate_batches(
            self.split,
            batch_size=self.batch_size,
            resolution=self.resolution,
            in_channels=self.in_channels,
            shuffle=self.shuffle,
            rng=np.random.default_rng([self.seed, self.epoch]),
            augment=self.augment,
            drop_last=self.drop_last,
            device=self.device,
        )
