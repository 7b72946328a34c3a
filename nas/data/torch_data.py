"""Your own torch ``Dataset`` or ``DataLoader`` as the data of a run (``nas.train_supernet(...,
data=(train, val))``, ``nas.data_from_torch``).

Each item is ``(image, label)``: ``image`` a (C, H, W) tensor or array with C = 1 or 3 (every item
the same size, already transformed and normalised as you want the model to see it), ``label`` an
integer class index. Batches are read through a ``DataLoader`` with workers, in the seeded order
and batch size of the run (a DataLoader you pass contributes its dataset and ``num_workers``; its
own sampler and batch size are not used, so the same seed gives the same batches). Labels are
taken from a ``targets`` attribute when the dataset has one (torchvision's do), else read once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nas.data.checks import check_labels
from nas.data.splits import DatasetSplits
from nas.data.stream import StreamSplit, check_workers
from nas.errors import DataError

PYTHON_SPEC = "python"  # the data spec recorded for a run trained on data given from Python


def _dataset_and_workers(data: Any, workers: int | None, where: str) -> tuple[Dataset, int]:
    if isinstance(data, DataLoader):
        n = data.num_workers if workers is None else workers
        return data.dataset, check_workers(n)
    if not (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        raise DataError(f"{where}: expected a torch Dataset (with __getitem__ and __len__) or a "
                        f"DataLoader, got {type(data).__name__}")
    return data, check_workers(0 if workers is None else workers)


def _labels(dataset: Dataset, workers: int, where: str) -> np.ndarray:
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return np.asarray(torch.as_tensor(targets))
    loader = DataLoader(dataset, batch_size=256, num_workers=workers,
                        collate_fn=lambda items: [int(y) for _, y in items])
    try:
        return np.asarray([y for batch in loader for y in batch], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: items must be (image, integer label) pairs ({exc})") from None


def _image_shape(dataset: Dataset, where: str) -> tuple[int, int, int]:
    x = torch.as_tensor(np.asarray(dataset[0][0]))
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise DataError(f"{where}: images must be (C, H, W) with C = 1 or 3, got shape "
                        f"{tuple(x.shape)} (transform them to tensors, e.g. ToTensor())")
    return tuple(int(v) for v in x.shape)  # type: ignore[return-value]


def data_from_torch(
    train: Any,
    val: Any,
    test: Any = None,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "torch",
    workers: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> DatasetSplits:
    """Train / val (/ test) torch Datasets or DataLoaders as :class:`DatasetSplits` read batch by
    batch (see the module docstring). ``num_classes`` defaults to the largest label + 1;
    ``workers`` to a DataLoader's ``num_workers`` (0 for a Dataset). ``mean``/``std`` (pixels
    scaled to [0, 1]) are only recorded, for exported models' cards: your transform applies them."""
    parts = {"train": train, "val": val, "test": test if test is not None else []}
    read: dict[str, tuple[Dataset, int, np.ndarray]] = {}
    for split, data in parts.items():
        where = f"data {name!r} {split}"
        dataset, n_workers = _dataset_and_workers(data, workers, where)
        labels = _labels(dataset, n_workers, where) if len(dataset) else np.zeros(0, np.int64)
        read[split] = (dataset, n_workers, labels)
    if not len(read["train"][0]):
        raise DataError(f"data {name!r}: the training set is empty")
    shape = _image_shape(read["train"][0], f"data {name!r} train")
    k = num_classes if num_classes is not None else int(read["train"][2].max()) + 1
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    if len(names) != k:
        raise DataError(f"data {name!r}: {len(names)} class names for {k} classes")
    c = shape[0]
    splits = {}
    for split, (dataset, n_workers, labels) in read.items():
        y = check_labels(labels, n=len(labels), num_classes=k, where=f"data {name!r} {split}")
        splits[split] = StreamSplit(dataset, torch.from_numpy(y), shape, mean=(0.0,) * c,
                                    std=(1.0,) * c, workers=n_workers)
    return DatasetSplits(
        name=name,
        num_classes=k,
        in_channels=c,
        image_size=(shape[1], shape[2]),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=names,
        mean=tuple(float(v) for v in mean) if mean is not None else (0.0,) * c,
        std=tuple(float(v) for v in std) if std is not None else (1.0,) * c,
        source=f"{PYTHON_SPEC}:{name}",
    )


def as_splits(data: Any) -> DatasetSplits:
    """``data`` given from Python: :class:`DatasetSplits` as is, or a tuple/list ``(train, val[,
    test])`` or a dict with those keys of Datasets/DataLoaders (:func:`data_from_torch`)."""
    if isinstance(data, DatasetSplits):
        return data
    if isinstance(data, dict):
        return data_from_torch(**data)
    if isinstance(data, tuple | list) and len(data) in (2, 3):
        return data_from_torch(*data)
    raise DataError(f"data: expected a spec string, DatasetSplits, (train, val[, test]) Datasets "
                    f"or DataLoaders, or a dict of them; got {type(data).__name__}")
