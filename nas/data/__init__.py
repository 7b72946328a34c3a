"""The data layer: load a data set from a spec string, split it, normalise it, and batch it.

Specs (nothing is ever downloaded)::

    digits              scikit-learn's 8x8 handwritten digits (embedded default)
    fashion-mnist[:PATH] Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist,
                        Debian's dataset-fashion-mnist); 55,000 / 5,000 / 10,000
    idx:PATH            any MNIST-layout folder of IDX files (MNIST, KMNIST, EMNIST)
    cifar10:PATH        CIFAR-10 python batches (data_batch_1..5, test_batch, batches.meta)
    cifar100:PATH       CIFAR-100 python batches (train, test, meta), fine labels
    folder:PATH         image folder: PATH/<class>/<image>, or PATH/{train,val,test}/<class>/,
                        decoded batch by batch by DataLoader workers (never whole in memory)
    npz:PATH            arrays x_train, y_train[, x_val, y_val, x_test, y_test][, class_names]

Held-out policy: ``splits.test`` is never used for selection or search; training uses ``train``,
every choice (architecture search, early stopping, BN-recalibrated subnet ranking) uses ``val``.

Example::

    splits = load_dataset("digits", seed=0)
    loader = BatchLoader(splits.train, batch_size=64, resolution=32, in_channels=3,
                         shuffle=True, seed=0, augment=True)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nas.data.batches import (
    BatchLoader,
    check_channels,
    iterate_batches,
    match_channels,
    num_batches,
    random_translate,
    resize_images,
)
from nas.data.checks import RawData
from nas.data.splits import (
    AnySplit,
    DatasetSplits,
    Split,
    build_splits,
    check_fractions,
    describe,
)
from nas.data.stream import StreamSplit, default_data_workers
from nas.errors import DataError

__all__ = [
    "SOURCES",
    "SPEC_HELP",
    "SPEC_KINDS",
    "AnySplit",
    "BatchLoader",
    "DataError",
    "DataSource",
    "DatasetSplits",
    "Split",
    "StreamSplit",
    "check_channels",
    "default_data_workers",
    "describe",
    "iterate_batches",
    "load_dataset",
    "match_channels",
    "num_batches",
    "parse_spec",
    "random_translate",
    "resize_images",
]


@dataclass(frozen=True)
class DataSource:
    """One data-set kind of the spec grammar: how to load it and what its path means.

    ``loader(path, seed=, val_fraction=, test_fraction=, image_size=, workers=)`` returns
    :class:`RawData` (arrays, normalised into memory by :func:`load_dataset`) or, for a source
    read on access, :class:`DatasetSplits` of :class:`~nas.data.stream.StreamSplit`.
    ``path``: ``"none"`` (no path), ``"required"`` or ``"optional"`` (a default folder).
    ``val_fraction`` / ``test_fraction``: the defaults when the caller passes ``None``.
    """

    kind: str
    loader: Callable[..., RawData | DatasetSplits]
    path: str
    usage: str
    val_fraction: float = 0.15
    test_fraction: float = 0.15


def _digits(path: str, **kw: Any) -> RawData:
    from nas.data.sources import load_digits_raw

    return load_digits_raw(
        seed=kw["seed"], val_fraction=kw["val_fraction"], test_fraction=kw["test_fraction"]
    )


def _cifar(kind: str) -> Callable[..., RawData]:
    def load(path: str, **kw: Any) -> RawData:
        from nas.data.sources import load_cifar_raw

        return load_cifar_raw(kind, path, seed=kw["seed"], val_fraction=kw["val_fraction"])

    return load


def _npz(path: str, **kw: Any) -> RawData:
    from nas.data.sources import load_npz_raw

    return load_npz_raw(
        path, seed=kw["seed"], val_fraction=kw["val_fraction"], test_fraction=kw["test_fraction"]
    )


def _folder(path: str, **kw: Any) -> DatasetSplits:
    from nas.data.folder import load_folder

    return load_folder(path, **kw)


def _idx(path: str, **kw: Any) -> RawData:
    from nas.data.idx import load_idx_raw

    return load_idx_raw(path, seed=kw["seed"], val_fraction=kw["val_fraction"])


def _fashion_mnist(path: str, **kw: Any) -> RawData:
    from nas.data.idx import load_fashion_mnist_raw

    return load_fashion_mnist_raw(path, seed=kw["seed"], val_fraction=kw["val_fraction"])


_MNIST_VAL = 5000 / 60000  # MNIST's customary 55,000 / 5,000 split of its training file

SOURCES: dict[str, DataSource] = {
    s.kind: s
    for s in (
        DataSource("digits", _digits, "none", "digits"),
        DataSource("fashion-mnist", _fashion_mnist, "optional", "fashion-mnist[:PATH]", _MNIST_VAL),
        DataSource("idx", _idx, "required", "idx:PATH", _MNIST_VAL),
        DataSource("cifar10", _cifar("cifar10"), "required", "cifar10:PATH"),
        DataSource("cifar100", _cifar("cifar100"), "required", "cifar100:PATH"),
        DataSource("folder", _folder, "required", "folder:PATH"),
        DataSource("npz", _npz, "required", "npz:PATH"),
    )
}
SPEC_KINDS = tuple(SOURCES)
SPEC_HELP = ", ".join(s.usage for s in SOURCES.values())


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a data spec into ``(kind, path)``; ``path`` is ``""`` when the kind takes none."""
    kind, sep, path = spec.strip().partition(":")
    kind = kind.lower()
    source = SOURCES.get(kind)
    if source is None:
        raise DataError(f"unknown data spec {spec!r}; expected {SPEC_HELP}")
    if source.path == "none":
        if sep:
            raise DataError(f"data spec {spec!r}: {kind} takes no path; expected just '{kind}'")
        return kind, ""
    if source.path == "required" and not path.strip():
        raise DataError(f"data spec {spec!r}: no path; expected {kind}:PATH")
    return kind, path.strip()


def _resize_raw(x: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Resize raw (N, C, H, W) pixels to size x size (float32), antialiased when shrinking."""
    if x.shape[2:] == (size, size):
        return x
    parts = [
        resize_images(torch.from_numpy(x[i : i + chunk]).float(), size).numpy()
        for i in range(0, x.shape[0], chunk)
    ]
    c = x.shape[1]
    return np.concatenate(parts) if parts else np.empty((0, c, size, size), np.float32)


def load_dataset(
    spec: str,
    *,
    seed: int = 0,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    image_size: int | None = None,
    workers: int | None = None,
) -> DatasetSplits:
    """Load ``spec`` (see the module docstring) into normalised train/val/test splits.

    ``val_fraction`` / ``test_fraction`` default (``None``) to the source's own split
    (:data:`SOURCES`). Splits are seeded and stratified (same seed, same split). Splits a source already provides
    (the CIFAR test batch; val/test arrays or folders) are used as given, and the fractions only
    apply to the parts carved from train. ``image_size`` resizes every image to a square of that
    side at load time (native size by default). Bad paths, layouts or contents raise
    :class:`nas.errors.DataError` (a ``UserError``) with one message naming the file or array.
    Image folders are read on access by ``workers`` DataLoader processes (default
    :func:`~nas.data.stream.default_data_workers`; 0 reads in this process); the other sources
    are small and held in memory.
    """
    kind, path = parse_spec(spec)
    source = SOURCES[kind]
    val_fraction = source.val_fraction if val_fraction is None else val_fraction
    test_fraction = source.test_fraction if test_fraction is None else test_fraction
    check_fractions(val_fraction, test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"data seed must be a non-negative integer, got {seed!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image size must be a positive integer, got {image_size!r}")
    raw = source.loader(
        path,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        image_size=image_size,
        workers=workers,
    )
    if isinstance(raw, DatasetSplits):  # read on access; the source sized the images itself
        return raw
    parts = {"train": raw.train, "val": raw.val, "test": raw.test}
    if image_size is not None:
        parts = {k: (_resize_raw(x, image_size), y) for k, (x, y) in parts.items()}
    return build_splits(
        name=raw.name,
        source=raw.source,
        class_names=raw.class_names,
        pixel_scale=raw.pixel_scale,
        **parts,
    )
