"""Image-folder data sets read with Pillow: ``root/<class>/<image>`` or ``root/{train,val,test}/``.

Images are decoded when a batch needs them (by DataLoader workers, :mod:`nas.data.stream`); only
file names and labels are held, so a folder of any size trains in bounded memory.

Class labels are the sorted sub-folder names (of ``train/`` in the split layout). Images are
converted to RGB, or to L when every image is grayscale, and brought to one size: ``image_size``
(square) when given, else the images' common size, else the largest size all of them reach
without upsampling (the minimum height and width). Resizing covers the target and crops the
centre, so the aspect ratio is kept.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from nas.data.checks import existing_path
from nas.data.splits import DatasetSplits, require_nonempty, stratified_split
from nas.data.stream import (
    StreamSplit,
    Unreadable,
    check_workers,
    default_data_workers,
    pixel_stats,
)
from nas.errors import DataError

IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
)
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")
VAL_DIRS = ("val", "valid", "validation")
EXPECTED = (
    "an image folder with one sub-folder per class (root/<class>/<image>.png), or train/ "
    "(and optionally val/, test/) sub-trees laid out the same way"
)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and _visible(d))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.iterdir()
        if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_SUFFIXES
    )


def _scan(
    root: Path, class_names: tuple[str, ...] | None
) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Files and labels under ``root/<class>/``; ``class_names`` fixes labels (val/test trees)."""
    dirs = _class_dirs(root)
    if not dirs:
        raise DataError(f"folder: {root} has no class sub-folders; expected {EXPECTED}")
    if class_names is None:
        class_names = tuple(d.name for d in dirs)
    unknown = [d.name for d in dirs if d.name not in class_names]
    if unknown:
        raise DataError(
            f"folder: {root} has class folder(s) {', '.join(unknown)} that train/ does not have; "
            f"expected a subset of: {', '.join(class_names)}"
        )
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        images = _image_files(d)
        if not images:
            raise DataError(
                f"folder: class folder {d} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        files += images
        labels += [class_names.index(d.name)] * len(images)
    return files, labels, class_names


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """(height, width) and Pillow mode, reading only the header."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width), im.mode
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"folder: {path} is not a readable image ({exc})") from None


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (C, H, W): converted to ``mode``, resized to cover, centre-cropped."""
    h, w = size
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if (im.height, im.width) != (h, w):
                scale = max(h / im.height, w / im.width)
                nh, nw = max(h, round(im.height * scale)), max(w, round(im.width * scale))
                im = im.resize((nw, nh), Image.Resampling.BILINEAR)
                top, left = (nh - h) // 2, (nw - w) // 2
                im = im.crop((left, top, left + w, top + h))
            a = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise DataError(f"folder: {path} is not a readable image ({exc})") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _mode_and_size(files: list[Path], image_size: int | None) -> tuple[str, tuple[int, int]]:
    """Pillow mode (L when every image is grayscale, else RGB) and the (H, W) all are brought to,
    from the files' headers (an unreadable header stops here, naming the file)."""
    probes = [_probe(f) for f in files]
    mode = "L" if all(m in GRAY_MODES for _, m in probes) else "RGB"
    sizes = {s for s, _ in probes}
    if image_size is not None:
        return mode, (image_size, image_size)
    if len(sizes) == 1:
        return mode, next(iter(sizes))
    return mode, (min(s[0] for s in sizes), min(s[1] for s in sizes))


class FolderImages(Dataset):
    """Image files decoded on access: ``[i]`` -> (uint8 (C, H, W) tensor, label), or
    :class:`~nas.data.stream.Unreadable` naming the file when it cannot be decoded."""

    def __init__(self, files: list[Path], labels: np.ndarray, mode: str,
                 size: tuple[int, int]) -> None:
        self.files = [str(f) for f in files]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.mode, self.size = mode, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | Unreadable:
        try:
            image = _decode(Path(self.files[i]), self.mode, self.size)
        except DataError as exc:
            return Unreadable(str(exc))
        return torch.from_numpy(np.ascontiguousarray(image)), int(self.labels[i])


def _split_of(files: list[Path], labels: np.ndarray, mode: str, size: tuple[int, int],
              workers: int) -> StreamSplit:
    channels = 1 if mode == "L" else 3
    return StreamSplit(FolderImages(files, labels, mode, size),
                       torch.from_numpy(np.asarray(labels, dtype=np.int64).copy()),
                       (channels, *size), mean=(0.0,) * channels, std=(1.0,) * channels,
                       workers=workers)


def load_folder(
    path: str,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    image_size: int | None,
    workers: int | None = None,
) -> DatasetSplits:
    """An image-folder tree as splits read on access (:class:`~nas.data.stream.StreamSplit`,
    ``workers`` DataLoader processes, default :func:`~nas.data.stream.default_data_workers`):
    only file names and labels stay in memory. Splits are seeded and stratified unless val/ and
    test/ trees exist; normalised with the train split's statistics (:func:`pixel_stats`)."""
    workers = default_data_workers() if workers is None else check_workers(workers)
    root = existing_path(path, "folder", EXPECTED)
    if not root.is_dir():
        raise DataError(f"folder: {root} is a file; expected {EXPECTED}")
    rng = np.random.default_rng(seed)
    if (root / "train").is_dir():
        files, labels, names = _scan(root / "train", None)
        trees: dict[str, tuple[list[Path], list[int]]] = {}
        val_dir = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
        for split, folder in (("val", val_dir), ("test", root / "test")):
            if folder is not None and folder.is_dir():
                f, y, _ = _scan(folder, names)
                trees[split] = (f, y)
        vf = 0.0 if "val" in trees else val_fraction
        tf = 0.0 if "test" in trees else test_fraction
    else:
        files, labels, names = _scan(root, None)
        trees, vf, tf = {}, val_fraction, test_fraction

    all_files = files + [f for split in ("val", "test") if split in trees for f in trees[split][0]]
    mode, size = _mode_and_size(all_files, image_size)
    y = np.asarray(labels, dtype=np.int64)
    tr, va, te = stratified_split(y, val_fraction=vf, test_fraction=tf, rng=rng)
    require_nonempty("validation", len(va), vf, f"folder: {root}")
    require_nonempty("test", len(te), tf, f"folder: {root}")
    parts = {k: ([files[i] for i in idx], y[idx]) for k, idx in
             (("train", tr), ("val", va), ("test", te))}
    for split, (f, lab) in trees.items():
        parts[split] = (f, np.asarray(lab, dtype=np.int64))
    raw = {k: _split_of(f, lab, mode, size, workers) for k, (f, lab) in parts.items()}
    mean, std = pixel_stats(raw["train"], seed=seed)
    splits = {k: replace(s, mean=mean, std=std) for k, s in raw.items()}
    return DatasetSplits(
        name=f"folder:{root.resolve().name}",
        num_classes=len(names),
        in_channels=raw["train"].image_shape[0],
        image_size=size,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        class_names=names,
        mean=tuple(v / 255.0 for v in mean),
        std=tuple(v / 255.0 for v in std),
        source=f"folder:{root.resolve()}",
    )
